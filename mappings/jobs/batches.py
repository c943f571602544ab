"""Batch conversion as chunked jobs: `plan_batch_direct` splits the batch's inputs (uploaded files streamed from the
jobs storage, a stored source's records, resources pulled from a connection, or the failed messages of the batch it
reprocesses) into BatchItem rows and ranges of them into chunks; `run_batch_chunk_direct` converts one chunk's
messages, writes the outputs as NDJSON (`results/<first seq>.ndjson`, one output a line), pushes each to the batch's
`push_to` connection when it names one, and writes the outcome of every message on its row; the last chunk to end
finishes the batch (`do_finish_batch`).

A chunk may run twice (its worker killed, its message redelivered): it rewrites its own file under the same name and
writes its rows and counts in the transaction that records it done, so nothing is counted twice.

Bodies of the Celery tasks in mappings/tasks.py; tests and the benchmark call them directly too."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator

import orjson
from celery import current_task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import InterfaceError, OperationalError, transaction
from django.utils import timezone

from mappings import caches, message_log
from mappings.actions import do_finish_batch
from mappings.compiling import compile_version
from mappings.conf import engine_limits
from mappings.engine import Limits, MappingError, run_mapping
from mappings.engine.formats.decimals import decimal_default
from mappings.engine.sources import decode_payload
from mappings.engine.splitting import SplitLimits, split_messages
from mappings.job_files import LineFiles, delete_files, open_file
from mappings.jobs.batch_push import PullError, Pusher, pulled_key, pulled_resources
from mappings.jobs.chunks import Heartbeat, claim_chunk, finish_chunk, send_chunks
from mappings.models import BatchChunk, BatchItem, BatchJob, ChunkStatus, JobStatus, MappingVersion, SourceRecord
from mappings.profiles import studio_registry
from mappings.row_buffer import RowBuffer

logger = logging.getLogger(__name__)
RETRYABLE = (OperationalError, InterfaceError)
INSERT_ROWS = 1000  # items written per INSERT while planning
PROGRESS_SECONDS = 1.0  # how often a running chunk shows its counts (the progress bar polls every second)
FAILED = BatchItem.Status.FAILED
PENDING = BatchItem.Status.PENDING
CONVERTED = BatchItem.Status.CONVERTED
ACTIVE = (ChunkStatus.QUEUED, ChunkStatus.RUNNING)
ITEM_COLUMNS = ("batch", "seq", "key", "origin", "source_format", "payload", "record", "status", "error_code",
                "error_message", "error_line", "issues", "push")  # fmt: skip
ITEM_ROWS = RowBuffer(BatchItem, ITEM_COLUMNS, batch_rows=INSERT_ROWS, batch_seconds=0)  # its write() only


# --- planning ---------------------------------------------------------------------------------------------------------


class SplitError(Exception):
    """An input that cannot be split into messages: the batch fails with the FS code and the input's name."""


def plan_batch_direct(batch_id: int) -> int:
    """Make the batch's items and chunks and send the chunks; returns how many chunks there are. A redelivered plan
    finds the batch running and sends nothing twice; one that died half-way left items behind, made again here."""
    batch = BatchJob.objects.select_related("version", "source").filter(pk=batch_id).first()
    if batch is None:
        return 0
    if batch.status != JobStatus.QUEUED:
        return batch.chunks.count()
    started = time.perf_counter()
    BatchItem.objects.filter(batch_id=batch.pk).delete()
    try:
        total, inputs = _make_items(batch)
    except (SplitError, PullError) as failure:
        BatchItem.objects.filter(batch_id=batch.pk).delete()
        do_finish_batch(batch.pk, error=str(failure))
        return 0
    except RETRYABLE:
        raise
    except Exception as exc:  # a plan that cannot be made fails the batch with the reason, never leaves it queued
        logger.exception("planning batch %s failed", batch.pk)
        BatchItem.objects.filter(batch_id=batch.pk).delete()
        do_finish_batch(batch.pk, error=f"The batch could not be planned: {type(exc).__name__}: {exc}")
        return 0
    size = settings.FHIR_STUDIO["BATCH_CHUNK_MESSAGES"]
    chunks = [
        BatchChunk(batch_id=batch.pk, first_seq=first, last_seq=min(first + size, total) - 1)
        for first in range(0, total, size)
    ]
    with transaction.atomic():
        planned = BatchJob.objects.filter(pk=batch.pk, status=JobStatus.QUEUED).update(
            status=JobStatus.RUNNING, total=total, inputs=inputs, started_at=timezone.now()
        )
        if planned:  # not cancelled meanwhile
            BatchChunk.objects.bulk_create(chunks)
            ids = list(BatchChunk.objects.filter(batch_id=batch.pk).values_list("pk", flat=True))
            transaction.on_commit(lambda: send_chunks(BatchChunk, ids))
    if planned and not chunks:
        do_finish_batch(batch.pk)  # no message in the inputs: complete, with nothing to convert
    logger.info(
        "planned batch %s: %d messages in %d chunks, %.0f ms",
        batch.pk,
        total,
        len(chunks),
        (time.perf_counter() - started) * 1000,
    )
    return len(chunks) if planned else 0


