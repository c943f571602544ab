"""JSON output and FHIR data types: safe printing, numbers, codings, identifiers, quantities, references, extensions.

Output is JSON, so `{{ value }}` is JSON-escaped automatically (like HTML autoescaping, but for JSON strings):
`"family": "{{ msg.PID[5][1] }}"` stays valid even when the name holds a quote or a backslash. Values that are
already JSON — `tojson`, macro calls, the data-type helpers below (dicts/lists) — are printed as JSON, unescaped.
"""

from __future__ import annotations

import binascii
import hashlib
import re
from decimal import Decimal, InvalidOperation

import orjson
from jinja2 import Undefined, pass_environment
from markupsafe import Markup

from mappings.engine import definitions
from mappings.engine.errors import ErrorCode, MappingError
from mappings.engine.formats.decimals import FhirDecimal
from mappings.engine.limits import current_budget, template_line_here

NEEDS_ESCAPE = re.compile(r'[\x00-\x1f"\\\u2028\u2029]')
FHIR_DECIMAL = re.compile(r"^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$")


def _default(value: object) -> object:
    # Source nodes (HL7 fields, XML elements) and Undefined serialise as their text; anything else is a bug.
    if isinstance(value, Undefined):
        return None
    if isinstance(value, FhirDecimal):
        return orjson.Fragment(value.text)  # a FHIR decimal read from the source keeps its digits
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, (tuple, set, frozenset)):
        return list(value)
    return str(value)


def dumps(value: object) -> str:
    return orjson.dumps(value, default=_default).decode()


def tojson(value: object) -> Markup:
    """Any value as JSON: strings quoted and escaped, None/undefined → `null`, dicts and lists as JSON."""
    if isinstance(value, Undefined):
        return Markup("null")
    # Markup() without its Python __new__, and dumps() inline: about 40 calls per HL7 v2 message
    return str.__new__(Markup, orjson.dumps(value, default=_default).decode())


def escape_json_text(text: str) -> str:
    if NEEDS_ESCAPE.search(text) is None:
        return text
    return orjson.dumps(text).decode()[1:-1]


_needs_escape = NEEDS_ESCAPE.search


def finalize(value: object) -> object:
    """Applied to every `{{ … }}` whose value is not Markup (the generated code prints Markup as it is, see
    template_rewrites.py): JSON-escape text, print structures as JSON, None/undefined as nothing.
    Hot: called for every such printed value, so the common types are tested first, by exact type, and the text
    and structure cases inline `escape_json_text` and `dumps` (a call less each)."""
    kind = type(value)
    if kind is str:
        return value if _needs_escape(value) is None else orjson.dumps(value).decode()[1:-1]
    if kind is dict:
        return orjson.dumps(value, default=_default).decode()
    if kind is Markup:
        return value
    if value is None or isinstance(value, Undefined):
        return ""
    if kind is bool:
        return "true" if value else "false"
    if kind is int or kind is float:
        return value
    if isinstance(value, Markup):
        return value
    if isinstance(value, (dict, list, tuple)):
        return dumps(value)
    return escape_json_text(str(value))


def _text(value: object) -> str:
    if type(value) is str:  # most arguments of the value filters (some 350 calls per CCD document)
        return value.strip()
    if value is None or isinstance(value, Undefined):
        return ""
    return str(value).strip()


def to_decimal(value: object) -> int | float | None:
    """A FHIR decimal from text (`' 7.50'` → 7.5, `'12'` → 12); nothing if it isn't a number."""
    text = _text(value)
    if not FHIR_DECIMAL.match(text):
        return None
    try:
        number = Decimal(text)
    except InvalidOperation:
        return None
    return int(number) if number == number.to_integral_value() and "." not in text else float(number)


def to_integer(value: object) -> int | None:
    """A FHIR integer from text; nothing if it isn't a whole number."""
    text = _text(value)
    return int(text) if re.fullmatch(r"-?\d{1,10}", text) else None


def to_boolean(value: object) -> bool | None:
    """Y/N, yes/no, true/false, 1/0 → a FHIR boolean; anything else → nothing."""
    text = _text(value).lower()
    if text in ("y", "yes", "true", "t", "1"):
        return True
    if text in ("n", "no", "false", "f", "0"):
        return False
    return None


# The UUID variant digit (RFC 4122: 10xx) from a hex digit's low two bits.
_VARIANT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}


