"""Rows a request should not pay to write one by one: kept as plain tuples in this process and written together every
`batch_rows` rows or `batch_seconds` seconds (the facade's access log, the message log). A process that dies loses at
most its last batch; each worker keeps its own. A tuple per row costs a fraction of a model instance, and the batch is
one COPY on PostgreSQL (bench/message_log.py: ~30 µs a row against ~200 for a 500-row INSERT, whose statement and
17 parameters a row cost more to build and parse than the rows to store), one INSERT of many VALUES elsewhere."""

from __future__ import annotations

import logging
import threading
import time

from django.db import DatabaseError, connection
from django.db.models import DateTimeField, JSONField, Model

logger = logging.getLogger(__name__)


class RowBuffer:
    def __init__(self, model: type[Model], columns: tuple[str, ...], *, batch_rows: int, batch_seconds: float) -> None:
        self.fields = [model._meta.get_field(name) for name in columns]
        names = ", ".join(field.column for field in self.fields)
        self.insert = f"INSERT INTO {model._meta.db_table} ({names}) VALUES "
        self.copy = f"COPY {model._meta.db_table} ({names}) FROM STDIN"
        # Values the database driver cannot take as Python gives them: JSON always, dates too outside PostgreSQL.
        self.json_at = [at for at, field in enumerate(self.fields) if isinstance(field, JSONField)]
        self.prepared_at = [at for at, field in enumerate(self.fields) if isinstance(field, (DateTimeField, JSONField))]
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
        """Write `rows` now, in the caller's transaction (a batch chunk's own write)."""
        if connection.vendor == "postgresql":
            self._copy(rows)
            return
        with connection.cursor() as cursor:
            for start in range(0, len(rows), self.batch_rows):  # threads may have added a few rows past a batch
                batch = [self._prepared(row, self.prepared_at) for row in rows[start : start + self.batch_rows]]
                values = [value for row in batch for value in row]
                cursor.execute(self.insert + ", ".join([self.placeholders] * len(batch)), values)

    def _copy(self, rows: list[tuple]) -> None:
        # psycopg's own cursor: COPY is not a statement Django's cursor wrapper runs (nor counts in its query log).
        with connection.cursor() as cursor, cursor.cursor.copy(self.copy) as copy:
            for row in rows:
                copy.write_row(self._prepared(row, self.json_at) if self.json_at else row)

    def _prepared(self, row: tuple, positions: list[int]) -> list:
        values = list(row)
        for at in positions:
            if values[at] is not None:
                values[at] = self.fields[at].get_db_prep_save(values[at], connection)
        return values

    def discard(self) -> None:
        """Forget unwritten rows (tests start each database empty; rows of an earlier one must not land in it)."""
        with self._lock:
            self._pending.clear()
            self._last_flush = time.monotonic()