def _make_items(batch: BatchJob) -> tuple[int, list[dict]]:
    """Write the batch's items in input order; returns their number and the inputs with their message counts."""
    writer = ItemWriter(batch.pk)
    inputs = [dict(spec) for spec in batch.inputs]
    if batch.reprocess_of_id is not None:
        writer.copy_failed_of(batch.reprocess_of_id)
    elif batch.source_id is not None:
        writer.add_records(batch.source.pk, batch.source.name, batch.source.source_format)
    elif batch.pull:
        writer.add_pulled(batch.pull, batch.version.engine_settings.get("source_format") or "fhir")
    else:
        options = batch.version.engine_settings.get("source_options") or {}
        for spec in inputs:
            before = writer.count
            writer.add_split(spec, options)
            spec["messages"] = writer.count - before
    writer.flush()
    return writer.count, inputs


class ItemWriter:
    """BatchItem rows, numbered from 0 and written INSERT_ROWS at a time as plain tuples (one COPY on PostgreSQL):
    a model instance and a bulk INSERT's parameters cost more to build and to parse than the rows to store."""

    def __init__(self, batch_id: int) -> None:
        self.batch_id = batch_id
        self.count = 0
        self.pending: list[tuple] = []
        self.limits = engine_limits()

    def add(
        self,
        *,
        key: str,
        origin: str,
        source_format: str,
        payload: str = "",
        record_id: int | None = None,
        status: str = PENDING,
        error_code: str = "",
        error_message: str = "",
        error_line: int | None = None,
        issues: dict | None = None,
    ) -> None:
        self.pending.append(
            (self.batch_id, self.count, key, origin, source_format, payload, record_id, status, error_code,
             error_message, error_line, issues, None)
        )  # fmt: skip
        self.count += 1
        if len(self.pending) >= INSERT_ROWS:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            ITEM_ROWS.write(self.pending)
            self.pending = []

    def add_split(self, spec: dict, options: dict) -> None:
        encoding = str(options.get("encoding") or "utf-8")
        try:
            with open_file(spec["file"]) as handle:
                messages = split_messages(
                    handle,
                    source_format=spec["source_format"],
                    filename=spec["name"],
                    key_column=spec.get("key_column") or None,
                    csv_delimiter=options.get("delimiter", ","),
                    limits=SplitLimits(max_message_bytes=self.limits.max_input_bytes),
                )
                for message in messages:
                    self.add(**self._message_fields(message, encoding))
        except MappingError as error:
            named = error.message if spec["name"] in error.message else f"{spec['name']}: {error.message}"
            raise SplitError(f"{error.code} {named}") from error

    def _message_fields(self, message, encoding: str) -> dict:
        text, error = payload_text(message.payload, encoding, self.limits)
        fields = {
            "key": str(message.key or "")[:255],
            "origin": str(message.origin or "")[:255],
            "source_format": message.source_format,
            "payload": text,
        }
        if error is not None:
            # Text the database cannot hold as sent (not valid in the mapping's encoding, NUL bytes, too big):
            # failed here with the engine's own error, kept readable for the dead-letter list.
            fields.update(status=FAILED, **error_fields(error))
        return fields

    def add_records(self, source_id: int, source_name: str, source_format: str) -> None:
        rows = SourceRecord.objects.filter(source_id=source_id).order_by("received_at", "id")
        for record_id, key in rows.values_list("pk", "key").iterator(chunk_size=INSERT_ROWS):
            self.add(key=key[:255], origin=source_name, source_format=source_format, record_id=record_id)

    def add_pulled(self, pull: dict, source_format: str) -> None:
        """The resources pulled from a connection (mappings/jobs/batch_push.py), one item each."""
        origin = f"{pull['connection']} " + ("$export" if "export" in pull else f"{pull['resource_type']} search")
        for resource in pulled_resources(pull):
            payload = json.dumps(resource, separators=(",", ":"), ensure_ascii=False)
            self.add(key=pulled_key(resource), origin=origin[:255], source_format=source_format, payload=payload)

    def copy_failed_of(self, batch_id: int) -> None:
        rows = BatchItem.objects.filter(batch_id=batch_id, status=FAILED).order_by("seq")
        fields = ("key", "origin", "source_format", "payload", "record_id")
        for row in rows.values_list(*fields).iterator(chunk_size=INSERT_ROWS):
            self.add(**dict(zip(fields, row, strict=True)))


