"""Build a deployment's index: run its version on every stored record of the binding's source (in the source's
format) and keep the resources of the bound type, the newest record winning when several produce the same id, with
their search values. The engine runs with no transaction open; its resources are staged (mappings/actions/
index_rows.py) and `do_finish_index` swaps them in, in one UPDATE.

A small source is indexed in one go (`index_deployment_direct`, in the deploying process). A big one is planned into
chunks of records (`plan_index_direct`), run by every worker (`run_index_chunk_direct`, the chunk machinery of
mappings/jobs/chunks.py), each staging what it made as it ends; the last chunk to end swaps them in
(`finish_chunked_index`). Celery tasks and tests call these."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

from django.conf import settings
from django.db import InterfaceError, OperationalError, connection, transaction

from mappings.actions import do_finish_index
from mappings.actions.index_rows import TIMED, StagedResource, drop_staged, stage_resources, staging_key
from mappings.facade.deployed import run_deployed
from mappings.facade.search_index import search_values
from mappings.jobs.chunks import Heartbeat, claim_chunk, finish_chunk, send_chunks
from mappings.models import ChunkStatus, Deployment, IndexChunk, SourceRecord
from mappings.profiles import studio_registry

logger = logging.getLogger(__name__)
BATCH = 1000
MAX_FAILURES = 100
RETRYABLE = (OperationalError, InterfaceError)
DEADLOCK = "40P01"  # PostgreSQL: two chunks staging the same ids; the one it was chosen to abort writes again
STAGE_ATTEMPTS = 3
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # any time: the values that depend on it are TIMED


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
        if (key := _staging_key(deployment)) is not None:
            drop_staged(key)  # what an earlier run staged, from records since replaced
            stage_resources(key, deployment.binding.resource_type, _staged(found))
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
        if (key := _staging_key(deployment)) is not None:
            drop_staged(key)
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
    with their search values. The last chunk to end swaps the whole index in."""
    chunk = claim_chunk(IndexChunk, chunk_id)
    if chunk is None:
        return "skipped"
    deployment = _deployment(chunk.deployment_id)
    if deployment is None:
        return "skipped"
    try:
        rows = SourceRecord.objects.filter(
            source_id=deployment.binding.source_id, id__gte=chunk.first_record_id, id__lte=chunk.last_record_id
        ).order_by("id")
        found, errors, records = _run_records(deployment, rows, Heartbeat(chunk))
        if found is None:
            return "stopped"
        finished = _stage_chunk(chunk, deployment, found, errors, records)
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


def _stage_chunk(chunk: IndexChunk, deployment: Deployment, found: dict, errors: list, records: int) -> bool:
    """Record the chunk done and stage its resources, in one transaction: a chunk taken over (or dropped by a new
    plan) stages nothing, and a deployment superseded or deleted meanwhile gets nothing staged."""
    for attempt in range(1, STAGE_ATTEMPTS + 1):
        try:
            with transaction.atomic():
                finished = finish_chunk(
                    chunk,
                    status=ChunkStatus.DONE,
                    done=len(found),
                    failed=len(errors),
                    records=records,
                    failures=errors[:MAX_FAILURES],
                )
                if finished and (key := _staging_key(deployment)) is not None:
                    stage_resources(key, deployment.binding.resource_type, _staged(found))
                return finished
        except OperationalError as exc:
            if attempt == STAGE_ATTEMPTS or getattr(exc.__cause__, "sqlstate", None) != DEADLOCK:
                raise
            logger.warning("index chunk %s: deadlock while staging, attempt %d", chunk.pk, attempt)
    return False


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


def _staged(found: dict[str, tuple[dict, int]]) -> list[StagedResource]:
    """The resources to stage, with their search values (but the TIMED ones, which the swap adds)."""
    staged = []
    for resource_id, (resource, record_id) in found.items():
        values = [row for row in search_values(resource, EPOCH) if row[0] not in TIMED]
        meta = {**(resource.get("meta") or {}), "versionId": "1"}
        staged.append(StagedResource(resource_id, record_id, {**resource, "meta": meta}, values))
    return staged


def _staging_key(deployment: Deployment) -> int | None:
    """Share-lock the deployment's row for this transaction (a swap, a newer deploy or a delete waits for it; other
    chunks staging do not), and the key its new index is staged under; None when it no longer wants one (deleted,
    or superseded). The ORM has no FOR SHARE."""
    lock = " FOR SHARE" if connection.vendor == "postgresql" else ""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT superseded, index_key FROM {Deployment._meta.db_table} WHERE id = %s{lock}", [deployment.pk]
        )
        row = cursor.fetchone()
    if row is None or row[0]:
        return None
    return staging_key(Deployment(pk=deployment.pk, index_key=row[1]))


def _deployment(deployment_id: int) -> Deployment | None:
    deployment = Deployment.objects.select_related("binding__source", "version").filter(pk=deployment_id).first()
    if deployment is None:
        logger.info("deployment %s was deleted before it was indexed: nothing to do", deployment_id)
    return deployment


def _run_records(deployment: Deployment, rows, heartbeat: Heartbeat | None = None):
    """Run the version on each record: ({resource id: (resource, record id)} of the bound type, the newest record
    winning; failures; records run). None for the resources when the heartbeat says to stop."""
    found: dict[str, tuple[dict, int]] = {}
    errors, records = [], 0
    registry = studio_registry()
    for record in rows.iterator(chunk_size=BATCH):
        records += 1
        if heartbeat is not None and not heartbeat.beat():
            return None, errors, records
        resources, fatal = run_deployed(deployment, record.payload, registry=registry)
        if fatal:
            errors.append({"record": record.key, "code": fatal[0].code, "message": fatal[0].message})
        for resource in resources:
            if resource.get("id"):
                found[resource["id"]] = (resource, record.pk)
    return found, errors, records


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
