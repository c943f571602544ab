"""The FHIR REST interactions of a facade bound to a FHIR store (data source kind `fhir-store`): read (with the
store's version in ETag, 410 once deleted), vread, `_history`, search, create, update, patch and delete; batch and
transaction Bundles are in store_transactions.py. Writes go through mappings/actions/store.py.

The facade's URLs lead here (urls.py): a GET a worker already knows is not a store's goes straight to the facade's
own view (mappings/facade/views.py) without a query more; other methods answer 405 on facades that serve no store."""

from __future__ import annotations

import functools
import inspect
from datetime import UTC, datetime
from urllib.parse import parse_qsl, urlencode

import orjson
from django.db import connection
from django.http import HttpRequest, HttpResponse
from django.utils.http import http_date
from django.views.decorators.csrf import csrf_exempt

from mappings.access import (
    LiveDeployment,
    ServedFacade,
    access_facade_request,
    access_served_type,
    last_served,
    served_facade,
)
from mappings.actions.store import (
    Change,
    Done,
    InvalidResourceError,
    checked_id,
    do_store_changes,
    instant,
    latest_versions,
    store_target,
)
from mappings.engine import operation_outcome
from mappings.engine.formats import loads
from mappings.errors import FhirError, RequestCode
from mappings.facade import views
from mappings.facade.formats import read_body, wanted_format
from mappings.facade.http import fhir_response, smart_endpoint
from mappings.facade.search import count_matches, latency_plans, ordering, page_after, paging, search
from mappings.models import DataSource, FacadeResource, StoreVersion
from mappings.security.enforcement import require

STORE = DataSource.Kind.FHIR_STORE
JSON_PATCH = "application/json-patch+json"
# What each write needs of a token on a protected facade (SMART v2 letters; v1 `write` grants c, u and d).
LETTERS = {"POST": "c", "PUT": "u", "PATCH": "u", "DELETE": "d"}
HISTORY_COUNT, MAX_HISTORY_COUNT = 50, 500
# The facade's own read and search, without their endpoint wrappers: what a request routed here by a stale guess gets.
FACADE_READ, FACADE_SEARCH = inspect.unwrap(views.instance), inspect.unwrap(views.resource_type_view)


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
    return _store_served(request, slug, resource_type)[1]


def _store_served(request: HttpRequest, slug: str, resource_type: str) -> tuple[ServedFacade, LiveDeployment]:
    facade = access_facade_request(slug, request)
    live = access_served_type(facade, resource_type)
    if live.source_kind != STORE and request.method == "GET":
        raise NotAStoreError  # routed here by a stale guess: the type was bound to another source since
    if live.source_kind != STORE:
        raise FhirError(405, RequestCode.METHOD, f"This facade is read-only: {request.method} is not supported.")
    return facade, live


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
    if request.method == "GET" and not _is_store(request, slug, resource_type):
        return views.resource_type_view(request, slug=slug, resource_type=resource_type)
    return store_type(request, slug=slug, resource_type=resource_type)


@csrf_exempt
def search_post(request: HttpRequest, slug: str, resource_type: str) -> HttpResponse:
    if not _is_store(request, slug, resource_type):
        return views.search_post(request, slug=slug, resource_type=resource_type)
    return store_search_post(request, slug=slug, resource_type=resource_type)


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
    live, row = _read_served(request, slug, resource_type, resource_id)
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


