"""Issue 16's Done-when for batches: a batch of ADT messages mapped to transaction Bundles is pushed, through a real
Celery worker, into a FHIR store facade of the studio's own on a live server; the batch API shows what the server
answered for every message, entry by entry (status, Type/id/_history/version, ETag), sums it on the batch, and
streams it as NDJSON; fhirpy reads each created id back. A message the server refuses whole is counted, has no
entries, and keeps its outcome in the dead-letter list; in a batch Bundle a failed entry carries its own outcome.

The store kept here has no AllergyIntolerance (tests/tasks/test_batch_push.py's `target`), so an ADT message with an
AL1 segment is refused by the server, as a real server refuses a type it does not keep."""

from __future__ import annotations

import orjson
import pytest
from fhirpy import SyncFHIRClient

from mappings.jobs.batches import plan_batch_direct, run_batch_chunk_direct
from mappings.models import AuditAction, AuditEvent, BatchChunk, BatchItem
from tests.api.conftest import client_for, make_user
from tests.tasks.test_batch_push import adt, target  # noqa: F401 — the store facade without AllergyIntolerance
from tests.tasks.test_batches import (  # noqa: F401 — the batch tests' fixtures and helpers
    batch_worker,
    finished,
    jobs_dir,
    start_upload,
    studio,
    wait_for,
)

pytestmark = pytest.mark.timeout(180)


def feed(*messages: bytes) -> dict[str, bytes]:
    return {"adt.hl7": b"\r\n".join(messages) + b"\r\n"}


def run_here(batch_id: int) -> None:
    """The batch's plan and chunks in this process, as the workers run them (the worker test is the first one)."""
    plan_batch_direct(batch_id)
    for chunk_id in BatchChunk.objects.filter(batch_id=batch_id).order_by("first_seq").values_list("pk", flat=True):
        run_batch_chunk_direct(chunk_id)


def test_a_batch_of_adt_transactions_shows_each_entrys_result_and_fhirpy_reads_the_ids_back(
    studio,  # noqa: F811
    target,  # noqa: F811
    tmp_path,
) -> None:
    messages = [adt(10, allergy=False), adt(11, allergy=True), adt(12, allergy=False)]
    with batch_worker(tmp_path, studio["jobs"], chunk=2, FHIR_STUDIO_CONNECTION_ALLOWED_HOSTS=target["host"]) as w:
        started = start_upload(
            studio["client"], feed(*messages), mapping="hl7v2-adt-a01", push_to='{"connection": "target"}'
        )
        assert started["push"] == {
            "messages": 0,
            "refused": 0,
            "entries_created": 0,
            "entries_updated": 0,
            "entries_failed": 0,
        }
        batch = wait_for(lambda: finished(started["id"]), log=w.log)
    assert batch.status == "completed", batch.error
    client = studio["client"]
    shown = client.get(f"/api/batches/{batch.pk}/").json()
    assert shown["urls"]["pushes"] == f"/api/batches/{batch.pk}/pushes/"

    pushes = client.get(f"/api/batches/{batch.pk}/pushes/").json()
    assert pushes["count"] == 3
    by_key = {row["key"]: row for row in pushes["results"]}
    assert [by_key[key]["code"] for key in ("PUSH0010", "PUSH0011", "PUSH0012")] == ["ok", "push_refused", "ok"]
    refused = by_key["PUSH0011"]
    assert refused["entries"] == [] and refused["status"] >= 400, refused  # its outcome is with the dead letter
    kept = [entry for key in ("PUSH0010", "PUSH0012") for entry in by_key[key]["entries"]]
    assert kept and all(entry["status"][:1] == "2" and entry["outcome"] is None for entry in kept)
    assert all(entry["status"].startswith("201") for entry in by_key["PUSH0010"]["entries"])  # the first: all new
    created = sum(entry["status"].startswith("201") for entry in kept)  # the next updates what both messages share
    assert [entry["number"] for entry in by_key["PUSH0010"]["entries"]] == list(
        range(len(by_key["PUSH0010"]["entries"]))
    )
    sent_refused = BatchItem.objects.get(batch=batch, key="PUSH0011").push["sent"]  # the refused Bundle's size
    assert sent_refused > 1
    assert shown["push"] == {
        "messages": 3,
        "refused": 1,
        "entries_created": created,
        "entries_updated": len(kept) - created,
        "entries_failed": sent_refused,
    }

    fhirpy = SyncFHIRClient(target["base"])
    for entry in kept:
        resource_type, resource_id, _history, version = entry["location"].split("/")
        assert entry["etag"] == f'W/"{version}"'
        latest = fhirpy.reference(resource_type, resource_id).to_resource()  # a later message may have updated it
        assert int(latest["meta"]["versionId"]) >= int(version)
        exact = fhirpy.execute(entry["location"], method="get")  # vread: the very version the server answered
        assert (exact["resourceType"], exact["id"], exact["meta"]["versionId"]) == (resource_type, resource_id, version)
    patients = {row["location"].split("/_history")[0] for row in kept if row["location"].startswith("Patient/")}
    assert len(patients) == 2

    only_failed = client.get(f"/api/batches/{batch.pk}/pushes/?failed=true").json()
    assert [row["key"] for row in only_failed["results"]] == ["PUSH0011"]
    failures = client.get(f"/api/batches/{batch.pk}/failures/").json()["results"]
    assert [(row["key"], row["code"]) for row in failures] == [("PUSH0011", "push_refused")]
    assert failures[0]["issues"]["resourceType"] == "OperationOutcome"

    download = client.get(shown["urls"]["push_results"])
    assert download.status_code == 200 and "batch-" in download["Content-Disposition"]
    lines = [orjson.loads(line) for line in b"".join(download.streaming_content).splitlines()]
    assert [line["key"] for line in lines] == ["PUSH0010", "PUSH0011", "PUSH0012"]
    assert lines[0]["entries"] == by_key["PUSH0010"]["entries"]

    audits = AuditEvent.objects.filter(action=AuditAction.CONNECTION_PUSHED, after__batch=batch.pk)
    assert sum(row.after["entries_created"] for row in audits) == created
    assert "MRN0010" not in str(list(audits.values("after")))  # counts, never the resources


