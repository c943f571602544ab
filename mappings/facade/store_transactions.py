"""Batch and transaction Bundles POSTed to a store facade's base URL (FHIR R4 http.html#transaction).

A transaction is all or nothing, in one database transaction: its entries are processed deletes, creates, then
updates (mappings.actions.store.do_store_changes), references to an entry's fullUrl (urn:uuid:…) rewritten to the
id it got, and any failing entry fails it whole (its OperationOutcome names the entry). A batch runs each entry on its
own: one that fails gets its status and OperationOutcome in the response, the others are kept. GET entries (reads by
id) run after the writes."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from mappings.access import ServedFacade, access_facade_request, live_deployments
from mappings.actions.store import (
    Change,
    Done,
    InvalidResourceError,
    StoreTarget,
    checked_id,
    do_store_changes,
    targets_of,
)
from mappings.engine import operation_outcome
from mappings.errors import FhirError, RequestCode
from mappings.facade import views
from mappings.facade.formats import read_body
from mappings.facade.http import fhir_response
from mappings.facade.store_views import LETTERS, STORE, store_endpoint
from mappings.models import Deployment, FacadeResource
from mappings.security.enforcement import require

REASONS = {200: "200 OK", 201: "201 Created", 204: "204 No Content"}
MAX_ENTRIES = 10_000


@csrf_exempt
def base(request: HttpRequest, slug: str) -> HttpResponse:
    if request.method != "POST":  # nothing else is served at the base: as before, "not an endpoint"
        return views.unknown(request, slug=slug, rest="")
    return bundle_view(request, slug=slug)


@store_endpoint
def bundle_view(request: HttpRequest, slug: str) -> HttpResponse:
    facade = access_facade_request(slug, request)
    bundle = read_body(request)
    kind = bundle.get("type")
    if bundle.get("resourceType") != "Bundle" or kind not in ("batch", "transaction"):
        raise FhirError(400, RequestCode.INVALID, "POST a Bundle of type batch or transaction to the base URL.")
    entries = bundle.get("entry") or []
    if not isinstance(entries, list) or len(entries) > MAX_ENTRIES:
        raise FhirError(400, RequestCode.INVALID, f"Bundle.entry must be a list of at most {MAX_ENTRIES:,} entries.")
    representation = "return=representation" in request.headers.get("Prefer", "")
    if kind == "transaction":
        return _transaction(request, facade, entries, representation)
    return _batch(request, facade, entries, representation)


def _transaction(request: HttpRequest, facade: ServedFacade, entries: list, representation: bool) -> HttpResponse:
    parsed = []
    for at, entry in enumerate(entries):
        try:
            parsed.append(_entry(request, entry))
        except FhirError as error:
            raise _at(error, at) from None
        if isinstance(parsed[-1], Change):
            parsed[-1].entry = at
    writes = [(at, change) for at, change in enumerate(parsed) if isinstance(change, Change)]
    targets = _targets(facade, [change.resource_type for _, change in writes])
    try:
        done = do_store_changes(targets, [change for _, change in writes])
    except FhirError as error:
        raise _at(error, None) from None
    results: list[dict] = [{} for _ in entries]
    for (at, _), result in zip(writes, done, strict=True):
        results[at] = _response(result, representation)
    for at, change in enumerate(parsed):
        if not isinstance(change, Change):
            results[at] = _get(facade, change)
    return fhir_response(request, {"resourceType": "Bundle", "type": "transaction-response", "entry": results})


def _batch(request: HttpRequest, facade: ServedFacade, entries: list, representation: bool) -> HttpResponse:
    results = []
    for entry in entries:
        try:
            change = _entry(request, entry)
            if not isinstance(change, Change):
                results.append(_get(facade, change))
                continue
            targets = _targets(facade, [change.resource_type])
            change.full_url = None  # batch entries may not reference each other
            results.append(_response(do_store_changes(targets, [change])[0], representation))
        except FhirError as error:
            results.append({"response": {"status": str(error.status), "outcome": operation_outcome([error])}})
        except InvalidResourceError as error:
            results.append({"response": {"status": "422", "outcome": operation_outcome(error.issues)}})
    return fhir_response(request, {"resourceType": "Bundle", "type": "batch-response", "entry": results})


def _at(error: FhirError, at: int | None) -> FhirError:
    where = f"Entry {at}: " if at is not None else ""
    return FhirError(error.status, error.request_code, f"{where}{error.message} Nothing was written.")


def _entry(request: HttpRequest, entry: object) -> Change | tuple[str, str]:
    """An entry as a change to make, or (type, id) of a GET."""
    asked = entry.get("request") if isinstance(entry, dict) else None
    if not isinstance(asked, dict) or not isinstance(asked.get("url"), str):
        raise FhirError(400, RequestCode.REQUIRED, "Each entry needs request.method and request.url.")
    method = str(asked.get("method", "")).upper()
    url = urlsplit(asked["url"])
    # Relative (Patient/1) as usual, or this facade's absolute URL (http://host/fhir/<slug>/Patient/1)
    base = f"/fhir/{request.resolver_match.kwargs['slug']}/"
    path = url.path.split(base, 1)[1] if url.scheme and base in url.path else url.path
    parts = [part for part in path.split("/") if part]
    if not parts:
        raise FhirError(400, RequestCode.INVALID, f"request.url {asked['url']} names no resource type.")
    resource_type = parts[0]
    if method == "GET":
        if len(parts) != 2:
            raise FhirError(400, RequestCode.INVALID, "A GET entry reads one resource by id: Type/id.")
        require(request, resource_type, "r", "A read")
        return (resource_type, parts[1])
    if method not in LETTERS:
        raise FhirError(400, RequestCode.INVALID, f"request.method {method or '(none)'} is not supported.")
    require(request, resource_type, LETTERS[method], f"A {method}")
    resource = entry.get("resource")
    if method in ("POST", "PUT") and not isinstance(resource, dict):
        raise FhirError(400, RequestCode.REQUIRED, f"A {method} entry needs its resource.")
    if method == "PATCH":  # FHIR's own way: a Binary holding the JSON Patch
        resource = _patch_operations(resource)
    query = parse_qsl(url.query) if url.query else None
    resource_id = checked_id(parts[1]) if len(parts) > 1 else None
    if method != "POST" and resource_id is None and query is None:
        raise FhirError(400, RequestCode.INVALID, f"A {method} entry names Type/id or Type?criteria.")
    if_none_exist = asked.get("ifNoneExist")
    return Change(
        method,
        resource_type,
        None if method == "POST" else resource_id,
        resource,
        query=query if resource_id is None and method != "POST" else None,
        if_match=asked.get("ifMatch"),
        if_none_exist=parse_qsl(if_none_exist) if isinstance(if_none_exist, str) else None,
        full_url=entry.get("fullUrl") if isinstance(entry.get("fullUrl"), str) else None,
    )


def _patch_operations(resource: object) -> object:
    import base64

    import orjson

    if isinstance(resource, dict) and resource.get("resourceType") == "Binary" and resource.get("data"):
        try:
            return orjson.loads(base64.b64decode(resource["data"]))
        except (ValueError, orjson.JSONDecodeError):
            raise FhirError(400, RequestCode.INVALID, "The PATCH entry's Binary holds no JSON Patch.") from None
    raise FhirError(400, RequestCode.INVALID, "A PATCH entry's resource is a Binary with the JSON Patch as data.")


def _targets(facade: ServedFacade, resource_types: list[str]) -> dict[str, StoreTarget]:
    """Each type's write target: the types must be served from one store by this facade."""
    served = live_deployments(facade)
    for resource_type in resource_types:
        live = served.get(resource_type)
        if live is None or live.source_kind != STORE:
            raise FhirError(404, RequestCode.NOT_SERVED, f"This facade does not store {resource_type}.")
    if not resource_types:
        return {}
    first = served[resource_types[0]].id
    source_id = Deployment.objects.filter(pk=first).values_list("binding__source_id", flat=True).get()
    return targets_of(source_id, resource_types)