def fhir_id(*parts: object) -> str:
    """A deterministic resource id: the same inputs always give the same id, so re-running a message upserts.
    Pass the resource type and the business key: `fhir_id('Patient', msg.PID[3][1], msg.PID[3][4])`."""
    key = "|".join([part.strip() if type(part) is str else _text(part) for part in parts])  # text: no call
    if not key.strip("|"):
        raise MappingError(ErrorCode.RND_FILTER_INPUT, "fhir_id() needs at least one non-empty value to hash.")
    budget = current_budget()
    known = budget.ids if budget is not None else {}
    found = known.get(key)
    if found is None:
        # A UUID (version 5 layout) from the first 128 bits of SHA-256, formatted directly: uuid.UUID() is slow here.
        h = hashlib.sha256(key.encode()).hexdigest()
        found = known[key] = f"{h[:8]}-{h[8:12]}-5{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:32]}"
    return found


def urn_uuid(resource_id: object) -> str:
    """`urn:uuid:<id>`, for fullUrl and for references inside a Bundle."""
    return f"urn:uuid:{_text(resource_id)}"


# A value that names a code system rather than being a code: `http://loinc.org`, `urn:oid:2.16…`, `urn:ietf:rfc:3986`.
SYSTEM_URI = re.compile(r"^(?:[a-z][a-z0-9+.-]*://\S|urn:[a-z0-9][a-z0-9-]*:\S)", re.IGNORECASE)


def _swapped(env, helper: str, message: str) -> None:
    """Warn, once per template line, that a helper's arguments look swapped (the output keeps them as written)."""
    budget = current_budget()
    if budget is not None:
        template, line = template_line_here(env)
        error = MappingError(ErrorCode.RND_SWAPPED_ARGUMENTS, message).located(template, line)
        budget.warn(error, once=("swapped", helper, template, line))


def _check_system_order(env, helper: str, first: str, first_text: str, system_text: str) -> None:
    """`coding('http://loinc.org', '718-7')` is FHIR's system|code order given to a helper that takes the code
    first: the "code" is a system URI and the "system" is not. (Most systems have a ":", so this is one `in`.)"""
    if system_text and ":" not in system_text and ":" in first_text and SYSTEM_URI.match(first_text):
        _swapped(
            env,
            helper,
            f"{helper}() got the system {first_text!r} as its {first} and {system_text!r} as its system: its order "
            f"is {helper}({first}, system, …), the reverse of FHIR's system|{first}. Name the arguments to be sure: "
            f"{helper}(system={first_text!r}, {first}={system_text!r}).",
        )


def _resource_type_like(text: str) -> bool:
    return text[:1].isupper() and text.isalpha() and text.isascii()


@pass_environment
def reference(env, resource_type: str, resource_id: object, display: object = None) -> dict | None:
    """A Reference: `reference(resource_type, resource_id, display)`, the type first as in `Patient/123`; by name:
    `reference(resource_type="Patient", resource_id=msg.id)`. Nothing when the id is empty."""
    id_text = _text(resource_id)
    if not id_text:
        return None
    if not _resource_type_like(_text(resource_type)) and _resource_type_like(id_text):
        _swapped(
            env,
            "reference",
            f"reference() got {_text(resource_type)!r} as the resource type and {id_text!r} as the id: "
            "its order is reference(resource_type, resource_id, display), e.g. reference('Patient', msg.id).",
        )
    ref = {"reference": f"{resource_type}/{id_text}"}
    if _text(display):
        ref["display"] = _text(display)
    return ref


def _coding(code_text: str, system_text: str, display: object) -> dict | None:
    if not code_text:
        return None
    result = {"system": system_text or None, "code": code_text, "display": _text(display) or None}
    return {key: value for key, value in result.items() if value is not None}


@pass_environment
def coding(env, code: object = None, system: object = None, display: object = None) -> dict | None:
    """A Coding: `coding(code, system, display)`. The code comes FIRST, the reverse of FHIR's `system|code`; name
    the arguments to be sure: `coding(system="http://loinc.org", code="718-7", display="Hemoglobin")`. Nothing when
    the code is empty; a system URI given as the code (the FHIR order) leaves a warning.

    `coding("M", "http://hl7.org/fhir/administrative-gender")` → `{"system": "…", "code": "M"}`."""
    code_text, system_text = _text(code), _text(system)
    _check_system_order(env, "coding", "code", code_text, system_text)
    return _coding(code_text, system_text, display)


@pass_environment
def codeable_concept(
    env, code: object = None, system: object = None, display: object = None, text: object = None
) -> dict | None:
    """A CodeableConcept with one coding: `codeable_concept(code, system, display, text)`, the code FIRST like
    `coding()`; by name: `codeable_concept(system="http://loinc.org", code="718-7", display="Hemoglobin")`. `text`
    defaults to the display; nothing when code and text are both empty."""
    code_text, system_text = _text(code), _text(system)
    _check_system_order(env, "codeable_concept", "code", code_text, system_text)
    one = _coding(code_text, system_text, display)
    label = _text(text) or _text(display)
    if one is None and not label:
        return None
    result: dict = {}
    if one:
        result["coding"] = [one]
    if label:
        result["text"] = label
    return result


