"""Long work split into chunks, with every bit of its state in the database: a bulk export of a facade and a batch
conversion. A job is planned into chunks; each chunk is one Celery task that claims its row, beats a heartbeat while it
runs and writes its files under a name of its own, so a chunk that runs twice (a worker killed, a message redelivered)
rewrites its file instead of appending twice. Progress is summed from the chunk rows, never kept in a worker."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models


class JobStatus(models.TextChoices):
    QUEUED = "queued"  # accepted, not planned into chunks yet
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


FINISHED = (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED)


class ChunkStatus(models.TextChoices):
    QUEUED = "queued"  # its task is on the broker (or was, before a broker restart: re-sent when stale)
    RUNNING = "running"  # claimed by a worker, which beats `heartbeat_at`
    DONE = "done"
    FAILED = "failed"  # failed for good: its job fails with its error
    CANCELLED = "cancelled"
    MERGED = "merged"  # an index chunk whose resources were swapped into the index (by the one chunk that did it)


class Chunk(models.Model):
    """What every chunk has: the claim (status, attempts, heartbeat), its counts and the files it wrote."""

    status = models.CharField(max_length=12, choices=ChunkStatus.choices, default=ChunkStatus.QUEUED)
    attempts = models.PositiveSmallIntegerField(default=0)
    queued_at = models.DateTimeField(null=True)  # last time its task was sent
    heartbeat_at = models.DateTimeField(null=True)  # last sign of life of the worker that claimed it
    finished_at = models.DateTimeField(null=True)
    done = models.PositiveIntegerField(default=0)  # resources written (export), messages converted (batch)
    failed = models.PositiveIntegerField(default=0)  # records or messages that did not convert
    # [{name, kind: "output"|"error", type, count, bytes}] in the job's storage; rewritten whole by each attempt
    files = models.JSONField(default=list, blank=True)
    error = models.TextField(blank=True)  # why it failed for good

    class Meta:
        abstract = True


class ExportJob(models.Model):
    """A Bulk Data `$export` of a facade (system, Patient or Group level), kicked off by a client."""

    class Level(models.TextChoices):
        SYSTEM = "system"
        PATIENT = "patient"
        GROUP = "group"

    facade = models.ForeignKey("Facade", on_delete=models.CASCADE, related_name="export_jobs")
    # What the status and file URLs carry: not guessable, so one client cannot poll or fetch another's export.
    key = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    level = models.CharField(max_length=10, choices=Level.choices)
    group_id = models.CharField(max_length=64, blank=True)
    status = models.CharField(max_length=12, choices=JobStatus.choices, default=JobStatus.QUEUED)
    request = models.TextField()  # the kick-off URL as the client sent it (the manifest's `request`)
    # Checked kick-off parameters: {types, since, type_filters: {type: query string}, elements, output_format}
    parameters = models.JSONField(default=dict)
    transaction_time = models.DateTimeField()
    requires_access_token = models.BooleanField(default=False)
    client = models.CharField(max_length=200, blank=True)  # who kicked it off (a token's client id, or an address)
    error = models.JSONField(null=True, blank=True)  # the OperationOutcome of a failed export
    planned = models.PositiveIntegerField(default=0)  # resources the plan expects (0 when a source cannot count)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True)
    files_deleted_at = models.DateTimeField(null=True)  # by a client's DELETE, a cancel, or the retention task

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "finished_at"], name="export_job_retention_idx")]

    def __str__(self) -> str:
        return f"export {self.pk} of {self.facade_id}"

    @property
    def storage_prefix(self) -> str:
        return f"exports/{self.key}/"


class ExportChunk(Chunk):
    """One resource type's slice of an export: a range of index rows (stored sources) or of list pages (HTTP/SQL)."""

    job = models.ForeignKey(ExportJob, on_delete=models.CASCADE, related_name="chunks")
    resource_type = models.CharField(max_length=64)
    number = models.PositiveIntegerField()  # within its type, from 1: the file name's part number
    deployment = models.ForeignKey("Deployment", null=True, on_delete=models.SET_NULL, related_name="+")
    first_id = models.BigIntegerField(null=True)  # stored sources: FacadeResource ids first_id..last_id
    last_id = models.BigIntegerField(null=True)
    cursor = models.JSONField(default=dict, blank=True)  # HTTP/SQL sources: {page, offset, limit, after}

    class Meta:
        ordering = ["job", "resource_type", "number"]
        constraints = [
            models.UniqueConstraint(fields=["job", "resource_type", "number"], name="one_export_chunk_per_part")
        ]


