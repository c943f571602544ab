"""The facade's access log: one FacadeRequest row per request, written in batches (every 200 rows or 2 seconds) so
a read does not pay for an INSERT. A process that dies loses at most its last batch; each worker keeps its own.

A row waits as a plain tuple and a batch is one INSERT of its values: building a model instance per request and
bulk_create's work per row cost a facade read about 0.06 ms of its 0.5 (bench/README.md)."""

from __future__ import annotations

import logging
import threading
import time

from django.db import DatabaseError, connection
from django.utils import timezone

from mappings.models import FacadeRequest

logger = logging.getLogger(__name__)
BATCH_ROWS = 200
BATCH_SECONDS = 2.0

COLUMNS = ("facade_slug", "resource_type", "interaction", "status", "latency_ms", "created_at")
INSERT = f"INSERT INTO {FacadeRequest._meta.db_table} ({', '.join(COLUMNS)}) VALUES "

_pending: list[tuple] = []
_lock = threading.Lock()
_last_flush = time.monotonic()


def record(facade_slug: str, resource_type: str, interaction: str, status: int, latency_ms: float) -> None:
    global _last_flush
    row = (facade_slug[:100], resource_type[:64], interaction, status, round(latency_ms, 3), timezone.now())
    with _lock:
        _pending.append(row)
        due = len(_pending) >= BATCH_ROWS or time.monotonic() - _last_flush >= BATCH_SECONDS
    if due:
        flush()


def flush() -> int:
    global _last_flush
    with _lock:
        rows = _pending[:]
        _pending.clear()
        _last_flush = time.monotonic()
    if not rows:
        return 0
    adapt = connection.ops.adapt_datetimefield_value
    try:
        with connection.cursor() as cursor:
            for start in range(0, len(rows), BATCH_ROWS):  # threads may have added a few rows past a batch
                batch = rows[start : start + BATCH_ROWS]
                values = [value for row in batch for value in (*row[:5], adapt(row[5]))]
                cursor.execute(INSERT + ", ".join(["(%s, %s, %s, %s, %s, %s)"] * len(batch)), values)
    except DatabaseError:
        logger.exception("could not write %d facade request rows", len(rows))  # metrics lose them; requests don't fail
        return 0
    return len(rows)


def discard() -> None:
    """Forget unwritten rows (tests start each database empty; rows of an earlier one must not land in it)."""
    with _lock:
        _pending.clear()
