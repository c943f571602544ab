"""POST /api/convert (routed here, included by api/urls.py): a FHIR resource from one format to another
(JSON ⇄ XML ⇄ RDF Turtle), any R4 resource type.

The body's format is its Content-Type, the answer's the `Accept` header (JSON when it names none of the three).
Decimals keep their digits. Errors are the API's JSON error: FS-SRC-020/030/031/050/051 (400) for a body that is
not what its Content-Type says or not an R4 resource, `unsupported_media_type` (415), `not_acceptable` (406)."""

from __future__ import annotations

from django.http import HttpResponse
from django.urls import path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.exceptions import NotAcceptable, UnsupportedMediaType
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request

from mappings.access import VIEWER, require_role
from mappings.api.base import ErrorOut, StudioAPIView, errors
from mappings.conf import engine_limits
from mappings.engine import ErrorCode, MappingError
from mappings.engine.formats import MEDIA_TYPES, format_for_accept, format_named, parse, serialize

FHIR_BODY = {
    MEDIA_TYPES["json"]: OpenApiTypes.OBJECT,
    MEDIA_TYPES["xml"]: OpenApiTypes.STR,
    "text/turtle": OpenApiTypes.STR,
}


def answer_format(accept: str) -> str:
    found = format_for_accept(accept)
    if found is None:
        raise NotAcceptable(
            f"Cannot answer in {accept}: ask for application/fhir+json, application/fhir+xml or text/turtle."
        )
    return found


class Convert(StudioAPIView):
    """A FHIR resource in another format."""

    def perform_content_negotiation(self, request: Request, force: bool = False) -> tuple:
        # The answer is written by hand in the asked format; what DRF renders here are errors, always JSON.
        return JSONRenderer(), JSONRenderer.media_type

    @extend_schema(
        tags=["formats"],
        summary="Convert a FHIR resource between JSON, XML and RDF Turtle",
        description="Send the resource with Content-Type application/fhir+json (or application/json), "
        "application/fhir+xml (or application/xml) or text/turtle; say the answer's format in Accept. Every R4 "
        "resource type; every element is checked against the R4 definitions (an unknown element is FS-SRC-050, "
        "nothing is dropped silently). XML with a DTD or entity is refused (FS-SRC-031). Turtle follows the R4 "
        "RDF rules; `base` names the server its resource IRI and fhir:link targets live on. Decimals keep their "
        "digits (0.70 stays 0.70).",
        parameters=[
            OpenApiParameter("pretty", OpenApiTypes.BOOL, description="Indent JSON and XML answers"),
            OpenApiParameter("base", OpenApiTypes.URI, description="Turtle only: the FHIR base URL of the resource"),
        ],
        request=FHIR_BODY,
        responses={
            (200, MEDIA_TYPES["json"]): OpenApiTypes.OBJECT,
            (200, MEDIA_TYPES["xml"]): OpenApiTypes.STR,
            (200, MEDIA_TYPES["ttl"]): OpenApiTypes.STR,
            **errors(400),
            406: OpenApiResponse(ErrorOut, description="`not_acceptable`: Accept names no format of the three"),
            415: OpenApiResponse(ErrorOut, description="`unsupported_media_type`: the body is none of the three"),
        },
    )
    def post(self, request: Request) -> HttpResponse:
        require_role(request.user, VIEWER)
        source = format_named(request.content_type) if "/" in (request.content_type or "") else None
        if source is None:
            raise UnsupportedMediaType(request.content_type or "nothing")
        target = answer_format(request.headers.get("Accept", ""))
        body = request.body
        limit = engine_limits().max_input_bytes
        if len(body) > limit:
            raise MappingError(ErrorCode.LIM_INPUT_BYTES, f"The body is {len(body):,} bytes; at most {limit:,}.")
        resource = parse(body, source)
        pretty = request.query_params.get("pretty") in ("true", "1")
        text = serialize(resource, target, pretty=pretty, base=request.query_params.get("base") or None)
        return HttpResponse(text, content_type=f"{MEDIA_TYPES[target]}; charset=utf-8")


urlpatterns = [path("convert", Convert.as_view(), name="convert")]  # included by api/urls.py
