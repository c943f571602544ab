"""Bulk Data `$export` as chunked jobs: `plan_export_direct` splits a job into chunks (per type, ranges of index rows
of at most EXPORT_CHUNK_RESOURCES), `run_export_chunk_direct` writes one chunk's NDJSON file(s), and the last chunk to
end finishes the job (`do_finish_export`). Stored sources are exported straight from the facade's index: the JSON text
as stored, never parsed again unless `_elements` asks for a subset.

Bodies of the Celery tasks in mappings/tasks.py; tests call them directly too."""

from __future__ import annotations

import contextlib
import logging
from datetime import datetime, timedelta
from urllib.parse import parse_qsl

import orjson
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import InterfaceError, OperationalError, transaction
from django.db.models import Q, QuerySet, TextField
from django.db.models.functions import Cast
from django.utils import timezone

from mappings.actions import do_delete_export_files, do_fail_export, do_finish_export
from mappings.engine.formats.decimals import dumps, loads
from mappings.facade.last_updated import stamped_text, updated_since
from mappings.facade.search import search
from mappings.facade.search_index import COMPARTMENT
from mappings.job_files import LineFiles, delete_files
from mappings.jobs.chunks import Heartbeat, claim_chunk, finish_chunk, send_chunks
from mappings.jobs.export_live import plan_live_chunks, write_live_chunk
from mappings.jobs.export_records import elements_for, record_outcome, subset
from mappings.models import (
    INDEXED_KINDS,
    ChunkStatus,
    Deployment,
    ExportChunk,
    ExportJob,
    FacadeResource,
    JobStatus,
    SearchValue,
)

logger = logging.getLogger(__name__)
RETRYABLE = (OperationalError, InterfaceError)


def plan_export_direct(job_id: int) -> int:
    """Make the job's chunks and send them; returns how many there are. A redelivered plan finds the job running
    and sends nothing twice (the chunks' own rows are the plan)."""
    job = ExportJob.objects.select_related("facade").get(pk=job_id)
    if job.status != JobStatus.QUEUED:
        return job.chunks.count()
    try:
        chunks, planned = _plan(job)
    except Exception as exc:  # a plan that cannot be made fails the job with the reason, never leaves it queued
        logger.exception("planning export %s failed", job.pk)
        do_fail_export(job.pk, f"The export could not be planned: {exc}")
        return 0
    with transaction.atomic():
        if ExportJob.objects.filter(pk=job.pk, status=JobStatus.QUEUED).update(
            status=JobStatus.RUNNING, planned=planned
        ):
            ExportChunk.objects.bulk_create(chunks)
            ids = list(job.chunks.values_list("pk", flat=True))
            transaction.on_commit(lambda: send_chunks(ExportChunk, ids))
    if not chunks:
        do_finish_export(job.pk)  # nothing to export: complete, with an empty output
    return len(chunks)


def _plan(job: ExportJob) -> tuple[list[ExportChunk], int]:
    size = settings.FHIR_STUDIO["EXPORT_CHUNK_RESOURCES"]
    chunks, planned = [], 0
    for resource_type, deployment in exported_types(job):
        if deployment.binding.source.kind not in INDEXED_KINDS:
            chunks.extend(plan_live_chunks(job, resource_type, deployment))  # pages, chunked as they are read
            continue
        ids = exported_rows(job, deployment, resource_type).order_by("id").values_list("id", flat=True)
        ranges: list[list[int]] = []
        for position, row_id in enumerate(ids.iterator(chunk_size=10_000)):
            if position % size == 0:
                ranges.append([row_id, row_id])
            ranges[-1][1] = row_id
            planned += 1
        # A type with no rows still has its first chunk: it carries the records that did not convert (error[]).
        for number, (first, last) in enumerate(ranges or [[None, None]], start=1):
            chunks.append(
                ExportChunk(
                    job=job,
                    resource_type=resource_type,
                    number=number,
                    deployment=deployment,
                    first_id=first,
                    last_id=last,
                )
            )
    return chunks, planned


def exported_types(job: ExportJob) -> list[tuple[str, Deployment]]:
    """(type, live deployment) for every type the job exports: those asked for (`_type`) that the facade serves."""
    live = Deployment.objects.live().filter(binding__facade_id=job.facade_id).select_related("binding__source")
    by_type = {deployment.binding.resource_type: deployment for deployment in live}
    wanted = job.parameters["types"] if "types" in job.parameters else sorted(by_type)
    return [(resource_type, by_type[resource_type]) for resource_type in wanted if resource_type in by_type]


def exported_rows(job: ExportJob, deployment: Deployment, resource_type: str) -> QuerySet[FacadeResource]:
    """The index rows of one type the job exports: `_since`, `_typeFilter` (the facade's search syntax, several
    filters of a type or-ed) and, for Patient and Group exports, the patients' compartment."""
    parameters = job.parameters
    of_type = FacadeResource.objects.filter(deployment_id=deployment.pk, resource_type=resource_type)
    rows = of_type
    if parameters.get("since"):
        rows = rows.filter(updated_since(datetime.fromisoformat(parameters["since"]), deployment.served_since))
    filters = (parameters.get("type_filters") or {}).get(resource_type)
    if filters:
        matching = Q()
        for query in filters:
            matching |= Q(pk__in=search(of_type, resource_type, parse_qsl(query), deployment.index_key).values("pk"))
        rows = rows.filter(matching)
    if job.level == ExportJob.Level.SYSTEM:
        return rows
    patients = parameters.get("patients")  # None: every patient the facade serves
    if resource_type == "Patient":
        return rows if patients is None else rows.filter(resource_id__in=patients)
    members = SearchValue.objects.filter(param=COMPARTMENT, resource__deployment_id=deployment.pk)
    if patients is not None:
        members = members.filter(value__in=[f"patient/{patient}".lower() for patient in patients])
    else:  # the patients this facade serves, not every patient some resource names
        served = SearchValue.objects.filter(
            param=COMPARTMENT,
            resource__resource_type="Patient",
            resource__deployment__ready=True,
            resource__deployment__binding__facade_id=job.facade_id,
        )
        members = members.filter(value__in=served.values("value"))
    return rows.filter(id__in=members.values("resource_id"))


