"""`_history` of a FHIR store at type and system level: history Bundles newest first, deleted versions as entries
without a resource, `_since`, `_at`, paging by next links that neither repeat nor skip an entry while others write,
SMART scopes (a token sees the history of the types it may read), and 405 on a facade that keeps no versions."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from urllib.parse import urlencode, urlsplit

import pytest
from django.core.cache import cache

from mappings import actions, caches
from mappings.connectors import FhirClient
from mappings.models import Facade
from tests.security.conftest import assertion, register
from tests.store.conftest import make_store_facade

FHIR_JSON = "application/fhir+json"
PATIENT = {"resourceType": "Patient", "name": [{"family": "Lovelace"}], "gender": "female"}
OBSERVATION = {"resourceType": "Observation", "status": "final", "code": {"text": "heart rate"}}


def create(client, base: str, resource: dict) -> dict:
    answer = client.post(f"{base}/{resource['resourceType']}", resource, content_type=FHIR_JSON)
    assert answer.status_code == 201, answer.content
    return answer.json()


def put(client, base: str, resource: dict) -> dict:
    answer = client.put(f"{base}/{resource['resourceType']}/{resource['id']}", resource, content_type=FHIR_JSON)
    assert answer.status_code == 200, answer.content
    return answer.json()


def read_all(client, url: str) -> tuple[list[dict], list[dict]]:
    """Every entry, following next links; and each page's Bundle."""
    entries, pages = [], []
    while url:
        parts = urlsplit(url)
        answer = client.get(parts.path + (f"?{parts.query}" if parts.query else ""))
        assert answer.status_code == 200, answer.content
        page = answer.json()
        pages.append(page)
        entries += page.get("entry", [])
        url = next((link["url"] for link in page["link"] if link["relation"] == "next"), None)
    return entries, pages


def versions_of(entries: list[dict]) -> list[tuple[str, str]]:
    return [(entry["fullUrl"].split("/fhir/store/")[1], entry["response"]["etag"]) for entry in entries]


def test_it_lists_every_types_versions_at_the_base_newest_first(client, store) -> None:
    patient = create(client, store["base"], PATIENT)
    observation = create(client, store["base"], {**OBSERVATION, "subject": {"reference": f"Patient/{patient['id']}"}})
    put(client, store["base"], {**patient, "gender": "other"})
    history = client.get(f"{store['base']}/_history")
    assert history.status_code == 200, history.content
    bundle = history.json()
    assert bundle["type"] == "history" and bundle["total"] == 3
    assert versions_of(bundle["entry"]) == [
        (f"Patient/{patient['id']}", 'W/"2"'),
        (f"Observation/{observation['id']}", 'W/"1"'),
        (f"Patient/{patient['id']}", 'W/"1"'),
    ]
    update, created = bundle["entry"][0], bundle["entry"][2]
    assert update["request"] == {"method": "PUT", "url": f"Patient/{patient['id']}"}
    assert update["response"]["status"] == "200 OK"
    assert update["response"]["location"] == f"Patient/{patient['id']}/_history/2"
    assert update["resource"]["gender"] == "other"
    assert created["request"] == {"method": "POST", "url": "Patient"}
    assert created["response"]["status"] == "201 Created" and created["resource"]["gender"] == "female"
    assert update["response"]["lastModified"] == update["resource"]["meta"]["lastUpdated"]


def test_it_lists_a_deleted_version_as_an_entry_without_a_resource(client, store) -> None:
    patient = create(client, store["base"], PATIENT)
    assert client.delete(f"{store['base']}/Patient/{patient['id']}").status_code == 204
    for url in (f"{store['base']}/_history", f"{store['base']}/Patient/_history"):
        deleted = client.get(url).json()["entry"][0]
        assert "resource" not in deleted
        assert deleted["request"] == {"method": "DELETE", "url": f"Patient/{patient['id']}"}
        assert deleted["response"]["status"] == "204 No Content" and deleted["response"]["etag"] == 'W/"2"'
        assert "location" not in deleted["response"]


