"""The rows of a facade's index (FacadeResource, and SearchValue rows naming them), written in bulk with SQL: the ORM
would write or cascade them one at a time, and an index holds millions of search values.

- An index has a key (`staging_key`): a deployment's id, or minus its id while the other one serves, so a deployment
  indexed again (records uploaded) stages beside what it serves. Its search values carry the key (SearchValue.build):
  searches read the served key's values alone, and a swap or a delete drops an index's values by key.
- `stage_resources` writes resources built for a deployment as staged rows (no deployment, `staged_for` the key),
  which nothing reads. Every indexing worker stages at once: an upsert keeps, for each resource id, the row of the
  newest record (the highest record id), whichever chunk got there first, and a resource written again gets its
  search values rewritten with it.
- `swap_staged` makes the staged rows the deployment's index in one UPDATE, stamping meta.lastUpdated and the row's
  last_updated (which `_lastUpdated` searches and `_since` read) with the time of the swap: a resource is new to
  clients when it starts to serve.
- `drop_index` deletes the rows of a binding's deployments, served and staged.

The upsert's conflict target is the partial unique index of migration 0014 (PostgreSQL and SQLite both have
`INSERT … ON CONFLICT … DO UPDATE … WHERE`)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import orjson
from django.db import connection
from django.utils import timezone

from mappings.engine.formats.decimals import decimal_default
from mappings.models import Deployment, FacadeResource, ResourceBinding, SearchValue

RESOURCES, VALUES = FacadeResource._meta.db_table, SearchValue._meta.db_table
# Search values that depend on the time the index starts to serve, not on the resource: not stored (a `_lastUpdated`
# search reads FacadeResource.last_updated, which the swap stamps; indexes built before have these values too).
TIMED = frozenset({"_lastUpdated"})
# COPY's text format: a backslash, tab, newline or carriage return in a value is escaped (params are our own names).
COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
UPSERT_TAIL = f"""
    ON CONFLICT (staged_for, resource_type, resource_id) WHERE staged_for IS NOT NULL
    DO UPDATE SET record_id = excluded.record_id, content = excluded.content
    WHERE excluded.record_id >= COALESCE({RESOURCES}.record_id, 0)
    RETURNING id, resource_id, {{inserted}}"""
# Whether the upsert inserted a row (True) or rewrote a staged one, whose search values go: PostgreSQL's new row
# version has no xmax when inserted, the updating transaction's id when updated. SQLite cannot tell: it deletes.
INSERTED = {"postgresql": "xmax = 0", "sqlite": "false"}


@dataclass(frozen=True)
class StagedResource:
    resource_id: str
    record_id: int
    content: dict  # meta.versionId set; meta.lastUpdated is set by the swap
    search_values: list[tuple[str, str, object, object]]  # (param, value, start, end), none of them TIMED


def staging_key(deployment: Deployment) -> int:
    """The key a new index of the deployment is staged under: the one of its two keys it does not serve."""
    return -deployment.pk if deployment.index_key == deployment.pk else deployment.pk


def stage_resources(key: int, resource_type: str, resources: Iterable[StagedResource]) -> int:
    """Stage resources under an index key (call it inside a transaction that share-locks the deployment's row before
    it commits, so a swap or a newer deploy waits for it); returns how many rows were written, i.e. won over what was
    staged before."""
    by_id = {resource.resource_id: resource for resource in resources}
    if not by_id:
        return 0
    staged_at = _moment(timezone.now())  # replaced by the swap's time
    tail = UPSERT_TAIL.format(inserted=INSERTED[connection.vendor])
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # One statement, in resource id order: two chunks upserting the same ids lock them in the same order. The
            # rows travel as one JSON document: as arrays of text, quoting each resource's JSON cost 1.4 s a chunk.
            document = [{"id": rid, "record": r.record_id, "content": r.content} for rid, r in by_id.items()]
            cursor.execute(
                f"""INSERT INTO {RESOURCES}
                    (deployment_id, staged_for, resource_type, resource_id, record_id, content, last_updated)
                SELECT NULL, %s, %s, r.id, r.record, r.content, %s
                FROM jsonb_to_recordset(%s::jsonb) AS r(id varchar, record bigint, content jsonb)
                ORDER BY r.id {tail}""",
                [key, resource_type, staged_at, orjson.dumps(document, default=decimal_default).decode()],
            )
            written = cursor.fetchall()
        else:
            written = []
            for resource_id, resource in by_id.items():
                text = orjson.dumps(resource.content, default=decimal_default).decode()  # 0.70 stays 0.70
                cursor.execute(
                    f"""INSERT INTO {RESOURCES}
                        (deployment_id, staged_for, resource_type, resource_id, record_id, content, last_updated)
                    VALUES (NULL, %s, %s, %s, %s, %s, %s) {tail}""",
                    [key, resource_type, resource_id, resource.record_id, text, staged_at],
                )
                written += cursor.fetchall()
    if rewritten := [pk for pk, _, inserted in written if not inserted]:
        # The values of a resource written again (one DELETE, no cascade); a new row has none: looking for them by
        # 2,000 ids cost a chunk 0.02–0.4 s on PostgreSQL.
        SearchValue.objects.filter(resource_id__in=rewritten).delete()
    _insert_values(key, ((pk, row) for pk, resource_id, _ in written for row in by_id[resource_id].search_values))
    return len(written)


def swap_staged(deployment: Deployment, key: int, now: datetime) -> int:
    """The rows staged under `key` become the deployment's index, stamped `now`; returns how many. Drop the rows
    they replace first (drop_index), and set the deployment's index_key to `key` with it."""
    # To the millisecond, as meta.lastUpdated says it: a search for that instant finds the row
    now = now.replace(microsecond=now.microsecond // 1000 * 1000)
    stamp = now.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if connection.vendor == "postgresql":
        content = "jsonb_set(content, '{meta,lastUpdated}', to_jsonb(%s::text))"
    else:
        content = "json_set(content, '$.meta.lastUpdated', %s)"
    with connection.cursor() as cursor:
        cursor.execute(
            f"""UPDATE {RESOURCES} SET deployment_id = %s, staged_for = NULL, last_updated = %s, content = {content}
            WHERE staged_for = %s""",
            [deployment.pk, _moment(now), stamp, key],
        )
        return cursor.rowcount


def drop_index(binding: ResourceBinding, *, swapping: Deployment | None = None) -> None:
    """Delete every served resource of the binding's deployments, with their search values, and what they staged;
    when `swapping` one in, only what superseded deployments staged (its own staged rows are about to serve, and a
    newer deployment still indexing keeps its own). The deployments' rows are locked first: a worker staging for one
    of them finishes before this reads, and one that comes after finds its deployment superseded or gone."""
    rows = list(
        Deployment.objects.select_for_update().filter(binding=binding).values_list("pk", "superseded", "index_key")
    )
    ids = [pk for pk, _, _ in rows]
    served = [key for _, _, key in rows if key is not None]
    staged = [key for pk, superseded, _ in rows if swapping is None or superseded for key in (pk, -pk)]
    keys = list({*served, *staged})
    if not ids:
        return
    with connection.cursor() as cursor:
        if keys:
            cursor.execute(f"DELETE FROM {VALUES} WHERE {_any('build', keys)}", _params(keys))
        cursor.execute(f"DELETE FROM {RESOURCES} WHERE {_any('deployment_id', ids)}", _params(ids))
        if staged:
            cursor.execute(f"DELETE FROM {RESOURCES} WHERE {_staged_in(staged)}", _params(staged))


def drop_staged(key: int) -> None:
    """Delete what was staged under an index key (a new plan starts afresh)."""
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {VALUES} WHERE build = %s", [key])
        cursor.execute(f"DELETE FROM {RESOURCES} WHERE {_staged_in([key])}", _params([key]))


def _insert_values(key: int, rows: Iterable[tuple[int, tuple]]) -> None:
    if connection.vendor == "postgresql":
        # COPY's text format, written in one piece: psycopg's write_row adapts each field in Python, row by row.
        lines = [
            f"{key}\t{pk}\t{param}\t{value.translate(COPY_ESCAPES)}\t{_copy_time(start)}\t{_copy_time(end)}\n"
            for pk, (param, value, start, end) in rows
        ]
        with (
            connection.cursor() as cursor,
            cursor.copy(f'COPY {VALUES} (build, resource_id, param, value, start, "end") FROM STDIN') as copy,
        ):
            copy.write("".join(lines).encode())
        return
    SearchValue.objects.bulk_create(
        (
            SearchValue(build=key, resource_id=pk, param=param, value=value, start=start, end=end)
            for pk, (param, value, start, end) in rows
        ),
        batch_size=1000,
    )


def _copy_time(value: datetime | None) -> str:
    return "\\N" if value is None else value.isoformat()


def _moment(value: datetime):
    """A time as the database's DateTimeField stores it (SQLite: naive UTC text), for raw SQL."""
    return connection.ops.adapt_datetimefield_value(value)


def _staged_in(keys: list[int]) -> str:
    return f"staged_for IS NOT NULL AND {_any('staged_for', keys)}"


def _any(column: str, values: list[int]) -> str:
    if connection.vendor == "postgresql":
        return f"{column} = ANY(%s)"
    return f"{column} IN ({', '.join(['%s'] * len(values))})"


def _params(values: list[int]) -> list:
    return [values] if connection.vendor == "postgresql" else values
