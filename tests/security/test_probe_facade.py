"""Issue 15's probes of a serving facade (clinic: Patient from stored records): bad requests are 4xx
OperationOutcomes, never 500s, and the metrics count made-up type names as one bucket."""

from __future__ import annotations

import pytest
from django.test import Client

from mappings import actions
from mappings.facade import request_log
from mappings.facade.http import UNKNOWN_TYPE
from tests.api.conftest import api, json_patient, users  # noqa: F401 — the studio API's fixtures, shared
from tests.facade.conftest import served  # noqa: F401

pytestmark = pytest.mark.django_db
FORM = "application/x-www-form-urlencoded"


@pytest.fixture
def client(served) -> Client:  # noqa: F811
    live = actions.do_deploy(served["binding"], acting_user=served["author"], version=served["v1"])
    actions.do_finish_index(live, errors=[], records=0)  # live, with nothing indexed: searches find nothing
    return Client(raise_request_exception=False)


def diagnostics(response) -> str:
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome", outcome
    return outcome["issue"][0]["diagnostics"]


def test_post_search_with_1001_form_fields_is_a_400(client) -> None:
    body = "&".join(f"family=x{n}" for n in range(1001))
    response = client.post("/fhir/clinic/Patient/_search", data=body, content_type=FORM)
    assert response.status_code == 400
    assert "more than 1000 parameters" in diagnostics(response)


def test_post_search_with_999_repeated_parameters_is_a_4xx(client) -> None:
    body = "&".join(["family=Smith"] * 999)
    response = client.post("/fhir/clinic/Patient/_search", data=body, content_type=FORM)
    assert 400 <= response.status_code < 500
    diagnostics(response)


def test_post_search_with_a_million_character_value_is_answered(client) -> None:
    response = client.post("/fhir/clinic/Patient/_search", data="family=" + "x" * 1_000_000, content_type=FORM)
    assert response.status_code < 500, response.content[:300]
    assert response.json()["resourceType"] in ("Bundle", "OperationOutcome")


def test_a_body_the_guard_did_not_see_is_still_a_413(client, settings) -> None:
    """Without mappings.guard (a deployment that reorders the middleware), the facade itself refuses the body."""
    settings.MIDDLEWARE = [name for name in settings.MIDDLEWARE if name != "mappings.guard.RequestGuard"]
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    response = client.post("/fhir/clinic/Patient/_search", data="family=" + "x" * 2000, content_type=FORM)
    assert response.status_code == 413
    assert "1000 bytes" in diagnostics(response)


def test_metrics_count_made_up_type_names_as_one_bucket(client, api) -> None:  # noqa: F811
    request_log.discard()
    for path in ("/fhir/clinic/PATIENT", "/fhir/clinic/NoSuchType", "/fhir/clinic/NoSuchType/1", "/fhir/clinic/Xyz"):
        assert client.get(path).status_code == 404
    assert client.get("/fhir/clinic/Patient?family=Nobody").status_code == 200
    by_type = api["viewer"].get("/api/facades/clinic/metrics").json()["by_type"]
    assert sorted(by_type) == sorted(["Patient", UNKNOWN_TYPE])
    assert by_type[UNKNOWN_TYPE]["requests"] == 4
    assert by_type[UNKNOWN_TYPE]["client_errors"] == 4
