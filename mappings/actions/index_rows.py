"""The rows of a facade's index (FacadeResource, and SearchValue rows naming them), written in bulk with SQL: the ORM
would write or cascade them one at a time, and an index holds millions of search values.

- An index has a key (`staging_key`): a deployment's id, or minus its id while the other one serves, so a deployment
  indexed again (records uploaded) stages beside what it serves. Its search values carry the key (SearchValue.build):
  searches read the served key's values alone, and a swap or a delete drops an index's values by key.
- `stage_resources` writes resources built for a deployment as rows nothing reads. A deployment's first index is
  staged as its own rows (`deployment` set), which nothing reads until the swap makes it live; an index built again
  for a deployment that serves is staged beside what it serves (no deployment, `staged_for` the key). Every indexing
  worker stages at once: an upsert keeps, for each resource id, the row of the newest record (the highest record
  id), whichever chunk got there first, and a resource written again gets its search values rewritten with it.
- `swap_staged` makes the staged rows the deployment's index. A first index is already the deployment's: nothing is
  rewritten (rewriting 100,000 resources was the longest serial step of a build); its rows have no last_updated and
  an UNSTAMPED meta.lastUpdated, both read as the deployment's `served_since` (mappings/facade/
  last_updated.py). An index built again is moved in with one UPDATE that stamps them: a resource is new to clients
  when it starts to serve.
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
from mappings.facade.last_updated import instant
from mappings.models import Deployment, FacadeResource, ResourceBinding, SearchValue

RESOURCES, VALUES = FacadeResource._meta.db_table, SearchValue._meta.db_table
# Search values that depend on the time the index starts to serve, not on the resource: not stored (a `_lastUpdated`
# search reads FacadeResource.last_updated, which the swap stamps; indexes built before have these values too).
TIMED = frozenset({"_lastUpdated"})
# COPY's text format: a backslash, tab, newline or carriage return in a value is escaped (params are our own names).
COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
NULL = "\\N"  # COPY's text format
STAGED_CONFLICT = "(staged_for, resource_type, resource_id) WHERE staged_for IS NOT NULL"
SERVING_CONFLICT = "(deployment_id, resource_type, resource_id)"
UPSERT_TAIL = f"""
    ON CONFLICT {{conflict}}
    DO UPDATE SET record_id = excluded.record_id, content = excluded.content
    WHERE excluded.record_id >= COALESCE({RESOURCES}.record_id, 0)
    RETURNING id, resource_id, {{inserted}}"""
# Whether the upsert inserted a row (True) or rewrote a staged one, whose search values go: PostgreSQL's new row
# version has no xmax when inserted, the updating transaction's id when updated. SQLite cannot tell: it deletes.
INSERTED = {"postgresql": "xmax = 0", "sqlite": "false"}


@dataclass(frozen=True)
class Staging:
    """Where a deployment's new index is staged: under `key`, as the rows of deployment `serving_as` when it does
    not serve yet (its first index), else beside what it serves (None)."""

    key: int
    serving_as: int | None = None


@dataclass(frozen=True)
class StagedResource:
    resource_id: str
    record_id: int
    content: dict  # meta.versionId set, meta.lastUpdated UNSTAMPED
    search_values: list[tuple[str, str, object, object]]  # (param, value, start, end), none of them TIMED


def staging_key(deployment: Deployment) -> int:
    """The key a new index of the deployment is staged under: the one of its two keys it does not serve."""
    return -deployment.pk if deployment.index_key == deployment.pk else deployment.pk


def staging_of(deployment: Deployment) -> Staging:
    """Where a new index of the deployment is staged (from its index_key as last read)."""
    serving_as = deployment.pk if deployment.index_key is None else None
    return Staging(staging_key(deployment), serving_as)


def stage_resources(
    key: int, resource_type: str, resources: Iterable[StagedResource], serving_as: int | None = None
) -> int:
    """Stage resources under an index key, as deployment `serving_as`'s rows when given (Staging); call it inside a
    transaction that share-locks the deployment's row before it commits, so a swap or a newer deploy waits for it.
    Returns how many rows were written, i.e. won over what was staged before."""
    by_id = {resource.resource_id: resource for resource in resources}
    if not by_id:
        return 0
    # A row staged beside a served index is stamped by the swap; one staged as its deployment's has none (None).
    staged_at = None if serving_as is not None else _moment(timezone.now())
    staged_for = None if serving_as is not None else key
    conflict = SERVING_CONFLICT if serving_as is not None else STAGED_CONFLICT
    tail = UPSERT_TAIL.format(conflict=conflict, inserted=INSERTED[connection.vendor])
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # One statement, in resource id order: two chunks upserting the same ids lock them in the same order. The
            # rows travel as one JSON document: as arrays of text, quoting each resource's JSON cost 1.4 s a chunk.
            # `json`, not `jsonb`: each resource's text is stored as it is (content is a `json` column, JSONText).
            document = [{"id": rid, "record": r.record_id, "content": r.content} for rid, r in by_id.items()]
            cursor.execute(
                f"""INSERT INTO {RESOURCES}
                    (deployment_id, staged_for, resource_type, resource_id, record_id, content, last_updated)
                SELECT %s, %s, %s, r.id, r.record, r.content, %s
                FROM json_to_recordset(%s::json) AS r(id varchar, record bigint, content json)
                ORDER BY r.id {tail}""",
                [
                    serving_as,
                    staged_for,
                    resource_type,
                    staged_at,
                    orjson.dumps(document, default=decimal_default).decode(),
                ],
            )
            written = cursor.fetchall()
        else:
            written = []
            for resource_id, resource in by_id.items():
                text = orjson.dumps(resource.content, default=decimal_default).decode()  # 0.70 stays 0.70
                cursor.execute(
                    f"""INSERT INTO {RESOURCES}
                        (deployment_id, staged_for, resource_type, resource_id, record_id, content, last_updated)
                    VALUES (%s, %s, %s, %s, %s, %s, %s) {tail}""",
                    [serving_as, staged_for, resource_type, resource_id, resource.record_id, text, staged_at],
                )
                written += cursor.fetchall()
    if rewritten := [pk for pk, _, inserted in written if not inserted]:
        # The values of a resource written again (one DELETE, no cascade); a new row has none: looking for them by
        # 2,000 ids cost a chunk 0.02–0.4 s on PostgreSQL.
        SearchValue.objects.filter(resource_id__in=rewritten).delete()
    _insert_values(key, ((pk, row) for pk, resource_id, _ in written for row in by_id[resource_id].search_values))
    return len(written)


def served_instant(now: datetime) -> datetime:
    """A swap's time to the millisecond, as meta.lastUpdated says it: a `_lastUpdated` search for that instant finds
    the resources it stamped."""
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def swap_staged(deployment: Deployment, key: int, now: datetime) -> int:
    """The rows staged under `key` become the deployment's index, as of `now` (served_instant); returns how many.
    Drop the rows they replace first (drop_index), and set the deployment's index_key to `key` and served_since to
    `now` with it. A first index (index_key None) was staged as the deployment's own rows: it is counted, not
    rewritten (rows staged beside, by an indexer older than that, are still moved in)."""
    if connection.vendor == "postgresql":
        content = "jsonb_set(content::jsonb, '{meta,lastUpdated}', to_jsonb(%s::text))"  # stored back as json
    else:
        content = "json_set(content, '$.meta.lastUpdated', %s)"
    with connection.cursor() as cursor:
        cursor.execute(
            f"""UPDATE {RESOURCES} SET deployment_id = %s, staged_for = NULL, last_updated = %s, content = {content}
            WHERE staged_for = %s""",
            [deployment.pk, _moment(now), instant(now), key],
        )
        if deployment.index_key is not None:
            return cursor.rowcount
        cursor.execute(f"SELECT count(*) FROM {RESOURCES} WHERE deployment_id = %s", [deployment.pk])
        return cursor.fetchone()[0]


def drop_index(binding: ResourceBinding, *, swapping: Deployment | None = None) -> None:
    """Delete every served resource of the binding's deployments, with their search values, and what they staged;
    when `swapping` one in, only what superseded deployments staged and what served (its own staged rows are about
    to serve, and a newer deployment still indexing keeps its own). The deployments' rows are locked first: a worker
    staging for one of them finishes before this reads, and one that comes after finds its deployment superseded or
    gone."""
    rows = list(
        Deployment.objects.select_for_update()
        .filter(binding=binding)
        .values_list("pk", "superseded", "index_key", "ready")
    )
    # A deployment's rows: what it serves, or what it staged as its own (first index) while not serving; a pending
    # one's (and the one swapping in, when its index is its first) stay.
    ids = [pk for pk, superseded, _, ready in rows if swapping is None or ready or superseded]
    served = [key for _, _, key, _ in rows if key is not None]
    staged = [key for pk, superseded, _, _ in rows if swapping is None or superseded for key in (pk, -pk)]
    keys = list({*served, *staged})
    with connection.cursor() as cursor:
        if keys:
            cursor.execute(f"DELETE FROM {VALUES} WHERE {_any('build', keys)}", _params(keys))
        if ids:
            cursor.execute(f"DELETE FROM {RESOURCES} WHERE {_any('deployment_id', ids)}", _params(ids))
        if staged:
            cursor.execute(f"DELETE FROM {RESOURCES} WHERE {_staged_in(staged)}", _params(staged))


def drop_staged(staging: Staging) -> None:
    """Delete what was staged for a new index (a new plan starts afresh)."""
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {VALUES} WHERE build = %s", [staging.key])
        if staging.serving_as is not None:  # not serving yet: its rows are what it staged
            cursor.execute(f"DELETE FROM {RESOURCES} WHERE deployment_id = %s", [staging.serving_as])
        else:
            cursor.execute(f"DELETE FROM {RESOURCES} WHERE {_staged_in([staging.key])}", _params([staging.key]))


def _insert_values(key: int, rows: Iterable[tuple[int, tuple]]) -> None:
    if connection.vendor == "postgresql":
        # COPY's text format, written in one piece: psycopg's write_row adapts each field in Python, row by row. The
        # values are escaped only when one of them needs it (searched for once, in all of them): escaping each and
        # calling a function per time field was half of this loop's 0.05–0.07 ms a Patient (now 0.024–0.028).
        rows = list(rows)
        values = [value for _, (_, value, _, _) in rows]
        joined = "\0".join(values)
        if "\\" in joined or "\t" in joined or "\n" in joined or "\r" in joined:
            values = [value.translate(COPY_ESCAPES) for value in values]
        lines = [
            f"{key}\t{pk}\t{param}\t{value}\t{NULL if start is None else start.isoformat()}"
            f"\t{NULL if end is None else end.isoformat()}\n"
            for (pk, (param, _, start, end)), value in zip(rows, values, strict=True)
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
