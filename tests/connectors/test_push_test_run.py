"""POST /api/connections/{name}/push with a test run: the run's samples rendered again with the run's version (or the
draft, while it is still at the run's revision) and each output sent to the studio's own FHIR store on a live server
as its own Bundle; per sample, per entry results, read back with fhirpy; a sample that no longer renders sends
nothing; one audit row with counts. Viewers are refused; bad input gets stable codes."""

from __future__ import annotations

import json

import pytest
from fhirpy import SyncFHIRClient

from mappings import actions
from mappings.models import AuditAction, AuditEvent
from tests.api.conftest import ROOT
from tests.connectors.test_push import target  # noqa: F401 — the connection `store` to a live store facade

pytestmark = pytest.mark.timeout(120)
PAYLOAD = json.loads((ROOT / "examples/json-patient/samples/example-patient.json").read_text())


def push(client, body: dict):
    return client.post("/api/connections/store/push", body, format="json")


@pytest.fixture
def published_run(api, json_patient, users) -> dict:
    """json-patient with a second sample (another patient), published as v1; a manual test run of v1."""
    actions.do_create_sample(
        json_patient,
        acting_user=users["author"],
        name="second-patient",
        payload=json.dumps({**PAYLOAD, "PatientId": 2, "MRN": "SECOND-1"}),
    )
    version = actions.do_publish_version(json_patient, acting_user=users["author"], message="v1")
    started = api["author"].post("/api/mappings/json-patient/test-runs/", {"version": version.number}, format="json")
    assert started.status_code in (200, 201), started.content
    return started.json()


def test_it_pushes_each_sample_of_a_test_run_and_fhirpy_reads_them_back(api, published_run, target) -> None:  # noqa: F811
    answer = push(api["author"], {"mapping": "json-patient", "test_run": published_run["id"]})
    assert answer.status_code == 200, answer.content
    body = answer.json()
    assert (body["code"], body["message"]) == ("ok", "2 of 2 samples kept whole by the server."), body
    assert [sample["case"] for sample in body["samples"]] == [result["case"] for result in published_run["results"]]
    fhirpy = SyncFHIRClient(target["base"])
    read = set()
    for sample in body["samples"]:
        assert sample["code"] == "ok" and sample["errors"] == [], sample
        (entry,) = sample["entries"]
        assert entry["status"].startswith("201") and entry["outcome"] is None
        resource_type, resource_id = entry["location"].split("/")[:2]
        read.add(fhirpy.reference(resource_type, resource_id).to_resource()["id"])
    assert len(read) == 2  # two samples, two patients

    again = push(api["author"], {"mapping": "json-patient", "test_run": published_run["id"], "kind": "batch"}).json()
    assert [sample["entries"][0]["status"][:3] for sample in again["samples"]] == ["200", "200"]  # same ids: updated
    rows = AuditEvent.objects.filter(action=AuditAction.CONNECTION_PUSHED, mapping_slug="json-patient")
    assert [(row.after["test_run"], row.after["samples"], row.after["entries"]) for row in rows] == [
        (published_run["id"], 2, 2),
        (published_run["id"], 2, 2),
    ]
    assert "Smith" not in json.dumps(list(rows.values("after")))  # counts, never the resources


def test_a_sample_that_no_longer_renders_sends_nothing_and_a_changed_draft_is_a_conflict(
    api,
    json_patient,
    users,
    target,  # noqa: F811
) -> None:
    actions.do_create_sample(json_patient, acting_user=users["author"], name="not-json", payload="{not json")
    draft_run = api["author"].post("/api/mappings/json-patient/test-runs/", {}, format="json").json()
    body = push(api["author"], {"mapping": "json-patient", "test_run": draft_run["id"]}).json()
    assert body["code"] == "samples_failed", body
    by_case = {sample["case"]: sample for sample in body["samples"]}
    assert by_case["not-json"]["code"] == "render_failed" and by_case["not-json"]["entries"] == []
    assert by_case["not-json"]["errors"][0]["code"].startswith("FS-SRC-")
    assert by_case["example-patient"]["code"] == "ok"

    draft = api["author"].get("/api/mappings/json-patient/draft")
    changed = api["author"].put(
        "/api/mappings/json-patient/draft",
        {"template": draft.json()["template"] + " "},
        format="json",
        HTTP_IF_MATCH=draft["ETag"],
    )
    assert changed.status_code == 200, changed.content
    stale = push(api["author"], {"mapping": "json-patient", "test_run": draft_run["id"]})
    assert (stale.status_code, stale.json()["code"]) == (409, "conflict")


def test_it_refuses_viewers_and_bad_test_run_requests_with_stable_codes(api, published_run, target) -> None:  # noqa: F811
    viewer = push(api["viewer"], {"mapping": "json-patient", "test_run": published_run["id"]})
    assert (viewer.status_code, viewer.json()["code"]) == (403, "permission_denied")
    refused = [
        ({"mapping": "json-patient", "test_run": 999999}, 404, "not_found"),
        ({"mapping": "no-such", "test_run": published_run["id"]}, 404, "not_found"),
        ({"test_run": published_run["id"]}, 400, "invalid"),  # a run is named within its mapping
        ({"mapping": "json-patient", "test_run": 0}, 400, "invalid"),
        ({"mapping": "json-patient", "test_run": "first"}, 400, "invalid"),
        ({"mapping": "json-patient", "test_run": published_run["id"], "payload": "{}"}, 400, "invalid"),
        ({"mapping": "json-patient", "test_run": published_run["id"], "kind": "collection"}, 400, "invalid"),
    ]
    for body, status, code in refused:
        answer = push(api["author"], body)
        assert (answer.status_code, answer.json()["code"]) == (status, code), (body, answer.content)
    assert not AuditEvent.objects.filter(action=AuditAction.CONNECTION_PUSHED).exists()