def _read_served(
    request: HttpRequest, slug: str, resource_type: str, resource_id: str
) -> tuple[LiveDeployment, tuple | None]:
    """The store's live deployment for the type and the resource's (text, last_updated) or None: in one statement
    with the facade's state when this worker served the type from that deployment before (as the facade's own read,
    mappings.facade.views._read_stored, does for stored sources), else in two."""
    guess = last_served(slug, resource_type)
    if guess is not None and guess.source_kind == STORE:
        with views._prepared_cursor() as cursor:
            cursor.execute(views.READ_WITH_STATE, [guess.id, resource_type, resource_id, slug])
            row = cursor.fetchone()
        live = access_served_type(served_facade(slug, row[:4] if row else None, request), resource_type)
        if live.id == guess.id:
            return live, None if row[4] is None else row[4:]
    else:
        live = access_served_type(access_facade_request(slug, request), resource_type)
    if live.source_kind != STORE:
        raise NotAStoreError  # routed here by a stale guess: the type was bound to another source since
    with connection.cursor() as cursor:
        cursor.execute(views.READ_SQL, [live.id, resource_type, resource_id])
        return live, cursor.fetchone()


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
    live = _store_live(request, slug, resource_type)
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
    """A history Bundle, newest first: `_count` (default 50, at most 500), `_offset`, `_since` (an instant)."""
    if request.method != "GET":
        raise FhirError(405, RequestCode.METHOD, "_history is read with GET.")
    live = _store_live(request, slug, resource_type)
    require(request, resource_type, "r", "_history")
    target = store_target(live.id, resource_type)
    rows = StoreVersion.objects.filter(source_id=target.source_id, resource_type=resource_type)
    if resource_id is not None:
        rows = rows.filter(resource_id=resource_id)
    query = list(request.GET.items())
    values = dict(query)
    try:
        count = min(int(values.get("_count", HISTORY_COUNT)), MAX_HISTORY_COUNT)
        offset = int(values.get("_offset", 0))
    except ValueError:
        raise FhirError(400, RequestCode.INVALID, "_count and _offset must be whole numbers.") from None
    if count < 0 or offset < 0:
        raise FhirError(400, RequestCode.INVALID, "_count and _offset cannot be negative.")
    if "_since" in values:
        try:
            since = datetime.fromisoformat(values["_since"].replace("Z", "+00:00"))
        except ValueError:
            raise FhirError(400, RequestCode.INVALID, f"_since={values['_since']} is not an instant.") from None
        if since.tzinfo is None:
            raise FhirError(400, RequestCode.INVALID, "_since needs a time zone (an instant: ...Z or +hh:mm).")
        rows = rows.filter(last_updated__gte=since)
    total = rows.count()
    page = rows.order_by("-last_updated", "-id").values_list(
        "resource_id", "version_id", "method", "content", "last_updated"
    )[offset : offset + count]
    base = _base(request, slug)
    entries = []
    for rid, version_id, method, content, last_updated in page:
        url = f"{resource_type}/{rid}" if method != "POST" else resource_type
        entry = {"fullUrl": f"{base}/{resource_type}/{rid}"}
        if content is not None:
            entry["resource"] = content
        status = {"POST": "201 Created", "DELETE": "204 No Content"}.get(method, "200 OK")
        entry["request"] = {"method": method, "url": url}
        entry["response"] = {
            "status": status,
            "etag": f'W/"{version_id}"',
            "lastModified": instant(last_updated),
        }
        entries.append(entry)
    path = f"{base}/{resource_type}" + (f"/{resource_id}" if resource_id else "") + "/_history"
    kept = [(name, value) for name, value in query if name != "_offset"]
    links = [{"relation": "self", "url": f"{path}?{urlencode(query)}" if query else path}]
    if offset + count < total:
        links.append({"relation": "next", "url": f"{path}?{urlencode([*kept, ('_offset', offset + count)])}"})
    bundle = {"resourceType": "Bundle", "type": "history", "total": total, "link": links}
    if entries:
        bundle["entry"] = entries
    return fhir_response(request, bundle)


# --- type level ---------------------------------------------------------------------------------------------------


@store_endpoint
def store_type(request: HttpRequest, slug: str, resource_type: str) -> HttpResponse:
    try:
        facade, live = _store_served(request, slug, resource_type)
    except NotAStoreError:
        return FACADE_SEARCH(request, slug=slug, resource_type=resource_type)
    method = request.method
    if method == "GET":
        return _search(request, slug, facade, live, resource_type, list(request.GET.items()))
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


@store_endpoint
def store_search_post(request: HttpRequest, slug: str, resource_type: str) -> HttpResponse:
    if request.method != "POST":
        raise FhirError(405, RequestCode.METHOD, "_search is POSTed with a form body.")
    if request.content_type != views.FORM:
        raise FhirError(415, RequestCode.FORMAT, f"POST _search takes {views.FORM}.")
    facade, live = _store_served(request, slug, resource_type)
    query = list(request.GET.items()) + list(request.POST.items())
    return _search(request, slug, facade, live, resource_type, query)


def _search(
    request: HttpRequest,
    slug: str,
    facade: ServedFacade,
    live: LiveDeployment,
    resource_type: str,
    query: list[tuple[str, str]],
) -> HttpResponse:
    """The facade's search over the store's index (its search machinery and paging links). Totals are counted
    afresh: a store changes between the facade's generations, by which the facade caches them."""
    require(request, resource_type, "s", "A search")
    count, offset = paging(query)
    served = FacadeResource.objects.filter(deployment_id=live.id, resource_type=resource_type)
    with latency_plans():
        matches = search(served, resource_type, query, live.index_key)
        total = count_matches(served, resource_type, query, live.index_key)
        page = matches.order_by(*ordering(query)).values_list("content", flat=True)
        after = page_after(query)
        page = page.filter(**after)[:count] if after else page[offset : offset + count]
        rows = [] if dict(query).get("_summary") == "count" or total <= offset else list(page)
    base = _base(request, slug)
    elements = [name for value in dict(query).get("_elements", "").split(",") if (name := value.strip())]
    last_id = rows[-1]["id"] if rows and views.keyset_order(query) else None
    bundle = {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": total,
        "link": views._links(base, resource_type, query, offset, count, total, last_id),
        "entry": [
            {
                "fullUrl": f"{base}/{resource_type}/{content['id']}",
                "resource": views._only(content, elements) if elements else content,
                "search": {"mode": "match"},
            }
            for content in rows
        ],
    }
    bundle["entry"] += views._included(request, facade, base, resource_type, query, rows)
    if not bundle["entry"]:
        del bundle["entry"]
    return fhir_response(request, bundle)
