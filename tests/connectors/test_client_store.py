"""The client writes to the studio's own FHIR store over real HTTP: create (and conditional create), read and vread,
update with If-Match (a stale version refused with 412 and the store's OperationOutcome), conditional update, JSON
Patch, delete, history, batch and an all-or-nothing transaction with urn:uuid references, $everything where served;
with SMART Backend Services auth on a protected store."""

from __future__ import annotations

import uuid

import pytest

from mappings.connectors import FhirClient, FhirError, SmartBackendAuth
from mappings.security.clients import create_smart_client
from tests.store.conftest import make_store_facade

pytestmark = pytest.mark.timeout(120)


def patient(family: str, mrn: str) -> dict:
    return {
        "resourceType": "Patient",
        "identifier": [{"system": "urn:mrn", "value": mrn}],
        "name": [{"family": family, "given": ["Ana"]}],
        "gender": "female",
    }


def test_it_creates_reads_updates_patches_and_deletes(live_store) -> None:
    client = FhirClient(live_store["base"])
    created = client.create(patient("Lind", "M-1"))
    assert created.status == 201 and created.version_id == "1" and created.id
    assert client.read("Patient", created.id)["name"][0]["family"] == "Lind"

    changed = {**client.read("Patient", created.id), "gender": "other"}
    updated = client.update(changed, if_match=created.version_id)
    assert updated.status == 200 and updated.version_id == "2"
    with pytest.raises(FhirError) as stale:
        client.update({**changed, "gender": "male"}, if_match="1")
    assert stale.value.code == "precondition_failed" and stale.value.status == 412
    assert stale.value.outcome["resourceType"] == "OperationOutcome"

    patched = client.patch(
        "Patient", created.id, [{"op": "replace", "path": "/name/0/family", "value": "Lindqvist"}], if_match=2
    )
    assert patched.version_id == "3" and client.read("Patient", created.id)["name"][0]["family"] == "Lindqvist"
    assert client.vread("Patient", created.id, 1)["name"][0]["family"] == "Lind"
    versions = [entry["resource"]["meta"]["versionId"] for entry in client.history("Patient", created.id)]
    assert versions == ["3", "2", "1"]  # newest first

    assert client.delete("Patient", created.id) in (200, 204)
    with pytest.raises(FhirError) as gone:
        client.read("Patient", created.id)
    assert gone.value.code == "gone" and gone.value.status == 410


def test_it_creates_and_updates_conditionally(live_store) -> None:
    client = FhirClient(live_store["base"])
    first = client.create(patient("Berg", "M-2"), if_none_exist={"identifier": "urn:mrn|M-2"})
    again = client.create(patient("Berg", "M-2"), if_none_exist={"identifier": "urn:mrn|M-2"})
    assert (first.status, again.status) == (201, 200) and again.id == first.id
    updated = client.update({**patient("Berg", "M-2"), "gender": "male"}, condition={"identifier": "urn:mrn|M-2"})
    assert updated.status == 200 and client.read("Patient", first.id)["gender"] == "male"
    made = client.update(patient("Holm", "M-3"), condition={"identifier": "urn:mrn|M-3"})
    assert made.status == 201
    assert {item["id"] for item in client.search("Patient", {"identifier": "urn:mrn|M-3"})} == {made.id}


def test_it_posts_a_transaction_all_or_nothing_and_a_batch_entry_by_entry(live_store) -> None:
    client = FhirClient(live_store["base"])
    patient_url = f"urn:uuid:{uuid.uuid4()}"
    observation = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
        "subject": {"reference": patient_url},
    }
    bundle = {
        "entry": [
            {"fullUrl": patient_url, "resource": patient("Ek", "M-4"), "request": {"method": "POST", "url": "Patient"}},
            {"resource": observation, "request": {"method": "POST", "url": "Observation"}},
        ]
    }
    answer = client.transaction(bundle)
    assert answer["type"] == "transaction-response"
    statuses = [entry["response"]["status"] for entry in answer["entry"]]
    assert all(status.startswith("201") for status in statuses), statuses
    patient_id = answer["entry"][0]["response"]["location"].split("/")[1]
    stored = next(client.search("Observation", {"subject": f"Patient/{patient_id}"}))
    assert stored["subject"]["reference"] == f"Patient/{patient_id}"  # the urn:uuid was rewritten

    invalid = {"resourceType": "Patient", "gender": "no-such-code"}  # the store validates: 422, and rolls back
    broken = {
        "entry": [
            {**bundle["entry"][0], "resource": patient("Ek", "M-5")},
            {"resource": invalid, "request": {"method": "POST", "url": "Patient"}},
        ]
    }
    with pytest.raises(FhirError) as refused:
        client.transaction(broken)
    assert refused.value.status >= 400 and refused.value.outcome
    assert list(client.search("Patient", {"identifier": "urn:mrn|M-5"})) == []  # nothing of it was kept

    batch = client.batch(
        {
            "entry": [
                {"resource": patient("Sund", "M-6"), "request": {"method": "POST", "url": "Patient"}},
                {"request": {"method": "GET", "url": "Patient/no-such-id"}},
            ]
        }
    )
    assert batch["type"] == "batch-response"
    assert [entry["response"]["status"][:3] for entry in batch["entry"]] == ["201", "404"]


def test_it_writes_with_smart_backend_services_to_a_protected_store(transactional_db, live_server, tmp_path) -> None:
    made = make_store_facade(slug="store-smart", store="smart-data", auth_mode="smart-backend")
    base = f"{live_server.url}/fhir/store-smart"
    keys = create_smart_client(made["facade"], scopes=["system/Patient.cruds"], out_dir=tmp_path, algorithm="RS384")
    auth = SmartBackendAuth(
        client_id=keys.client.client_id,
        private_key=keys.private_key.read_text(),
        algorithm="RS384",
        scope="system/Patient.cruds",
    )
    client = FhirClient(base, auth=auth)
    created = client.create(patient("Nyberg", "M-7"))
    assert client.read("Patient", created.id)["name"][0]["family"] == "Nyberg"
    assert auth.tokens_fetched == 1
    with pytest.raises(FhirError) as refused:
        FhirClient(base).create(patient("Nyberg", "M-8"))
    assert refused.value.code == "unauthorized"
