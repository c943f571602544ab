"""Batch conversions: a published version run over many messages, as chunked Celery jobs whose state is in the
database (mappings/models/jobs.py). Start one over uploaded files or a stored data source, cancel it, reprocess the
messages that failed with another version, and finish it when its last chunk ends. A batch may pull its messages from
a connection to another FHIR server and push its outputs to one (mappings/jobs/batch_push.py).

Uploaded files are stored in the jobs storage here, in the request, and split into messages by the plan task on a
worker (mappings/jobs/batches.py): a request never parses thousands of messages, and no payload goes through the
broker. Tasks are queued by their registered name after the commit (actions import no task code)."""

from __future__ import annotations

import logging
import os
from typing import BinaryIO

from celery import current_app
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import SuspiciousFileOperation
from django.core.files import File
from django.db import transaction
from django.utils import timezone
from django.utils.text import get_valid_filename

from mappings.actions.common import audit
from mappings.errors import StudioError
from mappings.fhir_types import is_r4_resource_type
from mappings.job_files import delete_files, job_storage
from mappings.models import (
    FINISHED,
    AuditAction,
    BatchItem,
    BatchJob,
    ChunkStatus,
    Connection,
    DataSource,
    JobStatus,
    MappingVersion,
)

logger = logging.getLogger(__name__)
PLAN_TASK = "mappings.tasks.plan_batch"
UPLOAD_BYTES_FACTOR = 100  # a batch's files may hold this many of the largest message the engine takes


def max_upload_bytes() -> int:
    return settings.FHIR_STUDIO["MAX_INPUT_BYTES"] * UPLOAD_BYTES_FACTOR


def _size_of(upload: BinaryIO) -> int:
    size = getattr(upload, "size", None)  # Django's UploadedFile knows it; a plain file is measured
    if size is None:
        upload.seek(0, os.SEEK_END)
        size = upload.tell()
        upload.seek(0)
    return size


def _safe_name(filename: str | None) -> str:
    """The uploaded file's own name, without folders or characters a storage path cannot hold."""
    base = os.path.basename((filename or "").replace("\\", "/"))[-100:]
    try:
        return get_valid_filename(base)
    except SuspiciousFileOperation:  # nothing usable left ("", "..")
        return "upload"


def _checked_uploads(uploads: list[tuple[str, BinaryIO]]) -> list[tuple[str, BinaryIO, int]]:
    if not uploads:
        raise StudioError("invalid", "Send at least one file, or name a stored data source.", details={"files": []})
    checked = []
    for filename, upload in uploads:
        name = _safe_name(filename)
        size = _size_of(upload)
        if size == 0:
            raise StudioError("invalid", f"The file '{name}' is empty.", details={"files": [f"'{name}' is empty."]})
        checked.append((name, upload, size))
    total = sum(size for _, _, size in checked)
    if total > max_upload_bytes():
        raise StudioError(
            "too_large",
            f"The files hold {total:,} bytes; a batch takes at most {max_upload_bytes():,}. Split them into "
            "several batches.",
            details={"bytes": total, "max_bytes": max_upload_bytes()},
            status_code=413,
        )
    return checked


def do_start_batch(
    version: MappingVersion,
    *,
    acting_user: AbstractBaseUser | None,
    uploads: list[tuple[str, BinaryIO]] | None = None,
    source: DataSource | None = None,
    validate: bool = True,
    key_column: str | None = None,
    pull: dict | None = None,
    push_to: dict | None = None,
) -> BatchJob:
    """Run `version` over the messages of uploaded files (HL7 v2 files of many messages, NDJSON, JSON arrays, CSV
    rows, zips of those), over every record of a stored data source, or over the resources pulled from a connection
    (`pull`: a search or a bulk export). `push_to` ({connection, kind}) sends each converted output to a connection
    (mappings/jobs/batch_push.py). Answers the batch queued; its plan task splits the inputs and queues its chunks."""
    if sum(given is not None for given in (uploads, source, pull)) != 1:
        raise StudioError("invalid", "Give one input: files, a stored data source, or a pull from a connection.")
    pull = _checked_pull(pull, version) if pull is not None else {}
    push_to = _checked_push_to(push_to) if push_to is not None else {}
    if source is not None and source.kind != DataSource.Kind.STORED:
        raise StudioError(
            "invalid", f"'{source.name}' is a live {source.kind} source: a batch reads stored records only."
        )
    checked = _checked_uploads(uploads) if uploads is not None else []
    stored: list[str] = []  # emptied once the batch is committed: then its files are its own
    try:
        return _start(
            version,
            acting_user,
            checked,
            stored,
            source=source,
            validate=validate,
            key_column=key_column,
            pull=pull,
            push_to=push_to,
        )
    except BaseException:
        delete_files(stored)  # the batch row was rolled back: nothing points at these files
        raise


