"""An index chunk stages its resources as the engine makes them (mappings/jobs/index_staging.py): on PostgreSQL in
pieces, on a thread of its own, in one transaction that ends with the chunk recorded done. What it staged stays
invisible until then, the newest record still wins (within the chunk and across chunks), and a chunk stopped, taken
over or whose deployment was superseded meanwhile stages nothing. In a worker, a chunk freezes the long-lived objects
and collects young garbage less often while it runs."""

from __future__ import annotations

import gc
import threading

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from mappings import actions, caches
from mappings.engine.formats import dumps, loads
from mappings.jobs import index_staging, indexing
from mappings.jobs.index_staging import ChunkStager
from mappings.models import ChunkStatus, Deployment, FacadeResource, IndexChunk, SearchValue, SourceRecord
from tests.facade.test_index_rows import key, stage, staged

pytestmark = pytest.mark.django_db(transaction=True)
threaded = pytest.mark.skipif(connection.vendor != "postgresql", reason="pieces on a thread: PostgreSQL (CI)")


def patient(resource_id: str, family: str) -> dict:
    return loads(f'{{"resourceType": "Patient", "id": "{resource_id}", "name": [{{"family": "{family}"}}]}}')


def running_chunk(deployment: Deployment, attempts: int = 1) -> IndexChunk:
    first, second = deployment.binding.source.records.order_by("id")
    return IndexChunk.objects.create(
        deployment=deployment,
        first_record_id=first.pk,
        last_record_id=second.pk,
        status=ChunkStatus.RUNNING,
        attempts=attempts,
    )


def staged_families() -> dict[str, str]:
    rows = FacadeResource.objects.filter(staged_for__isnull=False)
    return {row.resource_id: row.content["name"][0]["family"] for row in rows}


def staging_counted(monkeypatch, pieces: int) -> threading.Event:
    """An event set once the staging thread has staged `pieces` pieces (not committed: the chunk is not done)."""
    done, calls = threading.Event(), []
    original = index_staging.stage_resources

    def counted(*args, **kwargs):
        written = original(*args, **kwargs)
        calls.append(written)
        if len(calls) == pieces:
            done.set()
        return written

    monkeypatch.setattr(index_staging, "stage_resources", counted)
    return done


@threaded
def test_pieces_stay_invisible_until_the_chunk_is_done_and_the_newest_record_wins(served, monkeypatch) -> None:
    live = actions.do_deploy(served["binding"], acting_user=served["author"], version=served["v1"])
    first, second = served["source"].records.order_by("id")
    stage(live, staged(patient("p1", "Newer"), second.pk))  # another chunk, with a newer record of p1, came first
    pieces = [
        {"p1": (patient("p1", "Older"), first.pk), "p2": (patient("p2", "First"), first.pk)},
        {"p2": (patient("p2", "Second"), second.pk), "p3": (patient("p3", "Third"), second.pk)},
    ]
    both_staged = staging_counted(monkeypatch, len(pieces))
    chunk = running_chunk(live)
    stager = ChunkStager(chunk, live)
    for piece in pieces:
        stager.put(piece)
    assert both_staged.wait(timeout=30)
    assert staged_families() == {"p1": "Newer"}  # nothing of this chunk's is visible to others yet
    assert IndexChunk.objects.get(pk=chunk.pk).status == ChunkStatus.RUNNING

    found = {resource_id: value for piece in pieces for resource_id, value in piece.items()}
    assert stager.finish(found, [], 2) is True
    assert staged_families() == {"p1": "Newer", "p2": "Second", "p3": "Third"}
    # p2, written by the chunk's first piece and again by its second: only the second's values are left.
    values = SearchValue.objects.filter(build=key(live), param="family").values_list("value", flat=True)
    assert sorted(values) == ["newer", "second", "third"]
    chunk.refresh_from_db()
    assert (chunk.status, chunk.done, chunk.records) == (ChunkStatus.DONE, 3, 2)


