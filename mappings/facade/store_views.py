"""The FHIR REST interactions of a facade bound to a FHIR store (data source kind `fhir-store`): read (with the
store's version in ETag, 410 once deleted), vread, `_history` (store_history.py writes its Bundles), create, update,
patch and delete; batch and transaction Bundles are in store_transactions.py. Writes go through
mappings/actions/store.py.

A store's current versions are index rows as a stored source's are, so the facade's own reader and search
(mappings/facade/views.py: _read_stored, _search) serve them: a search of any type goes straight there, and a read by
id here adds only the store's version (ETag) and 410 for a deleted resource. The facade's URLs lead here (urls.py): a
read a worker already knows is not a store's goes straight to the facade's own view without a query more; other
methods answer 405 on facades that serve no store."""

from __future__ import annotations

import functools
import inspect
from datetime import UTC, datetime
from urllib.parse import parse_qsl

import orjson
from django.db.models import Q
from django.http import HttpRequest, HttpResponse
from django.utils.http import http_date
from django.views.decorators.csrf import csrf_exempt

from mappings.access import (
    LiveDeployment,
    access_facade_request,
    access_served_type,
    last_served,
    live_deployments,
)
from mappings.actions.store import (
    Change,
    Done,
    InvalidResourceError,
    checked_id,
    do_store_changes,
    latest_versions,
    store_target,
)
from mappings.engine import operation_outcome
from mappings.engine.formats import loads
from mappings.errors import FhirError, RequestCode
from mappings.facade import views
from mappings.facade.formats import read_body, wanted_format
from mappings.facade.http import fhir_response, smart_endpoint
from mappings.facade.store_history import history_bundle
from mappings.models import DataSource, Deployment, FacadeResource, StoreVersion
from mappings.security.enforcement import may, require

STORE = DataSource.Kind.FHIR_STORE
JSON_PATCH = "application/json-patch+json"
# What each write needs of a token on a protected facade (SMART v2 letters; v1 `write` grants c, u and d).
LETTERS = {"POST": "c", "PUT": "u", "PATCH": "u", "DELETE": "d"}
# The facade's own read, without its endpoint wrapper: what a read routed here by a stale guess gets.
FACADE_READ = inspect.unwrap(views.instance)


class NotAStoreError(Exception):
    """The type a request was routed to a store for is served from another source now."""