def _response(done: Done, representation: bool) -> dict:
    version = done.version
    result: dict = {"response": {"status": REASONS[done.status]}}
    if version is not None and version.content is not None:
        location = f"{done.resource_type}/{done.resource_id}/_history/{version.version_id}"
        result["response"].update(
            location=location, etag=f'W/"{version.version_id}"', lastModified=version.content["meta"]["lastUpdated"]
        )
        if representation:
            result["resource"] = version.content
    elif version is None and done.status == 200:  # a conditional create that matched
        result["response"]["location"] = f"{done.resource_type}/{done.resource_id}"
    return result


def _get(facade: ServedFacade, asked: tuple[str, str]) -> dict:
    resource_type, resource_id = asked
    live = live_deployments(facade).get(resource_type)
    content = None
    if live is not None:
        content = (
            FacadeResource.objects.filter(deployment_id=live.id, resource_type=resource_type, resource_id=resource_id)
            .values_list("content", flat=True)
            .first()
        )
    if content is None:
        error = FhirError(404, RequestCode.NOT_FOUND, f"{resource_type}/{resource_id} is not known.")
        return {"response": {"status": "404 Not Found", "outcome": operation_outcome([error])}}
    version_id = content["meta"]["versionId"]
    response = {"status": "200 OK", "etag": f'W/"{version_id}"', "lastModified": content["meta"]["lastUpdated"]}
    return {"resource": content, "response": response}
