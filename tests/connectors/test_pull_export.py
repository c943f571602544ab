"""Pull, bulk: `$export` of a facade whose Patient source is another FHIR server (kind `fhir-server`) lists the
server through its search's `next` links (one page of `page_size` at a time) with a real Celery worker, and exports
every resource as the mapping made it."""

from __future__ import annotations

import time
from urllib.parse import urlsplit

import pytest

from mappings.models import ChunkStatus, ExportChunk, ExportJob, JobStatus
from tests.conftest import worker_database_url
from tests.connectors.test_pull_facade import PATIENTS, TAG, pull_facade, upstream  # noqa: F401 — the store upstream
from tests.facade.test_bulk_export import export, resources
from tests.tasks.conftest import celery_worker

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def worker(django_db_setup, live_server, tmp_path_factory):
    """A worker allowed to reach the live server (the upstream the connection names)."""
    log = tmp_path_factory.mktemp("pull-export-worker") / "worker.log"
    host = urlsplit(live_server.url.replace("://localhost:", "://127.0.0.1:")).netloc
    env = {"DATABASE_URL": worker_database_url(), "FHIR_STUDIO_CONNECTION_ALLOWED_HOSTS": host}
    with celery_worker(log, env, queues="exports,default") as running:
        yield running


@pytest.fixture
def settled():
    """The worker done before the test database is flushed (a flush deadlocks with a worker still writing)."""
    yield
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (
        ExportJob.objects.filter(status__in=(JobStatus.QUEUED, JobStatus.RUNNING)).exists()
        or ExportChunk.objects.filter(status=ChunkStatus.RUNNING).exists()
    ):
        time.sleep(0.1)


def test_it_exports_every_resource_of_the_server_page_by_page(users, upstream, live_server, worker, settled) -> None:  # noqa: F811
    pull_facade(users, upstream)  # page_size 1: two pages, the second reached by the first's next link
    base = live_server.url.replace("://localhost:", "://127.0.0.1:")
    manifest = export(f"{base}/fhir/pull/$export?_type=Patient", worker)
    exported = resources(manifest)["Patient"]
    assert sorted(patient["id"] for patient in exported) == sorted(patient["id"] for patient in PATIENTS)
    assert all(patient["meta"]["tag"] == [TAG] for patient in exported)
    assert {patient["name"][0]["family"] for patient in exported} == {"LOVELACE", "TURING"}
    assert manifest["error"] == []
