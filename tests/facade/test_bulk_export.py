"""Bulk Data `$export` on the demo facade over HTTP, with a real Celery worker on the configured broker (Redis in CI):
kick-off rules, the status URL's 202/200/500/404 answers and headers, the manifest, the NDJSON files (same ids as the
facade serves), `_since`, `_type`, `_typeFilter`, `_elements`, Patient and Group exports, lenient handling, DELETE and
the retention task."""

from __future__ import annotations

import time
from datetime import timedelta
from urllib.parse import quote

import orjson
import pytest
import requests
from django.utils import timezone

from mappings import actions
from mappings.job_files import file_exists
from mappings.jobs.chunks import requeue_stalled_chunks
from mappings.jobs.exports import delete_expired_exports_direct
from mappings.models import ChunkStatus, ExportChunk, ExportJob, Facade, FacadeResource, JobStatus, PatientGroup
from tests.conftest import worker_database_url
from tests.tasks.conftest import celery_worker

ASYNC = {"Prefer": "respond-async", "Accept": "application/fhir+json"}
pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def worker(django_db_setup, tmp_path_factory):
    log = tmp_path_factory.mktemp("export-worker") / "worker.log"
    with celery_worker(log, {"DATABASE_URL": worker_database_url()}, queues="exports,default") as running:
        yield running


@pytest.fixture(autouse=True)
def _worker_settles(demo):
    """After each test, wait until the worker has no export left to plan or run: the test database is flushed next,
    and the flush deadlocks with a worker still writing (nothing waits for a lenient kick-off's export)."""
    yield
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (
        ExportJob.objects.filter(status__in=(JobStatus.QUEUED, JobStatus.RUNNING)).exists()
        or ExportChunk.objects.filter(status=ChunkStatus.RUNNING).exists()
    ):
        time.sleep(0.1)


def kick_off(url: str, headers: dict | None = None) -> requests.Response:
    return requests.get(url, headers={**ASYNC, **(headers or {})}, timeout=10)


