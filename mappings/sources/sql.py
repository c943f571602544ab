"""SQL data sources: a parameterised query (psycopg placeholders like %(id)s, never string-built) against a database
the administrator listed in FHIR_STUDIO_SQL_SOURCES, in a read-only transaction with a statement timeout. Each row
becomes a JSON record (column → value) for the mapping."""

from __future__ import annotations

import json

import psycopg
from django.conf import settings

from mappings.sources import SourceError

MAX_ROWS = 1000


def fetch(config: dict, query_key: str, values: dict[str, str]) -> list[str]:
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
            rows = cursor.fetchmany(MAX_ROWS)
    except psycopg.errors.QueryCanceled as exc:
        raise SourceError("The source query ran past its time limit.", status=504) from exc
    except (psycopg.ProgrammingError, KeyError) as exc:
        raise SourceError(f"The source query is wrong: {exc}", status=500) from exc
    except psycopg.OperationalError as exc:
        raise SourceError("The source database did not answer.", status=504) from exc
    return [json.dumps(dict(zip(columns, row, strict=True)), default=str) for row in rows]
