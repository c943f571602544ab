"""References: the format of Reference.reference, the target type the element allows (targetProfile), `#id` resolved
against the resource's contained resources (ref-1), and `urn:uuid:` resolved against the Bundle's fullUrls.

Local references are collected while a resource is walked and resolved when it is done (a contained resource may be
written after the reference to it); Bundle-local ones when the Bundle is done. An unresolved `urn:uuid:` is a warning:
the Bundle may be one part of a transaction the server completes.
"""

from __future__ import annotations

import re

from mappings.engine.errors import ErrorCode

from .primitives import show

RELATIVE = re.compile(r"([A-Z][A-Za-z]+)/[A-Za-z0-9\-.]{1,64}(?:/_history/[A-Za-z0-9\-.]{1,64})?")
HTTP = re.compile(r"https?://\S+")
UUID = re.compile(r"urn:uuid:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
OID = re.compile(r"urn:oid:[0-2](\.(0|[1-9][0-9]*))+")
TYPE_AT_END = re.compile(r"/([A-Z][A-Za-z]+)/[A-Za-z0-9\-.]{1,64}(?:/_history/[A-Za-z0-9\-.]{1,64})?$")
KNOWN_SIZE = 4096  # Type/id references remembered with their type, as valid strings are (walk.VALID_CACHE_SIZE)
FORMATS = "Type/id, Type/id/_history/v, an absolute URL, urn:uuid:…, urn:oid:… or #id"


class BundleScope:
    __slots__ = ("full_urls", "pending")

    def __init__(self, bundle: dict) -> None:
        entries = bundle.get("entry")
        self.full_urls = (
            {e.get("fullUrl") for e in entries if type(e) is dict and type(e.get("fullUrl")) is str}
            if type(entries) is list
            else set()
        )
        self.pending: list[tuple[str, str]] = []


def check_reference(run, node: dict, path: str, targets: frozenset[str] | None) -> None:
    reference = node.get("reference")
    if type(reference) is not str or not reference:
        return  # the walker reports a non-string or empty reference
    where = path + ".reference"
    first = reference[0]
    if first == "#":
        run.scope.append((where, reference))  # the resource's (its contained ones share it), resolved at its end
        return
    if first == "u" and reference.startswith("urn:"):
        if reference.startswith("urn:uuid:"):
            if not UUID.fullmatch(reference):
                _bad_format(run, where, reference)
            elif run.bundle is not None:
                run.bundle.pending.append((where, reference))
        elif not OID.fullmatch(reference):
            _bad_format(run, where, reference)
        return
    known = run.compiler.relative_references
    type_name = known.get(reference)
    if type_name is None:
        match = RELATIVE.fullmatch(reference)
        if match is not None:
            type_name = match.group(1)
            if len(known) < KNOWN_SIZE:  # the regex costs more than the rest of a reference's checks
                known[reference] = type_name
    if type_name is not None:
        _check_type(run, where, type_name, targets, reference)
        return
    if HTTP.fullmatch(reference):
        at_end = TYPE_AT_END.search(reference)
        if at_end is not None and at_end.group(1) in run.compiler.resource_types:
            _check_type(run, where, at_end.group(1), targets, reference)
        return
    _bad_format(run, where, reference)


def _bad_format(run, where: str, reference: str) -> None:
    run.add(ErrorCode.VAL_BAD_REFERENCE, where, f"{show(reference)} is not a valid reference ({FORMATS}).")


def _check_type(run, where: str, type_name: str, targets, reference: str) -> None:
    if type_name not in run.compiler.resource_types:
        run.add(ErrorCode.VAL_BAD_REFERENCE, where, f"{show(reference)}: {type_name} is not an R4 resource type.")
    elif targets is not None and type_name not in targets:
        run.add(
            ErrorCode.VAL_BAD_REFERENCE,
            where,
            f"{show(reference)} refers to a {type_name}, but this element allows only {', '.join(sorted(targets))}.",
        )


def resolve_local(run, resource: dict, local: list[tuple[str, str]]) -> None:
    """The resource's `#id` references against its contained resources."""
    contained = resource.get("contained")
    ids = (
        {i.get("id") for i in contained if type(i) is dict and type(i.get("id")) is str}
        if type(contained) is list
        else set()
    )
    for where, reference in local:
        if reference != "#" and reference[1:] not in ids:
            run.add(
                ErrorCode.VAL_UNRESOLVED_REFERENCE,
                where,
                f"{show(reference)} names no contained resource of this resource (ref-1).",
            )


def resolve_bundle(run, bundle: BundleScope) -> None:
    for where, reference in bundle.pending:
        if reference not in bundle.full_urls:
            run.add(
                ErrorCode.VAL_UNRESOLVED_REFERENCE,
                where,
                f"{show(reference)} is the fullUrl of no entry of this Bundle.",
                severity="warning",
            )
