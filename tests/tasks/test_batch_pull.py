"""Batch pull through real Celery workers: a batch whose messages are the resources of another FHIR server (the
studio's own store facade on a live server) read through a connection, by a search (every page) or by a Bulk Data
export of it; each resource is a message keyed type/id, converted by a mapping whose source format is fhir."""

from __future__ import annotations

from urllib.parse import urlsplit

import orjson
import pytest
import requests

from mappings import actions
from mappings.actions.connections import do_create_connection
from mappings.models import BatchItem
from tests.conftest import worker_database_url
from tests.connectors.test_pull_facade import PATIENTS, TAG, TEMPLATE
from tests.store.conftest import make_store_facade
from tests.tasks.conftest import celery_worker
from tests.tasks.test_batches import (  # noqa: F401 — the batch tests' fixtures and helpers
    batch_worker,
    download,
    finished,
    jobs_dir,
    studio,
    wait_for,
)

pytestmark = pytest.mark.timeout(180)
FHIR_JSON = {"Content-Type": "application/fhir+json"}


@pytest.fixture
def upstream(studio, live_server, settings) -> dict:  # noqa: F811
    """A store facade holding two Patients on the live server, the connection `upstream` to it, and a mapping that
    reads FHIR (tags each Patient and writes its family name in upper case)."""
    made = make_store_facade(slug="upstream", store="upstream-data")
    base = f"{live_server.url}/fhir/{made['slug']}".replace("://localhost:", "://127.0.0.1:")
    for patient in PATIENTS:
        written = requests.put(f"{base}/Patient/{patient['id']}", json=patient, headers=FHIR_JSON, timeout=10)
        assert written.status_code in (200, 201), written.text
    host = urlsplit(base).netloc
    settings.FHIR_STUDIO = {**settings.FHIR_STUDIO, "CONNECTION_ALLOWED_HOSTS": [host]}
    do_create_connection(acting_user=None, name="upstream", base_url=base)
    mapping = actions.do_create_mapping(
        acting_user=studio["admin"], slug="pulled", title="Pulled", source_format="fhir", template=TEMPLATE
    )
    actions.do_publish_version(mapping, acting_user=studio["admin"], message="v1")
    return {"base": base, "host": host}


def start(client, source: dict, mapping: str = "pulled"):
    return client.post("/api/batches/", {"mapping": mapping, "source": source}, content_type="application/json")


def converted_patients(client, batch_id: int) -> list[dict]:
    return [orjson.loads(line) for line in download(client, batch_id, "ndjson")]


def test_it_converts_every_page_of_a_search_of_a_connection(studio, upstream, tmp_path) -> None:  # noqa: F811
    client = studio["client"]
    env = {"FHIR_STUDIO_CONNECTION_ALLOWED_HOSTS": upstream["host"]}
    with batch_worker(tmp_path, studio["jobs"], **env) as worker:
        started = start(client, {"connection": "upstream", "resource_type": "Patient", "params": {"_count": "1"}})
        assert started.status_code == 201, started.content
        assert started.json()["pull"]["connection"] == "upstream"
        batch = wait_for(lambda: finished(started.json()["id"]), log=worker.log)
    assert batch.status == "completed", batch.error
    assert batch.total == 2  # two pages of one: the second reached by the first's next link
    items = BatchItem.objects.filter(batch=batch).order_by("seq")
    assert {(item.key, item.status) for item in items} == {("Patient/ada", "converted"), ("Patient/alan", "converted")}
    assert {item.origin for item in items} == {"upstream Patient search"}
    patients = converted_patients(client, batch.pk)
    assert sorted(patient["name"][0]["family"] for patient in patients) == ["LOVELACE", "TURING"]
    assert all(patient["meta"]["tag"] == [TAG] for patient in patients)


def test_it_converts_a_bulk_export_of_a_connection(studio, upstream, tmp_path) -> None:  # noqa: F811
    client = studio["client"]
    env = {"FHIR_STUDIO_CONNECTION_ALLOWED_HOSTS": upstream["host"]}
    exports_env = {"DATABASE_URL": worker_database_url(), "FHIR_STUDIO_JOB_FILES_DIR": str(studio["jobs"])}
    with (
        celery_worker(tmp_path / "exports.log", exports_env, queues="exports,default"),
        batch_worker(tmp_path, studio["jobs"], **env) as worker,
    ):
        started = start(client, {"connection": "upstream", "export": {"type": "Patient"}})
        assert started.status_code == 201, started.content
        batch = wait_for(lambda: finished(started.json()["id"]), seconds=90, log=worker.log)
    assert batch.status == "completed", batch.error
    keys = set(BatchItem.objects.filter(batch=batch).values_list("key", flat=True))
    assert keys == {"Patient/ada", "Patient/alan"}
    assert {item.origin for item in BatchItem.objects.filter(batch=batch)} == {"upstream $export"}
    assert sorted(patient["id"] for patient in converted_patients(client, batch.pk)) == ["ada", "alan"]


def test_it_fails_a_batch_whose_server_is_gone(studio, upstream, tmp_path) -> None:  # noqa: F811
    client = studio["client"]
    with batch_worker(tmp_path, studio["jobs"]) as worker:  # the worker is not allowed to reach the server
        started = start(client, {"connection": "upstream", "resource_type": "Patient"})
        assert started.status_code == 201, started.content
        batch = wait_for(lambda: finished(started.json()["id"]), log=worker.log)
    assert batch.status == "failed"
    assert "Pulling from 'upstream' failed (host_refused)" in batch.error


def test_it_refuses_a_pull_it_cannot_run(studio, upstream) -> None:  # noqa: F811
    client = studio["client"]
    no_type = start(client, {"connection": "upstream"})
    assert no_type.status_code == 400 and "source" in no_type.json()["details"]
    unknown_type = start(client, {"connection": "upstream", "resource_type": "Patients"})
    assert unknown_type.status_code == 400 and "R4 resource type" in unknown_type.json()["message"]
    hl7 = start(client, {"connection": "upstream", "resource_type": "Patient"}, mapping="hl7v2-adt-a01")
    assert hl7.status_code == 400 and "source format" in hl7.json()["message"]
    nowhere = start(client, {"connection": "nowhere", "resource_type": "Patient"})
    assert nowhere.status_code == 404 and nowhere.json()["code"] == "not_found"
