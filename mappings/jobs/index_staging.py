"""Staging an index chunk's resources (mappings/actions/index_rows.py), while the engine still runs on its records.

On PostgreSQL a chunk hands what it made over every PIECE records to a thread with a database connection of its own,
which stages each piece in one transaction that stays open until the chunk ends. The database's work on a piece
(jsonb, the search values' COPY and their indexes: 1.1–1.3 s of a 2,000-record chunk, most of it the worker waiting)
then overlaps the engine's work on the next records. The transaction ends with the chunk recorded done, so nothing a
chunk stages is visible before: a chunk taken over by another worker, dropped by a new plan or stopped by its
heartbeat rolls back; the deployment's row is share-locked at the end, as when staging in one go. SQLite has one
writer at a time (the heartbeat would wait for the open transaction): it stages at the end, in one go, as does a
chunk whose pieces failed (a deadlock with a chunk staging the same ids, which waits for the other's commit)."""

from __future__ import annotations

import logging
import queue
import threading
from datetime import UTC, datetime

from django.db import OperationalError, connection, transaction

from mappings.actions.index_rows import TIMED, StagedResource, Staging, stage_resources, staging_of
from mappings.engine.formats import dumps, loads
from mappings.facade.last_updated import UNSTAMPED
from mappings.facade.search import NAME_PARTS
from mappings.facade.search_index import search_values
from mappings.jobs.chunks import finish_chunk
from mappings.models import ChunkStatus, Deployment, IndexChunk

logger = logging.getLogger(__name__)
PIECE = 250  # records run between two hand-overs to the staging thread
MAX_FAILURES = 100
DEADLOCK = "40P01"  # PostgreSQL: two chunks staging the same ids; the one it was chosen to abort writes again
STAGE_ATTEMPTS = 3
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # any time: the values that depend on it are TIMED
Found = dict[str, tuple[dict, int]]  # resource id → (resource, record id)


class KeyChangedError(Exception):
    """The deployment's staging key changed while the pieces were staged (it was superseded, deleted or swapped):
    they are rolled back, and the chunk is staged again in one go."""


class ChunkStager:
    """`put` each piece of resources as the engine makes them, then `finish` once (or `abandon`)."""

    def __init__(self, chunk: IndexChunk, deployment: Deployment) -> None:
        self.chunk, self.deployment = chunk, deployment
        self.pieces: queue.SimpleQueue = queue.SimpleQueue()
        self.outcome: bool | None = None
        self.error: BaseException | None = None
        self.thread: threading.Thread | None = None
        if connection.vendor == "postgresql":
            self.thread = threading.Thread(target=self._run, name=f"index-chunk-{chunk.pk}-staging", daemon=True)
            self.thread.start()

    def put(self, found: Found) -> None:
        if self.thread is not None and found:
            self.pieces.put(found)

    def kept(self, resource: dict) -> dict | bytes:
        """What the chunk keeps of a resource until it ends, to stage in one go if it must: the resource itself when
        it is staged at the end anyway, else its JSON. A chunk's 2,000 Patients kept as objects made the collector
        pass over ever more of them while the engine ran (18 collections, 0.033–0.040 ms a record: ~2 % of the
        engine; the engine's own loop has none); their JSON is bytes, which it never visits (revived)."""
        return resource if self.thread is None else dumps(resource)

    def finish(self, found: Found, errors: list, records: int) -> bool:
        """Record the chunk done and what it made staged (`found`: all of it, for staging in one go); False when the
        chunk is no longer this worker's to record."""
        if self.thread is not None:
            self.pieces.put((len(found), errors, records))
            self.thread.join()
            if self.error is None:
                return bool(self.outcome)
            deadlocked = getattr(self.error.__cause__, "sqlstate", None) == DEADLOCK
            if not isinstance(self.error, KeyChangedError) and not deadlocked:
                raise self.error
            logger.warning("index chunk %s: staging again in one go (%s)", self.chunk.pk, type(self.error).__name__)
        return stage_chunk(self.chunk, self.deployment, revived(found), errors, records)

    def abandon(self) -> None:
        """Roll back what was staged (the chunk stopped, or the engine loop failed)."""
        if self.thread is not None:
            self.pieces.put(None)
            self.thread.join()

    def _run(self) -> None:
        try:
            self.outcome = self._stage_pieces()
        except BaseException as exc:  # noqa: BLE001 — handed to the chunk's thread by finish()
            self.error = exc
        finally:
            connection.close()  # this thread's own connection

    def _stage_pieces(self) -> bool:
        with transaction.atomic():
            staging = staging_key_of(self.deployment, lock=False)  # locked at the end; a swap changes it
            while isinstance(piece := self.pieces.get(), dict):
                if staging is not None:
                    stage(staging, self.deployment.binding.resource_type, piece)
            if piece is None:  # abandoned
                transaction.set_rollback(True)
                return False
            if not _record_done(self.chunk, *piece):
                transaction.set_rollback(True)
                return False
            if staging_key_of(self.deployment) != staging:
                raise KeyChangedError(self.deployment.pk)
            return True


