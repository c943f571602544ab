"""The HL7 v2 data-type filters read raw text (filters/hl7v2_types.py on hl7v2_text.RawValue): each must answer exactly
what the node-based filters it replaced answered (kept below as the oracle, as they were at c0897a7), over every field
and repetition of the corpus messages (and their components that hold sub-components or escapes) and over generated
fields: escape sequences, empty parts, sub-components, the "" null, other encoding characters. Dict key order counts
(outputs are served as written), and so do the warnings a filter leaves and the errors it raises."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from django.conf import settings
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from jinja2 import Undefined
from jinja2.utils import url_quote

from mappings.engine import compile_mapping
from mappings.engine.errors import ErrorCode, MappingError
from mappings.engine.filters import FILTERS
from mappings.engine.filters.codes import translate_code, v2_system
from mappings.engine.filters.hl7v2_types import _list, _period, _put, _text, _type_coding
from mappings.engine.filters.values import to_integer
from mappings.engine.hl7v2 import Field, _Node, parse_hl7v2
from mappings.engine.limits import Limits, current_budget, end_budget, start_budget
from mappings.examples import find_example

ENV = compile_mapping(
    "{}", lookup_tables=find_example(settings.FHIR_STUDIO["EXAMPLES_DIR"], "hl7v2-adt-a01").lookup_tables
).environment
CORPUS = Path(os.environ.get("FHIR_STUDIO_CORPUS_DIR", settings.BASE_DIR.parent / "shared" / "corpus"))

# --- the oracle: the node-based filters as they were at c0897a7 (docstrings and decorators left out) -------------


def _parts(value: object, name: str, kind: str) -> Callable[[int], _Node] | None:
    if type(value) is Field:
        return value._kid(1)._kid if value else None
    if isinstance(value, _Node):
        return value._kid if value else None
    if value is None or isinstance(value, Undefined) or value == "":
        return None
    raise MappingError(
        ErrorCode.RND_FILTER_INPUT,
        f"{name} reads an HL7 v2 {kind} (a field, repetition or component of the message, e.g. msg.PID[3]), "
        f"not a {type(value).__name__}.",
    )


def _texts(*values: object) -> list[str]:
    return [text for text in map(_text, values) if text and (not text.isspace())]


def _translated(env, node: _Node, table: str) -> str | None:
    return translate_code(env, node, table) if node else None


def system_from_hd(namespace: object, universal_id: object = None, universal_id_type: object = None) -> str | None:
    uid = _text(universal_id or "").strip()
    if uid and (_text(universal_id_type) == "ISO" or uid.replace(".", "").isdigit()):
        return f"urn:oid:{uid}"
    if uid and _text(universal_id_type) == "UUID":
        return f"urn:uuid:{uid.lower()}"
    if uid and ":" in uid and (" " not in uid):
        return uid
    if namespace or uid:
        name = _text(namespace or uid).strip()
        return v2_system(name) or f"urn:id:{url_quote(name)}"
    return None


def identifier_from_cx(env, cx: object, use: object = None, type_code: object = None) -> dict | None:
    part = _parts(cx, "identifier_from_cx", "CX")
    if part is None or not part(1):
        return None
    result: dict = {}
    _put(result, "use", _text(use))
    _put(result, "value", _text(part(1)))
    kind = part(5) or type_code
    if kind:
        result["type"] = _type_coding(_text(kind).strip())
    authority = part(4)
    if authority:
        system = system_from_hd(authority[1], authority[2], authority[3])
        if system and (not system.isspace()):
            result["system"] = system
    if part(7) or part(8):
        period = _period(env, part(7), part(8))
        if period:
            result["period"] = period
    return result


def identifier_from_ei(env, ei: object, type_code: object = None, use: object = None) -> dict | None:
    part = _parts(ei, "identifier_from_ei", "EI")
    if part is None or not part(1):
        return None
    result: dict = {}
    _put(result, "use", _text(use))
    _put(result, "value", _text(part(1)))
    if type_code:
        result["type"] = _type_coding(_text(type_code))
    if part(2) or part(3):
        system = system_from_hd(part(2), part(3), part(4))
        if system and (not system.isspace()):
            result["system"] = system
    return result


def identifier_from_xcn(env, xcn: object) -> dict | None:
    part = _parts(xcn, "identifier_from_xcn", "XCN")
    if part is None or not part(1):
        return None
    result: dict = {}
    _put(result, "value", _text(part(1)))
    authority = part(9)
    if authority:
        system = system_from_hd(authority[1], authority[2], authority[3])
        if system and (not system.isspace()):
            result["system"] = system
    if part(13):
        result["type"] = _type_coding(_text(part(13)).strip())
    return result


def human_name_from_xpn(env, xpn: object, use: object = None) -> dict | None:
    part = _parts(xpn, "human_name_from_xpn", "XPN")
    if part is None or not (part(1) or part(2)):
        return None
    result = _human_name(env, part, use, family=1, given=(2, 3), prefix=5, suffix=(4, 6, 14), use_code=7)
    if part(10) or part(12) or part(13):
        period = _period(env, part(12) or part(10)[1], part(13) or part(10)[2])
        if period:
            result["period"] = period
    return result


def human_name_from_xcn(env, xcn: object, use: object = None) -> dict | None:
    part = _parts(xcn, "human_name_from_xcn", "XCN")
    if part is None or not (part(2) or part(3)):
        return None
    return _human_name(env, part, use, family=2, given=(3, 4), prefix=6, suffix=(5, 7, 21), use_code=10)


def _human_name(
    env, part, use: object, *, family: int, given: tuple, prefix: int, suffix: tuple, use_code: int
) -> dict:
    result: dict = {}
    _put(result, "use", _text(_translated(env, part(use_code), "hl7v2-name-use") or use))
    _put(result, "family", _text(part(family)[1]))
    _list(result, "given", _texts(*map(part, given)))
    _list(result, "prefix", _texts(part(prefix)))
    _list(result, "suffix", _texts(*map(part, suffix)))
    return result


def address_from_xad(env, xad: object, use: object = None) -> dict | None:
    part = _parts(xad, "address_from_xad", "XAD")
    if part is None or not (part(1) or part(3) or part(4) or part(5) or part(6)):
        return None
    kind = part(7)
    result: dict = {}
    _put(result, "use", _text(_translated(env, kind, "hl7v2-address-use") or use))
    _put(result, "type", _text(_translated(env, kind, "hl7v2-address-type")))
    street = part(1)
    first_line = " ".join(str(part) for part in street if part) if street[2] or street[3] else _text(street)
    _list(result, "line", _texts(first_line, part(2)))
    _put(result, "city", _text(part(3)))
    _put(result, "district", _text(part(9)[1] or part(9)[2]))
    _put(result, "state", _text(part(4)))
    _put(result, "postalCode", _text(part(5)))
    _put(result, "country", _text(part(6)))
    if part(12) or part(13) or part(14):
        period = _period(env, part(13) or part(12)[1], part(14) or part(12)[2])
        if period:
            result["period"] = period
    return result


def _phone_number(part: Callable[[int], _Node]) -> object:
    number = part(1) or part(12)
    if number:
        return number
    country, area, extension = (part(5), part(6), part(8))
    return (
        (f"+{country} " if country else "")
        + (f"({area}) " if area else "")
        + _text(part(7))
        + (f" ext. {extension}" if extension else "")
    )


def telecom_from_xtn(env, xtn: object, use: object = None) -> dict | None:
    part = _parts(xtn, "telecom_from_xtn", "XTN")
    if part is None:
        return None
    number = _phone_number(part)
    system = _translated(env, part(3), "hl7v2-telecom-system") or (
        "email" if part(2) == "NET" or (part(4) and (not number)) else "phone"
    )
    value = part(4) or number if system == "email" else number
    if not value:
        return None
    result: dict = {}
    _put(result, "system", _text(system))
    _put(result, "value", _text(value).strip())
    wanted = "mobile" if part(3) == "CP" else _translated(env, part(2), "hl7v2-telecom-use") or use
    _put(result, "use", _text(wanted))
    if part(18):
        rank = to_integer(part(18))
        if rank and rank > 0:
            result["rank"] = rank
    if part(13) or part(14):
        period = _period(env, part(13), part(14))
        if period:
            result["period"] = period
    return result


def _coding(code: _Node, display: _Node, system: object, version: _Node) -> dict:
    coding: dict = {}
    _put(coding, "system", _text(system))
    _put(coding, "version", _text(version))
    _put(coding, "code", _text(code).strip())
    _put(coding, "display", _text(display))
    return coding


def _system_of(name: _Node, default: object = None) -> object:
    return (v2_system(name) if name else None) or default


def coding_from_cwe(env, cwe: object, default_system: object = None) -> dict | None:
    part = _parts(cwe, "coding_from_cwe", "CWE")
    if part is None or not part(1):
        return None
    return _coding(part(1), part(2), _system_of(part(3), default_system), part(7)) or None


def codeable_concept_from_cwe(env, cwe: object, text: object = None, default_system: object = None) -> dict | None:
    part = _parts(cwe, "codeable_concept_from_cwe", "CWE")
    if part is None:
        if not text:
            return None
        label = _text(text)
        return {"text": label} if label and (not label.isspace()) else None
    if not (part(1) or part(2) or part(4) or part(5) or part(9) or text):
        return None
    codings = []
    if part(1):
        codings.append(_coding(part(1), part(2), _system_of(part(3), default_system), part(7)))
    if part(4):
        codings.append(_coding(part(4), part(5), _system_of(part(6)), part(8)))
    result: dict = {}
    _list(result, "coding", [coding for coding in codings if coding])
    _put(result, "text", _text(text or part(9) or part(2) or part(5)))
    return result or None


# --- the comparison ----------------------------------------------------------------------------------------------

ORACLE = {
    "identifier_from_cx": identifier_from_cx,
    "identifier_from_ei": identifier_from_ei,
    "identifier_from_xcn": identifier_from_xcn,
    "human_name_from_xpn": human_name_from_xpn,
    "human_name_from_xcn": human_name_from_xcn,
    "address_from_xad": address_from_xad,
    "telecom_from_xtn": telecom_from_xtn,
    "coding_from_cwe": coding_from_cwe,
    "codeable_concept_from_cwe": codeable_concept_from_cwe,
}
# Every filter with its default arguments, and with the optional ones given.
DEFAULTS = [(name, (), {}) for name in ORACLE]
CALLS = [
    *DEFAULTS,
    ("identifier_from_cx", ("official",), {"type_code": "MR"}),
    ("identifier_from_ei", ("PLAC", "usual"), {}),
    ("human_name_from_xpn", ("old",), {}),
    ("human_name_from_xcn", ("official",), {}),
    ("address_from_xad", ("home",), {}),
    ("telecom_from_xtn", ("work",), {}),
    ("coding_from_cwe", ("http://terminology.hl7.org/CodeSystem/v2-0007",), {}),
    ("codeable_concept_from_cwe", (), {"text": "Text", "default_system": "urn:oid:1.2.3"}),
]


def _answer(function: Callable, *args, **kwargs) -> tuple:
    """What a call gives, as comparable text: the JSON of its result (key order included), its warnings or error."""
    token = start_budget(Limits())
    try:
        budget = current_budget()
        try:
            result = json.dumps(function(*args, **kwargs))
        except MappingError as error:
            result = f"error {error.code}: {error.message}"
        return result, [warning.message for warning in budget.warnings]
    finally:
        end_budget(token)


def assert_same(node: object, calls: list = CALLS) -> int:
    """Every filter (and system_from_hd on the node's first three parts) answers on `node` as the oracle does."""
    for name, args, kwargs in calls:
        raw = _answer(FILTERS[name], ENV, node, *args, **kwargs)
        assert raw == _answer(ORACLE[name], ENV, node, *args, **kwargs), (name, args, kwargs, node)
    if isinstance(node, _Node):
        parts = (node[1], node[2], node[3])
        assert _answer(FILTERS["system_from_hd"], *parts) == _answer(system_from_hd, *parts), node
    return len(calls)


def _nodes(message, seen: set) -> list:
    """Every field and repetition of a message not seen before (the corpus repeats many), and the components worth
    reading alone (with sub-components or an escape character: the others are read the same way through their
    repetition)."""
    enc = message._enc
    special = enc[3] + enc[4]
    nodes = []
    for segment in message.segments:
        for field in segment:
            for node in [field, *field.reps]:
                key = (type(node), node.raw, enc)
                if key not in seen:
                    seen.add(key)
                    nodes.append(node)
                    if type(node) is not Field:
                        nodes.extend(part for part in node if any(char in part.raw for char in special))
    return nodes


def test_it_reads_every_corpus_field_as_the_node_based_filters_did() -> None:
    paths = sorted(CORPUS.rglob("*.hl7"))
    assert len(paths) > 100, CORPUS
    calls, seen = 0, set()
    for path in paths:
        text = path.read_bytes().decode("utf-8", "replace")
        try:
            message = parse_hl7v2(text)
        except MappingError:
            continue  # the corpus holds deliberately broken messages and batches
        for node in _nodes(message, seen):
            calls += assert_same(node)
    assert calls > 100_000


# Fields where having a value and printing one part ways (a null, an escape that prints nothing, a lone separator).
TRICKY = [
    '1^^^""&x',
    "1^^^\\H\\&x",
    "1^^^&&ISO",
    "1^^^&2.16.840.1^ISO^MR^^\\H\\^20200101",
    '1^^^^^^""^20201301',
    "^^^^^^^^&\\H\\",
    "Main St&Main&12^Apt 1^^^^^^^\\H\\&District",
    '""&Main&""^^City',
    "&&12",
    '^NET^""^a@b.org',
    "^^^\\H\\",
    "^PRN^PH^^1^555^1234567^\\H\\",
    "^^^^^^^^^^^^^^^^^1x",
    'Smith&""^John^^^^^\\N\\^^^20200101&2021',
    '""^""^""^""^""^""^""^""^""',
    "A^^\\H\\^B^^\\.br\\^^7",
    "^",
    "~1^^^A",
    "&",
]


@pytest.mark.parametrize("text", TRICKY)
def test_it_reads_tricky_fields_as_the_node_based_filters_did(text) -> None:
    field = parse_hl7v2(f"MSH|^~\\&|A\rZZZ|{text}")["ZZZ"][1]
    for node in [field, *field.reps, *(part for rep in field.reps for part in rep)]:
        assert_same(node)


@pytest.mark.parametrize("value", [None, "", Undefined(), 5, {"a": 1}, ["x"], "text", True])
def test_it_refuses_and_ignores_what_the_node_based_filters_did(value) -> None:
    assert_same(value)


def test_it_reads_a_segment_as_an_error_like_before() -> None:
    segment = parse_hl7v2("MSH|^~\\&|A\rPID|1||123^^^MRN")["PID"]
    assert_same(segment)
    assert _answer(FILTERS["identifier_from_cx"], ENV, segment)[0].startswith("error FS-RND-002: identifier_from_cx")


# --- generated fields ---------------------------------------------------------------------------------------------

# Encoding characters: the usual ones and two unusual sets (field, component, repetition, escape, sub-component).
ENCODINGS = ["|^~\\&", "#*!$%", "!@+?/"]
# Leaf values that reach every branch: codes the lookup tables know, HD types, dates (valid, partial, impossible),
# OIDs and URIs, whitespace, the "" null, and escape sequences (written with "\\", swapped for the escape character).
LEAVES = [
    "",
    "",
    '""',
    " ",
    "A",
    "Smith",
    "John Q",
    "12345",
    "MR",
    "VN",
    "ISO",
    "UUID",
    "L",
    "H",
    "M",
    "B",
    "C",
    "P",
    "CP",
    "NET",
    "PRN",
    "ORN",
    "Internet",
    "X.400",
    "LN",
    "SCT",
    "HL70078",
    "99zzz",
    "NPI",
    "2.16.840.1.113883.19",
    "ab12-CD34",
    "http://example.org/ids",
    "urn:x",
    "a b",
    "20200101",
    "2020",
    "202001011230",
    "20230230",
    "19891231235959.1234+0215",
    "not a date",
    "3",
    "-1",
    "x7",
    "\\F\\",
    "\\S\\",
    "\\T\\",
    "\\R\\",
    "\\E\\",
    "\\X41\\",
    "\\XC3A9\\",
    "\\XE9\\",
    "\\H\\",
    "\\N\\",
    "\\.br\\",
    "\\.sp2\\",
    "A\\S\\B",
    "C:\\temp",
    "\\",
    '"',
    '"x',
    "\\Z\\",
]
# Empty, null and blank leaves are drawn often: most differences between "is there a value" and "what does it print"
# hide there.
leaf = st.sampled_from(["", '""', " "]) | st.sampled_from(LEAVES) | st.text(alphabet="aZ9 .-:\"'\\", max_size=6)
component = st.lists(leaf, min_size=1, max_size=3)
repetition = st.lists(component, min_size=1, max_size=14)
field_value = st.lists(repetition, min_size=1, max_size=3)


def _field(encoding: str, reps: list) -> Field:
    fs, comp, rep, esc, sub = encoding
    swap = str.maketrans({"\\": esc})
    text = rep.join(comp.join(sub.join(leaf.translate(swap) for leaf in c) for c in r) for r in reps)
    # A leaf may hold a separator of another encoding, or this one's field separator and a line break: keep it to
    # one field of one segment.
    text = text.replace(fs, "").replace("\r", "").replace("\n", "")
    message = parse_hl7v2(f"MSH{fs}{comp}{rep}{esc}{sub}{fs}A{fs}B\rZZZ{fs}{text}")
    return message["ZZZ"][1]


@hypothesis_settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(encoding=st.sampled_from(ENCODINGS), reps=field_value)
def test_it_reads_generated_fields_as_the_node_based_filters_did(encoding, reps) -> None:
    field = _field(encoding, reps)
    assert_same(field)
    for rep in field.reps:
        assert_same(rep)
        for part in rep:  # components and sub-components with the default arguments only: they add no branch
            assert_same(part, DEFAULTS)
            if len(part) > 1:  # a lone sub-component reads as its component
                for sub in part:
                    assert_same(sub, DEFAULTS)