def payload_text(payload: bytes | str, encoding: str, limits: Limits) -> tuple[str, MappingError | None]:
    """A split message as text to store, and the engine's error when it cannot be converted as it is."""
    try:
        return decode_payload(payload, encoding=encoding, limits=limits), None
    except MappingError as error:
        raw = payload.decode("latin-1") if isinstance(payload, bytes) else payload  # every byte is some character
        return raw[: limits.max_input_bytes].replace("\x00", "\ufffd"), error


def error_fields(error: MappingError, issues: dict | None = None) -> dict:
    return {
        "error_code": error.code,
        "error_message": error.message,
        "error_line": error.line,
        "issues": issues if issues is not None else {"resourceType": "OperationOutcome", "issue": [error.as_issue()]},
    }


# --- running a chunk --------------------------------------------------------------------------------------------------


def run_batch_chunk_direct(chunk_id: int) -> str:
    chunk = claim_chunk(BatchChunk, chunk_id)
    if chunk is None:
        # Done, cancelled or alive elsewhere (a redelivered message), or failed just now after too many attempts:
        # then it may have been the batch's last.
        batch_id = BatchChunk.objects.filter(pk=chunk_id).values_list("batch_id", flat=True).first()
        if batch_id is not None:
            finish_if_last(batch_id)
        return "skipped"
    try:
        outcome = _run_chunk(chunk)
    except RETRYABLE:
        # The database went away: hand the chunk back so the retry (or the stalled-chunk sweep) can claim it.
        BatchChunk.objects.filter(pk=chunk.pk, attempts=chunk.attempts).update(status=ChunkStatus.QUEUED)
        raise
    except (Exception, SoftTimeLimitExceeded) as exc:  # the chunk's failure is recorded; its batch fails
        logger.exception("batch chunk %s failed", chunk.pk)
        finish_chunk(chunk, status=ChunkStatus.FAILED, error=f"{type(exc).__name__}: {exc}")
        outcome = "failed"
    finish_if_last(chunk.batch_id)
    return outcome


def finish_if_last(batch_id: int) -> None:
    if not BatchChunk.objects.filter(batch_id=batch_id, status__in=ACTIVE).exists():
        do_finish_batch(batch_id)


