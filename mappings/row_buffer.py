"""Rows a request should not pay to write one by one: kept as plain tuples in this process and written as one INSERT
of many VALUES every `batch_rows` rows or `batch_seconds` seconds (the facade's access log, the message log). A
process that dies loses at most its last batch; each worker keeps its own. A tuple per row and one INSERT per batch
cost a fraction of a model instance and bulk_create's work per row (bench/README.md, the facade read)."""

from __future__ import annotations

import logging
import threading
import time

from django.db import DatabaseError, connection
from django.db.models import Model

logger = logging.getLogger(__name__)


class RowBuffer:
    def __init__(self, model: type[Model], columns: tuple[str, ...], *, batch_rows: int, batch_seconds: float) -> None:
        self.fields = [model._meta.get_field(name) for name in columns]
        self.insert = f"INSERT INTO {model._meta.db_table} ({', '.join(field.column for field in self.fields)}) VALUES "
        self.placeholders = "(" + ", ".join(["%s"] * len(columns)) + ")"
        self.batch_rows = batch_rows
        self.batch_seconds = batch_seconds
        self.what = model._meta.verbose_name_plural
        self._pending: list[tuple] = []
        self._lock = threading.Lock()
        self._last_flush = time.monotonic()

    def add(self, row: tuple) -> None:
        """Keep `row` (values in `columns` order); write the batch when it is full or old enough."""
        with self._lock:
            self._pending.append(row)
            due = len(self._pending) >= self.batch_rows or time.monotonic() - self._last_flush >= self.batch_seconds
        if due:
            self.flush()

    def flush(self) -> int:
        """Write what is pending now; returns how many rows. A database error loses them (logged), never the caller's
        request."""
        with self._lock:
            rows = self._pending[:]
            self._pending.clear()
            self._last_flush = time.monotonic()
        if not rows:
            return 0
        try:
            self.write(rows)
        except DatabaseError:
            logger.exception("could not write %d %s", len(rows), self.what)
            return 0
        return len(rows)

    def write(self, rows: list[tuple]) -> None:
        """Insert `rows` now, `batch_rows` per statement, in the caller's transaction (a batch chunk's own write)."""
        fields = self.fields
        with connection.cursor() as cursor:
            for start in range(0, len(rows), self.batch_rows):  # threads may have added a few rows past a batch
                batch = rows[start : start + self.batch_rows]
                values = [
                    field.get_db_prep_save(value, connection)
                    for row in batch
                    for field, value in zip(fields, row, strict=True)
                ]
                cursor.execute(self.insert + ", ".join([self.placeholders] * len(batch)), values)

    def discard(self) -> None:
        """Forget unwritten rows (tests start each database empty; rows of an earlier one must not land in it)."""
        with self._lock:
            self._pending.clear()
            self._last_flush = time.monotonic()
