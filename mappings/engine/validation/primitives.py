"""R4 primitive types: each becomes one function `value -> problem or None`, built once.

The regular expressions come from the type StructureDefinitions' `value` element (the `regex` extension), so they are
R4's own; SPEC_REGEX is the spec's text for the few a registry might lack. JSON numbers arrive as int or float (or a
float subclass that keeps its digits): they are tested with isinstance, and bool, an int subclass, is not a number.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date

from mappings.engine.errors import ErrorCode

REGEX_EXTENSION = "http://hl7.org/fhir/StructureDefinition/regex"
MAX_STRING = 1024 * 1024  # R4: strings SHALL NOT exceed 1 MB
INT_MIN, INT_MAX = -(2**31), 2**31 - 1
YEAR = r"([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)"
ZONE = r"(Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00))"
CLOCK = r"([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?"
SPEC_REGEX = {
    "id": r"[A-Za-z0-9\-\.]{1,64}",
    "uri": r"\S*",
    "url": r"\S*",
    "canonical": r"\S*",
    "code": r"[^\s]+(\s[^\s]+)*",
    "oid": r"urn:oid:[0-2](\.(0|[1-9][0-9]*))+",
    "uuid": r"urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
    "date": YEAR + r"(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|3[0-1]))?)?",
    "dateTime": YEAR + r"(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|3[0-1])(T" + CLOCK + ZONE + r")?)?)?",
    "instant": YEAR + r"-(0[1-9]|1[0-2])-(0[1-9]|[1-2][0-9]|3[0-1])T" + CLOCK + ZONE,
    "time": CLOCK,
    "base64Binary": r"(\s*([0-9a-zA-Z\+/=]){4}\s*)+",
    "string": r"[ \r\n\t\S]+",
    "markdown": r"[ \r\n\t\S]+",
}
TEXT_TYPES = frozenset({*SPEC_REGEX, "xhtml"})
NUMBER_TYPES = frozenset({"integer", "positiveInt", "unsignedInt", "decimal", "integer64"})
PRIMITIVE_TYPES = TEXT_TYPES | NUMBER_TYPES | {"boolean"}
CALENDAR_TYPES = frozenset({"date", "dateTime", "instant"})
# System.* types the snapshots use for Element.id, Extension.url, Resource.id and the like.
SYSTEM_TYPES = {
    "http://hl7.org/fhirpath/System.String": "string",
    "http://hl7.org/fhirpath/System.Boolean": "boolean",
    "http://hl7.org/fhirpath/System.Integer": "integer",
    "http://hl7.org/fhirpath/System.Decimal": "decimal",
    "http://hl7.org/fhirpath/System.Date": "date",
    "http://hl7.org/fhirpath/System.DateTime": "dateTime",
    "http://hl7.org/fhirpath/System.Time": "time",
}
FHIR_TYPE_EXTENSION = "http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type"

Problem = tuple[ErrorCode, str]
Check = Callable[[object], "Problem | None"]
STRUCTURE, VALUE, DATE = ErrorCode.VAL_STRUCTURE, ErrorCode.VAL_BAD_VALUE, ErrorCode.VAL_BAD_DATE


def is_primitive(type_code: str) -> bool:
    return type_code in PRIMITIVE_TYPES


def type_code_of(type_entry: dict) -> str:
    """The FHIR type of an ElementDefinition.type entry; System.String with a fhir-type extension reads as that type."""
    code = type_entry.get("code", "")
    if code.startswith("http://hl7.org/fhirpath/"):
        for extension in type_entry.get("extension", ()):
            if extension.get("url") == FHIR_TYPE_EXTENSION and extension.get("valueUrl"):
                return extension["valueUrl"]
        return SYSTEM_TYPES.get(code, "string")
    return code


def regex_of(registry, type_code: str) -> str | None:
    """The type's own regex from its StructureDefinition (`<type>.value`), else the spec's text."""
    definition = registry.structure(type_code) if registry is not None else None
    for element in (definition or {}).get("snapshot", {}).get("element", ()):
        if element.get("path") == f"{type_code}.value":
            for entry in element.get("type", ()):
                for extension in entry.get("extension", ()):
                    if extension.get("url") == REGEX_EXTENSION:
                        return extension.get("valueString")
    return SPEC_REGEX.get(type_code)


def calendar_problem(text: str) -> Problem | None:
    """2023-02-30 matches the regex but is no day: check the date part against the calendar."""
    if len(text) < 10:
        return None
    try:
        date(int(text[0:4]), int(text[5:7]), int(text[8:10]))
    except ValueError:
        return DATE, f"{show(text)} is not a calendar date"
    return None


def build_check(type_code: str, registry=None) -> Check:
    """The check for one primitive type: None when the JSON value is valid, else what is wrong with it."""
    if type_code == "boolean":
        return _boolean
    if type_code in NUMBER_TYPES:
        return _number_check(type_code)
    if type_code == "xhtml":
        return _xhtml
    if type_code in ("string", "markdown"):
        return _text_check(type_code, None)  # [ \r\n\t\S]+ in the spec's regex language: any non-empty text
    pattern = regex_of(registry, type_code) or r"[ \r\n\t\S]+"
    if pattern == BASE64_REGEX:
        return _text_check(type_code, base64_match)
    return _text_check(type_code, re.compile(schema_regex(pattern)).fullmatch)


BASE64_REGEX = r"(\s*([0-9a-zA-Z\+/=]){4}\s*)+"  # R4's, as its StructureDefinition and SPEC_REGEX give it
_BASE64_CHARACTERS = re.compile(r"[0-9a-zA-Z+/= \t\r\n]+").fullmatch


def base64_match(value: str) -> bool | None:
    """BASE64_REGEX's verdict without its cost (re took 2 ms on a 37 KB attachment, one group per 4 characters):
    only base64 characters and XML spaces, and each run between spaces a whole number of 4-character groups."""
    if _BASE64_CHARACTERS(value) is None:
        return None
    runs = value.split()  # only the four XML spaces are left to split on
    return True if runs and all(len(run) % 4 == 0 for run in runs) else None


XML_SPACE = " \t\r\n"


def schema_regex(pattern: str) -> str:
    """The spec's regexes are XML Schema's, where \\s is only space, tab, CR and LF: Python's \\s and \\S also
    take Unicode spaces (a no-break space in a name must not make it invalid). Rewrite both for Python."""
    out, in_class, index = [], False, 0
    while index < len(pattern):
        char = pattern[index]
        if char == "\\" and index + 1 < len(pattern):
            escaped = pattern[index + 1]
            if escaped == "s":
                out.append(XML_SPACE if in_class else f"[{XML_SPACE}]")
            elif escaped == "S" and not in_class:
                out.append(f"[^{XML_SPACE}]")
            else:
                out.append(pattern[index : index + 2])
            index += 2
            continue
        if char == "[" and not in_class:
            in_class = True
        elif char == "]" and in_class:
            in_class = False
        out.append(char)
        index += 1
    return "".join(out)


def _boolean(value: object) -> Problem | None:
    if value is True or value is False:
        return None
    return STRUCTURE, f"must be a JSON boolean (true or false), not {describe(value)}"


def _number_check(type_code: str) -> Check:
    if type_code == "decimal":

        def check_decimal(value: object) -> Problem | None:
            if isinstance(value, int | float) and not isinstance(value, bool):
                return None if value == value and abs(value) != float("inf") else (VALUE, "is not a finite number")
            return STRUCTURE, f"must be a JSON number, not {describe(value)}"

        return check_decimal
    low = {"positiveInt": 1, "unsignedInt": 0}.get(type_code, INT_MIN)
    high = 2**63 - 1 if type_code == "integer64" else INT_MAX

    def check_integer(value: object) -> Problem | None:
        if type(value) is int or (isinstance(value, int) and not isinstance(value, bool)):
            return None if low <= value <= high else (VALUE, f"{value} is out of range for {type_code} ({low}..{high})")
        return STRUCTURE, f"must be a JSON whole number ({type_code}), not {describe(value)}"

    check_integer.bounds = (low, high)
    return check_integer


def _text_check(type_code: str, fullmatch) -> Check:
    calendar = type_code in CALENDAR_TYPES

    def check_text(value: object) -> Problem | None:
        if type(value) is not str and not isinstance(value, str):
            return STRUCTURE, f"must be a JSON string ({type_code}), not {describe(value)}"
        if not value:
            return STRUCTURE, "is an empty string (ele-1: FHIR has no empty values, leave the element out)"
        if len(value) > MAX_STRING:
            return VALUE, f"is longer than FHIR's 1 MB limit ({len(value)} characters)"
        if fullmatch is not None and fullmatch(value) is None:
            return VALUE, f"{show(value)} is not a valid {type_code}{HINTS.get(type_code, '')}"
        if calendar:
            return calendar_problem(value)
        return None

    check_text.fullmatch, check_text.calendar = fullmatch, calendar  # what generated walkers inline (checkers.py)
    return check_text


def _xhtml(value: object) -> Problem | None:
    if not isinstance(value, str):
        return STRUCTURE, f"must be a JSON string of XHTML, not {describe(value)}"
    if not value.lstrip().startswith("<div"):
        return VALUE, "must be an XHTML <div> element (txt-1)"
    return None


HINTS = {
    "uri": " (a URI has no whitespace: map the source's text to a system URI, or leave it out)",
    "url": " (a URL has no whitespace)",
    "canonical": " (a canonical URL has no whitespace)",
    "code": " (no leading, trailing or repeated whitespace)",
    "id": " (1-64 letters, digits, '-' and '.')",
    "date": " (YYYY, YYYY-MM or YYYY-MM-DD)",
    "dateTime": " (YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDThh:mm:ss+zz:zz with a time zone)",
    "instant": " (YYYY-MM-DDThh:mm:ss.sss+zz:zz, with a time zone)",
    "time": " (hh:mm:ss)",
}


def describe(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def show(value: str) -> str:
    return repr(value if len(value) <= 80 else value[:77] + "...")