def _run_chunk(chunk: BatchChunk) -> str:
    batch = chunk.batch
    started = time.perf_counter()
    compiled = compile_version(MappingVersion.objects.get(pk=batch.version_id))
    if current_task:  # in a worker, not a test or a script calling this directly
        caches.freeze_long_lived()
    limits = engine_limits()
    registry = studio_registry() if batch.validate else None  # uploaded profiles the outputs name in meta.profile
    heartbeat = Heartbeat(chunk)
    results = LineFiles(
        f"{batch.storage_prefix}results/{chunk.first_seq:09d}",
        max_lines=settings.FHIR_STUDIO["EXPORT_FILE_RESOURCES"],
        max_bytes=settings.FHIR_STUDIO["EXPORT_FILE_BYTES"],
    )
    converted = 0
    failed: list[BatchItem] = []
    failed_when_split = 0
    shown = time.monotonic()
    log = message_log.BatchLog(chunk)
    pusher = Pusher(batch) if batch.push_to else None  # each converted output sent to the batch's connection
    for item_id, payload, record_payload, source_format, status in _items(chunk):
        if not heartbeat.beat():
            results.discard()
            return "stopped"  # cancelled, or taken over by another worker after a long stall
        if status == FAILED:  # failed when it was split (not text the engine can read)
            failed_when_split += 1
            continue
        result = run_mapping(
            compiled,
            payload or record_payload or "",
            source_format=source_format,
            limits=limits,
            validate=batch.validate,
            registry=registry,
        )
        log.add(item_id, payload or record_payload or "", source_format, result)
        ok = result.output is not None and result.ok
        refused = pusher.push(result.output, item_id) if pusher and ok else None
        if refused is not None:  # converted, but the server did not keep it: a dead letter with its outcome
            failed.append(BatchItem(pk=item_id, status=FAILED, **refused))
        elif ok:
            results.write(_line(result.output))
            converted += 1
        else:
            first = next((error for error in result.errors if error.fatal), None)
            fields = error_fields(first, result.issues) if first else {"error_code": "", "issues": result.issues}
            failed.append(BatchItem(pk=item_id, status=FAILED, **fields))
        if time.monotonic() - shown >= PROGRESS_SECONDS:
            shown = time.monotonic()
            _show_progress(chunk, converted, len(failed) + failed_when_split)
    files = [
        {"name": file.name, "kind": "output", "type": "results", "count": file.count, "bytes": file.bytes}
        for file in results.close()
    ]
    if not _record(chunk, converted, failed, len(failed) + failed_when_split, files, pusher):
        if BatchChunk.objects.filter(pk=chunk.pk, status=ChunkStatus.CANCELLED).exists():
            delete_files(file["name"] for file in files)
        return "stopped"
    log.write()  # after the chunk is recorded done: a chunk that runs again finds it done, so no row is logged twice
    if pusher:
        pusher.audit(chunk.first_seq, chunk.last_seq)
    logger.info(
        "batch %s chunk %s: %d converted, %d failed, %.0f ms",
        batch.pk,
        chunk.pk,
        converted,
        len(failed) + failed_when_split,
        (time.perf_counter() - started) * 1000,
    )
    return "done"


def _items(chunk: BatchChunk) -> Iterator[tuple]:
    rows = BatchItem.objects.filter(batch_id=chunk.batch_id, seq__gte=chunk.first_seq, seq__lte=chunk.last_seq)
    # One query for the chunk (a few MB at most): no query per message.
    yield from rows.order_by("seq").values_list("pk", "payload", "record__payload", "source_format", "status")


def _line(output: dict) -> bytes:
    try:
        return orjson.dumps(output, default=decimal_default)  # FHIR decimals keep their digits
    except TypeError:  # an integer past 64 bits: orjson refuses what JSON allows
        return json.dumps(output, separators=(",", ":"), ensure_ascii=False).encode()


def _show_progress(chunk: BatchChunk, done: int, failed: int) -> None:
    # Counts so far, for the progress bar; the final ones are written with the items when the chunk ends.
    BatchChunk.objects.filter(pk=chunk.pk, status=ChunkStatus.RUNNING, attempts=chunk.attempts).update(
        done=done, failed=failed
    )


@transaction.atomic
def _record(
    chunk: BatchChunk,
    converted: int,
    failed: list[BatchItem],
    failed_count: int,
    files: list,
    pusher: Pusher | None = None,
) -> bool:
    """The chunk done with its items' outcomes (and what the push_to server answered for each), in one transaction;
    False (nothing written) when the chunk is no longer this attempt's (cancelled, or taken over)."""
    if not finish_chunk(chunk, status=ChunkStatus.DONE, done=converted, failed=failed_count, files=files):
        return False
    # What the chunk converted is what of its range is still pending and did not fail now: one UPDATE by range, not
    # one naming 500 ids (each a parameter the client binds and the server parses).
    pending = BatchItem.objects.filter(
        batch_id=chunk.batch_id, seq__gte=chunk.first_seq, seq__lte=chunk.last_seq, status=PENDING
    )
    if failed:
        pending = pending.exclude(pk__in=[item.pk for item in failed])
    pending.update(status=CONVERTED, error_code="", error_message="", error_line=None, issues=None)
    BatchItem.objects.bulk_update(
        failed, ["status", "error_code", "error_message", "error_line", "issues"], batch_size=INSERT_ROWS
    )
    if pusher:
        pusher.save(chunk)
    return True
