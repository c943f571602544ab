"""A bulk export survives its worker being killed mid-chunk (kill -9, no clean-up): the chunk it held stops beating,
the stalled-chunk sweep sends it again, a new worker takes it over and rewrites its file, and the export's files
hold every resource of the facade exactly once. Over HTTP, with real workers on the configured broker."""

from __future__ import annotations

import os
import signal
import time

import orjson
import pytest
import requests
from django.contrib.auth.models import User
from django.db import connection

from mappings import actions, caches
from mappings.jobs.chunks import requeue_stalled_chunks
from mappings.models import ChunkStatus, Deployment, ExportJob, FacadeResource, JobStatus
from tests.conftest import worker_database_url
from tests.tasks.conftest import running_worker

PATIENTS = 100_000
CHUNK = 10_000
TEMPLATE = '{"resourceType": "Patient", "id": {{ msg.id | tojson }}}'


def patient_facade(slug: str) -> Deployment:
    """A facade serving Patient from a one-record stored source, deployed (and indexed) through the actions."""
    admin = User.objects.create_superuser("admin", password="pw")
    mapping = actions.do_create_mapping(
        acting_user=admin, slug="tiny-patient", title="Tiny patient", source_format="json", template=TEMPLATE
    )
    version = actions.do_publish_version(mapping, acting_user=admin, message="v1")
    source = actions.do_create_data_source(acting_user=admin, name="registrations", source_format="json")
    actions.do_upload_records(source, acting_user=admin, records=[("r0", '{"id": "p0"}')])
    facade = actions.do_create_facade(acting_user=admin, slug=slug, title="Kill test")
    binding = actions.do_bind_resource(
        facade, acting_user=admin, resource_type="Patient", mapping=mapping, source=source
    )
    deployment = actions.do_deploy(binding, acting_user=admin, version=version)
    assert deployment.ready and deployment.indexed == 1
    return deployment


def seed_index(deployment: Deployment, count: int) -> set[str]:
    """Replace the deployment's index with `count` Patients of ~400 bytes, as the indexer would store them (no search
    values: a system export reads none); returns their ids. SQL on PostgreSQL (seconds), bulk_create elsewhere."""
    FacadeResource.objects.filter(deployment=deployment).delete()
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                f"""
                INSERT INTO {FacadeResource._meta.db_table}
                    (deployment_id, resource_type, resource_id, content, last_updated)
                SELECT %s, 'Patient', 'k' || n, jsonb_build_object(
                    'resourceType', 'Patient', 'id', 'k' || n,
                    'meta', jsonb_build_object('versionId', '1', 'lastUpdated', '2026-01-02T03:04:05.678Z'),
                    'identifier', jsonb_build_array(jsonb_build_object(
                        'system', 'urn:oid:2.16.840.1.113883.19.5', 'value', 'M' || lpad(n::text, 7, '0'))),
                    'name', jsonb_build_array(jsonb_build_object(
                        'family', 'Family' || (n %% 101), 'given', jsonb_build_array('Given' || (n %% 997)))),
                    'gender', (ARRAY['female', 'male'])[n %% 2 + 1],
                    'birthDate', to_char(date '1930-01-01' + n %% 30000, 'YYYY-MM-DD')), now()
                FROM generate_series(1, %s) AS n
                """,
                [deployment.pk, count],
            )
    else:
        FacadeResource.objects.bulk_create(
            (
                FacadeResource(
                    deployment=deployment,
                    resource_type="Patient",
                    resource_id=f"k{n}",
                    content={"resourceType": "Patient", "id": f"k{n}", "name": [{"family": f"Family{n % 101}"}]},
                    last_updated=deployment.deployed_at,
                )
                for n in range(1, count + 1)
            ),
            batch_size=5000,
        )
    return {f"k{n}" for n in range(1, count + 1)}


def chunk_counts(job: ExportJob) -> dict[str, int]:
    counts = dict.fromkeys(ChunkStatus.values, 0)
    for status in job.chunks.values_list("status", flat=True):
        counts[status] += 1
    return counts


def exported_ids(manifest: dict) -> list[str]:
    """Every id in every output file, downloaded as a client would: streamed, line by line."""
    ids = []
    for entry in manifest["output"]:
        with requests.get(entry["url"], stream=True, timeout=30) as response:
            assert response.status_code == 200
            assert response.headers["Content-Type"] == "application/fhir+ndjson"
            lines = [orjson.loads(line) for line in response.iter_lines(chunk_size=256 * 1024) if line]
        assert len(lines) == entry["count"]
        ids.extend(line["id"] for line in lines)
    return ids


@pytest.mark.timeout(240)
def test_it_finishes_an_export_whose_worker_was_killed_mid_chunk(transactional_db, live_server, tmp_path, settings):
    caches.clear()
    jobs = tmp_path / "jobs"
    settings.STORAGES = {
        **settings.STORAGES,
        "jobs": {"BACKEND": settings.STORAGES["jobs"]["BACKEND"], "OPTIONS": {"location": str(jobs)}},
    }
    settings.FHIR_STUDIO = {**settings.FHIR_STUDIO, "JOB_STALE_SECONDS": 3}
    seeded = seed_index(patient_facade("kill"), PATIENTS)
    env = {
        "DATABASE_URL": worker_database_url(),
        "FHIR_STUDIO_JOB_FILES_DIR": str(jobs),
        "FHIR_STUDIO_EXPORT_CHUNK_RESOURCES": str(CHUNK),
        "FHIR_STUDIO_JOB_STALE_SECONDS": "3",
    }

    with running_worker(tmp_path / "first.log", env, queues="exports,default") as first:
        started = requests.get(f"{live_server.url}/fhir/kill/$export", headers={"Prefer": "respond-async"}, timeout=10)
        assert started.status_code == 202, started.text
        job = ExportJob.objects.get()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            counts = chunk_counts(job)
            if counts[ChunkStatus.DONE] >= 2 and counts[ChunkStatus.RUNNING] == 1:
                os.kill(first.process.pid, signal.SIGKILL)
                break
            time.sleep(0.01)
        else:
            pytest.fail(f"no chunk ran after two were done: {chunk_counts(job)}\n{first.log.read_text()[-3000:]}")
        first.process.wait(timeout=10)
    assert job.chunks.count() == PATIENTS // CHUNK
    orphan = job.chunks.get(status=ChunkStatus.RUNNING)  # what the dead worker held: nobody beats its heartbeat now
    assert orphan.attempts == 1

    with running_worker(tmp_path / "second.log", env, queues="exports,default") as second:
        deadline = time.monotonic() + 120
        while ExportJob.objects.get(pk=job.pk).status == JobStatus.RUNNING and time.monotonic() < deadline:
            requeue_stalled_chunks()  # the beat task's job, run here every second
            time.sleep(1)
        job.refresh_from_db()
        assert job.status == JobStatus.COMPLETED, (chunk_counts(job), second.log.read_text()[-3000:])

    orphan.refresh_from_db()
    assert (orphan.status, orphan.attempts) == (ChunkStatus.DONE, 2)  # taken over, not started from scratch twice
    manifest = requests.get(started.headers["Content-Location"], timeout=10).json()
    ids = exported_ids(manifest)
    assert len(ids) == PATIENTS
    assert len(set(ids)) == len(ids)  # no resource twice
    assert set(ids) == seeded  # and none missing
