"""Batch and transaction Bundles POSTed to a store facade's base URL: urn:uuid references rewritten, all or nothing,
the processing order, per-entry answers."""

from __future__ import annotations

import base64
import json
import uuid

import pytest
from django.test import Client

from mappings.models import FacadeResource, StoreVersion

FHIR_JSON = "application/fhir+json"


@pytest.fixture
def client() -> Client:
    return Client()


def patient(family: str, mrn: str) -> dict:
    return {
        "resourceType": "Patient",
        "identifier": [{"system": "urn:mrn", "value": mrn}],
        "name": [{"family": family}],
    }


def observation(subject: str, value: float = 72) -> dict:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
        "subject": {"reference": subject},
        "valueQuantity": {"value": value, "unit": "/min"},
    }


def post_bundle(client: Client, base: str, kind: str, entries: list[dict], **headers):
    bundle = {"resourceType": "Bundle", "type": kind, "entry": entries}
    return client.post(f"{base}/", json.dumps(bundle), content_type=FHIR_JSON, **headers)


def create_entry(resource: dict, full_url: str | None = None, **request) -> dict:
    entry = {"resource": resource, "request": {"method": "POST", "url": resource["resourceType"], **request}}
    if full_url:
        entry["fullUrl"] = full_url
    return entry


def test_it_commits_a_transaction_and_rewrites_urn_uuid_references(client, store):
    ann = f"urn:uuid:{uuid.uuid4()}"
    entries = [
        create_entry(observation(ann)),  # refers to an entry that comes after it
        create_entry(patient("Smith", "MRN-1"), ann),
    ]
    response = post_bundle(client, store["base"], "transaction", entries)
    assert response.status_code == 200, response.content
    answer = response.json()
    assert answer["type"] == "transaction-response"
    statuses = [entry["response"]["status"] for entry in answer["entry"]]
    assert statuses == ["201 Created", "201 Created"]
    observation_location, patient_location = (entry["response"]["location"] for entry in answer["entry"])
    assert patient_location.startswith("Patient/") and patient_location.endswith("/_history/1")
    patient_id = patient_location.split("/")[1]
    stored = client.get(f"{store['base']}/{observation_location.split('/_history')[0]}").json()
    assert stored["subject"]["reference"] == f"Patient/{patient_id}"
    found = client.get(f"{store['base']}/Observation?patient={patient_id}").json()
    assert found["total"] == 1


def test_it_writes_nothing_when_one_entry_of_a_transaction_fails(client, store):
    ann = f"urn:uuid:{uuid.uuid4()}"
    entries = [
        create_entry(patient("Smith", "MRN-1"), ann),
        create_entry(observation(ann)),
        create_entry({**patient("Jones", "MRN-2"), "gender": "sometimes"}),  # invalid
    ]
    response = post_bundle(client, store["base"], "transaction", entries)
    assert response.status_code == 422
    outcome = response.json()
    assert outcome["issue"][0]["details"]["text"] == "Entry 2 is not valid FHIR R4. Nothing was written."
    assert len(outcome["issue"]) > 1  # and the validator's own issues
    assert not StoreVersion.objects.exists()
    assert not FacadeResource.objects.filter(resource_type__in=["Patient", "Observation"]).exists()


def test_it_refuses_a_whole_transaction_for_a_stale_if_match(client, store):
    created = post_bundle(client, store["base"], "transaction", [create_entry(patient("Smith", "MRN-1"))]).json()
    patient_id = created["entry"][0]["response"]["location"].split("/")[1]
    entries = [
        create_entry(patient("Jones", "MRN-2")),
        {
            "resource": {**patient("Smith", "MRN-1"), "id": patient_id},
            "request": {"method": "PUT", "url": f"Patient/{patient_id}", "ifMatch": 'W/"7"'},
        },
    ]
    response = post_bundle(client, store["base"], "transaction", entries)
    assert response.status_code == 412
    text = response.json()["issue"][0]["details"]["text"]
    assert text.startswith("Entry 1: If-Match") and text.endswith("Nothing was written.")
    assert StoreVersion.objects.count() == 1


def test_it_processes_deletes_before_creates_and_updates(client, store):
    first = post_bundle(client, store["base"], "transaction", [create_entry(patient("Old", "MRN-1"))]).json()
    old_id = first["entry"][0]["response"]["location"].split("/")[1]
    entries = [
        {"resource": {**patient("Kept", "MRN-3"), "id": "kept"}, "request": {"method": "PUT", "url": "Patient/kept"}},
        # conditional create: the delete before it removes the only match, so it creates
        create_entry(patient("New", "MRN-1"), ifNoneExist="identifier=urn:mrn|MRN-1"),
        {"request": {"method": "DELETE", "url": f"Patient/{old_id}"}},
    ]
    response = post_bundle(client, store["base"], "transaction", entries)
    assert response.status_code == 200, response.content
    statuses = [entry["response"]["status"] for entry in response.json()["entry"]]
    assert statuses == ["201 Created", "201 Created", "204 No Content"]
    assert client.get(f"{store['base']}/Patient/{old_id}").status_code == 410
    assert client.get(f"{store['base']}/Patient/kept").status_code == 200