def revived(found: dict[str, tuple[dict | bytes, int]]) -> Found:
    """The resources a chunk kept (ChunkStager.kept), as resources."""
    return {rid: (loads(kept) if isinstance(kept, bytes) else kept, record) for rid, (kept, record) in found.items()}


def stage_chunk(chunk: IndexChunk, deployment: Deployment, found: Found, errors: list, records: int) -> bool:
    """Record the chunk done and stage its resources in one go, in one transaction: a chunk taken over (or dropped by
    a new plan) stages nothing, and a deployment superseded or deleted meanwhile gets nothing staged."""
    for attempt in range(1, STAGE_ATTEMPTS + 1):
        try:
            with transaction.atomic():
                finished = _record_done(chunk, len(found), errors, records)
                if finished and (staging := staging_key_of(deployment)) is not None:
                    stage(staging, deployment.binding.resource_type, found)
                return finished
        except OperationalError as exc:
            if attempt == STAGE_ATTEMPTS or getattr(exc.__cause__, "sqlstate", None) != DEADLOCK:
                raise
            logger.warning("index chunk %s: deadlock while staging, attempt %d", chunk.pk, attempt)
    return False


def _record_done(chunk: IndexChunk, done: int, errors: list, records: int) -> bool:
    return finish_chunk(
        chunk,
        status=ChunkStatus.DONE,
        done=done,
        failed=len(errors),
        records=records,
        failures=errors[:MAX_FAILURES],
    )


def stage(staging: Staging, resource_type: str, found: Found) -> int:
    return stage_resources(staging.key, resource_type, staged(found), staging.serving_as)


def staged(found: Found) -> list[StagedResource]:
    """The resources to stage, with their search values (but the TIMED ones: a `_lastUpdated` search reads the row's
    stamp), UNSTAMPED until they serve."""
    resources = []
    for resource_id, (resource, record_id) in found.items():
        values = stored_values(search_values(resource, EPOCH))
        meta = {**(resource.get("meta") or {}), "versionId": "1", "lastUpdated": UNSTAMPED}
        resources.append(StagedResource(resource_id, record_id, {**resource, "meta": meta}, values))
    return resources


def stored_values(rows: list[tuple]) -> list[tuple]:
    """A resource's search values as stored: not the TIMED ones, nor a `name` value its family or given values
    already hold (a `name` search reads those too: search.stored_params)."""
    parts = {row[1] for row in rows if row[0] in NAME_PARTS}
    return [row for row in rows if row[0] not in TIMED and not (row[0] == "name" and row[1] in parts)]


def staging_key_of(deployment: Deployment, *, lock: bool = True) -> Staging | None:
    """Where the deployment's new index is staged (index_rows.staging_of); None when it no longer wants one (deleted, or
    superseded). `lock`: share-lock the deployment's row for this transaction (a swap, a newer deploy or a delete
    waits for it; other chunks staging do not). The ORM has no FOR SHARE."""
    share = " FOR SHARE" if lock and connection.vendor == "postgresql" else ""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT superseded, index_key FROM {Deployment._meta.db_table} WHERE id = %s{share}", [deployment.pk]
        )
        row = cursor.fetchone()
    if row is None or row[0]:
        return None
    return staging_of(Deployment(pk=deployment.pk, index_key=row[1]))
