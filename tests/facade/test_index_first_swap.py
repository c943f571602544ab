"""A deployment's first index is staged as its own rows and swapped in without rewriting them
(mappings/actions/index_rows.py): until the swap nothing serves them; after it, every read path shows the instant the
index started to serve (Deployment.served_since) as meta.lastUpdated — a read and its Last-Modified, a search page,
`_lastUpdated` searches and sorts, $export's files and its `_since` — though the rows hold no stamp of their own."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

import orjson
import pytest
from django.db import transaction

from mappings import actions
from mappings.facade.last_updated import UNSTAMPED, instant, stamped, stamped_text
from mappings.job_files import read_lines
from mappings.jobs.exports import exported_rows, run_export_chunk_direct
from mappings.jobs.index_staging import stage, staged, staging_key_of
from mappings.models import ChunkStatus, Deployment, ExportChunk, ExportJob, FacadeResource, JobStatus

pytestmark = pytest.mark.django_db(transaction=True)


def ids(bundle: dict) -> list[str]:
    return [entry["resource"]["id"] for entry in bundle.get("entry", [])]


@pytest.fixture
def first_index(served) -> Deployment:
    """json-patient deployed once: its first index, built by the indexer."""
    return actions.do_deploy(served["binding"], acting_user=served["author"], version=served["v1"])


def test_a_first_index_is_served_as_staged_without_a_stamp_of_its_own(first_index, client) -> None:
    rows = FacadeResource.objects.filter(deployment=first_index)
    assert rows.count() == first_index.indexed == 1  # the source's two records are two versions of one patient
    # Not rewritten by the swap: no stamp of their own, never staged beside
    assert set(rows.values_list("last_updated", "staged_for")) == {(None, None)}
    assert {row.content["meta"]["lastUpdated"] for row in rows} == {UNSTAMPED}
    since = first_index.served_since
    assert since is not None and since.microsecond % 1000 == 0  # to the millisecond, as meta.lastUpdated says it

    resource_id = rows.order_by("resource_id").values_list("resource_id", flat=True).first()
    read = client.get(f"/fhir/clinic/Patient/{resource_id}")
    assert read.status_code == 200
    assert read.json()["meta"] == {"versionId": "1", "lastUpdated": instant(since)}
    assert parsedate_to_datetime(read["Last-Modified"]) == since.replace(microsecond=0)
    xml = client.get(f"/fhir/clinic/Patient/{resource_id}?_format=xml")
    assert instant(since).encode() in xml.content and UNSTAMPED.encode() not in xml.content

    page = client.get("/fhir/clinic/Patient?_count=10").json()
    assert {entry["resource"]["meta"]["lastUpdated"] for entry in page["entry"]} == {instant(since)}
    assert page["total"] == 1


def test_last_updated_searches_and_sorts_read_the_swap_instant(first_index, client) -> None:
    stamp = instant(first_index.served_since)
    both = sorted(FacadeResource.objects.filter(deployment=first_index).values_list("resource_id", flat=True))
    for query in (f"ge{stamp}", stamp, f"le{stamp}", f"ap{stamp}", f"ge{stamp[:10]}"):
        found = client.get(f"/fhir/clinic/Patient?_lastUpdated={query}").json()
        assert (sorted(ids(found)), found["total"]) == (both, 1), query
    for query in (f"gt{stamp}", f"lt{stamp}", f"ne{stamp}"):
        found = client.get(f"/fhir/clinic/Patient?_lastUpdated={query}").json()
        assert (ids(found), found["total"]) == ([], 0), query
    assert ids(client.get("/fhir/clinic/Patient?_sort=-_lastUpdated").json()) == both


def test_a_pending_first_index_is_not_served_until_its_swap(served, first_index, client) -> None:
    before = client.get("/fhir/clinic/Patient?_summary=count").json()["total"]
    pending = Deployment.objects.create(binding=served["binding"], version=served["v1"])
    record = served["source"].records.order_by("id").first()
    resource = {"resourceType": "Patient", "id": "pending-1", "name": [{"family": "Waiting"}]}
    with transaction.atomic():
        staging = staging_key_of(pending)
        assert staging.serving_as == pending.pk  # its own rows, not staged beside
        stage(staging, "Patient", {"pending-1": (resource, record.pk)})
    assert client.get("/fhir/clinic/Patient?family=waiting").json()["total"] == 0
    assert client.get("/fhir/clinic/Patient/pending-1").status_code == 404
    assert client.get("/fhir/clinic/Patient?_summary=count").json()["total"] == before

    pending = actions.do_finish_index(pending, errors=[], records=1)
    assert pending.ready and pending.indexed == 1
    assert ids(client.get("/fhir/clinic/Patient?family=waiting").json()) == ["pending-1"]
    read = client.get("/fhir/clinic/Patient/pending-1").json()
    assert read["meta"]["lastUpdated"] == instant(pending.served_since)
    assert not FacadeResource.objects.filter(deployment=first_index).exists()  # what it replaced went


def test_an_index_built_again_is_stamped_by_its_swap(served, first_index, client) -> None:
    """Records uploaded to a deployment that serves: its new index is staged beside and stamped by the swap."""
    record = served["source"].records.order_by("id").first()
    resource = {"resourceType": "Patient", "id": "again-1", "name": [{"family": "Again"}]}
    with transaction.atomic():
        staging = staging_key_of(first_index)
        assert staging.serving_as is None
        stage(staging, "Patient", {"again-1": (resource, record.pk)})
    swapped = actions.do_finish_index(first_index, errors=[], records=1)
    row = FacadeResource.objects.get(deployment=swapped)
    assert row.last_updated == swapped.served_since
    assert row.content["meta"]["lastUpdated"] == instant(swapped.served_since)
    assert client.get("/fhir/clinic/Patient/again-1").json()["meta"]["lastUpdated"] == instant(swapped.served_since)


def test_an_export_stamps_its_lines_and_since_reads_the_swap_instant(served, first_index) -> None:
    since = first_index.served_since
    job = ExportJob.objects.create(
        facade=served["binding"].facade,
        level=ExportJob.Level.SYSTEM,
        request="-",
        parameters={"since": (since - timedelta(seconds=1)).isoformat()},
        transaction_time=since,
        status=JobStatus.RUNNING,
    )
    assert exported_rows(job, first_index, "Patient").count() == 1
    later = ExportJob(facade=job.facade, level=ExportJob.Level.SYSTEM, parameters={"since": since.isoformat()})
    assert exported_rows(later, first_index, "Patient").count() == 0  # updated at `since`, not after it

    row = FacadeResource.objects.get(deployment=first_index).pk
    chunk = ExportChunk.objects.create(
        job=job, resource_type="Patient", number=1, deployment=first_index, first_id=row, last_id=row
    )
    assert run_export_chunk_direct(chunk.pk) == "done"
    chunk.refresh_from_db()
    assert chunk.status == ChunkStatus.DONE
    (output,) = [file["name"] for file in chunk.files if file["kind"] == "output"]
    lines = [orjson.loads(line) for line in read_lines(output)]
    assert [line["meta"]["lastUpdated"] for line in lines] == [instant(since)]


def test_stamping_replaces_only_the_unstamped_value() -> None:
    moment = staged({"p": ({"resourceType": "Patient", "id": "p"}, 1)})[0].content
    assert moment["meta"] == {"versionId": "1", "lastUpdated": UNSTAMPED}
    text = orjson.dumps(
        {**moment, "note": f'"lastUpdated": "{UNSTAMPED}"', "x": "(when served", "y": UNSTAMPED}
    ).decode()
    when = datetime(2026, 12, 7, 1, 2, 3, 456000, tzinfo=UTC)
    done = orjson.loads(stamped_text(text, when))
    assert done["meta"]["lastUpdated"] == "2026-12-07T01:02:03.456Z"
    assert done["note"] == f'"lastUpdated": "{UNSTAMPED}"' and done["x"] == "(when served"  # inside a string: kept
    assert done["y"] == UNSTAMPED  # a mapping's own text that happens to be the placeholder: not a lastUpdated
    spaced = text.replace('"lastUpdated":', '"lastUpdated": ')  # PostgreSQL's jsonb text spaces its members
    assert orjson.loads(stamped_text(spaced, when))["meta"]["lastUpdated"] == "2026-12-07T01:02:03.456Z"
    assert stamped_text(text, None) == text
    assert stamped(dict(moment), when)["meta"]["lastUpdated"] == "2026-12-07T01:02:03.456Z"
    own = {"meta": {"lastUpdated": "2020-01-01T00:00:00.000Z"}}
    assert stamped(own, when) == own  # a row with its own stamp keeps it
