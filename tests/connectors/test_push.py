"""POST /api/connections/{name}/push: a mapping's render sent to the studio's own FHIR store as a transaction (a
re-run updates what the last one created), a batch whose entries fail on their own, a transaction refused whole,
and a render with errors sending nothing. Audit rows count entries, never hold resources."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

import pytest
from fhirpy import SyncFHIRClient

from mappings.actions.connections import do_create_connection
from mappings.models import AuditAction, AuditEvent
from tests.api.conftest import ROOT

pytestmark = pytest.mark.timeout(120)
PAYLOAD = (ROOT / "examples/json-patient/samples/example-patient.json").read_text()


@pytest.fixture
def target(live_store, settings) -> dict:
    base = live_store["base"].replace("://localhost:", "://127.0.0.1:")
    settings.FHIR_STUDIO = {**settings.FHIR_STUDIO, "CONNECTION_ALLOWED_HOSTS": [urlsplit(base).netloc]}
    do_create_connection(acting_user=None, name="store", base_url=base)
    return {"base": base}


def test_it_renders_a_mapping_and_pushes_it_then_a_rerun_updates(api, json_patient, target) -> None:
    pushed = api["author"].post(
        "/api/connections/store/push", {"mapping": "json-patient", "payload": PAYLOAD}, format="json"
    )
    assert pushed.status_code == 200, pushed.content
    answer = pushed.json()
    assert answer["code"] == "ok" and [entry["status"][:3] for entry in answer["entries"]] == ["201"], answer
    patient_id = answer["entries"][0]["location"].split("/")[1]
    read_back = SyncFHIRClient(target["base"]).reference("Patient", patient_id).to_resource()
    assert read_back["name"][0]["family"] == "Smith"
    again = (
        api["author"]
        .post("/api/connections/store/push", {"mapping": "json-patient", "payload": PAYLOAD}, format="json")
        .json()
    )
    assert again["code"] == "ok" and again["entries"][0]["status"][:3] == "200"  # deterministic id: updated
    rows = AuditEvent.objects.filter(action=AuditAction.CONNECTION_PUSHED, mapping_slug="json-patient")
    assert [row.after["entries"] for row in rows] == [1, 1]
    assert "Smith" not in json.dumps(list(rows.values("before", "after", "details")))


def test_it_reports_each_failed_entry_of_a_batch(api, target) -> None:
    batch = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {"resource": {"resourceType": "Patient", "gender": "female"}},
            {"resource": {"resourceType": "Patient", "gender": "no-such-code"}},
        ],
    }
    answer = api["author"].post("/api/connections/store/push", {"output": batch, "kind": "batch"}, format="json").json()
    assert answer["code"] == "entries_failed" and answer["message"] == "1 of 2 entries succeeded."
    first, second = answer["entries"]
    assert first["status"].startswith("201") and first["outcome"] is None
    assert second["status"][:1] == "4" and second["outcome"]["resourceType"] == "OperationOutcome"


def test_it_reports_a_transaction_refused_whole_with_the_servers_outcome(api, target) -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": {"resourceType": "Patient", "gender": "male"},
                "request": {"method": "POST", "url": "Patient"},
            },
            {"resource": {"resourceType": "Patient", "gender": "no-such-code"}},
        ],
    }
    answer = api["author"].post("/api/connections/store/push", {"output": bundle}, format="json").json()
    assert answer["code"] not in ("ok", "entries_failed") and answer["status"] >= 400, answer
    assert answer["outcome"]["resourceType"] == "OperationOutcome" and answer["entries"] == []
    assert SyncFHIRClient(target["base"]).resources("Patient").search(gender="male").count() == 0


def test_it_sends_nothing_when_the_render_fails_and_lets_no_viewer_push(api, json_patient, target) -> None:
    failed = api["author"].post(
        "/api/connections/store/push", {"mapping": "json-patient", "payload": "not json"}, format="json"
    )
    assert failed.status_code == 400 and failed.json()["code"] == "render_failed"
    assert failed.json()["details"]["errors"][0]["stage"] == "source"
    refused = api["viewer"].post("/api/connections/store/push", {"output": {"resourceType": "Patient"}}, format="json")
    assert refused.status_code == 403
    assert not AuditEvent.objects.filter(action=AuditAction.CONNECTION_PUSHED).exists()


def test_it_refuses_a_push_without_output_or_mapping(api, target) -> None:
    answer = api["author"].post("/api/connections/store/push", {"kind": "transaction"}, format="json")
    assert answer.status_code == 400 and answer.json()["code"] == "invalid"