def test_a_batch_bundle_keeps_a_failed_entrys_outcome_and_a_second_push_updates(studio, target) -> None:  # noqa: F811
    client = studio["client"]
    body = feed(adt(20, allergy=True), adt(21, allergy=False))
    first = start_upload(client, body, mapping="hl7v2-adt-a01", push_to='{"connection": "target", "kind": "batch"}')
    run_here(first["id"])
    rows = client.get(f"/api/batches/{first['id']}/pushes/").json()["results"]
    mixed, clean = rows
    assert (mixed["key"], mixed["code"], mixed["status"]) == ("PUSH0020", "entries_failed", 200)
    bad = [entry for entry in mixed["entries"] if not entry["status"].startswith("2")]
    good = [entry for entry in mixed["entries"] if entry["status"].startswith("2")]
    assert bad and good  # a batch Bundle: the other entries of the message stand on their own
    assert all(entry["outcome"]["resourceType"] == "OperationOutcome" for entry in bad)
    assert any("AllergyIntolerance" in issue.get("diagnostics", "") for e in bad for issue in e["outcome"]["issue"])
    assert all(entry["outcome"] is None and entry["location"] for entry in good)
    assert clean["code"] == "ok"
    summary = client.get(f"/api/batches/{first['id']}/").json()["push"]
    assert summary["refused"] == 1 and summary["entries_failed"] == len(bad)
    kept = good + clean["entries"]
    created = sum(entry["status"].startswith("201") for entry in kept)
    assert (summary["entries_created"], summary["entries_updated"]) == (created, len(kept) - created)

    again = start_upload(
        client, feed(adt(21, allergy=False)), mapping="hl7v2-adt-a01", push_to='{"connection": "target"}'
    )
    run_here(again["id"])
    (row,) = client.get(f"/api/batches/{again['id']}/pushes/").json()["results"]
    # Deterministic ids: the same message pushed again updates what the first push created.
    assert [entry["location"].split("/_history")[0] for entry in row["entries"]] == [
        entry["location"].split("/_history")[0] for entry in clean["entries"]
    ]
    assert all(entry["status"].startswith("200") for entry in row["entries"]), row
    assert client.get(f"/api/batches/{again['id']}/").json()["push"]["entries_updated"] == len(row["entries"])


def test_push_results_are_read_by_every_role_in_a_fixed_number_of_queries(
    studio,  # noqa: F811
    target,  # noqa: F811
    django_assert_num_queries,
) -> None:
    viewer = client_for(make_user("vera", "viewer"))

    def listed_with(count: int) -> int:
        started = start_upload(
            studio["client"],
            feed(*(adt(100 + n, allergy=False) for n in range(count))),
            mapping="hl7v2-adt-a01",
            push_to='{"connection": "target"}',
        )
        run_here(started["id"])
        with django_assert_num_queries(5) as captured:  # token, role, batch, count, page
            rows = viewer.get(f"/api/batches/{started['id']}/pushes/?page_size=50").json()["results"]
        assert len(rows) == count
        return len(captured.captured_queries)

    assert listed_with(1) == listed_with(20)


def test_bad_push_result_requests_get_stable_codes(studio, target) -> None:  # noqa: F811
    client = studio["client"]
    started = start_upload(client, feed(adt(30, allergy=False)), mapping="hl7v2-adt-a01")
    assert started["push"] is None and "pushes" not in started["urls"]  # nothing pushed without push_to
    maybe = client.get(f"/api/batches/{started['id']}/pushes/?failed=maybe")
    assert (maybe.status_code, maybe.json()["code"]) == (400, "invalid")
    missing = client.get("/api/batches/999999/pushes/")
    assert (missing.status_code, missing.json()["code"]) == (404, "not_found")
    odd = client.get(f"/api/batches/{started['id']}/results?format=pushes")
    assert (odd.status_code, odd.json()["code"]) == (400, "invalid")
    run_here(started["id"])
    empty = client.get(f"/api/batches/{started['id']}/pushes/").json()
    assert empty["count"] == 0