def store_endpoint(view):
    """smart_endpoint (OperationOutcome errors, metrics, WWW-Authenticate), and a resource the validator refuses
    answered 422 with its issues."""

    @functools.wraps(view)
    def checked(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except InvalidResourceError as error:
            issues = error.issues
            if error.entry is not None:  # a transaction's: say which entry, and that nothing was written
                message = f"Entry {error.entry} is not valid FHIR R4. Nothing was written."
                issues = [FhirError(422, RequestCode.INVALID, message), *issues]
            return fhir_response(request, operation_outcome(issues), 422)

    return smart_endpoint(checked)


def _is_store(request: HttpRequest, slug: str, resource_type: str) -> bool:
    """Whether the type is served from a store: from what this worker last served it from (no query), else asked
    (once per worker and facade generation). A request the facade refuses is left to the facade's own view."""
    guess = last_served(slug, resource_type)
    if guess is not None:
        return guess.source_kind == STORE
    try:
        return access_served_type(access_facade_request(slug, request), resource_type).source_kind == STORE
    except FhirError:
        return False


def _store_live(request: HttpRequest, slug: str, resource_type: str) -> LiveDeployment:
    live = access_served_type(access_facade_request(slug, request), resource_type)
    if live.source_kind != STORE and request.method == "GET":
        raise NotAStoreError  # routed here by a stale guess: the type was bound to another source since
    if live.source_kind != STORE:
        raise FhirError(405, RequestCode.METHOD, f"This facade is read-only: {request.method} is not supported.")
    return live


def _base(request: HttpRequest, slug: str) -> str:
    return request.build_absolute_uri(f"/fhir/{slug}/").rstrip("/")


# --- routes -------------------------------------------------------------------------------------------------------


@csrf_exempt
def instance(request: HttpRequest, slug: str, resource_type: str, resource_id: str) -> HttpResponse:
    if request.method == "GET" and not _is_store(request, slug, resource_type):
        return views.instance(request, slug=slug, resource_type=resource_type, resource_id=resource_id)
    return store_instance(request, slug=slug, resource_type=resource_type, resource_id=resource_id)


@csrf_exempt
def resource_type_view(request: HttpRequest, slug: str, resource_type: str) -> HttpResponse:
    if request.method == "GET":  # a search: the facade's own, over a store's index as over a stored source's
        return views.resource_type_view(request, slug=slug, resource_type=resource_type)
    return store_type(request, slug=slug, resource_type=resource_type)


search_post = views.search_post  # POST _search reads too: the facade's own search serves a store's types


# --- instance level -----------------------------------------------------------------------------------------------


@store_endpoint
def store_instance(request: HttpRequest, slug: str, resource_type: str, resource_id: str) -> HttpResponse:
    method = request.method
    if method == "GET":
        try:
            return _read(request, slug, resource_type, resource_id)
        except NotAStoreError:  # the facade's own read, inside this endpoint's wrapper (one log row, one error path)
            return FACADE_READ(request, slug=slug, resource_type=resource_type, resource_id=resource_id)
    live = _store_live(request, slug, resource_type)
    if method not in ("PUT", "PATCH", "DELETE"):
        raise FhirError(405, RequestCode.METHOD, f"{method} is not supported on {resource_type}/{resource_id}.")
    require(request, resource_type, LETTERS[method], f"A {method}")
    if method == "PATCH":
        if request.content_type != JSON_PATCH:
            raise FhirError(415, RequestCode.FORMAT, f"PATCH takes {JSON_PATCH}, not {request.content_type}.")
        try:
            body = orjson.loads(request.body)
        except orjson.JSONDecodeError as exc:
            raise FhirError(400, RequestCode.INVALID, f"The JSON Patch is not JSON: {exc}") from None
    else:
        body = read_body(request) if method == "PUT" else None
    change = Change(method, resource_type, checked_id(resource_id), body, if_match=request.headers.get("If-Match"))
    return _answer(request, slug, live, _changed(live, change))


def _changed(live: LiveDeployment, change: Change) -> Done:
    target = store_target(live.id, change.resource_type)
    return do_store_changes({change.resource_type: target}, [change])[0]


def _read(request: HttpRequest, slug: str, resource_type: str, resource_id: str) -> HttpResponse:
    live, row = views._read_stored(request, slug, resource_type, resource_id)  # the facade's one reader
    if live.source_kind != STORE:
        raise NotAStoreError  # routed here by a stale guess: the type was bound to another source since
    require(request, resource_type, "r", "A read")
    if row is None:
        target = store_target(live.id, resource_type)
        current = latest_versions(target.source_id, resource_type, [resource_id]).get(resource_id)
        if current is not None and current[1]:
            raise FhirError(410, RequestCode.NOT_FOUND, f"{resource_type}/{resource_id} was deleted.")
        raise FhirError(404, RequestCode.NOT_FOUND, f"{resource_type}/{resource_id} is not known.")
    text, last_updated = row
    content = loads(text)
    if wanted_format(request) == "json" and request.GET.get("_pretty") != "true":
        response = HttpResponse(text, content_type="application/fhir+json; charset=utf-8")
    else:
        response = fhir_response(request, content)
    return _stamped(response, content["meta"]["versionId"], last_updated)


def _stamped(response: HttpResponse, version_id: object, last_updated: datetime | str) -> HttpResponse:
    if isinstance(last_updated, str):  # SQLite hands back the stored text (UTC)
        last_updated = datetime.fromisoformat(last_updated).replace(tzinfo=UTC)
    response["ETag"] = f'W/"{version_id}"'
    response["Last-Modified"] = http_date(last_updated.timestamp())
    return response


def _answer(request: HttpRequest, slug: str, live: LiveDeployment, done: Done) -> HttpResponse:
    """A write's answer: 204 for a delete; else the resource, nothing or an OperationOutcome as `Prefer: return=`
    asks, with ETag, Last-Modified and (created) Location."""
    if done.version is None and done.content is None and done.status == 204:
        return HttpResponse(status=204)
    if done.version is not None and done.version.content is None:  # deleted
        return HttpResponse(status=204)
    content = done.version.content if done.version is not None else _served(live, done)
    version_id = content["meta"]["versionId"]
    prefer = request.headers.get("Prefer", "")
    if "return=minimal" in prefer:
        response = HttpResponse(status=done.status)
    elif "return=OperationOutcome" in prefer:
        verb = {201: "created", 200: "updated" if done.version else "found (If-None-Exist matched)"}[done.status]
        outcome = {
            "resourceType": "OperationOutcome",
            "issue": [
                {
                    "severity": "information",
                    "code": "informational",
                    "diagnostics": f"{done.resource_type}/{done.resource_id} {verb}, version {version_id}.",
                }
            ],
        }
        response = fhir_response(request, outcome, done.status)
    else:
        response = fhir_response(request, content, done.status)
    location = f"{_base(request, slug)}/{done.resource_type}/{done.resource_id}/_history/{version_id}"
    response["Location" if done.status == 201 else "Content-Location"] = location
    return _stamped(response, version_id, datetime.fromisoformat(content["meta"]["lastUpdated"].replace("Z", "+00:00")))


def _served(live: LiveDeployment, done: Done) -> dict:
    """The resource a conditional create matched, as served."""
    return (
        FacadeResource.objects.filter(
            deployment_id=live.id, resource_type=done.resource_type, resource_id=done.resource_id
        )
        .values_list("content", flat=True)
        .get()
    )


@store_endpoint
def vread(request: HttpRequest, slug: str, resource_type: str, resource_id: str, version_id: str) -> HttpResponse:
    if request.method != "GET":
        raise FhirError(405, RequestCode.METHOD, "A version is read with GET.")
    live = _versioned_live(request, slug, resource_type)
    require(request, resource_type, "r", "A read")
    target = store_target(live.id, resource_type)
    row = (
        StoreVersion.objects.filter(
            source_id=target.source_id,
            resource_type=resource_type,
            resource_id=resource_id,
            version_id=int(version_id),
        )
        .values_list("content", "method", "last_updated")
        .first()
    )
    if row is None:
        raise FhirError(404, RequestCode.NOT_FOUND, f"{resource_type}/{resource_id} has no version {version_id}.")
    content, method, last_updated = row
    if method == StoreVersion.Method.DELETE:
        raise FhirError(
            410, RequestCode.NOT_FOUND, f"Version {version_id} of {resource_type}/{resource_id} deletes it."
        )
    return _stamped(fhir_response(request, content), version_id, last_updated)


@store_endpoint
def instance_history(request: HttpRequest, slug: str, resource_type: str, resource_id: str) -> HttpResponse:
    return _history(request, slug, resource_type, resource_id)


@store_endpoint
def type_history(request: HttpRequest, slug: str, resource_type: str) -> HttpResponse:
    return _history(request, slug, resource_type, None)


def _history(request: HttpRequest, slug: str, resource_type: str, resource_id: str | None) -> HttpResponse:
    """The versions of one type of the store, or of one resource (store_history.py pages and writes the Bundle)."""
    if request.method != "GET":
        raise FhirError(405, RequestCode.METHOD, "_history is read with GET.")
    live = _versioned_live(request, slug, resource_type)
    require(request, resource_type, "r", "_history")
    target = store_target(live.id, resource_type)
    versions = StoreVersion.objects.filter(source_id=target.source_id, resource_type=resource_type)
    if resource_id is not None:
        versions = versions.filter(resource_id=resource_id)
    path = f"{_base(request, slug)}/{resource_type}" + (f"/{resource_id}" if resource_id else "") + "/_history"
    return fhir_response(request, history_bundle(versions, list(request.GET.items()), _base(request, slug), path))


@csrf_exempt
@store_endpoint
def system_history(request: HttpRequest, slug: str) -> HttpResponse:
    """The versions of every type the facade serves from a store and the request may read, newest first."""
    if request.method != "GET":
        raise FhirError(405, RequestCode.METHOD, "_history is read with GET.")
    served = live_deployments(access_facade_request(slug, request))
    stored = {kind: live for kind, live in served.items() if live.source_kind == STORE}
    if not stored:
        raise FhirError(405, RequestCode.METHOD, "This facade serves no FHIR store: it keeps no versions to list.")
    readable = [kind for kind in sorted(stored) if may(request, kind, "r")]
    if not readable:
        require(request, next(iter(sorted(stored))), "r", "_history")  # 403, saying which scope would do
    sources = dict(
        Deployment.objects.filter(pk__in=[stored[kind].id for kind in readable]).values_list("pk", "binding__source_id")
    )
    by_source: dict[int, list[str]] = {}
    for kind in readable:
        by_source.setdefault(sources[stored[kind].id], []).append(kind)
    chosen = Q()
    for source_id, kinds in by_source.items():
        chosen |= Q(source_id=source_id, resource_type__in=kinds)
    versions = StoreVersion.objects.filter(chosen)
    base = _base(request, slug)
    return fhir_response(request, history_bundle(versions, list(request.GET.items()), base, f"{base}/_history"))


def _versioned_live(request: HttpRequest, slug: str, resource_type: str) -> LiveDeployment:
    """The store's live deployment of the type; 405 when the type is served from a source that keeps no versions."""
    try:
        return _store_live(request, slug, resource_type)
    except NotAStoreError:
        raise FhirError(
            405, RequestCode.METHOD, f"This facade serves {resource_type} from a source that keeps no versions."
        ) from None


# --- type level ---------------------------------------------------------------------------------------------------


@store_endpoint
def store_type(request: HttpRequest, slug: str, resource_type: str) -> HttpResponse:
    live = _store_live(request, slug, resource_type)
    method = request.method
    if method == "POST":
        require(request, resource_type, "c", "A create")
        exists = request.headers.get("If-None-Exist")
        change = Change(
            "POST", resource_type, resource=read_body(request), if_none_exist=parse_qsl(exists) if exists else None
        )
        return _answer(request, slug, live, _changed(live, change))
    if method in ("PUT", "DELETE", "PATCH"):  # conditional: Type?criteria
        query = [(name, value) for name, value in request.GET.items() if name not in ("_format", "_pretty")]
        if not query:
            raise FhirError(400, RequestCode.INVALID, f"A {method} on {resource_type} needs search criteria (?…).")
        if method == "PATCH":
            raise FhirError(405, RequestCode.METHOD, "A conditional PATCH is not supported: PATCH Type/id.")
        require(request, resource_type, LETTERS[method], f"A conditional {method}")
        body = read_body(request) if method == "PUT" else None
        change = Change(method, resource_type, None, body, query=query, if_match=request.headers.get("If-Match"))
        return _answer(request, slug, live, _changed(live, change))
    raise FhirError(405, RequestCode.METHOD, f"{method} is not supported on {resource_type}.")
