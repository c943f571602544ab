"""A deployment over a big stored source is indexed by a real Celery worker (the index_deployment task, queued by the
deploy action when it commits), the facade keeps serving the previous deployment until the new index is ready, and
the web process serves the new one as soon as the worker finished (the facade's generation grew: no cache to
forget, no timeout to wait)."""

from __future__ import annotations

import time

import pytest
from django.contrib.auth.models import User

from mappings import actions
from mappings.actions import deployments
from mappings.models import AuditAction, AuditEvent, Deployment, FacadeResource, IndexChunk, Mapping
from tests.conftest import worker_database_url
from tests.tasks.conftest import celery_worker

RECORD = '{{"MRN": "M{n}", "LastName": "Ng{n}", "FirstName": "Li", "Gender": "F", "DOB": "19900102"}}'


@pytest.fixture
def worker(transactional_db, tmp_path):
    with celery_worker(tmp_path / "worker.log", {"DATABASE_URL": worker_database_url()}) as log:
        yield log


def test_a_big_source_is_indexed_by_the_worker_while_the_old_deployment_serves(worker, client, monkeypatch) -> None:
    from mappings.demo import load_demo

    admin = User.objects.create_superuser("admin", password="pw")
    load_demo(admin)
    mapping = Mapping.objects.select_related("latest_version").get(slug="json-patient")
    source = actions.do_create_data_source(acting_user=admin, name="registrations", source_format="json")
    actions.do_upload_records(source, acting_user=admin, records=[("r0", RECORD.format(n=0))])
    facade = actions.do_create_facade(acting_user=admin, slug="clinic", title="Clinic")
    binding = actions.do_bind_resource(
        facade, acting_user=admin, resource_type="Patient", mapping=mapping, source=source
    )
    first = actions.do_deploy(binding, acting_user=admin, version=mapping.latest_version)
    assert first.ready and first.indexed == 1
    first_id = first.resources.get().resource_id

    assert client.get("/fhir/clinic/Patient?_summary=count").json()["total"] == 1

    monkeypatch.setattr(deployments, "INLINE_RECORDS", 5)  # so 20 records count as big
    actions.do_upload_records(source, acting_user=admin, records=[(f"r{n}", RECORD.format(n=n)) for n in range(1, 20)])
    second = actions.do_deploy(binding, acting_user=admin, version=mapping.latest_version)
    assert not second.ready  # queued for the worker, not indexed in the request
    assert client.get(f"/fhir/clinic/Patient/{first_id}").status_code == 200  # the first deployment still serves
    deadline = time.monotonic() + 60
    while not Deployment.objects.get(pk=second.pk).ready and time.monotonic() < deadline:
        time.sleep(0.3)
    second.refresh_from_db()
    assert second.ready and second.indexed == 20, worker.read_text()[-2000:]
    assert client.get("/fhir/clinic/Patient?_summary=count").json()["total"] == 20
    first.refresh_from_db()
    assert (first.ready, first.superseded) == (False, True)
    indexed = AuditEvent.objects.filter(action=AuditAction.INDEXED, object_id=str(second.pk)).get()
    assert indexed.after["indexed"] == 20 and indexed.after["records"] == 20


def test_a_worker_loads_the_fhir_definitions_before_it_says_ready(worker) -> None:
    """Not in its first chunk (~1 s of CPU there): fhirstudio/celery.py warms it as it starts."""
    log = worker.read_text()
    assert "worker warmed: FHIR definitions loaded" in log
    assert log.index("worker warmed") < log.index(" ready.")


@pytest.fixture
def chunked_worker(transactional_db, tmp_path):
    """A worker that indexes in chunks of 4 records."""
    env = {"DATABASE_URL": worker_database_url(), "FHIR_STUDIO_INDEX_CHUNK_RECORDS": "4"}
    with celery_worker(tmp_path / "worker.log", env) as log:
        yield log


def test_a_big_source_is_indexed_in_chunks_and_the_newest_record_wins(chunked_worker, client, monkeypatch) -> None:
    from mappings.demo import load_demo

    admin = User.objects.create_superuser("admin", password="pw")
    load_demo(admin)
    mapping = Mapping.objects.select_related("latest_version").get(slug="json-patient")
    source = actions.do_create_data_source(acting_user=admin, name="registrations", source_format="json")
    records = [(f"r{n}", RECORD.format(n=n)) for n in range(18)]
    # r18 re-sends patient M1 with another name, in a later chunk than r1: the index keeps r18's version
    records.append(("r18", RECORD.format(n=1).replace('"Ng1"', '"Renamed"')))
    records.append(("broken", '{"MRN": '))
    actions.do_upload_records(source, acting_user=admin, records=records)
    facade = actions.do_create_facade(acting_user=admin, slug="clinic", title="Clinic")
    binding = actions.do_bind_resource(
        facade, acting_user=admin, resource_type="Patient", mapping=mapping, source=source
    )
    monkeypatch.setattr(deployments, "INLINE_RECORDS", 5)
    deployment = actions.do_deploy(binding, acting_user=admin, version=mapping.latest_version)
    deadline = time.monotonic() + 60
    while not Deployment.objects.get(pk=deployment.pk).ready and time.monotonic() < deadline:
        time.sleep(0.3)
    deployment.refresh_from_db()
    assert deployment.ready, chunked_worker.read_text()[-3000:]
    chunks = list(IndexChunk.objects.filter(deployment=deployment).order_by("first_record_id"))
    assert len(chunks) == 5 and {chunk.status for chunk in chunks} == {"merged"}  # 20 records, 4 per chunk
    assert sum(chunk.records for chunk in chunks) == 20
    assert deployment.indexed == 18  # 18 patients: M1 twice, one record broken
    assert [error["record"] for error in deployment.index_errors] == ["broken"]
    names = client.get("/fhir/clinic/Patient?identifier=M1").json()["entry"]
    assert [entry["resource"]["name"][0]["family"] for entry in names] == ["Renamed"]
    assert client.get("/fhir/clinic/Patient?_summary=count").json()["total"] == 18
    assert not FacadeResource.objects.filter(staged_for__isnull=False).exists()  # every staged row swapped in
