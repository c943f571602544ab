"""Bulk Data `$export` from a store facade, through the facade's bulk machinery with a real Celery worker: what was
written (and not deleted) is exported, and `_typeFilter` searches the store's index."""

from __future__ import annotations

import time

import pytest
import requests

from mappings.models import ChunkStatus, ExportChunk, ExportJob, JobStatus
from tests.conftest import worker_database_url
from tests.facade.test_bulk_export import export, resources
from tests.tasks.conftest import celery_worker

pytestmark = pytest.mark.timeout(120)
FHIR_JSON = {"Content-Type": "application/fhir+json"}


@pytest.fixture(scope="module")
def worker(django_db_setup, tmp_path_factory):
    log = tmp_path_factory.mktemp("store-export-worker") / "worker.log"
    with celery_worker(log, {"DATABASE_URL": worker_database_url()}, queues="exports,default") as running:
        yield running


@pytest.fixture
def written(live_store) -> dict:
    """Three Patients (one then deleted) and an Observation of the first, written over HTTP; then the worker settles
    before the test database is flushed (a flush deadlocks with a worker still writing)."""
    base = live_store["base"]
    ids = []
    for family in ("Smith", "Jones", "Gone"):
        answer = requests.post(
            f"{base}/Patient", json={"resourceType": "Patient", "name": [{"family": family}]}, headers=FHIR_JSON
        )
        assert answer.status_code == 201, answer.text
        ids.append(answer.json()["id"])
    observation = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
        "subject": {"reference": f"Patient/{ids[0]}"},
    }
    assert requests.post(f"{base}/Observation", json=observation, headers=FHIR_JSON).status_code == 201
    assert requests.delete(f"{base}/Patient/{ids[2]}").status_code == 204
    yield {"base": base, "patients": ids[:2]}
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (
        ExportJob.objects.filter(status__in=(JobStatus.QUEUED, JobStatus.RUNNING)).exists()
        or ExportChunk.objects.filter(status=ChunkStatus.RUNNING).exists()
    ):
        time.sleep(0.1)


def test_it_exports_what_the_store_holds(written, worker) -> None:
    manifest = export(f"{written['base']}/$export?_type=Patient,Observation", worker)
    exported = resources(manifest)
    assert sorted(line["id"] for line in exported["Patient"]) == sorted(written["patients"])
    assert [line["subject"]["reference"] for line in exported["Observation"]] == [f"Patient/{written['patients'][0]}"]


def test_it_filters_a_store_export_by_the_facades_search(written, worker) -> None:
    manifest = export(f"{written['base']}/$export?_type=Patient&_typeFilter=Patient%3Ffamily%3Djones", worker)
    exported = resources(manifest)
    assert [line["name"][0]["family"] for line in exported["Patient"]] == ["Jones"]