def finished(status_url: str, worker_log, seconds: float = 60) -> requests.Response:
    """Poll like a client: every 202 carries X-Progress and an integer Retry-After."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        response = requests.get(status_url, timeout=10)
        if response.status_code != 202:
            return response
        assert response.headers["X-Progress"]
        assert response.headers["Retry-After"].isdigit()
        time.sleep(0.2)
    pytest.fail(f"the export did not finish:\n{worker_log.read_text()[-3000:]}")


def export(url: str, worker_log, headers: dict | None = None) -> dict:
    started = kick_off(url, headers)
    assert started.status_code == 202, started.text
    done = finished(started.headers["Content-Location"], worker_log)
    assert done.status_code == 200, done.text
    assert done.headers["Content-Type"] == "application/json"
    return done.json()


def resources(manifest: dict, headers: dict | None = None) -> dict[str, list[dict]]:
    found: dict[str, list[dict]] = {}
    for entry in manifest["output"]:
        response = requests.get(entry["url"], headers=headers or {}, timeout=10)
        assert response.status_code == 200
        assert response.headers["Content-Type"] == "application/fhir+ndjson"
        lines = [orjson.loads(line) for line in response.content.splitlines() if line]
        assert len(lines) == entry["count"]
        assert {line["resourceType"] for line in lines} == {entry["type"]}
        found.setdefault(entry["type"], []).extend(lines)
    return found


def served_ids(resource_type: str) -> list[str]:
    rows = FacadeResource.objects.filter(
        deployment__ready=True, deployment__binding__facade__slug="demo", resource_type=resource_type
    )
    return sorted(rows.values_list("resource_id", flat=True))


def test_it_exports_every_type_the_demo_facade_serves(demo, worker) -> None:
    url = f"{demo['base']}/$export"
    manifest = export(url, worker, headers={"Authorization": "Bearer any-token"})
    assert manifest["request"] == url
    assert manifest["requiresAccessToken"] is False
    assert manifest["transactionTime"].endswith("Z")
    assert manifest["error"] == [] or all(entry["type"] == "OperationOutcome" for entry in manifest["error"])
    exported = resources(manifest, headers={"Authorization": "Bearer any-token"})
    assert set(exported) == {"Patient", "Encounter", "Observation", "DiagnosticReport", "Immunization"}
    for resource_type, lines in exported.items():
        ids = sorted(line["id"] for line in lines)
        assert ids == served_ids(resource_type), resource_type  # exactly the facade's resources, none twice
    assert all(entry["url"].startswith(demo["base"] + "/$export-file/") for entry in manifest["output"])


def test_the_capability_statement_advertises_bulk_data(demo) -> None:
    statement = requests.get(f"{demo['base']}/metadata", timeout=10).json()
    assert statement["instantiates"] == ["http://hl7.org/fhir/uv/bulkdata/CapabilityStatement/bulk-data"]
    operations = {operation["name"] for operation in statement["rest"][0]["operation"]}
    assert {"export", "patient-export", "group-export"} <= operations
    for resource in statement["rest"][0]["resource"]:
        assert "_lastUpdated" in {param["name"] for param in resource["searchParam"]}, resource["type"]


def outcome_code(response: requests.Response) -> str:
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    return body["issue"][0]["details"]["coding"][0]["code"]


def test_it_needs_prefer_respond_async(demo) -> None:
    response = requests.get(f"{demo['base']}/$export", timeout=10)
    assert response.status_code == 400
    assert outcome_code(response) == "FS-REQ-007"
    assert not ExportJob.objects.exists()


@pytest.mark.parametrize(
    "query",
    [
        "_outputFormat=text/csv",
        "includeAssociatedData=LatestProvenanceResources",
        "_type=Medication",  # an R4 type the demo does not serve
        "_typeFilter=Patient?shoe-size=12",
    ],
)
def test_it_refuses_what_it_cannot_honour_unless_lenient(demo, query) -> None:
    strict = kick_off(f"{demo['base']}/$export?{query}")
    assert strict.status_code == 400, strict.text
    assert outcome_code(strict) == "FS-REQ-005"
    lenient = kick_off(f"{demo['base']}/$export?{query}", {"Prefer": "respond-async, handling=lenient"})
    assert lenient.status_code == 202, lenient.text


@pytest.mark.parametrize("query", ["_type=Patinet", "_since=yesterday", "_since=2024-01-01T00:00:00", "_elements=1x"])
def test_it_refuses_values_it_cannot_read_even_when_lenient(demo, query) -> None:
    response = kick_off(f"{demo['base']}/$export?{query}", {"Prefer": "respond-async; handling=lenient"})
    assert response.status_code == 400
    assert outcome_code(response) == "FS-REQ-006"


def test_it_accepts_since_with_an_offset_encoded_or_not(demo, worker) -> None:
    past = (timezone.now() - timedelta(days=1)).astimezone(timezone.get_fixed_timezone(120))
    text = past.isoformat(timespec="seconds")  # …+02:00
    encoded = export(f"{demo['base']}/$export?_type=Patient&_since={quote(text)}", worker)
    assert sorted(line["id"] for line in resources(encoded)["Patient"]) == served_ids("Patient")
    future = (timezone.now() + timedelta(days=1)).astimezone(timezone.get_fixed_timezone(330)).isoformat()
    unencoded = export(f"{demo['base']}/$export?_type=Patient&_since={future}", worker)  # "+05:30" arrives as " 05:30"
    job = ExportJob.objects.order_by("-id").first()
    assert job.parameters["since"].endswith("+05:30")
    assert unencoded["output"] == []  # nothing changed after tomorrow


def test_type_filter_and_elements_narrow_the_export(demo, worker) -> None:
    patients = [
        FacadeResource.objects.filter(resource_type="Patient", resource_id=i).first().content
        for i in served_ids("Patient")
    ]
    women = sorted(patient["id"] for patient in patients if patient.get("gender") == "female")
    assert women and len(women) < len(patients)
    manifest = export(
        f"{demo['base']}/$export?_type=Patient&_typeFilter=Patient%3Fgender%3Dfemale&_elements=gender", worker
    )
    exported = resources(manifest)["Patient"]
    assert sorted(line["id"] for line in exported) == women
    for line in exported:
        assert set(line) <= {"resourceType", "id", "meta", "gender"}
        assert {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "SUBSETTED"} in line[
            "meta"
        ]["tag"]


def test_patient_and_group_exports_return_the_patients_and_what_references_them(demo, worker) -> None:
    everyone = resources(export(f"{demo['base']}/Patient/$export", worker))
    patient_ids = set(served_ids("Patient"))
    assert sorted(line["id"] for line in everyone["Patient"]) == sorted(patient_ids)
    assert len(everyone["Encounter"]) == len(served_ids("Encounter"))  # every ADT encounter names its patient
    for resource_type, lines in everyone.items():
        for line in lines:
            if resource_type == "Patient":
                continue
            assert (
                line["subject" if "subject" in line else "patient"]["reference"].removeprefix("Patient/") in patient_ids
            )

    chosen = served_ids("Patient")[0]
    PatientGroup.objects.create(
        facade=Facade.objects.get(slug="demo"),
        group_id="ward-7",
        name="Ward 7",
        patient_ids=[chosen],
    )
    group = resources(export(f"{demo['base']}/Group/ward-7/$export", worker))
    assert [line["id"] for line in group["Patient"]] == [chosen]
    for resource_type, lines in group.items():
        for line in lines:
            if resource_type != "Patient":
                assert f"Patient/{chosen}" in orjson.dumps(line).decode()
    missing = kick_off(f"{demo['base']}/Group/nobody/$export")
    assert missing.status_code == 404 and outcome_code(missing) == "FS-REQ-001"


def test_delete_removes_a_finished_export_and_its_files(demo, worker) -> None:
    started = kick_off(f"{demo['base']}/$export?_type=Patient")
    status_url = started.headers["Content-Location"]
    manifest = finished(status_url, worker).json()
    job = ExportJob.objects.get()
    names = [file["name"] for chunk in job.chunks.all() for file in chunk.files]
    assert names and all(file_exists(name) for name in names)
    assert requests.delete(status_url, timeout=10).status_code == 202
    assert requests.get(status_url, timeout=10).status_code == 404
    assert requests.get(manifest["output"][0]["url"], timeout=10).status_code == 404
    assert not any(file_exists(name) for name in names)


def test_delete_cancels_a_running_export_and_leaves_no_file(demo, worker) -> None:
    started = kick_off(f"{demo['base']}/$export")
    status_url = started.headers["Content-Location"]
    assert requests.delete(status_url, timeout=10).status_code == 202
    assert requests.get(status_url, timeout=10).status_code == 404
    job = ExportJob.objects.get()
    assert job.status == JobStatus.CANCELLED
    deadline = time.monotonic() + 30  # chunks the worker had started see the cancel and store nothing
    while job.chunks.filter(status="running").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    chunks = [(chunk.resource_type, chunk.status, chunk.files) for chunk in job.chunks.all()]
    left = [file["name"] for _, _, files in chunks for file in files if file_exists(file["name"])]
    assert not left, chunks


def test_an_export_that_cannot_run_answers_500_with_an_operation_outcome(demo, worker) -> None:
    # Kick-off checks every parameter, so a job the plan cannot run is made directly: a _since no parser reads.
    facade = Facade.objects.get(slug="demo")
    job = actions.do_start_export(
        facade,
        client="test",
        level="system",
        group_id="",
        request_url=f"{demo['base']}/$export",
        parameters={"since": "not a date"},
        requires_access_token=False,
    )
    failed = finished(f"{demo['base']}/$export-status/{job.key}", worker)
    assert failed.status_code == 500
    assert outcome_code(failed) == "FS-REQ-012"
    assert "could not be planned" in failed.json()["issue"][0]["details"]["text"]


def test_the_retention_task_removes_old_exports(demo, worker) -> None:
    started = kick_off(f"{demo['base']}/$export?_type=Patient")
    status_url = started.headers["Content-Location"]
    assert finished(status_url, worker).status_code == 200
    job = ExportJob.objects.get()
    ExportJob.objects.filter(pk=job.pk).update(finished_at=timezone.now() - timedelta(days=30))
    assert delete_expired_exports_direct() >= 1
    assert requests.get(status_url, timeout=10).status_code == 404


def test_an_export_whose_plan_the_broker_lost_is_planned_again(demo, worker) -> None:
    # Made without queueing its plan, as if the broker had lost the message, and older than the stale delay.
    job = ExportJob.objects.create(
        facade=Facade.objects.get(slug="demo"),
        level="system",
        request=f"{demo['base']}/$export?_type=Patient",
        parameters={"types": ["Patient"]},
        transaction_time=timezone.now(),
    )
    ExportJob.objects.filter(pk=job.pk).update(created_at=timezone.now() - timedelta(hours=1))
    assert requeue_stalled_chunks() >= 1
    done = finished(f"{demo['base']}/$export-status/{job.key}", worker)
    assert done.status_code == 200
    assert sorted(line["id"] for line in resources(done.json())["Patient"]) == served_ids("Patient")