@threaded
def test_a_chunk_stopped_or_taken_over_stages_nothing(served, monkeypatch) -> None:
    live = actions.do_deploy(served["binding"], acting_user=served["author"], version=served["v1"])
    first, _ = served["source"].records.order_by("id")
    piece = {"p1": (patient("p1", "Chunk"), first.pk)}
    staged_once = staging_counted(monkeypatch, 1)
    stopped = ChunkStager(running_chunk(live), live)
    stopped.put(piece)
    assert staged_once.wait(timeout=30)
    stopped.abandon()  # its heartbeat said stop, or the engine loop raised
    assert staged_families() == {} and not SearchValue.objects.filter(build=key(live)).exists()
    assert IndexChunk.objects.get(pk=stopped.chunk.pk).status == ChunkStatus.RUNNING  # another worker takes it over
    stopped.chunk.delete()

    chunk = running_chunk(live, attempts=2)
    stale = IndexChunk.objects.get(pk=chunk.pk)
    stale.attempts = 1  # another worker took the chunk over since (its attempt 2)
    taken_over = ChunkStager(stale, live)
    taken_over.put(piece)
    assert taken_over.finish(piece, [], 1) is False
    assert staged_families() == {}
    assert IndexChunk.objects.get(pk=chunk.pk).status == ChunkStatus.RUNNING


@threaded
def test_a_deployment_superseded_while_its_chunk_runs_gets_nothing_staged(served) -> None:
    live = actions.do_deploy(served["binding"], acting_user=served["author"], version=served["v1"])
    first, _ = served["source"].records.order_by("id")
    piece = {"p1": (patient("p1", "Chunk"), first.pk)}
    chunk = running_chunk(live)
    stager = ChunkStager(chunk, live)
    stager.put(piece)
    Deployment.objects.filter(pk=live.pk).update(superseded=True)  # a newer deploy, before the chunk ends
    assert stager.finish(piece, [], 1) is True  # the chunk is done; its deployment wants nothing
    assert staged_families() == {} and not SearchValue.objects.filter(build=key(live)).exists()
    assert IndexChunk.objects.get(pk=chunk.pk).status == ChunkStatus.DONE


def test_a_chunk_stages_as_its_records_run_and_in_a_worker_freezes_and_collects_less(served, monkeypatch) -> None:
    """The whole chunk path (claim, run, stage, swap) on both databases; in a worker (current_task set) the long-lived
    objects are frozen once and young collections are rarer while the chunk runs, then as before."""
    deployment = Deployment.objects.create(binding=served["binding"], version=served["v1"])
    first, second = served["source"].records.order_by("id")
    chunk = IndexChunk.objects.create(deployment=deployment, first_record_id=first.pk, last_record_id=second.pk)
    frozen, thresholds = [], []
    run_deployed = indexing.run_deployed

    def recorded(*args, **kwargs):
        thresholds.append(gc.get_threshold()[0])
        return run_deployed(*args, **kwargs)

    monkeypatch.setattr(indexing, "current_task", object())
    monkeypatch.setattr(caches, "freeze_long_lived", lambda: frozen.append(True))
    monkeypatch.setattr(indexing, "run_deployed", recorded)
    monkeypatch.setattr(index_staging, "PIECE", 1)
    monkeypatch.setattr(indexing, "PIECE", 1)  # each record its own piece
    before = gc.get_threshold()

    assert indexing.run_index_chunk_direct(chunk.pk) == "done"
    assert frozen == [True] and thresholds == [indexing.YOUNG_COLLECTION] * 2 and gc.get_threshold() == before
    deployment.refresh_from_db()
    # Both records describe the same patient: the second, newer one wins, and the chunk's swap served it.
    assert deployment.ready and deployment.indexed == 1
    assert [row.content["name"][0]["family"] for row in FacadeResource.objects.filter(deployment=deployment)] == [
        "Jones"
    ]

    monkeypatch.setattr(indexing, "current_task", None)  # a test or a script: no freeze
    again = IndexChunk.objects.create(deployment=deployment, first_record_id=second.pk, last_record_id=second.pk)
    indexing.run_index_chunk_direct(again.pk)
    assert frozen == [True]


def test_a_chunk_reads_its_records_a_page_at_a_time_with_plain_queries(served, monkeypatch) -> None:
    """A server-side cursor outside a transaction (WITH HOLD) made PostgreSQL copy a chunk's whole result aside
    before the first row: the records are read PAGE at a time, each page after the last id read."""
    deployment = Deployment.objects.create(binding=served["binding"], version=served["v1"])
    first, second = served["source"].records.order_by("id")
    chunk = IndexChunk.objects.create(deployment=deployment, first_record_id=first.pk, last_record_id=second.pk)
    monkeypatch.setattr(indexing, "PAGE", 1)
    records = SourceRecord._meta.db_table

    with CaptureQueriesContext(connection) as queries:
        assert indexing.run_index_chunk_direct(chunk.pk) == "done"

    reads = [query["sql"] for query in queries.captured_queries if f'FROM "{records}"' in query["sql"]]
    assert len(reads) == 3  # a record a page, then an empty page
    assert f'"{records}"."id" > {first.pk}' in reads[1] and f'"{records}"."id" > {second.pk}' in reads[2]
    deployment.refresh_from_db()
    assert deployment.ready and deployment.indexed == 1


