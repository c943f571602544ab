"""The facade's FHIR R4 REST API, base /fhir/<facade>/: metadata, read, search (GET and POST _search). What a type
serves is its binding's live deployment (the newest), answered from that deployment's index."""

from __future__ import annotations

from urllib.parse import urlencode

from django.http import HttpRequest, HttpResponse
from django.utils.http import http_date
from django.views.decorators.csrf import csrf_exempt

from mappings.facade.http import FhirError, fhir_endpoint, fhir_response
from mappings.facade.search import ordering, paging, search
from mappings.facade.search_index import params_for
from mappings.models import Deployment, Facade, FacadeResource

FHIR_VERSION = "4.0.1"
FORM = "application/x-www-form-urlencoded"


def _facade(slug: str) -> Facade:
    facade = Facade.objects.filter(slug=slug).first()
    if facade is None:
        raise FhirError(404, "not-found", f"There is no facade '{slug}'.")
    if facade.status != Facade.Status.ACTIVE:
        raise FhirError(503, "transient", f"The facade '{slug}' is paused.")
    return facade


def _live(slug: str, resource_type: str) -> Deployment:
    live = (
        Deployment.objects.filter(binding__facade__slug=slug, binding__resource_type=resource_type)
        .only("id", "binding_id")
        .order_by("-deployed_at", "-id")
        .first()
    )
    if live is None:
        _facade(slug)  # a missing or paused facade says so first
        raise FhirError(404, "not-supported", f"This facade does not serve {resource_type}.")
    return live


def _base(request: HttpRequest, slug: str) -> str:
    return request.build_absolute_uri(f"/fhir/{slug}/").rstrip("/")


@csrf_exempt
@fhir_endpoint
def metadata(request: HttpRequest, slug: str) -> HttpResponse:
    if request.method != "GET":
        raise FhirError(405, "not-supported", "metadata is read with GET.")
    facade = _facade(slug)
    live = {binding.resource_type for binding in facade.bindings.all() if binding.deployments.exists()}
    resources = [
        {
            "type": resource_type,
            "interaction": [{"code": "read"}, {"code": "search-type"}],
            "versioning": "no-version",
            "readHistory": False,
            "searchParam": [{"name": name, "type": kind} for name, kind in sorted(params_for(resource_type).items())],
        }
        for resource_type in sorted(live)
    ]
    body = {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": facade.updated_at.date().isoformat(),
        "publisher": "FHIR Studio",
        "kind": "instance",
        "software": {"name": "FHIR Studio"},
        "implementation": {"description": facade.title, "url": _base(request, slug)},
        "fhirVersion": FHIR_VERSION,
        "format": ["application/fhir+json", "application/fhir+xml"],
        "rest": [
            {
                "mode": "server",
                "resource": resources,
                "operation": [
                    {"name": "convert-data", "definition": f"{_base(request, slug)}/OperationDefinition/convert-data"},
                    {"name": "validate", "definition": "http://hl7.org/fhir/OperationDefinition/Resource-validate"},
                ],
            }
        ],
    }
    return fhir_response(request, body)


@csrf_exempt
@fhir_endpoint
def resource_type_view(request: HttpRequest, slug: str, resource_type: str) -> HttpResponse:
    if request.method == "GET":
        return _search(request, slug, resource_type, list(request.GET.lists()))
    if request.method == "POST":
        raise FhirError(405, "not-supported", f"This facade is read-only: {resource_type} cannot be created.")
    raise FhirError(405, "not-supported", f"{request.method} is not supported on {resource_type}.")


@csrf_exempt
@fhir_endpoint
def search_post(request: HttpRequest, slug: str, resource_type: str) -> HttpResponse:
    if request.method != "POST":
        raise FhirError(405, "not-supported", "_search is POSTed with a form body.")
    if request.content_type != FORM:
        raise FhirError(415, "not-supported", f"POST _search takes {FORM}, not {request.content_type or 'nothing'}.")
    query = list(request.GET.lists()) + list(request.POST.lists())
    return _search(request, slug, resource_type, query)


@csrf_exempt
@fhir_endpoint
def instance(request: HttpRequest, slug: str, resource_type: str, resource_id: str) -> HttpResponse:
    if request.method != "GET":
        raise FhirError(405, "not-supported", f"This facade is read-only: {request.method} is not supported.")
    live = _live(slug, resource_type)
    found = (
        FacadeResource.objects.filter(deployment_id=live.pk, resource_type=resource_type, resource_id=resource_id)
        .only("content", "last_updated")
        .first()
    )
    if found is None:
        raise FhirError(404, "not-found", f"{resource_type}/{resource_id} is not known.")
    response = fhir_response(request, found.content)
    response["ETag"] = 'W/"1"'
    response["Last-Modified"] = http_date(found.last_updated.timestamp())
    return response


def _search(request: HttpRequest, slug: str, resource_type: str, lists: list) -> HttpResponse:
    query = [(name, value) for name, values in lists for value in values]
    live = _live(slug, resource_type)
    matches = search(
        FacadeResource.objects.filter(deployment_id=live.pk, resource_type=resource_type), resource_type, query
    )
    count, offset = paging(query)
    total = matches.count()
    summary = dict(query).get("_summary")
    rows = (
        []
        if summary == "count"
        else list(matches.order_by(*ordering(query)).values_list("content", flat=True)[offset : offset + count])
    )
    elements = [name for value in dict(query).get("_elements", "").split(",") if (name := value.strip())]
    base = _base(request, slug)
    bundle = {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": total,
        "link": _links(base, resource_type, query, offset, count, total),
        "entry": [
            {
                "fullUrl": f"{base}/{resource_type}/{content['id']}",
                "resource": _only(content, elements) if elements else content,
                "search": {"mode": "match"},
            }
            for content in rows
        ],
    }
    if not bundle["entry"]:
        del bundle["entry"]
    return fhir_response(request, bundle)


def _only(resource: dict, elements: list[str]) -> dict:
    kept = {key: value for key, value in resource.items() if key in elements or key in ("resourceType", "id", "meta")}
    meta = dict(kept.get("meta") or {})
    meta["tag"] = [
        *meta.get("tag", []),
        {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "SUBSETTED"},
    ]
    kept["meta"] = meta
    return kept


def _links(base: str, resource_type: str, query: list, offset: int, count: int, total: int) -> list[dict]:
    kept = [(name, value) for name, value in query if name not in ("_offset", "_format")]

    def url(at: int) -> str:
        return f"{base}/{resource_type}?{urlencode([*kept, ('_offset', str(at))] if at else kept)}"

    links = [{"relation": "self", "url": url(offset)}]
    if count and offset + count < total:
        links.append({"relation": "next", "url": url(offset + count)})
    if count and offset > 0:
        links.append({"relation": "previous", "url": url(max(0, offset - count))})
    return links


@csrf_exempt
@fhir_endpoint
def unknown(request: HttpRequest, slug: str, rest: str) -> HttpResponse:
    raise FhirError(404, "not-found", f"'{rest}' is not a FHIR endpoint of this facade (try {slug}/metadata).")
