"""Writes to a FHIR store (data source kind `fhir-store`): what its facade's create, update, patch, delete and
transaction interactions change (the studio-side actions that make a store facade are in store_facades.py).

A write keeps two things in step, in one transaction: the store's history (StoreVersion, every version, numbered per
resource) and the index its facades serve from (FacadeResource and SearchValue rows of each live deployment bound to
the store for that type, with the same search values the deploy-time indexer extracts), so a read or search after a
write answers from the index as for any stored source. Writes by FHIR clients write no audit row each (a transaction
of 1,000 entries would be 1,000 rows): the studio-side actions (a store facade made, a store bound) do.

Two writers of the same version of a resource cannot both win: the history's unique (source, type, id, version)
refuses the second, answered 409."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import jsonpatch
import orjson
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from mappings.actions.index_rows import TIMED, _insert_values, drop_index
from mappings.engine import MappingError
from mappings.engine.formats.decimals import decimal_default
from mappings.engine.validate import validate_output
from mappings.errors import FhirError, RequestCode
from mappings.facade.search import NAME_PARTS
from mappings.facade.search_index import search_values
from mappings.models import Deployment, FacadeResource, SearchValue, StoreVersion
from mappings.profiles import studio_registry

RESOURCE_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")


class InvalidResourceError(Exception):
    """The engine's validator refused a resource: answered 422 with its issues as an OperationOutcome."""

    def __init__(self, issues: list[MappingError], entry: int | None = None) -> None:
        super().__init__(f"{len(issues)} validation issues")
        self.issues = issues
        self.entry = entry  # which of a Bundle's entries


@dataclass(frozen=True)
class StoreTarget:
    """Where a store's resources of one type are written: the store and every live deployment serving that type
    from it (one per facade binding the store), each with the key its search values carry."""

    source_id: int
    resource_type: str
    deployments: tuple[tuple[int, int], ...]


@dataclass
class NewVersion:
    resource_type: str
    resource_id: str
    version_id: int
    method: str
    content: dict | None  # None: deleted
    created: bool = False


def store_target(deployment_id: int, resource_type: str) -> StoreTarget:
    """The target of writes to `resource_type` through the deployment a facade serves it from."""
    source_id = Deployment.objects.filter(pk=deployment_id).values_list("binding__source_id", flat=True).first()
    if source_id is None:
        raise FhirError(404, RequestCode.NOT_SERVED, f"This facade does not serve {resource_type}.")
    return targets_of(source_id, [resource_type])[resource_type]


def targets_of(source_id: int, resource_types: Iterable[str]) -> dict[str, StoreTarget]:
    """The write target of each type (a type no facade serves from the store has none: 404 when written)."""
    wanted = set(resource_types)
    rows = (
        Deployment.objects.live()
        .filter(binding__source_id=source_id, binding__resource_type__in=wanted)
        .values_list("binding__resource_type", "id", "index_key")
        .order_by("id")
    )
    found: dict[str, list[tuple[int, int]]] = {}
    for resource_type, deployment_id, key in rows:
        found.setdefault(resource_type, []).append((deployment_id, deployment_id if key is None else key))
    missing = sorted(wanted - set(found))
    if missing:
        raise FhirError(404, RequestCode.NOT_SERVED, f"This store facade does not serve {', '.join(missing)}.")
    return {name: StoreTarget(source_id, name, tuple(deployments)) for name, deployments in found.items()}


# --- checks -------------------------------------------------------------------------------------------------------


def checked_resource(body: object, resource_type: str, registry=None) -> dict:
    """The resource if it is a `resource_type` the engine's validator accepts (errors only: warnings pass);
    400 for the wrong type, 422 (InvalidResourceError) for invalid content."""
    if not isinstance(body, dict) or body.get("resourceType") != resource_type:
        found = body.get("resourceType") if isinstance(body, dict) else type(body).__name__
        raise FhirError(400, RequestCode.INVALID, f"The body is a {found}, not a {resource_type}.")
    issues = validate_output(body, registry=registry if registry is not None else studio_registry())
    errors = [issue for issue in issues if issue.severity in ("error", "fatal")]
    if errors:
        raise InvalidResourceError(errors)
    return body


def checked_id(resource_id: object) -> str:
    if not isinstance(resource_id, str) or not RESOURCE_ID.match(resource_id):
        raise FhirError(400, RequestCode.INVALID, f"'{resource_id}' is not a FHIR id (1-64 of A-Z a-z 0-9 - .).")
    return resource_id


