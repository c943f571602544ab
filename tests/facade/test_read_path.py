"""What a read does not do, being the facade's hot path: walk the root URLconf (its route is matched first, from
mappings/facade/urls.py), or parse a query it does not have."""

from __future__ import annotations

import pytest

from mappings import actions, caches
from mappings.facade import middleware
from mappings.models import FacadeResource

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def patient(served) -> str:
    caches.clear()
    live = actions.do_deploy(served["binding"], acting_user=served["author"], version=served["v1"])
    return FacadeResource.objects.get(deployment=live).resource_id


def test_reads_and_searches_are_matched_without_the_root_urlconf(patient, client, monkeypatch) -> None:
    def unused(path):
        raise AssertionError(f"resolve({path!r}) walked the URLconf")

    monkeypatch.setattr(middleware, "resolve", unused)
    answer = client.get(f"/fhir/clinic/Patient/{patient}")
    assert answer.status_code == 200 and answer.json()["id"] == patient
    assert answer.wsgi_request.resolver_match.url_name == "fhir-read"
    assert answer.wsgi_request.resolver_match.kwargs == {
        "slug": "clinic",
        "resource_type": "Patient",
        "resource_id": patient,
    }
    search = client.get("/fhir/clinic/Patient?family=smith")
    assert search.status_code == 200 and search.json()["resourceType"] == "Bundle"
    assert search.wsgi_request.resolver_match.url_name == "fhir-type"


def test_other_facade_urls_still_resolve_through_the_urlconf(patient, client) -> None:
    metadata = client.get("/fhir/clinic/metadata")
    assert metadata.status_code == 200 and metadata.json()["resourceType"] == "CapabilityStatement"
    assert client.get("/fhir/clinic/Patient/$validate").status_code != 404


def test_a_read_without_a_query_parses_none(patient, client) -> None:
    plain = client.get(f"/fhir/clinic/Patient/{patient}")
    assert plain.status_code == 200
    assert "GET" not in plain.wsgi_request.__dict__  # request.GET (a cached property) was never built
    pretty = client.get(f"/fhir/clinic/Patient/{patient}?_pretty=true")
    assert pretty.status_code == 200 and pretty.content.startswith(b"{\n")
    assert pretty.json() == plain.json()
