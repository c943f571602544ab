"""Build a deployment's index: run its version on every stored record of the binding's source (in the source's
format) and keep the resources of the bound type, the newest record winning when several produce the same id, with
their search values. The engine runs with no transaction open; its resources are staged (mappings/actions/
index_rows.py) and `do_finish_index` swaps them in, in one UPDATE.

A small source is indexed in one go (`index_deployment_direct`, in the deploying process). A big one is planned into
chunks of records (`plan_index_direct`), run by every worker (`run_index_chunk_direct`, the chunk machinery of
mappings/jobs/chunks.py), each staging what it made while it runs (mappings/jobs/index_staging.py), committed as it
ends; the last chunk to end swaps them in (`finish_chunked_index`). Celery tasks and tests call these."""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

from celery import current_task
from django.conf import settings
from django.db import InterfaceError, OperationalError, connection, transaction

from mappings import caches, message_log
from mappings.actions import do_finish_index
from mappings.actions.index_rows import drop_staged
from mappings.compiling import compile_version
from mappings.facade.deployed import run_deployed
from mappings.jobs.chunks import Heartbeat, claim_chunk, finish_chunk, send_chunks
from mappings.jobs.index_staging import PIECE, ChunkStager, stage, staging_key_of
from mappings.models import ChunkStatus, Deployment, IndexChunk, SourceRecord
from mappings.profiles import studio_registry

logger = logging.getLogger(__name__)
BATCH = 1000
PAGE = 250  # records read at once
RETRYABLE = (OperationalError, InterfaceError)
YOUNG_COLLECTION = 50_000


def index_deployment_direct(deployment_id: int) -> Deployment | None:
    """Index a small source in one go. The deployment as indexed, or None when it was deleted (with its binding or
    facade) before the job ran."""
    started = time.perf_counter()
    deployment = _deployment(deployment_id)
    if deployment is None:
        return None
    rows = SourceRecord.objects.filter(source_id=deployment.binding.source_id).order_by("id")
    found, errors, records = _run_records(deployment, rows)
    with transaction.atomic():
        if (staging := staging_key_of(deployment)) is not None:
            drop_staged(staging)  # what an earlier run staged, from records since replaced
            stage(staging, deployment.binding.resource_type, found)
    return _finish(deployment, errors, records, started)


def plan_index_direct(deployment_id: int) -> int:
    """Split a big source's records into chunks of INDEX_CHUNK_RECORDS and send them: every worker indexes. A plan
    made again (records uploaded meanwhile, a redelivered message) replaces the chunks of the previous one, and what
    they staged."""
    deployment = _deployment(deployment_id)
    if deployment is None or deployment.superseded:
        return 0
    size = settings.FHIR_STUDIO["INDEX_CHUNK_RECORDS"]
    ids = SourceRecord.objects.filter(source_id=deployment.binding.source_id).order_by("id")
    ranges: list[list[int]] = []
    for position, record_id in enumerate(ids.values_list("id", flat=True).iterator(chunk_size=10_000)):
        if position % size == 0:
            ranges.append([record_id, record_id])
        ranges[-1][1] = record_id
    with transaction.atomic():
        # The chunks first: one staging now holds its row until it commits, and its rows are then dropped too.
        deployment.index_chunks.all().delete()
        if (staging := staging_key_of(deployment)) is not None:
            drop_staged(staging)
        chunks = IndexChunk.objects.bulk_create(
            IndexChunk(deployment=deployment, first_record_id=first, last_record_id=last) for first, last in ranges
        )
        chunk_ids = [chunk.pk for chunk in chunks]
        transaction.on_commit(lambda: send_chunks(IndexChunk, chunk_ids))
    if not ranges:
        _finish(deployment, [], 0, time.perf_counter())
    return len(ranges)


def run_index_chunk_direct(chunk_id: int) -> str:
    """Run the version on one chunk's records and stage their resources (newest record winning, across chunks too)
    with their search values, as they are made. The last chunk to end swaps the whole index in."""
    chunk = claim_chunk(IndexChunk, chunk_id)
    if chunk is None:
        return "skipped"
    deployment = _deployment(chunk.deployment_id)
    if deployment is None:
        return "skipped"
    if current_task:  # in a worker, not a test or a script calling this directly: the compiled version lives as long
        compile_version(deployment.version)  # as the process; the definitions were loaded and frozen as the worker
        caches.freeze_long_lived()  # started (fhirstudio/celery.py): a no-op then
    with fewer_collections():
        return _run_chunk(chunk, deployment)


@contextmanager
def fewer_collections() -> Iterator[None]:
    """A young collection every YOUNG_COLLECTION allocations while a chunk runs, not every 700: a record's work is
    almost all short-lived containers (the message's tree, the rendered JSON, validation), and the collector's
    passes over them took 0.15–0.18 s of CPU per 1,000 ADT^A01 records with the long-lived objects frozen (~4 % of
    the engine's time), 0.01 s with 10,000 (measured in process, 2026-12-06). The engine alone then needs none; a
    chunk still did 15 (0.017–0.023 ms a record) while a piece of 250 records' resources (~37,000 objects) waited for
    its staging thread, and none with 50,000 (2026-12-07). Cycles still go, later."""
    before = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION, *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)


