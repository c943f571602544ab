"""The facade's FHIR formats in one place: which format a request wants (`_format` first, then `Accept`), the answer
written in it, and request bodies read from JSON, XML or Turtle by their Content-Type.

`_format` takes json, xml, ttl or any of their MIME types. A format the facade cannot produce gets 406 (an
OperationOutcome in JSON), not a silent fallback: a client that asked for Turtle would misread JSON. An `Accept`
without any FHIR type but with `*/*` or `application/*` gets JSON. Bulk export files are NDJSON whatever is asked."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse

from mappings.engine import MappingError
from mappings.engine.formats import MEDIA_TYPES, format_for_accept, format_named, parse, serialize
from mappings.errors import FhirError, RequestCode

CAPABILITY_FORMATS = ["json", "xml", "ttl"]


def wanted_format(request: HttpRequest) -> str:
    """json, xml or ttl; 406 when the request asks only for formats the facade cannot write."""
    # From META: request.GET and request.headers each build a mapping of the whole request first, and a read with
    # neither a query nor an Accept header (most FHIR clients) needs neither.
    asked = request.GET.get("_format") if request.META.get("QUERY_STRING") else None
    if asked:
        found = format_named(asked)
        if found is None:
            raise FhirError(406, RequestCode.FORMAT, f"_format={asked} is not supported: use json, xml or ttl.")
        return found
    accept = request.META.get("HTTP_ACCEPT", "")
    found = format_for_accept(accept)
    if found is None:
        raise FhirError(
            406,
            RequestCode.FORMAT,
            f"Cannot answer in {accept}: use application/fhir+json, application/fhir+xml or text/turtle.",
        )
    return found


def render(request: HttpRequest, body: dict, status: int, fmt: str) -> HttpResponse:
    """The answer in json, xml or ttl; Turtle names resources after the facade's base URL."""
    pretty = request.GET.get("_pretty") == "true"
    slug = (request.resolver_match.kwargs.get("slug") if request.resolver_match else None) or ""
    base = request.build_absolute_uri(f"/fhir/{slug}") if slug else None
    try:
        content = serialize(body, fmt, pretty=pretty, base=base)
    except MappingError as error:  # an answer the definitions refuse (a mapping's output with unknown elements)
        if fmt == "json":
            raise
        raise FhirError(406, RequestCode.FORMAT, f"This answer cannot be written as {fmt}: {error.message}") from None
    return HttpResponse(content, status=status, content_type=f"{MEDIA_TYPES[fmt]}; charset=utf-8")


def read_body(request: HttpRequest) -> dict:
    """The request's FHIR resource, from JSON, XML or Turtle by Content-Type (415 for any other, 400 if unreadable)."""
    fmt = format_named(request.content_type) if "/" in (request.content_type or "") else None
    if fmt is None:
        raise FhirError(
            415,
            RequestCode.FORMAT,
            "Send application/fhir+json, application/fhir+xml or text/turtle, "
            f"not {request.content_type or 'nothing'}.",
        )
    try:
        return parse(request.body, fmt)
    except MappingError as error:
        raise FhirError(400, RequestCode.INVALID, f"The body could not be read as {fmt}: {error.message}") from None