def test_it_matches_a_conditional_create_in_a_transaction_and_points_references_at_the_match(client, store):
    first = post_bundle(client, store["base"], "transaction", [create_entry(patient("Smith", "MRN-1"))]).json()
    existing = first["entry"][0]["response"]["location"].split("/")[1]
    ann = f"urn:uuid:{uuid.uuid4()}"
    entries = [
        create_entry(patient("Smith", "MRN-1"), ann, ifNoneExist="identifier=urn:mrn|MRN-1"),
        create_entry(observation(ann)),
    ]
    answer = post_bundle(client, store["base"], "transaction", entries).json()
    assert answer["entry"][0]["response"]["status"] == "200 OK"
    observation_id = answer["entry"][1]["response"]["location"].split("/")[1]
    stored = client.get(f"{store['base']}/Observation/{observation_id}").json()
    assert stored["subject"]["reference"] == f"Patient/{existing}"


def test_it_runs_a_batchs_entries_on_their_own(client, store):
    entries = [
        create_entry(patient("Smith", "MRN-1")),
        create_entry({**patient("Jones", "MRN-2"), "gender": "sometimes"}),
        {"request": {"method": "GET", "url": "Patient/nobody"}},
        create_entry({"resourceType": "NoSuchType"}),
    ]
    response = post_bundle(client, store["base"], "batch", entries, HTTP_PREFER="return=representation")
    assert response.status_code == 200
    answer = response.json()
    assert answer["type"] == "batch-response"
    statuses = [entry["response"]["status"] for entry in answer["entry"]]
    assert statuses[0] == "201 Created"
    assert answer["entry"][0]["resource"]["name"][0]["family"] == "Smith"
    assert statuses[1:] == ["422", "404 Not Found", "404"]
    assert answer["entry"][1]["response"]["outcome"]["resourceType"] == "OperationOutcome"
    assert StoreVersion.objects.count() == 1


def test_it_patches_and_reads_in_a_transaction(client, store):
    created = post_bundle(client, store["base"], "transaction", [create_entry(patient("Smith", "MRN-1"))]).json()
    patient_id = created["entry"][0]["response"]["location"].split("/")[1]
    operations = [{"op": "replace", "path": "/name/0/family", "value": "Brown"}]
    binary = {
        "resourceType": "Binary",
        "contentType": "application/json-patch+json",
        "data": base64.b64encode(json.dumps(operations).encode()).decode(),
    }
    entries = [
        {"request": {"method": "GET", "url": f"Patient/{patient_id}"}},
        {"resource": binary, "request": {"method": "PATCH", "url": f"Patient/{patient_id}"}},
    ]
    answer = post_bundle(client, store["base"], "transaction", entries).json()
    assert answer["entry"][1]["response"]["etag"] == 'W/"2"'
    assert answer["entry"][0]["resource"]["name"][0]["family"] == "Brown"  # GETs run after the writes


@pytest.mark.parametrize(
    ("bundle", "status"),
    [
        ({"resourceType": "Bundle", "type": "collection"}, 400),
        ({"resourceType": "Patient"}, 400),
        ({"resourceType": "Bundle", "type": "transaction", "entry": [{"resource": {}}]}, 400),
    ],
)
def test_it_refuses_what_is_not_a_batch_or_transaction(client, store, bundle, status):
    response = client.post(f"{store['base']}/", json.dumps(bundle), content_type=FHIR_JSON)
    assert response.status_code == status
    assert response.json()["resourceType"] == "OperationOutcome"


def test_it_still_answers_404_for_a_get_of_the_base_url(client, store):
    assert client.get(f"{store['base']}/").status_code == 404


def test_it_takes_the_facades_absolute_urls_in_entries(client, store):
    entries = [
        {
            "resource": {**patient("Abs", "MRN-7"), "id": "abs-1"},
            "request": {"method": "PUT", "url": "http://testserver/fhir/store/Patient/abs-1"},
        }
    ]
    response = post_bundle(client, store["base"], "transaction", entries)
    assert response.status_code == 200, response.content
    assert response.json()["entry"][0]["response"]["location"] == "Patient/abs-1/_history/1"
