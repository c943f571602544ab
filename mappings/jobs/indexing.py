"""Build a deployment's index: run its version on every stored record of the binding's source (in the source's
format) and keep the resources of the bound type, the newest record winning when several produce the same id, with
their search values. The engine runs with no transaction open; `do_finish_index` swaps the rows in, in bulk, in one.

A small source is indexed in one go (`index_deployment_direct`, in the deploying process). A big one is planned into
chunks of records (`plan_index_direct`), run by every worker (`run_index_chunk_direct`, the chunk machinery of
mappings/jobs/chunks.py), and merged by the last chunk to end (`finish_chunked_index`). Celery tasks and tests call
these."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime

import orjson
from django.conf import settings
from django.db import InterfaceError, OperationalError, connection, transaction
from django.utils import timezone

from mappings.actions import do_finish_index
from mappings.actions.deployments import IndexedResource
from mappings.engine.formats.decimals import decimal_default, loads
from mappings.facade.deployed import run_deployed
from mappings.facade.search_index import search_values
from mappings.job_files import LineFiles, delete_files, read_lines
from mappings.jobs.chunks import Heartbeat, claim_chunk, finish_chunk, send_chunks
from mappings.models import ChunkStatus, Deployment, IndexChunk, SourceRecord
from mappings.profiles import studio_registry

logger = logging.getLogger(__name__)
BATCH = 1000
MAX_FAILURES = 100
RETRYABLE = (OperationalError, InterfaceError)
# Search parameters whose values depend on the index's time (meta.lastUpdated), not on the resource: set by the merge.
TIMED = frozenset({"_lastUpdated"})
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def index_deployment_direct(deployment_id: int) -> Deployment | None:
    """Index a small source in one go. The deployment as indexed, or None when it was deleted (with its binding or
    facade) before the job ran."""
    started = time.perf_counter()
    deployment = _deployment(deployment_id)
    if deployment is None:
        return None
    rows = SourceRecord.objects.filter(source_id=deployment.binding.source_id).order_by("id")
    found, errors, records = _run_records(deployment, rows)
    now = timezone.now()
    resources = [
        IndexedResource(resource_id, _with_meta(resource, now), record_id, now, [])
        for resource_id, (resource, record_id) in found.items()
    ]
    resources = [replace(resource, search_values=search_values(resource.content, now)) for resource in resources]
    return _finish(deployment, resources, errors, records, started)


def plan_index_direct(deployment_id: int) -> int:
    """Split a big source's records into chunks of INDEX_CHUNK_RECORDS and send them: every worker indexes. A plan
    made again (records uploaded meanwhile, a redelivered message) replaces the chunks of the previous one."""
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
        stale = [file["name"] for files in deployment.index_chunks.values_list("files", flat=True) for file in files]
        deployment.index_chunks.all().delete()
        chunks = IndexChunk.objects.bulk_create(
            IndexChunk(deployment=deployment, first_record_id=first, last_record_id=last) for first, last in ranges
        )
        chunk_ids = [chunk.pk for chunk in chunks]
        transaction.on_commit(lambda: send_chunks(IndexChunk, chunk_ids))
    delete_files(stale)
    if not ranges:
        _finish(deployment, [], [], 0, time.perf_counter())
    return len(ranges)


def run_index_chunk_direct(chunk_id: int) -> str:
    """Run the version on one chunk's records; its resources (newest record winning within the chunk) and their
    search values go to the chunk's file. The last chunk to end swaps the whole index in."""
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
        heartbeat = Heartbeat(chunk)
        found, errors, records = _run_records(deployment, rows, heartbeat)
        if found is None:
            return "stopped"
        output = LineFiles(f"{chunk.storage_prefix}{chunk.first_record_id:012d}", max_lines=10**9, max_bytes=10**12)
        for resource_id, (resource, record_id) in found.items():
            output.write(_chunk_line(resource_id, record_id, resource))
        files = [
            {"name": f.name, "kind": "output", "type": "", "count": f.count, "bytes": f.bytes} for f in output.close()
        ]
        finished = finish_chunk(
            chunk,
            status=ChunkStatus.DONE,
            done=len(found),
            failed=len(errors),
            files=files,
            records=records,
            failures=errors[:MAX_FAILURES],
        )
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
    """Merge the chunks' files in record order (a later record's resource replaces an earlier one's, as when one
    process indexes) and swap them in. A failed chunk leaves the deployment pending, with the reason in its errors."""
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
    # The newest line of each id, unparsed: only the winners are parsed, once, as they are inserted.
    latest: dict[bytes, bytes] = {}
    for chunk in chunks:
        for file in chunk.files:
            for line in read_lines(file["name"]):
                key, _, item = line.partition(b"\t")
                latest[key] = item
    errors = [failure for chunk in chunks for failure in chunk.failures]
    resources = _Merged(latest, timezone.now())
    deployment = _finish(deployment, resources, errors, sum(chunk.records for chunk in chunks), started)
    delete_files(file["name"] for chunk in chunks for file in chunk.files)
    return deployment


class _Merged:
    """The merged resources, each parsed from its chunk line (and its timed search values added) as it is read:
    do_finish_index reads them once, so they are never all in memory at once."""

    def __init__(self, latest: dict[bytes, bytes], now: datetime) -> None:
        self.latest, self.now = latest, now

    def __len__(self) -> int:
        return len(self.latest)

    def __iter__(self) -> Iterator[IndexedResource]:
        now = self.now
        stamped = [row for row in search_values({}, now) if row[0] in TIMED]
        for key, item in self.latest.items():
            record_id, values, resource = loads(item)  # decimals keep their digits into the index
            values = stamped + [
                row if row[2] is None else (*row[:2], _moment(row[2]), _moment(row[3])) for row in values
            ]
            yield IndexedResource(orjson.loads(key), _with_meta(resource, now), record_id, now, values)


def _chunk_line(resource_id: str, record_id: int, resource: dict) -> bytes:
    """A chunk file's line: the id (JSON), a tab, then [record id, search values, resource]. The search values are
    computed here, on every worker, save the ones that depend on the time of the merge (TIMED), which the merge adds;
    dates are ISO strings. The JSON id comes first so the merge can pick each id's newest line without parsing it."""
    values = [row for row in search_values(resource, EPOCH) if row[0] not in TIMED]
    return orjson.dumps(resource_id) + b"\t" + orjson.dumps([record_id, values, resource], default=decimal_default)


def _moment(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


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


def _finish(deployment: Deployment, resources: list, errors: list, records: int, started: float) -> Deployment:
    deployment = do_finish_index(deployment, resources=resources, errors=errors, records=records)
    if connection.vendor == "postgresql" and len(resources) > BATCH:
        # Fresh statistics, or the planner keeps the empty-table estimates it had and searches take seconds.
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE mappings_facaderesource, mappings_searchvalue")
    logger.info(
        "indexed deployment %s: %d %s from %d records, %d failed, %.0f ms",
        deployment.pk,
        len(resources),
        deployment.binding.resource_type,
        records,
        len(errors),
        (time.perf_counter() - started) * 1000,
    )
    return deployment


def _with_meta(resource: dict, now) -> dict:
    meta = dict(resource.get("meta") or {})
    meta["lastUpdated"] = now.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    meta["versionId"] = "1"
    return {**resource, "meta": meta}