def new_id() -> str:
    return str(uuid.uuid4())


# --- reading the history -------------------------------------------------------------------------------------------


def latest_versions(source_id: int, resource_type: str, ids: Iterable[str]) -> dict[str, tuple[int, bool]]:
    """{id: (its latest version number, whether that version is a delete)} of the ids the store has seen."""
    ids = list(ids)
    if not ids:
        return {}
    rows = (
        StoreVersion.objects.filter(source_id=source_id, resource_type=resource_type, resource_id__in=ids)
        .order_by("resource_id", "version_id")
        .values_list("resource_id", "version_id", "method")
    )
    return {resource_id: (version, method == StoreVersion.Method.DELETE) for resource_id, version, method in rows}


def check_version(resource_type: str, resource_id: str, current: tuple[int, bool] | None, if_match: str | None) -> None:
    """412 unless `If-Match: W/"n"` names the resource's current version (when the header is given)."""
    if if_match is None:
        return
    wanted = if_match.strip().removeprefix("W/").strip('"')
    have = current[0] if current is not None and not current[1] else None
    if have is None or wanted != str(have):
        now = f"is at version {have}" if have is not None else "does not exist"
        raise FhirError(412, RequestCode.INVALID, f"If-Match {if_match}: {resource_type}/{resource_id} {now}.")


# --- writing -------------------------------------------------------------------------------------------------------


def stamped(content: dict, version_id: int, now: datetime) -> dict:
    """The resource as stored: the server's meta.versionId and meta.lastUpdated (milliseconds, Z), the rest as sent."""
    meta = {**(content.get("meta") or {}), "versionId": str(version_id), "lastUpdated": instant(now)}
    rest = {key: value for key, value in content.items() if key not in ("resourceType", "id", "meta")}
    return {"resourceType": content["resourceType"], "id": content["id"], "meta": meta, **rest}


def instant(now: datetime) -> str:
    return now.isoformat(timespec="milliseconds").replace("+00:00", "Z")


# On PostgreSQL the rows travel as one JSON document (as index_rows.stage_resources sends them): Django's bulk_create
# sends arrays, whose text quoting of each resource's JSON cost a 1,000-entry transaction 0.3 s.
INSERT_VERSIONS = f"""INSERT INTO {StoreVersion._meta.db_table}
    (source_id, resource_type, resource_id, version_id, method, last_updated, content)
    SELECT %s, r.t, r.i, r.v, r.m, %s, r.c
    FROM jsonb_to_recordset(%s::jsonb) AS r(t varchar, i varchar, v integer, m varchar, c jsonb)"""
INSERT_SERVED = f"""INSERT INTO {FacadeResource._meta.db_table}
    (deployment_id, staged_for, resource_type, resource_id, record_id, content, last_updated)
    SELECT %s, NULL, %s, r.i, NULL, r.c, %s FROM json_to_recordset(%s::json) AS r(i varchar, c json)
    RETURNING id, resource_id"""


def write_versions(targets: dict[str, StoreTarget], versions: list[NewVersion], now: datetime) -> None:
    """Record the versions in the store's history and make them what its facades serve, in bulk (call inside a
    transaction). 409 when another writer recorded one of these versions first."""
    if not versions:
        return
    source_id = next(iter(targets.values())).source_id
    try:
        with transaction.atomic():
            _insert_versions(source_id, versions, now)
    except IntegrityError as exc:
        raise FhirError(
            409, RequestCode.INVALID, "Another request changed one of these resources at the same time; try again."
        ) from exc
    by_type: dict[str, list[NewVersion]] = {}
    for version in versions:
        by_type.setdefault(version.resource_type, []).append(version)
    for resource_type, written in by_type.items():
        for deployment_id, key in targets[resource_type].deployments:
            _serve(deployment_id, key, resource_type, written, now)


def _insert_versions(source_id: int, versions: list[NewVersion], now: datetime) -> None:
    if connection.vendor == "postgresql":
        document = [
            {"t": v.resource_type, "i": v.resource_id, "v": v.version_id, "m": v.method, "c": v.content}
            for v in versions
        ]
        with connection.cursor() as cursor:
            cursor.execute(INSERT_VERSIONS, [source_id, now, _json(document)])
        return
    StoreVersion.objects.bulk_create(
        [
            StoreVersion(
                source_id=source_id,
                resource_type=version.resource_type,
                resource_id=version.resource_id,
                version_id=version.version_id,
                method=version.method,
                last_updated=now,
                content=version.content,
            )
            for version in versions
        ],
        batch_size=1000,
    )