def test_it_pages_by_next_links_without_repeating_an_entry_while_others_write(client, store) -> None:
    written = [create(client, store["base"], {**PATIENT, "name": [{"family": f"F{n}"}]}) for n in range(7)]
    first = client.get(f"{store['base']}/Patient/_history?_count=3").json()
    assert first["total"] == 7 and len(first["entry"]) == 3
    create(client, store["base"], PATIENT)  # written between pages: newest, so not on the pages that follow
    following = next(link["url"] for link in first["link"] if link["relation"] == "next")
    assert "_count=3" in following
    rest, pages = read_all(client, following)
    ids = [entry["resource"]["id"] for entry in first["entry"] + rest]
    assert ids == [patient["id"] for patient in reversed(written)]
    assert [len(page.get("entry", [])) for page in pages] == [3, 1]
    assert not [link for link in pages[-1]["link"] if link["relation"] == "next"]


def test_it_pages_the_system_history_with_count_one(client, store) -> None:
    create(client, store["base"], PATIENT)
    create(client, store["base"], OBSERVATION)
    create(client, store["base"], PATIENT)
    entries, pages = read_all(client, f"http://testserver{store['base']}/_history?_count=1")
    assert len(pages) == 3 and len(entries) == 3
    assert [entry["resource"]["resourceType"] for entry in entries] == ["Patient", "Observation", "Patient"]


def test_it_keeps_the_versions_written_since_an_instant(client, store) -> None:
    old = create(client, store["base"], PATIENT)
    time.sleep(0.01)  # the instants have millisecond precision: the two writes must not share one
    new = create(client, store["base"], PATIENT)
    since = new["meta"]["lastUpdated"]
    for url in (f"{store['base']}/_history", f"{store['base']}/Patient/_history"):
        bundle = client.get(f"{url}?{urlencode({'_since': since})}").json()
        assert [entry["resource"]["id"] for entry in bundle["entry"]] == [new["id"]], bundle
        assert old["id"] not in str(bundle)


def test_it_answers_at_with_the_versions_current_then(client, store) -> None:
    patient = create(client, store["base"], PATIENT)
    time.sleep(0.01)
    second = put(client, store["base"], {**patient, "gender": "other"})
    time.sleep(0.02)
    put(client, store["base"], {**patient, "gender": "male"})
    written = datetime.fromisoformat(second["meta"]["lastUpdated"].replace("Z", "+00:00"))
    at = (written + timedelta(milliseconds=5)).isoformat()
    bundle = client.get(f"{store['base']}/Patient/_history?{urlencode({'_at': at})}").json()
    # Current at that instant: version 2; version 3 came later, version 1 was replaced by then.
    assert [entry["response"]["etag"] for entry in bundle["entry"]] == ['W/"2"']
    day = at[:10]  # a whole day holds all three (written or current during it)
    assert client.get(f"{store['base']}/_history?_at={day}").json()["total"] == 3
    assert client.get(f"{store['base']}/_history?_at=1999").json()["total"] == 0


@pytest.mark.parametrize(
    "query",
    ["_count=many", "_count=-1", "_since=2024-01-01T00:00:00", "_since=yesterday", "_at=soon", "_cursor=nothing"],
)
def test_it_answers_400_to_a_bad_history_parameter(client, store, query) -> None:
    for url in (f"{store['base']}/_history?{query}", f"{store['base']}/Patient/_history?{query}"):
        answer = client.get(url)
        assert answer.status_code == 400, (url, answer.content)
        assert answer.json()["resourceType"] == "OperationOutcome"


def test_it_reads_the_system_history_in_a_fixed_number_of_queries(client, store, django_assert_num_queries) -> None:
    create(client, store["base"], PATIENT)
    caches.clear()
    client.get(f"{store['base']}/_history")  # the facade's state cached, as on a worker that served it before
    with django_assert_num_queries(4):  # the facade's state, the stores its types come from, the count, the page
        client.get(f"{store['base']}/_history")
    for _ in range(19):
        create(client, store["base"], OBSERVATION)
    with django_assert_num_queries(4):
        assert len(client.get(f"{store['base']}/_history").json()["entry"]) == 20