@threaded
def test_two_chunks_staging_the_same_ids_in_opposite_orders_both_finish_and_the_newest_record_wins(
    served,
    monkeypatch,
    caplog,
) -> None:
    """Each holds a row the other's next piece writes: PostgreSQL aborts one staging transaction (a deadlock), whose
    chunk then stages in one go after the other's commit."""
    live = actions.do_deploy(served["binding"], acting_user=served["author"], version=served["v1"])
    first, second = served["source"].records.order_by("id")
    older = IndexChunk.objects.create(
        deployment=live, first_record_id=first.pk, last_record_id=first.pk, status=ChunkStatus.RUNNING, attempts=1
    )
    newer = IndexChunk.objects.create(
        deployment=live, first_record_id=second.pk, last_record_id=second.pk, status=ChunkStatus.RUNNING, attempts=1
    )
    orders = {older.pk: ("p1", "p2"), newer.pk: ("p2", "p1")}
    records = {older.pk: (first.pk, "Older"), newer.pk: (second.pk, "Newer")}
    first_piece_staged = {older.pk: threading.Event(), newer.pk: threading.Event()}
    original, outcomes = index_staging.stage_resources, {}

    def signalled(*args, **kwargs):
        written = original(*args, **kwargs)
        name = threading.current_thread().name  # index-chunk-<id>-staging (a fallback stages on the chunk's thread)
        if name.startswith("index-chunk-"):
            first_piece_staged[int(name.split("-")[2])].set()
        return written

    monkeypatch.setattr(index_staging, "stage_resources", signalled)

    def chunk_run(chunk: IndexChunk) -> None:
        record_id, family = records[chunk.pk]
        made = {rid: (patient(rid, family), record_id) for rid in orders[chunk.pk]}
        stager = ChunkStager(chunk, live)
        stager.put({orders[chunk.pk][0]: made[orders[chunk.pk][0]]})
        assert all(event.wait(timeout=30) for event in first_piece_staged.values())  # each holds its first id
        stager.put({orders[chunk.pk][1]: made[orders[chunk.pk][1]]})
        found = {rid: (stager.kept(resource), record) for rid, (resource, record) in made.items()}  # as a chunk keeps
        try:
            outcomes[chunk.pk] = stager.finish(found, [], 1)
        finally:
            connection.close()

    runs = [threading.Thread(target=chunk_run, args=(chunk,)) for chunk in (older, newer)]
    for run in runs:
        run.start()
    for run in runs:
        run.join(timeout=60)
    assert outcomes == {older.pk: True, newer.pk: True}
    assert "staging again in one go (OperationalError)" in caplog.text  # the deadlock happened, and was survived
    assert staged_families() == {"p1": "Newer", "p2": "Newer"}
    values = SearchValue.objects.filter(build=key(live), param="family").values_list("value", flat=True)
    assert sorted(values) == ["newer", "newer"]


@threaded
def test_a_chunk_staging_on_its_thread_keeps_its_resources_as_json_with_their_digits(served) -> None:
    """What a chunk keeps to stage in one go if it must is JSON bytes, which the collector never visits (a chunk's
    2,000 resources as objects made it pass over them again and again), and revives with decimals as written."""
    deployment = Deployment.objects.create(binding=served["binding"], version=served["v1"])
    stager = ChunkStager(running_chunk(deployment), deployment)
    try:
        resource = loads('{"resourceType": "Patient", "id": "p1", "extension": [{"url": "u", "valueDecimal": 0.70}]}')
        kept = stager.kept(resource)
        assert isinstance(kept, bytes) and not gc.is_tracked(kept)
        assert index_staging.revived({"p1": (kept, 7)}) == {"p1": (resource, 7)}
        assert b"0.70" in dumps(index_staging.revived({"p1": (kept, 7)})["p1"][0])
    finally:
        stager.abandon()
