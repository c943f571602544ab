"""GET /api/audit/fhir: the audit trail as FHIR R4 AuditEvent resources (admins only), with the filters of
/api/audit/ (action, actor, mapping, since).

- As a Bundle of type `collection` (application/fhir+json, the default): newest first, `_count` resources a page
  (default 100, at most 1,000), `page` from 1, absolute `self`/`first`/`previous`/`next` links, and the number of
  matching rows in the X-Total-Count header (a collection Bundle has no `total`).
- As NDJSON (`Accept: application/fhir+ndjson` or `_format=ndjson`): every matching row, one AuditEvent a line,
  streamed from the database in batches (no paging), for loading into a SIEM or a FHIR server.

Each resource is mappings.audit_events.audit_event_resource of its row. Bad filters are the API's JSON error
{code, message, details}, like any /api/ error."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlencode

import orjson
from django.db.models import QuerySet
from django.http import Http404, HttpResponse, StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request

from mappings.access import ADMIN, access_audit
from mappings.api.audit import AuditQuery, audit_rows
from mappings.api.base import StudioAPIView, errors
from mappings.api.renderers import StudioJSONRenderer
from mappings.audit_events import audit_event_resource
from mappings.errors import StudioError
from mappings.models import AuditAction

FHIR_JSON = "application/fhir+json"
FHIR_NDJSON = "application/fhir+ndjson"
FORMATS = {"json": FHIR_JSON, FHIR_JSON: FHIR_JSON, "ndjson": FHIR_NDJSON, FHIR_NDJSON: FHIR_NDJSON}
DEFAULT_COUNT, MAX_COUNT = 100, 1000
STREAM_BATCH = 500  # rows read from the database at a time while streaming NDJSON


class AuditFhirQuery(AuditQuery):
    _count = serializers.IntegerField(min_value=1, max_value=MAX_COUNT, default=DEFAULT_COUNT)
    page = serializers.IntegerField(min_value=1, max_value=1_000_000, default=1)  # the offset stays a bigint
    _format = serializers.ChoiceField(choices=sorted(FORMATS), required=False)


class FhirJSONRenderer(StudioJSONRenderer):
    media_type = FHIR_JSON
    format = "fhir"


class FhirNDJSONRenderer(BaseRenderer):
    """Negotiates application/fhir+ndjson; the resources themselves are streamed by the view. An error (a dict) is
    written as the one JSON line it is."""

    media_type = FHIR_NDJSON
    format = "ndjson"

    def render(self, data: object, accepted_media_type: str | None = None, renderer_context: dict | None = None):
        return orjson.dumps(data) if data is not None else b""


class AuditFhir(StudioAPIView):
    # application/json first: what an error is answered with when the client accepts anything
    renderer_classes = [StudioJSONRenderer, FhirJSONRenderer, FhirNDJSONRenderer]

    def perform_content_negotiation(self, request: Request, force: bool = False):
        try:
            return super().perform_content_negotiation(request, force)
        except Http404 as exc:  # DRF's answer to a ?format= that names no renderer; it is a bad parameter
            formats = ", ".join(renderer.format for renderer in self.renderer_classes)
            raise StudioError("invalid", "Unknown format.", details={"format": [f"One of {formats}."]}) from exc

    @extend_schema(
        operation_id="audit_fhir",
        parameters=[
            OpenApiParameter("action", OpenApiTypes.STR, enum=AuditAction.values, description="e.g. auth.login"),
            OpenApiParameter("mapping", OpenApiTypes.STR, description="Mapping slug"),
            OpenApiParameter("actor", OpenApiTypes.STR, description="Username"),
            OpenApiParameter("since", OpenApiTypes.DATETIME, description="Only events at or after (ISO 8601)"),
            OpenApiParameter(
                "_count",
                {"type": "integer", "minimum": 1, "maximum": MAX_COUNT},
                description=f"Resources a page of the Bundle (default {DEFAULT_COUNT}); NDJSON is not paged",
            ),
            OpenApiParameter(
                "page",
                {"type": "integer", "minimum": 1, "maximum": 1_000_000},
                description="1-based page of the Bundle",
            ),
            OpenApiParameter("_format", OpenApiTypes.STR, enum=sorted(FORMATS), description="Overrides Accept"),
        ],
        responses={
            (200, FHIR_JSON): OpenApiResponse(OpenApiTypes.OBJECT, description="A Bundle (collection) of AuditEvent"),
            (200, FHIR_NDJSON): OpenApiResponse(OpenApiTypes.STR, description="One AuditEvent a line"),
            **errors(400),
        },
        description=f"The audit trail as FHIR R4 AuditEvent resources, newest first ({ADMIN} only).",
    )
    def get(self, request: Request) -> HttpResponse:
        access_audit(request.user)
        query = AuditFhirQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        options = query.validated_data
        rows = audit_rows(options)
        site = request.get_host()
        wanted = FORMATS.get(options.get("_format", ""), request.accepted_renderer.media_type)
        if wanted == FHIR_NDJSON:
            return StreamingHttpResponse(_lines(rows, site), content_type=FHIR_NDJSON)
        bundle, total = _bundle(request, rows, options, site)
        # A collection Bundle may not carry `total` (bdl-1: searchset and history only): the count is a header.
        return HttpResponse(orjson.dumps(bundle), content_type=FHIR_JSON, headers={"X-Total-Count": str(total)})


def _lines(rows: QuerySet, site: str) -> Iterator[bytes]:
    for row in rows.iterator(chunk_size=STREAM_BATCH):
        yield orjson.dumps(audit_event_resource(row, site=site)) + b"\n"


def _bundle(request: Request, rows: QuerySet, options: dict, site: str) -> tuple[dict, int]:
    count, page = options["_count"], options["page"]
    total = rows.count()
    found = rows[(page - 1) * count : page * count]
    base = request.build_absolute_uri(request.path)
    asked = {name: value for name, value in request.query_params.items() if name not in ("page", "_count")}

    def link(relation: str, number: int) -> dict:
        return {"relation": relation, "url": f"{base}?{urlencode({**asked, '_count': count, 'page': number})}"}

    links = [link("self", page), link("first", 1)]
    if page > 1:
        links.append(link("previous", page - 1))
    if page * count < total:
        links.append(link("next", page + 1))
    entries = [{"resource": audit_event_resource(row, site=site)} for row in found]
    return {"resourceType": "Bundle", "type": "collection", "link": links, "entry": entries}, total