class BatchJob(models.Model):
    """A batch conversion: a published version run over many messages (uploaded files or a stored data source)."""

    class ResultFormat(models.TextChoices):
        NDJSON = "ndjson"  # one resource per line
        BUNDLES = "bundles"  # one output (a Bundle per message) per line

    version = models.ForeignKey("MappingVersion", on_delete=models.PROTECT, related_name="batches")
    source = models.ForeignKey("DataSource", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    inputs = models.JSONField(default=list, blank=True)  # [{name, bytes, messages}] of the uploaded files
    reprocess_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # Pulled from a connection instead: {connection, resource_type, params} (a search) or {connection, export: {type}}
    pull = models.JSONField(default=dict, blank=True)
    # Each converted output sent to a connection: {connection, kind: transaction|batch} (mappings/jobs/batch_push.py)
    push_to = models.JSONField(default=dict, blank=True)
    validate = models.BooleanField(default=True)
    status = models.CharField(max_length=12, choices=JobStatus.choices, default=JobStatus.QUEUED)
    total = models.PositiveIntegerField(default=0)  # messages found by the split
    error = models.TextField(blank=True)  # why the batch failed as a whole (an input that could not be split)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True)
    finished_at = models.DateTimeField(null=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"batch {self.pk}"

    @property
    def storage_prefix(self) -> str:
        return f"batches/{self.pk}/"


class BatchItem(models.Model):
    """One message of a batch: its payload (or the stored record it is), and why it failed when it did."""

    class Status(models.TextChoices):
        PENDING = "pending"
        CONVERTED = "converted"
        FAILED = "failed"

    batch = models.ForeignKey(BatchJob, on_delete=models.CASCADE, related_name="items")
    seq = models.PositiveIntegerField()  # 0.. in input order: chunks are seq ranges
    key = models.CharField(max_length=255)  # MSH-10, file#line, a record's key
    origin = models.CharField(max_length=255, blank=True)  # where the split found it: file, zip member, position
    source_format = models.CharField(max_length=20)
    payload = models.TextField(blank=True)  # empty when `record` holds it
    record = models.ForeignKey("SourceRecord", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    error_code = models.CharField(max_length=20, blank=True)
    error_message = models.TextField(blank=True)
    error_line = models.PositiveIntegerField(null=True, blank=True)  # the template line, when the engine knows it
    issues = models.JSONField(null=True, blank=True)  # the OperationOutcome of a failed message
    # What the push_to server answered for this message's Bundle (mappings/jobs/batch_push.py `compact_result`):
    # {code, status, entries: [[status, location, etag(, outcome when not ok)]…], more}; null when not pushed
    push = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["batch", "seq"]
        constraints = [models.UniqueConstraint(fields=["batch", "seq"], name="one_batch_item_per_seq")]
        indexes = [models.Index(fields=["batch", "status"], name="batch_item_status_idx")]


class BatchChunk(Chunk):
    """Items first_seq..last_seq of a batch, converted by one task; their results are its files."""

    batch = models.ForeignKey(BatchJob, on_delete=models.CASCADE, related_name="chunks")
    first_seq = models.PositiveIntegerField()
    last_seq = models.PositiveIntegerField()
    # Push counts (a batch with push_to), summed for the batch's summary; rewritten whole by each attempt
    pushed = models.PositiveIntegerField(default=0)  # messages sent
    push_failed = models.PositiveIntegerField(default=0)  # messages the server did not keep whole
    entries_created = models.PositiveIntegerField(default=0)  # entries answered 201
    entries_updated = models.PositiveIntegerField(default=0)  # entries answered another 2xx
    entries_failed = models.PositiveIntegerField(default=0)  # entries refused, or not kept (a refused transaction)

    class Meta:
        ordering = ["batch", "first_seq"]
        constraints = [models.UniqueConstraint(fields=["batch", "first_seq"], name="one_batch_chunk_per_range")]


class IndexChunk(Chunk):
    """Stored records first_record_id..last_record_id of a deployment's source, run through its version by one task
    (a big source indexes on every worker). It stages the resources it made, with their search values, the newest
    record winning for an id across chunks; the last chunk to end swaps them all in."""

    deployment = models.ForeignKey("Deployment", on_delete=models.CASCADE, related_name="index_chunks")
    first_record_id = models.BigIntegerField()
    last_record_id = models.BigIntegerField()
    records = models.PositiveIntegerField(default=0)  # records run
    failures = models.JSONField(default=list, blank=True)  # [{record, code, message}], the first 100

    class Meta:
        ordering = ["deployment", "first_record_id"]
        constraints = [
            models.UniqueConstraint(fields=["deployment", "first_record_id"], name="one_index_chunk_per_range")
        ]

    @property
    def storage_prefix(self) -> str:
        return f"index/{self.deployment_id}/"