def _json(document: object) -> str:
    return orjson.dumps(document, default=decimal_default).decode()  # decimals keep their digits (0.70 stays 0.70)


def _serve(deployment_id: int, key: int, resource_type: str, versions: list[NewVersion], now: datetime) -> None:
    """Replace the deployment's index rows of these resources with their new versions (none for a delete)."""
    replaced = [version.resource_id for version in versions if not version.created]
    if replaced:
        old = FacadeResource.objects.filter(
            deployment_id=deployment_id, resource_type=resource_type, resource_id__in=replaced
        )
        SearchValue.objects.filter(build=key, resource_id__in=old.values("id")).delete()
        old._raw_delete(old.db)  # its search values are gone: the ORM's cascade would look for them one by one
    current = {version.resource_id: version.content for version in versions if version.content is not None}
    if not current:
        return
    if connection.vendor == "postgresql":
        document = [{"i": resource_id, "c": content} for resource_id, content in current.items()]
        with connection.cursor() as cursor:
            cursor.execute(INSERT_SERVED, [deployment_id, resource_type, now, _json(document)])
            rows = cursor.fetchall()
    else:
        made = FacadeResource.objects.bulk_create(
            [
                FacadeResource(
                    deployment_id=deployment_id,
                    resource_type=resource_type,
                    resource_id=resource_id,
                    content=content,
                    last_updated=now,
                )
                for resource_id, content in current.items()
            ],
            batch_size=1000,
        )
        rows = [(row.pk, row.resource_id) for row in made]
    values = stored_values
    _insert_values(key, ((pk, value) for pk, rid in rows for value in values(search_values(current[rid], now))))


def stored_values(rows: list[tuple]) -> list[tuple]:
    """A resource's search values as the deploy-time indexer stores them (mappings.jobs.index_staging.stored_values,
    which actions may not import): not the TIMED ones, nor a `name` value a family or given value already holds."""
    parts = {row[1] for row in rows if row[0] in NAME_PARTS}
    return [row for row in rows if row[0] not in TIMED and not (row[0] == "name" and row[1] in parts)]


def created(target: StoreTarget, resource: dict, now: datetime, resource_id: str | None = None) -> NewVersion:
    """Version 1 of a new resource (a server-assigned id unless given: update-as-create)."""
    resource_id = resource_id or new_id()
    content = stamped({**resource, "id": resource_id}, 1, now)
    return NewVersion(target.resource_type, resource_id, 1, StoreVersion.Method.CREATE, content, created=True)


def updated(
    target: StoreTarget,
    resource_id: str,
    resource: dict,
    current: tuple[int, bool] | None,
    now: datetime,
    method: str = StoreVersion.Method.UPDATE,
) -> NewVersion:
    """The next version of a resource (version 1 if the store never had it: update as create)."""
    number = current[0] + 1 if current else 1
    content = stamped({**resource, "id": resource_id}, number, now)
    served = current is not None and not current[1]
    return NewVersion(target.resource_type, resource_id, number, method, content, created=not served)


def deleted(target: StoreTarget, resource_id: str, current: tuple[int, bool]) -> NewVersion:
    return NewVersion(target.resource_type, resource_id, current[0] + 1, StoreVersion.Method.DELETE, None)


# --- changes: one interaction, or a batch or transaction Bundle's entries ------------------------------------------


@dataclass
class Change:
    """One write asked of the store. `resource_id` None: a create (server-assigned id) or, with `query`, a
    conditional update. `resource`: the body (PATCH: the JSON Patch operations). `full_url`: a transaction entry's
    fullUrl, which other entries' references may name (urn:uuid:…)."""

    method: str
    resource_type: str
    resource_id: str | None = None
    resource: object = None
    query: list[tuple[str, str]] | None = None
    if_match: str | None = None
    if_none_exist: list[tuple[str, str]] | None = None
    full_url: str | None = None
    entry: int | None = None  # its place in a transaction Bundle, named when it fails


