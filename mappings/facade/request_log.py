"""The facade's access log: one FacadeRequest row per request, written in batches (every 200 rows or 2 seconds) so
a read does not pay for an INSERT. A process that dies loses at most its last batch; each worker keeps its own.

A row waits as a plain tuple and a batch is one COPY (PostgreSQL) or INSERT of its values (mappings/row_buffer.py,
shared with the message log): building a model instance per request and bulk_create's work per row cost a facade
read about 0.06 ms of its 0.5 (bench/README.md)."""

from __future__ import annotations

from django.utils import timezone

from mappings.models import FacadeRequest
from mappings.row_buffer import RowBuffer

BATCH_ROWS = 200
BATCH_SECONDS = 2.0
COLUMNS = ("facade_slug", "resource_type", "interaction", "status", "latency_ms", "created_at")
buffer = RowBuffer(FacadeRequest, COLUMNS, batch_rows=BATCH_ROWS, batch_seconds=BATCH_SECONDS)


def record(facade_slug: str, resource_type: str, interaction: str, status: int, latency_ms: float) -> None:
    buffer.add((facade_slug[:100], resource_type[:64], interaction, status, round(latency_ms, 3), timezone.now()))


def flush() -> int:
    return buffer.flush()


def discard() -> None:
    """Forget unwritten rows (tests start each database empty; rows of an earlier one must not land in it)."""
    buffer.discard()
