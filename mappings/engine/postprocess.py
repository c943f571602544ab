"""Stage 3: rendered text → a FHIR JSON value.

Templates are easier to write when a loop may leave a trailing comma and an optional part may print nothing, so the
parser tolerates stray commas; FHIR forbids empty strings, arrays and objects, so they are pruned; a Bundle's
entries with the same resourceType and id are merged (two segments describing one Practitioner become one
resource); transaction and batch Bundles get the `fullUrl` and `request` a server needs.
"""

from __future__ import annotations

import re

import orjson

from .errors import ErrorCode, MappingError
from .filters.values import fhir_id

TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|,')
WHITESPACE = " \t\r\n"
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def remove_stray_commas(text: str) -> str:
    """Blank out commas JSON does not allow (after `[` or `{`; before `]`, `}` or another comma), outside strings.
    Blanking (not deleting) keeps every offset, so an error position still maps to the template line that wrote it."""
    chars: list[str] | None = None
    length = len(text)
    for match in TOKEN.finditer(text):
        if match.group() != ",":
            continue
        start = match.start()
        current = text if chars is None else chars  # earlier blanked commas read as whitespace
        before = start - 1
        while before >= 0 and current[before] in WHITESPACE:
            before -= 1
        after = start + 1
        while after < length and text[after] in WHITESPACE:
            after += 1
        if before < 0 or current[before] in "[{" or after >= length or text[after] in "]},":
            if chars is None:
                chars = list(text)
            chars[start] = " "
    return text if chars is None else "".join(chars)


def parse_output(text: str) -> object:
    """Parse rendered output, tolerating stray commas. Raises FS-PST-001 with the offset in `column` (the caller
    maps it to a template line)."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        pass
    cleaned = remove_stray_commas(text)
    try:
        return orjson.loads(cleaned)
    except orjson.JSONDecodeError as exc:
        raise MappingError(
            ErrorCode.PST_NOT_JSON,
            f"The output is not JSON: {exc.msg}, near {_near(cleaned, exc.pos)}.",
            offset=exc.pos,
        ) from exc


def _near(text: str, pos: int) -> str:
    excerpt = text[max(0, pos - 40) : pos + 20]
    return repr(" ".join(excerpt.split()))


def prune(value: object) -> object:
    """Drop empty strings, whitespace-only strings, empty arrays, empty objects and nulls, recursively."""
    if isinstance(value, dict):
        kept = {}
        for key, item in value.items():
            item = prune(item)
            if item is not None:
                kept[key] = item
        return kept or None
    if isinstance(value, list):
        items = [item for item in map(prune, value) if item is not None]
        return items or None
    if isinstance(value, str):
        return value if value.strip() else None
    return value


def _merge(into: dict, other: dict, path: str, conflicts: list[MappingError]) -> None:
    for key, value in other.items():
        if key not in into:
            into[key] = value
        elif isinstance(into[key], dict) and isinstance(value, dict):
            _merge(into[key], value, f"{path}.{key}", conflicts)
        elif isinstance(into[key], list) and isinstance(value, list):
            into[key].extend(item for item in value if item not in into[key])
        elif into[key] != value:
            conflicts.append(
                MappingError(
                    ErrorCode.PST_DUPLICATE_CONFLICT,
                    f"Two entries for the same resource disagree on {path}.{key} ({into[key]!r} vs {value!r}); "
                    "kept the first.",
                    expression=[f"{path}.{key}"],
                    severity="warning",
                )
            )


def merge_duplicate_entries(bundle: dict) -> list[MappingError]:
    """Merge Bundle entries that describe the same resource (same resourceType and id), arrays unioned."""
    conflicts: list[MappingError] = []
    seen: dict[tuple[str, str], dict] = {}
    kept = []
    for entry in bundle.get("entry") or []:
        resource = entry.get("resource") if isinstance(entry, dict) else None
        key = (resource.get("resourceType"), resource.get("id")) if isinstance(resource, dict) else None
        if key is None or key[1] is None:
            kept.append(entry)
        elif key in seen:
            _merge(seen[key], resource, key[0], conflicts)
        else:
            seen[key] = resource
            kept.append(entry)
    if "entry" in bundle:
        bundle["entry"] = kept
    return conflicts


def fill_entry_urls(bundle: dict) -> None:
    """Give each entry a resource id and fullUrl, and transaction/batch entries a request (PUT Type/id: ids are
    deterministic, so re-sending the same message updates rather than duplicates)."""
    needs_request = bundle.get("type") in ("transaction", "batch")
    for entry in bundle.get("entry") or []:
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
            continue
        resource_type = resource["resourceType"]
        if not resource.get("id"):
            resource["id"] = fhir_id(resource_type, orjson.dumps(resource, option=orjson.OPT_SORT_KEYS).decode())
        resource_id = str(resource["id"])
        if "fullUrl" not in entry:
            entry["fullUrl"] = (
                f"urn:uuid:{resource_id}"
                if UUID.match(resource_id)
                else f"urn:uuid:{fhir_id(resource_type, resource_id)}"
            )
        if needs_request and "request" not in entry:
            entry["request"] = {"method": "PUT", "url": f"{resource_type}/{resource_id}"}


def postprocess(text: str) -> tuple[object, list[MappingError]]:
    """Rendered text → (FHIR JSON, warnings)."""
    output = prune(parse_output(text))
    if not isinstance(output, dict) or not isinstance(output.get("resourceType"), str):
        raise MappingError(
            ErrorCode.PST_NOT_RESOURCE,
            "The output must be one FHIR resource: a JSON object with a resourceType (a Bundle for many resources).",
        )
    warnings: list[MappingError] = []
    if output["resourceType"] == "Bundle":
        warnings = merge_duplicate_entries(output)
        fill_entry_urls(output)
    return output, warnings
