"""Batch push through a real Celery worker: a batch of ADT messages converted to transaction Bundles and pushed, one
transaction per message, to a FHIR store facade on a live server. The store does not keep AllergyIntolerance, so the
one message with an AL1 segment is refused whole by the server: it lands in the dead-letter list with the server's
OperationOutcome and the code push_refused; the others are read back with fhirpy. Reprocessing pushes it again."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from fhirpy import SyncFHIRClient

from mappings.actions.connections import do_create_connection
from mappings.fhir_types import R4_RESOURCE_TYPES
from mappings.models import AuditAction, AuditEvent, BatchItem
from tests.store.conftest import make_store_facade
from tests.tasks.test_batches import (  # noqa: F401 — the batch tests' fixtures and helpers
    ADT_A01,
    batch_worker,
    finished,
    jobs_dir,
    start_upload,
    studio,
    wait_for,
)

pytestmark = pytest.mark.timeout(180)


def adt(number: int, *, allergy: bool) -> bytes:
    """An ADT^A01 of the corpus with its own control id and MRN; its AL1 segment kept only when `allergy`."""
    segments = ADT_A01.read_bytes().replace(b"\r\n", b"\r").replace(b"\n", b"\r").strip().split(b"\r")
    segments = [segment for segment in segments if allergy or not segment.startswith(b"AL1|")]
    msh = segments[0].split(b"|")
    msh[9] = b"PUSH%04d" % number
    message = b"\r".join([b"|".join(msh), *segments[1:]])
    return message.replace(b"PATID1234", b"MRN%04d" % number)


@pytest.fixture
def target(studio, live_server, settings) -> dict:  # noqa: F811
    """A store facade without AllergyIntolerance on the live server, and the connection `target` to it."""
    kept = [name for name in R4_RESOURCE_TYPES if name != "AllergyIntolerance"]
    made = make_store_facade(slug="target", store="target-data", resource_types=kept)
    base = f"{live_server.url}/fhir/{made['slug']}".replace("://localhost:", "://127.0.0.1:")
    host = urlsplit(base).netloc
    settings.FHIR_STUDIO = {**settings.FHIR_STUDIO, "CONNECTION_ALLOWED_HOSTS": [host]}
    do_create_connection(acting_user=None, name="target", base_url=base)
    return {"base": base, "host": host}


def test_it_pushes_each_message_and_keeps_the_refused_one_as_a_dead_letter(studio, target, tmp_path) -> None:  # noqa: F811
    messages = [adt(0, allergy=False), adt(1, allergy=True), adt(2, allergy=False)]
    with batch_worker(tmp_path, studio["jobs"], FHIR_STUDIO_CONNECTION_ALLOWED_HOSTS=target["host"]) as worker:
        started = start_upload(
            studio["client"],
            {"adt.hl7": b"\r\n".join(messages) + b"\r\n"},
            mapping="hl7v2-adt-a01",
            push_to='{"connection": "target", "kind": "transaction"}',
        )
        assert started["push_to"] == {"connection": "target", "kind": "transaction"}
        batch = wait_for(lambda: finished(started["id"]), log=worker.log)
    assert batch.status == "completed", batch.error
    failures = studio["client"].get(f"/api/batches/{batch.pk}/failures/").json()["results"]
    assert [(failure["key"], failure["code"]) for failure in failures] == [("PUSH0001", "push_refused")]
    outcome = failures[0]["issues"]
    assert outcome["resourceType"] == "OperationOutcome"
    assert "AllergyIntolerance" in outcome["issue"][0]["diagnostics"]  # the server's own words
    assert "refused the transaction" in failures[0]["message"]
    converted = BatchItem.objects.filter(batch=batch, status=BatchItem.Status.CONVERTED).count()
    assert converted == 2
    patients = SyncFHIRClient(target["base"]).resources("Patient").fetch_all()
    mrns = {identifier["value"] for patient in patients for identifier in patient.get("identifier", [])}
    assert {"MRN0000", "MRN0002"} <= mrns and "MRN0001" not in mrns
    pushed = AuditEvent.objects.get(action=AuditAction.CONNECTION_PUSHED)
    assert (pushed.after["batch"], pushed.after["entries"], pushed.after["failed"]) == (batch.pk, 3, 1)
    assert "MRN0000" not in str(pushed.after)  # counts, never the resources


def post_with_push_to(client, push_to: str):
    upload = SimpleUploadedFile("adt.hl7", adt(0, allergy=False))
    return client.post("/api/batches/", {"mapping": "hl7v2-adt-a01", "files": [upload], "push_to": push_to})


def test_it_refuses_a_push_to_a_connection_that_does_not_exist(studio) -> None:  # noqa: F811
    refused = post_with_push_to(studio["client"], '{"connection": "nope"}')
    assert refused.status_code == 404
    assert refused.json()["code"] == "not_found"


def test_it_refuses_a_push_of_an_unknown_kind_or_not_json(studio, target) -> None:  # noqa: F811
    for push_to in ('{"connection": "target", "kind": "collection"}', "target"):
        refused = post_with_push_to(studio["client"], push_to)
        assert refused.status_code == 400, refused.content
        assert "push_to" in refused.json()["details"]


def test_it_pushes_as_batches_and_keeps_a_message_whose_entry_failed(studio, target, tmp_path) -> None:  # noqa: F811
    messages = [adt(3, allergy=True), adt(4, allergy=False)]
    with batch_worker(tmp_path, studio["jobs"], FHIR_STUDIO_CONNECTION_ALLOWED_HOSTS=target["host"]) as worker:
        started = start_upload(
            studio["client"],
            {"adt.hl7": b"\r\n".join(messages) + b"\r\n"},
            mapping="hl7v2-adt-a01",
            push_to='{"connection": "target", "kind": "batch"}',
        )
        batch = wait_for(lambda: finished(started["id"]), log=worker.log)
    assert batch.status == "completed", batch.error
    failed = BatchItem.objects.get(batch=batch, status=BatchItem.Status.FAILED)
    assert (failed.key, failed.error_code) == ("PUSH0003", "push_refused")
    assert "entries failed on the server" in failed.error_message
    diagnostics = [issue["diagnostics"] for issue in failed.issues["issue"]]
    assert diagnostics and all(text.startswith("Entry ") for text in diagnostics)
    assert any("AllergyIntolerance" in text for text in diagnostics)
    # In a batch every other entry stands on its own: the refused message's Patient was kept all the same.
    patients = SyncFHIRClient(target["base"]).resources("Patient").fetch_all()
    mrns = {identifier["value"] for patient in patients for identifier in patient.get("identifier", [])}
    assert {"MRN0003", "MRN0004"} <= mrns
