"""The facade's access log: one FacadeRequest row per request, written in batches (every 200 rows or 2 seconds) so
a read does not pay for an INSERT. A process that dies loses at most its last batch; each worker keeps its own."""

from __future__ import annotations

import logging
import threading
import time

from django.db import DatabaseError
from django.utils import timezone

from mappings.models import FacadeRequest

logger = logging.getLogger(__name__)
BATCH_ROWS = 200
BATCH_SECONDS = 2.0

_pending: list[FacadeRequest] = []
_lock = threading.Lock()
_last_flush = time.monotonic()


def record(facade_slug: str, resource_type: str, interaction: str, status: int, latency_ms: float) -> None:
    global _last_flush
    row = FacadeRequest(
        facade_slug=facade_slug[:100],
        resource_type=resource_type[:64],
        interaction=interaction,
        status=status,
        latency_ms=round(latency_ms, 3),
        created_at=timezone.now(),
    )
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
    try:
        FacadeRequest.objects.bulk_create(rows)
    except DatabaseError:
        logger.exception("could not write %d facade request rows", len(rows))  # metrics lose them; requests don't fail
        return 0
    return len(rows)


def discard() -> None:
    """Forget unwritten rows (tests start each database empty; rows of an earlier one must not land in it)."""
    with _lock:
        _pending.clear()