@transaction.atomic(durable=True)
def _start(
    version: MappingVersion,
    acting_user: AbstractBaseUser | None,
    uploads: list[tuple[str, BinaryIO, int]],
    stored: list[str],
    *,
    source: DataSource | None,
    validate: bool,
    key_column: str | None,
    pull: dict,
    push_to: dict,
) -> BatchJob:
    batch = BatchJob.objects.create(
        version=version,
        source=source,
        pull=pull,
        push_to=push_to,
        validate=validate,
        created_by=acting_user if acting_user is not None and acting_user.is_authenticated else None,
    )
    source_format = source.source_format if source else version.engine_settings.get("source_format", "")
    inputs = []
    for number, (filename, upload, size) in enumerate(uploads, start=1):
        upload.seek(0)
        content = upload if isinstance(upload, File) else File(upload, name=filename)
        name = job_storage().save(f"{batch.storage_prefix}inputs/{number}-{filename}", content)
        stored.append(name)
        inputs.append(
            {"name": filename, "file": name, "bytes": size, "source_format": source_format, "key_column": key_column}
        )
    if inputs:
        batch.inputs = inputs
        batch.save(update_fields=["inputs"])
    audit(
        acting_user,
        AuditAction.BATCH_STARTED,
        batch,
        mapping_slug=version.mapping.slug,
        after={
            "version": version.number,
            "files": [item["name"] for item in inputs],
            "bytes": sum(item["bytes"] for item in inputs),
            "source": source.name if source else None,
            "pull": pull or None,  # names and parameters: no secret, no PHI beyond what a search asks
            "push_to": push_to or None,
            "validate": validate,
        },
    )
    transaction.on_commit(stored.clear)  # before the plan is queued: a broker error then leaves the files alone
    _queue_plan(batch)
    return batch


PUSH_KINDS = ("transaction", "batch")
PULL_FORMATS = ("fhir", "json")  # what a mapping reads a pulled resource as


def _connection_named(name: object, field: str) -> str:
    if not isinstance(name, str) or not Connection.objects.filter(name=name).exists():
        raise StudioError("invalid", f"{field}.connection names no connection ({name!r}).", details={field: []})
    return name


def _checked_pull(pull: dict, version: MappingVersion) -> dict:
    """{connection, resource_type, params} or {connection, export: {type, level}}, checked before the batch exists."""
    connection = _connection_named(pull.get("connection"), "source")
    source_format = version.engine_settings.get("source_format") or ""
    if source_format not in PULL_FORMATS:
        raise StudioError(
            "invalid",
            f"A pull gives FHIR resources; '{version.mapping.slug}' reads {source_format or 'nothing'}: use a mapping "
            "whose source format is fhir or json.",
            details={"source": ["source format"]},
        )
    if "export" in pull:
        export = pull["export"] if isinstance(pull["export"], dict) else None
        if export is None or not set(export) <= {"type", "level"}:
            raise StudioError("invalid", "source.export takes {type, level}.", details={"source": ["export"]})
        types = [part for part in str(export.get("type") or "").split(",") if part]
        unknown = [name for name in types if not is_r4_resource_type(name)]
        if unknown:
            raise StudioError("invalid", f"source.export.type: not R4 types: {', '.join(unknown)}.")
        level = str(export.get("level") or "")
        if level not in ("", "Patient") and not level.startswith("Group/"):
            raise StudioError("invalid", "source.export.level is empty (system), Patient or Group/{id}.")
        return {"connection": connection, "export": {"type": ",".join(types), "level": level}}
    resource_type = pull.get("resource_type")
    if not isinstance(resource_type, str) or not is_r4_resource_type(resource_type):
        raise StudioError("invalid", "source.resource_type must be an R4 resource type.", details={"source": []})
    params = pull.get("params") or {}
    if not isinstance(params, dict) or not all(
        isinstance(value, str) or (isinstance(value, list) and all(isinstance(one, str) for one in value))
        for value in params.values()
    ):
        raise StudioError("invalid", "source.params maps search parameters to a string or a list of strings.")
    return {"connection": connection, "resource_type": resource_type, "params": params}


def _checked_push_to(push_to: dict) -> dict:
    connection = _connection_named(push_to.get("connection"), "push_to")
    kind = push_to.get("kind") or "transaction"
    if kind not in PUSH_KINDS:
        raise StudioError("invalid", "push_to.kind is transaction or batch.", details={"push_to": ["kind"]})
    return {"connection": connection, "kind": kind}


def _queue_plan(batch: BatchJob) -> None:
    batch_id = batch.pk
    transaction.on_commit(lambda: current_app.tasks[PLAN_TASK].delay(batch_id))


