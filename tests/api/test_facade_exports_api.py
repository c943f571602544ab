"""The studio's side of bulk export: a facade's patient groups (what Group/<id>/$export exports) and its export jobs
with their progress, through the studio API with roles, stable error codes and audit rows."""

from __future__ import annotations

from django.utils import timezone

from mappings import actions
from mappings.models import AuditAction, AuditEvent, ExportChunk, ExportJob, PatientGroup


def make_facade(users):
    return actions.do_create_facade(acting_user=users["author"], slug="clinic", title="Clinic")


def test_it_defines_lists_redefines_and_deletes_a_patient_group(api, users) -> None:
    make_facade(users)
    body = {"group_id": "ward-7", "name": "Ward 7", "patient_ids": ["p1", "p2", "p1"]}
    created = api["author"].post("/api/facades/clinic/groups/", body, format="json")
    assert created.status_code == 201, created.json()
    assert created.json()["patient_ids"] == ["p1", "p2"]  # each patient once
    listed = api["viewer"].get("/api/facades/clinic/groups/").json()
    assert [group["group_id"] for group in listed["results"]] == ["ward-7"]
    again = api["author"].post("/api/facades/clinic/groups/", {**body, "patient_ids": ["p3"]}, format="json")
    assert again.status_code == 201 and PatientGroup.objects.get().patient_ids == ["p3"]
    assert api["viewer"].get("/api/facades/clinic/groups/ward-7").json()["name"] == "Ward 7"
    assert api["author"].delete("/api/facades/clinic/groups/ward-7").status_code == 204
    assert not PatientGroup.objects.exists()
    actions_written = list(AuditEvent.objects.filter(object_type="PatientGroup").values_list("action", flat=True))
    assert sorted(actions_written) == sorted([AuditAction.GROUP_SAVED] * 2 + [AuditAction.GROUP_DELETED])


def test_it_refuses_groups_to_viewers_and_bad_ids(api, users) -> None:
    make_facade(users)
    body = {"group_id": "ward 7", "name": "Ward", "patient_ids": ["p1"]}
    refused = api["viewer"].post("/api/facades/clinic/groups/", {**body, "group_id": "w7"}, format="json")
    assert refused.status_code == 403 and refused.json()["code"] == "permission_denied"
    invalid = api["author"].post("/api/facades/clinic/groups/", body, format="json")
    assert invalid.status_code == 400 and "group_id" in invalid.json()["details"]
    empty = api["author"].post(
        "/api/facades/clinic/groups/", {**body, "group_id": "w7", "patient_ids": []}, format="json"
    )
    assert empty.status_code == 400
    missing = api["viewer"].get("/api/facades/clinic/groups/nope")
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"


def test_it_lists_a_facades_exports_with_their_progress(api, users) -> None:
    facade = make_facade(users)
    job = ExportJob.objects.create(
        facade=facade,
        level="system",
        request="http://x/fhir/clinic/$export",
        transaction_time=timezone.now(),
        status="running",
        planned=30,
    )
    ExportChunk.objects.create(job=job, resource_type="Patient", number=1, status="done", done=20, failed=1)
    ExportChunk.objects.create(job=job, resource_type="Patient", number=2, status="running", done=0)
    listed = api["viewer"].get("/api/facades/clinic/exports/")
    assert listed.status_code == 200
    (row,) = listed.json()["results"]
    assert (row["status"], row["planned"], row["resources"], row["failed"], row["chunk_count"]) == (
        "running",
        30,
        20,
        1,
        2,
    )
    assert row["status_url"].endswith(f"/fhir/clinic/$export-status/{job.key}")
    assert api["anonymous"].get("/api/facades/clinic/exports/").status_code in (401, 403)