@dataclass
class Done:
    """What a change did: its status (200, 201, 204) and the version written (None: nothing written) or, for a
    conditional create that matched, the resource that exists."""

    status: int
    resource_type: str
    resource_id: str | None = None
    version: NewVersion | None = None
    content: dict | None = None
    version_id: int | None = None


# The order a transaction's entries are processed in (FHIR R4 http.html#trules): deletes, creates, updates.
ORDER = {"DELETE": 0, "POST": 1, "PUT": 2, "PATCH": 2}


def matching_ids(target: StoreTarget, query: list[tuple[str, str]], limit: int = 2) -> list[str]:
    """Ids of the served resources a conditional interaction's criteria match (the facade's search), up to `limit`."""
    from mappings.facade.search import search

    deployment_id, key = target.deployments[0]
    served = FacadeResource.objects.filter(deployment_id=deployment_id, resource_type=target.resource_type)
    matches = search(served, target.resource_type, query, key)
    return list(matches.order_by("resource_id").values_list("resource_id", flat=True)[:limit])


def _one_match(target: StoreTarget, query: list[tuple[str, str]], what: str, gone: set[str]) -> str | None:
    """The one resource the criteria match, but those deleted earlier in the same transaction (`gone`)."""
    if not [name for name, _ in query if name not in ("_format", "_pretty")]:
        raise FhirError(400, RequestCode.INVALID, f"A conditional {what} needs search criteria.")
    found = [found for found in matching_ids(target, query, 2 + len(gone)) if found not in gone]
    if len(found) > 1:
        raise FhirError(
            412, RequestCode.INVALID, f"The conditional {what}'s criteria match more than one {target.resource_type}."
        )
    return found[0] if found else None


def rewrite_references(value: object, ids: dict[str, str]) -> object:
    """`value` with every reference to a transaction entry's fullUrl (urn:uuid:…) turned into Type/id."""
    if isinstance(value, dict):
        rewritten = {key: rewrite_references(item, ids) for key, item in value.items()}
        reference = rewritten.get("reference")
        if isinstance(reference, str) and reference in ids:
            rewritten["reference"] = ids[reference]
        return rewritten
    if isinstance(value, list):
        return [rewrite_references(item, ids) for item in value]
    return value


def do_store_changes(targets: dict[str, StoreTarget], changes: list[Change]) -> list[Done]:
    """Apply the changes in one transaction, all or nothing (a batch calls this once per entry): deletes, creates,
    then updates and patches, as a transaction processes them; references to an entry's fullUrl rewritten to the id
    it gets. Raises FhirError (409, 412, 404, 400) or InvalidResourceError for the first change that cannot be made."""
    with transaction.atomic():
        return _changes(targets, changes)


def _changes(targets: dict[str, StoreTarget], changes: list[Change]) -> list[Done]:
    now = timezone.now()
    registry = studio_registry()
    done: list[Done | None] = [None] * len(changes)
    ids: dict[str, str] = {}  # fullUrl → Type/id, for the references of other entries
    gone: dict[str, set[str]] = {}  # what the transaction deletes (processed first), by type
    order = sorted(range(len(changes)), key=lambda at: ORDER[changes[at].method])
    # Every id first: a create's (new, or what its If-None-Exist matched), a conditional update's match.
    for at in order:
        change = changes[at]
        target = targets[change.resource_type]
        if change.method == "POST":
            matched = gone.setdefault(change.resource_type, set())
            existing = _one_match(target, change.if_none_exist, "create", matched) if change.if_none_exist else None
            if existing is not None:
                done[at] = Done(200, change.resource_type, existing)
            change.resource_id = existing or change.resource_id or new_id()
        elif change.resource_id is None and change.query is not None:
            given = change.resource.get("id") if isinstance(change.resource, dict) else None
            matched = _one_match(
                target, change.query, change.method.lower(), gone.setdefault(change.resource_type, set())
            )
            change.resource_id = matched or ((given or new_id()) if change.method == "PUT" else None)
            if change.resource_id is None:
                raise FhirError(404, RequestCode.NOT_FOUND, f"No {change.resource_type} matches the criteria.")
        if change.method == "DELETE":
            gone.setdefault(change.resource_type, set()).add(change.resource_id)
        if change.full_url:
            ids[change.full_url] = f"{change.resource_type}/{change.resource_id}"
    touched = [(change.resource_type, change.resource_id) for change in changes if change.method != "POST"]
    if len(set(touched)) < len(touched):
        raise FhirError(400, RequestCode.INVALID, "A transaction may change each resource once only.")
    current: dict[tuple[str, str], tuple[int, bool]] = {}
    for resource_type in {change.resource_type for change in changes if change.method != "POST"}:
        wanted = [change.resource_id for change in changes if change.resource_type == resource_type]
        found = latest_versions(targets[resource_type].source_id, resource_type, wanted)
        current.update({(resource_type, resource_id): version for resource_id, version in found.items()})
    versions: list[NewVersion] = []
    for at in order:
        if done[at] is not None:
            continue  # a conditional create that matched: nothing to write
        try:
            done[at] = _done(targets, changes[at], current, ids, registry, now)
        except InvalidResourceError as error:
            raise InvalidResourceError(error.issues, changes[at].entry) from None
        except FhirError as error:
            if changes[at].entry is None:
                raise
            raise FhirError(error.status, error.request_code, f"Entry {changes[at].entry}: {error.message}") from None
        if done[at].version is not None:
            versions.append(done[at].version)
    write_versions(targets, versions, now)
    return done