@pass_environment
def identifier(
    env, value: object = None, system: object = None, type_code: object = None, use: object = None
) -> dict | None:
    """An Identifier: `identifier(value, system, type_code, use)`. The value comes FIRST, the reverse of FHIR's
    `system|value`; name the arguments to be sure: `identifier(system="urn:oid:1.2.3", value=msg.mrn,
    type_code="MR", use="usual")`. `type_code` is a v2-0203 code (MR, SS, DL…). Nothing when the value is empty."""
    value_text, system_text = _text(value), _text(system)
    _check_system_order(env, "identifier", "value", value_text, system_text)
    if not value_text:
        return None
    result: dict = {"value": value_text}
    if _text(use):
        result["use"] = _text(use)
    if system_text:
        result["system"] = system_text
    if _text(type_code):
        result["type"] = {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": _text(type_code)}]
        }
    return result


@pass_environment
def quantity(
    env,
    value: object = None,
    unit: object = None,
    system: str = "http://unitsofmeasure.org",
    code: object = None,
) -> dict | None:
    """A Quantity: `quantity(value, unit, system, code)`, the number first; by name: `quantity(value=msg.dose,
    unit="mg")`. UCUM by default; `code` defaults to the unit. Nothing if the value is not a number."""
    number = to_decimal(value)
    if number is None:
        if _text(value) and to_decimal(unit) is not None:
            _swapped(
                env,
                "quantity",
                f"quantity() got {_text(value)!r} as the value and the number {_text(unit)!r} as the unit: its "
                "order is quantity(value, unit, system, code), e.g. quantity(obx[5], obx[6][1]).",
            )
        return None
    result: dict = {"value": number}
    if _text(unit):
        result["unit"] = _text(unit)
        result["system"] = system
        result["code"] = _text(code) or _text(unit)
    return result


@pass_environment
def extension(env, url: str, value_type: str, value: object) -> dict | None:
    """An extension: `extension('http://…/birthsex', 'Code', 'F')` → `{"url": …, "valueCode": "F"}`. Nothing when
    the value is empty (an extension needs a value or sub-extensions: FHIR rule ext-1). When the URL is a known
    extension definition (the R4 core's, US Core's, or the registry of the run in progress: uploaded definitions), a
    value type it does not allow leaves a warning at the template line; the output keeps what was written."""
    if not isinstance(value, (dict, list, bool, int, float)):
        value = _text(value)
    if value is None or value == "" or value == {} or value == []:
        return None
    _check_extension_type(env, str(url), str(value_type))
    return {"url": url, f"value{value_type[:1].upper()}{value_type[1:]}": value}


def _extension_types(registry, url: str) -> tuple[str, ...] | None:
    """The value types an extension definition allows (() for a complex one), None for an unknown URL; kept on the
    registry, which never changes once built."""
    known = registry.__dict__.setdefault("_extension_value_types", {})
    if url not in known:
        sd = registry.structure(url) if "/" in url or ":" in url else None
        types: tuple[str, ...] | None = None
        if sd is not None and sd.get("type") == "Extension":
            types = ()
            for element in sd.get("snapshot", {}).get("element", []):
                if element.get("id") == "Extension.value[x]" and element.get("max") != "0":
                    types = tuple(kind.get("code", "") for kind in element.get("type", []))
        known[url] = types
    return known[url]


def _check_extension_type(env, url: str, value_type: str) -> None:
    registry = definitions.active()
    allowed = _extension_types(registry, url)
    if allowed is None or value_type.lower() in {code.lower() for code in allowed}:
        return
    budget = current_budget()
    if budget is None:
        return
    if allowed:
        message = f"extension() {url} takes a value of type {' or '.join(allowed)}, not {value_type!r}."
    else:
        message = f"extension() {url} is a complex extension: it takes sub-extensions, not a {value_type!r} value."
    template, line = template_line_here(env)
    error = MappingError(ErrorCode.RND_FILTER_INPUT, message).located(template, line)
    budget.warn(error, once=("extension", url, value_type, template, line))


def base64(value: object) -> str | None:
    """Text as base64 (UTF-8), for Attachment.data: `{{ body | base64 | tojson }}`. Nothing when empty."""
    text = "" if value is None or isinstance(value, Undefined) else str(value)
    return binascii.b2a_base64(text.encode(), newline=False).decode() if text else None


def fail(message: str) -> None:
    """Stop the run with your own message: `{% if not msg.PID %}{{ fail('No PID segment') }}{% endif %}`."""
    raise MappingError(ErrorCode.RND_FAIL_CALLED, str(message))