def run_export_chunk_direct(chunk_id: int) -> str:
    chunk = claim_chunk(ExportChunk, chunk_id)
    if chunk is None:
        return "skipped"  # done, cancelled, or running on a live worker: a redelivered message
    job = chunk.job
    try:
        outcome = _write_chunk(chunk, job)
    except RETRYABLE:
        # The database went away: hand the chunk back so the retry (or the stalled-chunk sweep) can claim it.
        ExportChunk.objects.filter(pk=chunk.pk, attempts=chunk.attempts).update(status=ChunkStatus.QUEUED)
        raise
    except (Exception, SoftTimeLimitExceeded) as exc:
        logger.exception("export chunk %s failed", chunk.pk)
        finish_chunk(chunk, status=ChunkStatus.FAILED, error=f"{type(exc).__name__}: {exc}")
        outcome = "failed"
    if not ExportChunk.objects.filter(job_id=job.pk, status__in=(ChunkStatus.QUEUED, ChunkStatus.RUNNING)).exists():
        finished = do_finish_export(job.pk)
        if finished is not None and finished.status == JobStatus.FAILED:
            # no manifest will list the files of the parts that did finish: remove them, not leave them to retention
            delete_files(file["name"] for files in finished.chunks.values_list("files", flat=True) for file in files)
    return outcome


def _write_chunk(chunk: ExportChunk, job: ExportJob) -> str:
    conf = settings.FHIR_STUDIO
    stem = f"{job.storage_prefix}{chunk.resource_type}-{chunk.number:04d}"
    output = LineFiles(stem, max_lines=conf["EXPORT_FILE_RESOURCES"], max_bytes=conf["EXPORT_FILE_BYTES"])
    errors = LineFiles(f"{job.storage_prefix}errors-{stem.rsplit('/', 1)[1]}", max_lines=10**9, max_bytes=10**12)
    try:
        return _write_chunk_files(chunk, job, output, errors)
    except BaseException:
        _abandon(output, errors)  # a full disk, a lost database, a time limit: nothing half-written stays behind
        raise


def _abandon(*writers: LineFiles) -> None:
    """Remove what a failed chunk wrote: its open part and the parts it had stored already."""
    for writer in writers:
        with contextlib.suppress(OSError):  # a full disk cannot flush the open part: discard() removes it anyway
            writer.discard()
        delete_files(file.name for file in writer.written)


def _write_chunk_files(chunk: ExportChunk, job: ExportJob, output: LineFiles, errors: LineFiles) -> str:
    heartbeat = Heartbeat(chunk)
    elements = elements_for(job.parameters.get("elements") or [], chunk.resource_type)
    written = failed = 0
    if chunk.deployment is not None and chunk.deployment.binding.source.kind not in INDEXED_KINDS:
        written, failed = write_live_chunk(chunk, job, output, errors, heartbeat)
    elif chunk.first_id is not None and chunk.deployment_id is not None:
        rows = exported_rows(job, chunk.deployment, chunk.resource_type).filter(
            id__gte=chunk.first_id, id__lte=chunk.last_id
        )
        texts = rows.order_by("id").values_list(Cast("content", TextField()), flat=True)
        served_since = chunk.deployment.served_since  # the stamp of rows staged as the deployment's own
        for text in texts.iterator(chunk_size=2000):
            text = stamped_text(text, served_since)
            line = text.encode() if elements is None else dumps(subset(loads(text), elements))  # decimals kept
            output.write(line)
            written += 1
            if written % 1000 == 0 and not heartbeat.beat():
                output.discard()
                return "stopped"
    if chunk.number == 1 and job.level == ExportJob.Level.SYSTEM and chunk.deployment is not None:
        for record in chunk.deployment.index_errors:
            outcome = record_outcome(
                chunk.resource_type, record.get("record", ""), record.get("code", ""), record.get("message", "")
            )
            errors.write(orjson.dumps(outcome))
            failed += 1
    files = [
        {"name": file.name, "kind": kind, "type": file_type, "count": file.count, "bytes": file.bytes}
        for kind, file_type, writer in (
            ("output", chunk.resource_type, output),
            ("error", "OperationOutcome", errors),
        )
        for file in writer.close()
    ]
    if not finish_chunk(chunk, status=ChunkStatus.DONE, done=written, failed=failed, files=files):
        if ExportChunk.objects.filter(pk=chunk.pk, status=ChunkStatus.CANCELLED).exists():
            delete_files(file["name"] for file in files)  # the export was cancelled while this chunk ran
        return "stopped"
    return "done"


def delete_expired_exports_direct() -> int:
    """Remove the files of exports finished longer ago than the retention (FHIR_STUDIO EXPORT_RETENTION_HOURS)."""
    cutoff = timezone.now() - timedelta(hours=settings.FHIR_STUDIO["EXPORT_RETENTION_HOURS"])
    expired = ExportJob.objects.filter(finished_at__lt=cutoff, files_deleted_at__isnull=True)
    deleted = 0
    for job in expired.iterator():
        deleted += do_delete_export_files(job, reason="retention")
    return deleted