@transaction.atomic(durable=True)
def do_cancel_batch(batch: BatchJob, *, acting_user: AbstractBaseUser | None) -> BatchJob:
    """Stop a queued or running batch: its chunks not yet done are cancelled, and a chunk a worker is running stops
    at its next heartbeat without writing anything. Refused with 409 `conflict` once the batch has finished."""
    batch = BatchJob.objects.select_for_update().select_related("version__mapping").get(pk=batch.pk)
    if batch.status in FINISHED:
        raise StudioError("conflict", f"Batch {batch.pk} has already {_finished_word(batch.status)}.", status_code=409)
    was = batch.status
    batch.status, batch.finished_at = JobStatus.CANCELLED, timezone.now()
    batch.save(update_fields=["status", "finished_at"])
    cancelled = batch.chunks.filter(status__in=(ChunkStatus.QUEUED, ChunkStatus.RUNNING)).update(
        status=ChunkStatus.CANCELLED, finished_at=batch.finished_at
    )
    audit(
        acting_user,
        AuditAction.BATCH_CANCELLED,
        batch,
        mapping_slug=batch.version.mapping.slug,
        before={"status": was},
        after={"status": batch.status, "chunks_cancelled": cancelled},
    )
    return batch


def _finished_word(status: str) -> str:
    return {JobStatus.COMPLETED: "completed", JobStatus.FAILED: "failed", JobStatus.CANCELLED: "been cancelled"}[status]


@transaction.atomic(durable=True)
def do_reprocess_batch(batch: BatchJob, *, acting_user: AbstractBaseUser | None, version: MappingVersion) -> BatchJob:
    """A new batch over the messages that failed in `batch` (a finished one), run with `version` of the same
    mapping: typically a fixed one. Its plan task copies those messages in input order."""
    batch = BatchJob.objects.select_for_update().select_related("version").get(pk=batch.pk)
    if batch.status not in FINISHED:
        raise StudioError(
            "conflict", f"Batch {batch.pk} is still {batch.status}: reprocess it once it has finished.", status_code=409
        )
    if version.mapping_id != batch.version.mapping_id:
        raise StudioError(
            "invalid",
            f"Version {version.number} is not a version of '{batch.version.mapping.slug}', which batch {batch.pk} ran.",
            details={"version": [f"Pick a version of '{batch.version.mapping.slug}'."]},
        )
    failed = BatchItem.objects.filter(batch_id=batch.pk, status=BatchItem.Status.FAILED).count()
    if not failed:
        raise StudioError("invalid", f"Batch {batch.pk} has no failed message to reprocess.")
    again = BatchJob.objects.create(
        version=version,
        source=batch.source,
        reprocess_of=batch,
        push_to=batch.push_to,  # messages the server refused are pushed again once converted
        validate=batch.validate,
        created_by=acting_user if acting_user is not None and acting_user.is_authenticated else None,
    )
    audit(
        acting_user,
        AuditAction.BATCH_STARTED,
        again,
        mapping_slug=version.mapping.slug,
        after={"version": version.number, "reprocess_of": batch.pk, "messages": failed, "validate": again.validate},
    )
    _queue_plan(again)
    return again


@transaction.atomic
def do_finish_batch(batch_id: int, *, error: str = "") -> BatchJob | None:
    """Complete the batch once no chunk is left to run, or fail it: with `error` (its input could not be split), or
    when a chunk failed for good. None while chunks still run, or when it had already finished. The batch row is
    locked, so two chunks ending together finish it once."""
    batch = BatchJob.objects.select_for_update().select_related("version__mapping").get(pk=batch_id)
    if batch.status in FINISHED:
        return None
    states = set(batch.chunks.values_list("status", flat=True))
    if not error and states & {ChunkStatus.QUEUED, ChunkStatus.RUNNING}:
        return None
    if not error and ChunkStatus.FAILED in states:
        chunk = batch.chunks.filter(status=ChunkStatus.FAILED).order_by("first_seq").first()
        error = f"Messages {chunk.first_seq}–{chunk.last_seq} could not be converted: {chunk.error}"
    batch.status = JobStatus.FAILED if error else JobStatus.COMPLETED
    batch.error, batch.finished_at = error, timezone.now()
    batch.save(update_fields=["status", "error", "finished_at"])
    if error:
        batch.chunks.filter(status__in=(ChunkStatus.QUEUED, ChunkStatus.RUNNING)).update(status=ChunkStatus.CANCELLED)
        logger.warning("batch %s failed: %s", batch.pk, error)
    counts = list(batch.chunks.values_list("done", "failed"))
    audit(
        None,
        AuditAction.BATCH_FINISHED,
        batch,
        mapping_slug=batch.version.mapping.slug,
        after={
            "status": batch.status,
            "total": batch.total,
            "converted": sum(done for done, _ in counts),
            "failed": sum(failed for _, failed in counts),
            "error": error,
        },
    )
    return batch
