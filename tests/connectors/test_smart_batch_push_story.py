"""Issue 16's Done-when with a batch, over HTTP on 127.0.0.1 and a real Celery worker: an admin adds a connection with
SMART Backend Services auth to a protected FHIR store of the studio's own and tests it; an author starts a batch of ADT
messages mapped by the demo's hl7v2-adt-a01 to transaction Bundles, pushed to that connection (the worker signs in
with the stored key); the batch API shows every entry's result, and fhirpy, with a token of the same client app, reads
each created id back."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from fhirpy import SyncFHIRClient

from mappings.connectors import SmartBackendAuth, Transport
from tests.api.conftest import client_for, make_user
from tests.connectors.conftest import SMART_SCOPE, connect_with_smart
from tests.store.conftest import make_store_facade
from tests.tasks.test_batch_push import adt
from tests.tasks.test_batches import (  # noqa: F401 — the batch tests' fixtures and helpers
    batch_worker,
    finished,
    jobs_dir,
    start_upload,
    studio,
    wait_for,
)

pytestmark = pytest.mark.timeout(180)


def test_a_batch_pushed_through_smart_backend_auth_shows_each_entry_and_fhirpy_reads_it_back(
    studio,  # noqa: F811
    live_server,
    settings,
    tmp_path,
) -> None:
    made = make_store_facade(slug="store-smart", store="smart-data", auth_mode="smart-backend")
    base = f"{live_server.url}/fhir/store-smart".replace("://localhost:", "://127.0.0.1:")
    host = urlsplit(base).netloc
    admin, author = client_for(studio["admin"]), client_for(make_user("writer", "author"))
    keys, tested = connect_with_smart(admin, made["facade"], base, settings, tmp_path)
    assert tested["code"] == "ok", tested

    messages = b"\r\n".join(adt(number, allergy=True) for number in (60, 61)) + b"\r\n"
    with batch_worker(tmp_path, studio["jobs"], FHIR_STUDIO_CONNECTION_ALLOWED_HOSTS=host) as worker:
        started = start_upload(
            author,
            {"adt.hl7": messages},
            mapping="hl7v2-adt-a01",
            push_to='{"connection": "ehr", "kind": "transaction"}',
        )
        batch = wait_for(lambda: finished(started["id"]), log=worker.log)
    assert batch.status == "completed", batch.error
    shown = author.get(f"/api/batches/{batch.pk}/").json()
    assert (shown["done"], shown["failed"]) == (2, 0)
    assert shown["push"]["messages"] == 2 and shown["push"]["refused"] == 0 and shown["push"]["entries_failed"] == 0
    rows = author.get(f"/api/batches/{batch.pk}/pushes/").json()["results"]
    assert [row["code"] for row in rows] == ["ok", "ok"]
    locations = [entry["location"] for row in rows for entry in row["entries"]]
    assert len(locations) == shown["push"]["entries_created"] + shown["push"]["entries_updated"]
    assert any(location.startswith("AllergyIntolerance/") for location in locations)

    auth = SmartBackendAuth(
        client_id=keys.client.client_id, private_key=keys.private_key.read_text(), algorithm="ES384", scope=SMART_SCOPE
    )
    fhirpy = SyncFHIRClient(base, authorization=auth.headers(Transport(), base)["Authorization"])
    for location in locations:
        resource_type, resource_id = location.split("/")[:2]
        assert fhirpy.reference(resource_type, resource_id).to_resource()["id"] == resource_id
