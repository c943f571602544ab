"""The life of a chunk, shared by exports and batches (mappings/models/jobs.py). Every step is one conditional UPDATE,
so two workers never run the same chunk at once and nothing is lost when one dies:

- `send_chunks` puts a task per chunk on the broker, by its registered name, and stamps `queued_at`;
- `claim_chunk` takes a queued chunk, or a running one whose worker stopped beating (killed, machine lost);
  a chunk that is done, failed, cancelled or alive elsewhere is left alone (a redelivered message is a no-op);
- `Heartbeat.beat()` proves the worker alive while it runs, and tells it to stop when the chunk was cancelled;
- `requeue_stalled_chunks` (a beat task) sends again what a dead worker or a restarted broker dropped."""

from __future__ import annotations

import logging
import time
from datetime import timedelta

from celery import current_app
from django.conf import settings
from django.db.models import F, Q
from django.utils import timezone

from mappings.models import BatchChunk, BatchJob, ChunkStatus, ExportChunk, ExportJob, IndexChunk, JobStatus
from mappings.models.jobs import Chunk

logger = logging.getLogger(__name__)
TASKS: dict[type[Chunk], str] = {
    ExportChunk: "mappings.tasks.run_export_chunk",
    BatchChunk: "mappings.tasks.run_batch_chunk",
    IndexChunk: "mappings.tasks.run_index_chunk",
}
# A job is planned by a task of its own; a plan the broker lost leaves its job queued with no chunk. An export's plan
# is safe to run twice at once (its chunks are made in one conditional transaction); a batch's writes items as it
# splits, so it is sent again only when it never started: no item after five times the stale delay.
PLANS: dict[type, tuple[str, int, Q]] = {
    ExportJob: ("mappings.tasks.plan_export", 1, Q()),
    BatchJob: ("mappings.tasks.plan_batch", 5, Q(items__isnull=True)),
}
PARENT = {ExportChunk: "job", BatchChunk: "batch", IndexChunk: "deployment"}  # what a chunk is part of
# While its parent still wants it done: a job running, a deployment not replaced by a newer one.
WANTED = {
    ExportChunk: Q(job__status__in=(JobStatus.QUEUED, JobStatus.RUNNING)),
    BatchChunk: Q(batch__status__in=(JobStatus.QUEUED, JobStatus.RUNNING)),
    IndexChunk: Q(deployment__superseded=False),
}
HEARTBEAT_SECONDS = 2.0
MAX_ATTEMPTS = 5  # a chunk that killed its worker this often is failed, not retried forever


def stale_after() -> timedelta:
    return timedelta(seconds=settings.FHIR_STUDIO["JOB_STALE_SECONDS"])


def send_chunks(model: type[Chunk], chunk_ids: list[int]) -> None:
    """Queue a task for each chunk (call it after the chunks' rows are committed)."""
    if not chunk_ids:
        return
    model.objects.filter(pk__in=chunk_ids).update(queued_at=timezone.now())
    task = current_app.tasks[TASKS[model]]
    for chunk_id in chunk_ids:
        task.delay(chunk_id)


def claim_chunk(model: type[Chunk], chunk_id: int) -> Chunk | None:
    """The chunk, now running for this worker; None when there is nothing for it to do."""
    now = timezone.now()
    claimable = Q(status=ChunkStatus.QUEUED) | Q(status=ChunkStatus.RUNNING, heartbeat_at__lt=now - stale_after())
    if not model.objects.filter(WANTED[model], pk=chunk_id).exists():
        return None  # its job was cancelled or finished, or its deployment replaced
    # Only the chunk's own columns in this UPDATE: a condition on a joined row would become an `id IN (subquery)`
    # that PostgreSQL does not re-check after waiting on a concurrent cancel, and a cancelled chunk would run.
    claimed = model.objects.filter(claimable, pk=chunk_id, attempts__lt=MAX_ATTEMPTS).update(
        status=ChunkStatus.RUNNING, attempts=F("attempts") + 1, heartbeat_at=now
    )
    if not claimed:
        _fail_if_exhausted(model, chunk_id)
        return None
    return model.objects.select_related(PARENT[model]).get(pk=chunk_id)


def _fail_if_exhausted(model: type[Chunk], chunk_id: int) -> None:
    exhausted = model.objects.filter(pk=chunk_id, attempts__gte=MAX_ATTEMPTS).exclude(
        status__in=(ChunkStatus.DONE, ChunkStatus.FAILED, ChunkStatus.CANCELLED, ChunkStatus.MERGED)
    )
    if exhausted.update(
        status=ChunkStatus.FAILED,
        finished_at=timezone.now(),
        error=f"The chunk stopped its worker {MAX_ATTEMPTS} times (killed, or over its time limit).",
    ):
        logger.error("%s %s failed after %d attempts", model.__name__, chunk_id, MAX_ATTEMPTS)


class Heartbeat:
    """Call `beat()` often (every record is fine): it writes at most every HEARTBEAT_SECONDS, and returns False once
    the chunk is no longer this worker's to run (cancelled, or taken over after a long stall)."""

    def __init__(self, chunk: Chunk) -> None:
        self.chunk = chunk
        self.last = time.monotonic()

    def beat(self) -> bool:
        if time.monotonic() - self.last < HEARTBEAT_SECONDS:
            return True
        self.last = time.monotonic()
        alive = type(self.chunk).objects.filter(
            pk=self.chunk.pk, status=ChunkStatus.RUNNING, attempts=self.chunk.attempts
        )
        return bool(alive.update(heartbeat_at=timezone.now()))


def finish_chunk(chunk: Chunk, *, status: str, **fields) -> bool:
    """Record the chunk's outcome, if it is still this attempt's to record. False: another worker took it over."""
    updated = (
        type(chunk)
        .objects.filter(pk=chunk.pk, status=ChunkStatus.RUNNING, attempts=chunk.attempts)
        .update(status=status, finished_at=timezone.now(), **fields)
    )
    return bool(updated)


def requeue_stalled_chunks() -> int:
    """Send again the chunks a dead worker held or a restarted broker lost, and the plans of jobs still queued long
    after they were started (plans are idempotent too); returns how many tasks were sent."""
    cutoff = timezone.now() - stale_after()
    sent = 0
    for job_model, (task_name, delays, never_started) in PLANS.items():
        queued = job_model.objects.filter(
            never_started, status=JobStatus.QUEUED, created_at__lt=timezone.now() - delays * stale_after()
        )
        lost = list(queued.values_list("pk", flat=True).distinct()[:100])
        for job_id in lost:
            logger.warning("sending again the plan of %s %s", job_model.__name__, job_id)
            current_app.tasks[task_name].delay(job_id)
        sent += len(lost)
    for model in TASKS:
        lost = Q(status=ChunkStatus.RUNNING, heartbeat_at__lt=cutoff)
        # A queued chunk waits its turn while workers are busy; it is lost only when none is running any chunk.
        if not model.objects.filter(status=ChunkStatus.RUNNING, heartbeat_at__gte=cutoff).exists():
            lost |= Q(status=ChunkStatus.QUEUED, queued_at__lt=cutoff)
        stalled = model.objects.filter(lost, WANTED[model])
        ids = list(stalled.values_list("pk", flat=True)[:1000])
        if ids:
            logger.warning("sending again %d stalled %s: %s", len(ids), model.__name__, ids[:20])
            send_chunks(model, ids)
            sent += len(ids)
    return sent
