"""SQL data sources: a parameterised query (psycopg placeholders like %(id)s, never string-built) against a database
the administrator listed in FHIR_STUDIO_SQL_SOURCES, in a read-only transaction with a statement timeout. Each row
becomes a JSON record (column → value) for the mapping.

`list_query` (optional) lists every record page by page for a bulk `$export`: `%(limit)s` with `%(offset)s`, or with
`%(after)s` for a key cursor on `key_column` (NULL on the first page, then the previous page's last key, so write
`WHERE (%(after)s::text IS NULL OR mrn > %(after)s) ORDER BY mrn`); an empty page ends the list."""

from __future__ import annotations

import json
import re

import psycopg
from django.conf import settings

from mappings.sources import SourceError

MAX_ROWS = 1000
NAMED = re.compile(r"%\((\w*)\)[sbt]")
POSITIONAL = re.compile(r"%[sbt]")
LIST_CURSORS = ("offset", "after")  # what list_query pages by: exactly one of them, always with limit


def fetch(config: dict, query_key: str, values: dict[str, str]) -> list[str]:
    columns, rows = _run(config, query_key, values, MAX_ROWS)
    return [_record(columns, row) for row in rows]


def _run(config: dict, query_key: str, values: dict, max_rows: int) -> tuple[list[str], list[tuple]]:
    name = config.get("database")
    url = settings.FHIR_STUDIO["SQL_SOURCES"].get(name)
    if url is None:
        raise SourceError(f"'{name}' is not a database configured for SQL sources.", status=500)
    query = config.get(query_key)
    if not isinstance(query, str) or not query.strip():
        raise SourceError(f"The source has no {query_key}.", status=500)
    timeout_ms = int(float(config.get("timeout_s", 5)) * 1000)
    try:
        with (
            psycopg.connect(
                url, connect_timeout=5, options=f"-c default_transaction_read_only=on -c statement_timeout={timeout_ms}"
            ) as connection,
            connection.cursor() as cursor,
        ):
            cursor.execute(query, values)
            columns = [column.name for column in cursor.description or []]
            rows = cursor.fetchmany(max_rows)
    except psycopg.errors.QueryCanceled as exc:
        raise SourceError("The source query ran past its time limit.", status=504) from exc
    except (psycopg.ProgrammingError, KeyError) as exc:
        raise SourceError(f"The source query is wrong: {exc}", status=500) from exc
    except psycopg.OperationalError as exc:
        raise SourceError("The source database did not answer.", status=504) from exc
    return columns, rows


def _record(columns: list[str], row: tuple) -> str:
    return json.dumps(dict(zip(columns, row, strict=True)), default=str)


def list_problems(config: dict) -> list[str]:
    """What is wrong with the list settings (none when there is no list_query): checked when the source is saved."""
    query = config.get("list_query")
    if query is None:
        return []
    if not isinstance(query, str) or not query.strip():
        return ["list_query must be a SELECT with %(limit)s and %(offset)s (or %(after)s)."]
    text = query.replace("%%", "")
    names = set(NAMED.findall(text))
    problems = []
    if POSITIONAL.search(NAMED.sub("", text)):
        problems.append("list_query takes named placeholders only: %(limit)s, %(offset)s, %(after)s.")
    if not names <= {*LIST_CURSORS, "limit"}:
        unknown = ", ".join(f"%({name})s" for name in sorted(names - {*LIST_CURSORS, "limit"}))
        problems.append(f"list_query can only use %(limit)s with %(offset)s or %(after)s, not {unknown}.")
    if "limit" not in names or sum(name in names for name in LIST_CURSORS) != 1:
        problems.append("list_query needs %(limit)s and exactly one of %(offset)s or %(after)s.")
    if "after" in names and not (isinstance(config.get("key_column"), str) and config["key_column"]):
        problems.append("A list_query with %(after)s needs key_column: the column the next page starts after.")
    return problems


def list_mode(config: dict) -> str | None:
    """What list_query pages by ("offset" or "after"); None without a usable list_query."""
    query = config.get("list_query")
    if not isinstance(query, str):
        return None
    names = set(NAMED.findall(query.replace("%%", "")))
    cursors = [name for name in LIST_CURSORS if name in names]
    return cursors[0] if len(cursors) == 1 and "limit" in names else None


def start_cursor(config: dict) -> dict:
    return {"offset": 0} if list_mode(config) == "offset" else {"after": None}


def list_page(config: dict, cursor: dict) -> tuple[list[str], dict | None]:
    """One page of the list at `cursor` ({offset|after, limit}): its rows as payloads and the cursor of the next
    page, None once a page is empty. Rows past `limit` are not read, whatever the query returns."""
    mode = list_mode(config)
    if mode is None:
        raise SourceError("The source has no list_query with %(limit)s and %(offset)s or %(after)s.", status=500)
    limit = int(cursor["limit"])
    columns, rows = _run(config, "list_query", {"limit": limit, mode: cursor.get(mode)}, limit)
    if not rows:
        return [], None
    if mode == "offset":
        following = cursor["offset"] + len(rows)
    else:
        key_column = config["key_column"]
        if key_column not in columns:
            raise SourceError(f"key_column {key_column} is not a column list_query returns.", status=500)
        following = _cursor_value(rows[-1][columns.index(key_column)])
    return [_record(columns, row) for row in rows], {**cursor, mode: following}


def _cursor_value(value: object) -> object:
    """The key as the cursor keeps it (JSON): numbers and text as they are, anything else (a date, a UUID) as text,
    which PostgreSQL casts back when it compares it with the column."""
    if value is None:
        raise SourceError("A listed row has no key_column value to continue the list after.", status=502)
    return value if isinstance(value, int | float | str) and not isinstance(value, bool) else str(value)