def _run_chunk(chunk: IndexChunk, deployment: Deployment) -> str:
    try:
        rows = SourceRecord.objects.filter(
            source_id=deployment.binding.source_id, id__gte=chunk.first_record_id, id__lte=chunk.last_record_id
        ).order_by("id")
        stager = ChunkStager(chunk, deployment)
        try:
            found, errors, records = _run_records(deployment, rows, Heartbeat(chunk), stager)
        except BaseException:
            stager.abandon()
            raise
        if found is None:
            stager.abandon()
            return "stopped"
        finished = stager.finish(found, errors, records)
    except RETRYABLE:
        IndexChunk.objects.filter(pk=chunk.pk, attempts=chunk.attempts).update(status=ChunkStatus.QUEUED)
        raise
    except Exception as exc:  # recorded on the chunk: the deployment stays pending, the live one keeps serving
        logger.exception("index chunk %s failed", chunk.pk)
        finish_chunk(chunk, status=ChunkStatus.FAILED, error=f"{type(exc).__name__}: {exc}")
        finished = False
    if not IndexChunk.objects.filter(
        deployment_id=deployment.pk, status__in=(ChunkStatus.QUEUED, ChunkStatus.RUNNING)
    ).exists():
        finish_chunked_index(deployment.pk)
    return "done" if finished else "stopped"


def finish_chunked_index(deployment_id: int) -> Deployment | None:
    """Swap the chunks' staged resources in. A failed chunk leaves the deployment pending, with the reason in its
    errors."""
    started = time.perf_counter()
    deployment = _deployment(deployment_id)
    if deployment is None:
        return None
    failed = list(deployment.index_chunks.filter(status=ChunkStatus.FAILED))
    if failed:
        Deployment.objects.filter(pk=deployment.pk).update(
            index_errors=[{"record": "", "code": "FS-IDX-001", "message": chunk.error} for chunk in failed][:10]
        )
        logger.error("indexing deployment %s failed: %s", deployment.pk, failed[0].error)
        return deployment
    # Two chunks ending together may both get here: the one that marks the chunks merged does the swap.
    chunks = list(deployment.index_chunks.order_by("first_record_id"))
    if deployment.index_chunks.filter(status=ChunkStatus.DONE).update(status=ChunkStatus.MERGED) != len(chunks):
        return deployment
    errors = [failure for chunk in chunks for failure in chunk.failures]
    return _finish(deployment, errors, sum(chunk.records for chunk in chunks), started)


def _deployment(deployment_id: int) -> Deployment | None:
    deployment = Deployment.objects.select_related("binding__source", "version").filter(pk=deployment_id).first()
    if deployment is None:
        logger.info("deployment %s was deleted before it was indexed: nothing to do", deployment_id)
    return deployment


def _run_records(deployment: Deployment, rows, heartbeat: Heartbeat | None = None, stager: ChunkStager | None = None):
    """Run the version on each record: ({resource id: (resource, record id)} of the bound type, the newest record
    winning, each resource as the stager keeps it (ChunkStager.kept); failures; records run), handing every PIECE
    records' resources to the stager. None for the resources when the heartbeat says to stop."""
    found: dict[str, tuple[dict | bytes, int]] = {}
    piece: dict[str, tuple[dict, int]] = {}
    errors, records = [], 0
    registry = studio_registry()
    for record_id, key, payload in _pages(rows):
        records += 1
        if heartbeat is not None and not heartbeat.beat():
            return None, errors, records
        resources, fatal = run_deployed(deployment, payload, registry=registry)
        if fatal:
            errors.append({"record": key, "code": fatal[0].code, "message": fatal[0].message})
            message_log.record_index_failure(deployment, key, payload, fatal)
        for resource in resources:
            if resource.get("id"):
                piece[resource["id"]] = (resource, record_id)
                found[resource["id"]] = (resource if stager is None else stager.kept(resource), record_id)
        if stager is not None and records % PIECE == 0:
            stager.put(piece)
            piece = {}
    if stager is not None:
        stager.put(piece)
    message_log.flush()  # a worker may wait long for its next job: its failures are in the log now
    return found, errors, records


def _pages(rows) -> Iterator[tuple[int, str, str]]:
    """(id, key, payload) of the records, ordered by id, read PAGE at a time with plain queries: `iterator()` runs a
    server-side cursor, declared WITH HOLD outside a transaction, which makes PostgreSQL copy the whole result aside
    first (16 MB of payloads a chunk): twice the backend's CPU of these reads (0.030 → 0.015 ms a record, and the
    client's 0.010 → 0.006; 2026-12-07)."""
    rows = rows.values_list("id", "key", "payload")
    last = None
    while page := list(rows[:PAGE] if last is None else rows.filter(id__gt=last)[:PAGE]):
        yield from page
        last = page[-1][0]


def _finish(deployment: Deployment, errors: list, records: int, started: float) -> Deployment:
    deployment = do_finish_index(deployment, errors=errors, records=records)
    if connection.vendor == "postgresql" and deployment.indexed > BATCH:
        # Fresh statistics, or the planner keeps the empty-table estimates it had and searches take seconds; and the
        # visibility map VACUUM sets, without which searches' index-only scans visit every row anyway.
        command = "ANALYZE" if connection.in_atomic_block else "VACUUM (ANALYZE)"
        with connection.cursor() as cursor:
            cursor.execute(f"{command} mappings_facaderesource, mappings_searchvalue")
    logger.info(
        "indexed deployment %s: %d %s from %d records, %d failed, %.0f ms",
        deployment.pk,
        deployment.indexed,
        deployment.binding.resource_type,
        records,
        len(errors),
        (time.perf_counter() - started) * 1000,
    )
    return deployment