def test_it_shows_a_token_the_history_of_the_types_it_may_read(client, db) -> None:
    made = make_store_facade(resource_types=["Patient", "Observation"])
    patient = create(client, made["base"], PATIENT)
    create(client, made["base"], OBSERVATION)
    Facade.objects.filter(slug="store").update(auth_mode=Facade.AuthMode.SMART_BACKEND)
    caches.clear()
    cache.clear()  # the token endpoint's rate-limit counts of earlier tests
    app = register(["store"], ["system/Patient.rs", "system/Observation.rs"])

    def token(scope: str) -> dict:
        signed = assertion(app, claims={"aud": "http://testserver/fhir/store/auth/token"})
        form = {
            "grant_type": "client_credentials",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": signed,
            "scope": scope,
        }
        answer = client.post(
            "/fhir/store/auth/token", urlencode(form), content_type="application/x-www-form-urlencoded"
        )
        assert answer.status_code == 200, answer.content
        return {"HTTP_AUTHORIZATION": f"Bearer {answer.json()['access_token']}"}

    patients_only = token("system/Patient.rs")
    system = client.get("/fhir/store/_history", **patients_only).json()
    assert [entry["fullUrl"].split("/fhir/store/")[1] for entry in system["entry"]] == [f"Patient/{patient['id']}"]
    refused = client.get("/fhir/store/Observation/_history", **patients_only)
    assert refused.status_code == 403 and refused.json()["resourceType"] == "OperationOutcome"
    assert client.get("/fhir/store/_history").status_code == 401  # no token at all
    observations_only = token("system/Observation.rs")
    assert [
        entry["resource"]["resourceType"]
        for entry in client.get("/fhir/store/_history", **observations_only).json()["entry"]
    ] == ["Observation"]


def test_it_answers_405_for_history_on_a_facade_that_keeps_no_versions(
    client, served, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=True):  # indexing starts when the deploy commits
        actions.do_deploy(served["binding"], acting_user=served["author"], version=served["v1"])
    assert client.get("/fhir/clinic/Patient").status_code == 200
    for url in ("/fhir/clinic/_history", "/fhir/clinic/Patient/_history", "/fhir/clinic/Patient/p1/_history"):
        answer = client.get(url)
        assert answer.status_code == 405, (url, answer.content)
        assert answer.json()["resourceType"] == "OperationOutcome"


def test_it_declares_history_at_every_level_in_the_capability_statement(client, store) -> None:
    rest = client.get(f"{store['base']}/metadata").json()["rest"][0]
    assert {"code": "history-system"} in rest["interaction"]
    patient = next(resource for resource in rest["resource"] if resource["type"] == "Patient")
    codes = {interaction["code"] for interaction in patient["interaction"]}
    assert {"history-instance", "history-type", "vread"} <= codes


def test_the_connector_reads_the_whole_history_over_http_page_by_page(live_store) -> None:
    """The studio's own FHIR client (mappings.connectors) on a live server: it follows the absolute next links."""
    fhir = FhirClient(live_store["base"])
    patient = fhir.create(PATIENT).resource
    fhir.create(OBSERVATION)
    fhir.delete("Patient", patient["id"])
    entries = list(fhir.history(params={"_count": 1}))
    assert [(entry["request"]["method"], "resource" in entry) for entry in entries] == [
        ("DELETE", False),
        ("POST", True),
        ("POST", True),
    ]
    assert [entry["resource"]["resourceType"] for entry in entries[1:]] == ["Observation", "Patient"]
    assert [entry["response"]["etag"] for entry in fhir.history("Patient", patient["id"])] == ['W/"2"', 'W/"1"']