def _done(targets: dict[str, StoreTarget], change: Change, current: dict, ids: dict, registry, now: datetime) -> Done:
    """What one change writes (its version, None when there is nothing to write), checked."""
    target, key = targets[change.resource_type], (change.resource_type, change.resource_id)
    resource = rewrite_references(change.resource, ids) if ids and change.method != "PATCH" else change.resource
    if change.method == "DELETE":
        have = current.get(key)
        version = None if have is None or have[1] else deleted(target, change.resource_id, have)
        return Done(204, change.resource_type, change.resource_id, version)  # 204 whether or not it existed
    if change.method == "POST":
        checked_resource(resource, change.resource_type, registry)
        version = created(target, resource, now, change.resource_id)
        return Done(201, change.resource_type, change.resource_id, version)
    check_version(change.resource_type, change.resource_id, current.get(key), change.if_match)
    if change.method == "PATCH":
        resource = _patched(target, change, current.get(key))
    elif isinstance(resource, dict) and resource.get("id") not in (None, change.resource_id):
        raise FhirError(400, RequestCode.INVALID, f"The body's id {resource.get('id')} is not {change.resource_id}.")
    checked_resource(resource, change.resource_type, registry)
    version = updated(target, change.resource_id, resource, current.get(key), now, change.method)
    return Done(201 if version.created else 200, change.resource_type, change.resource_id, version)


def _patched(target: StoreTarget, change: Change, current: tuple[int, bool] | None) -> dict:
    """JSON Patch (RFC 6902) applied to the current version."""
    if current is None or current[1]:
        raise FhirError(404, RequestCode.NOT_FOUND, f"{change.resource_type}/{change.resource_id} is not known.")
    content = (
        StoreVersion.objects.filter(
            source_id=target.source_id,
            resource_type=change.resource_type,
            resource_id=change.resource_id,
            version_id=current[0],
        )
        .values_list("content", flat=True)
        .get()
    )
    try:
        patched = jsonpatch.apply_patch(content, change.resource)
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException, TypeError, ValueError) as exc:
        raise FhirError(422, RequestCode.INVALID, f"The JSON Patch cannot be applied: {exc}") from exc
    if not isinstance(patched, dict) or patched.get("id") != change.resource_id:
        raise FhirError(422, RequestCode.INVALID, "A patch may not change the resource's id or type.")
    return patched


# --- studio side: a store facade ----------------------------------------------------------------------------------


def serve_store(deployment: Deployment) -> None:
    """A new live deployment of a store binding serves the store at once, whatever its mapping: its index is the
    store's latest version of each resource of the type (not deleted); what earlier deployments served goes."""
    binding = deployment.binding
    drop_index(binding)
    deployment.index_key = deployment.pk
    deployment.save(update_fields=["index_key"])
    latest: dict[str, StoreVersion] = {}
    rows = StoreVersion.objects.filter(source_id=binding.source_id, resource_type=binding.resource_type)
    for row in rows.order_by("version_id").iterator(chunk_size=2000):
        latest[row.resource_id] = row
    versions = [
        NewVersion(binding.resource_type, row.resource_id, row.version_id, row.method, row.content, created=True)
        for row in latest.values()
        if not row.deleted
    ]
    if versions:
        _serve(deployment.pk, deployment.pk, binding.resource_type, versions, timezone.now())
