"""FHIR R4 resources in JSON, XML and RDF Turtle, for every resource type, driven by the StructureDefinitions of the
registry (definitions.py). Decimals keep the digits they were written with in every format (decimals.py).

    resource = parse(text, "xml")                      # str or bytes → a FHIR JSON dict
    text = serialize(resource, "ttl", base="https://example.org/fhir")
    fmt = detect_format(text)                          # "{" JSON, "<" XML, else Turtle

Every failure is a MappingError: FS-SRC-020 bad JSON, FS-SRC-030 bad XML, FS-SRC-031 a DTD or entity,
FS-SRC-050 not a FHIR R4 resource (unknown type or element, wrong value), FS-SRC-051 bad Turtle.
"""

from __future__ import annotations

import re

import orjson

from mappings.engine.definitions import Registry
from mappings.engine.errors import ErrorCode, MappingError

from .decimals import FhirDecimal, decimal_default, dumps, loads
from .model import model_for
from .xml import parse_fhir_xml, serialize_xml

TURTLE_IRI_START = re.compile(r"<(?:https?|urn|file):")
FORMATS = ("json", "xml", "ttl")
MEDIA_TYPES = {"json": "application/fhir+json", "xml": "application/fhir+xml", "ttl": "text/turtle"}
# What HTTP (Content-Type, Accept, FHIR's _format) calls each format: its short name or a MIME type.
FORMAT_NAMES = {
    "json": "json",
    "application/json": "json",
    "application/fhir+json": "json",
    "application/json+fhir": "json",
    "xml": "xml",
    "text/xml": "xml",
    "application/xml": "xml",
    "application/fhir+xml": "xml",
    "application/xml+fhir": "xml",
    "ttl": "ttl",
    "turtle": "ttl",
    "text/turtle": "ttl",
    "application/x-turtle": "ttl",
}

__all__ = [
    "FORMATS",
    "FORMAT_NAMES",
    "MEDIA_TYPES",
    "FhirDecimal",
    "decimal_default",
    "detect_format",
    "dumps",
    "format_for_accept",
    "format_named",
    "loads",
    "parse",
    "serialize",
]


def format_named(name: str | None) -> str | None:
    """json, xml or ttl for a short name or MIME type (parameters such as `; charset=utf-8` ignored), else None."""
    # "+" in an unencoded query string (`_format=application/fhir+xml`) arrives as a space
    return FORMAT_NAMES.get((name or "").split(";")[0].strip().lower().replace(" ", "+"))


def format_for_accept(accept: str) -> str | None:
    """The first of json, xml, ttl an HTTP Accept header names, JSON for none or a wildcard (`*/*`,
    `application/*`); None when it names only other types."""
    if not accept.strip():
        return "json"
    for part in accept.split(","):
        found = format_named(part)
        if found is not None:
            return found
        if part.split(";")[0].strip() in ("*/*", "application/*"):
            return "json"
    return None


def detect_format(text: str | bytes) -> str:
    """By the first character that is not white space (or a byte-order mark): `{` JSON, `<` XML, else Turtle —
    save a Turtle document opening on an IRI (`<http://…> a fhir:Patient`) and a JSON array (`[…]`, no resource
    but better reported as JSON than as bad Turtle)."""
    head = text[:200].decode("utf-8", "replace") if isinstance(text, bytes) else text[:200]
    head = head.lstrip("\ufeff \t\r\n")
    if head.startswith("{"):
        return "json"
    if head.startswith("<"):
        return "ttl" if TURTLE_IRI_START.match(head) else "xml"
    if head.startswith("[") and (text.rstrip()[-1:] in ("]", b"]")):
        return "json"  # Turtle statements end with "."
    return "ttl"


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise MappingError(ErrorCode.SRC_UNKNOWN_FORMAT, f"Unknown FHIR format '{fmt}'. Use one of: json, xml, ttl.")


def parse(text: str | bytes, fmt: str, *, registry: Registry | None = None) -> dict:
    """A FHIR resource in `fmt` → its FHIR JSON (a dict; decimals as FhirDecimal, which are floats)."""
    _check_format(fmt)
    # a UTF-8 byte-order mark, as Windows editors write one
    text = text.removeprefix(b"\xef\xbb\xbf") if isinstance(text, bytes) else text.removeprefix("\ufeff")
    model = model_for(registry)
    if fmt == "xml":
        return _guarded(parse_fhir_xml, model, text)
    if fmt == "ttl":
        from .turtle import parse_turtle  # rdflib takes a while to import: only when Turtle is asked for

        return _guarded(parse_turtle, model, text)
    try:
        resource = loads(text)
    except orjson.JSONDecodeError as exc:
        raise MappingError(
            ErrorCode.JSON_INVALID,
            f"The FHIR JSON is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}.",
        ) from None
    if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
        raise MappingError(ErrorCode.FHIR_NOT_RESOURCE, "A FHIR resource is a JSON object with a resourceType.")
    return resource


def serialize(
    resource: dict, fmt: str, *, pretty: bool = False, base: str | None = None, registry: Registry | None = None
) -> str:
    """FHIR JSON → text in `fmt`. `base` (Turtle only) names the server the resource and its references live on:
    the root becomes `<base/Type/id>` and relative references get a `fhir:link`."""
    _check_format(fmt)
    if fmt == "json":
        return dumps(resource, pretty=pretty).decode()
    model = model_for(registry)
    if fmt == "xml":
        return _guarded(serialize_xml, model, resource, pretty=pretty)
    from .turtle import serialize_turtle

    return _guarded(serialize_turtle, model, resource, base=base)


def _guarded(convert, *args, **kwargs):
    try:
        return convert(*args, **kwargs)
    except RecursionError:  # extensions of extensions of…: the walk is recursive, the nesting is the sender's
        raise MappingError(ErrorCode.FHIR_NOT_RESOURCE, "The resource is nested too deeply to convert.") from None
