"""HL7 v2 data types → FHIR data types, as filters: `{{ cx | identifier_from_cx }}`, `{{ xpn | human_name_from_xpn }}`,
`{{ xad | address_from_xad }}`, `{{ xtn | telecom_from_xtn("home") }}`, `{{ cwe | codeable_concept_from_cwe }}`.

Each takes a node of the parsed message (a field, one of its repetitions or a component: `field[n]` reads component
n of the first repetition, so a field works wherever one value is meant) and gives one FHIR value as a dict, or
nothing when the source holds nothing worth mapping; printed, a dict is JSON and nothing is nothing, so
`"code": {{ cwe | codeable_concept_from_cwe }},` and
`[{% for cx in pid[3] %}{{ cx | identifier_from_cx }},{% endfor %}]` need no `tojson` (a member or an item that
printed nothing is dropped by post-processing).

They give what the macros of `snippets/hl7v2/datatypes.j2` gave (those macros now call them), written in Python
because these types are read on every segment: as macros they were most of an ADT message's render time. Empty and
whitespace-only parts are left out, as post-processing would prune them. Codes go through the mapping's lookup tables
(`hl7v2-name-use`, `hl7v2-address-use`, `hl7v2-address-type`, `hl7v2-telecom-system`, `hl7v2-telecom-use`), named on
each function (`reads_tables`) so that a mapping using one freezes those tables with its version.
"""

from __future__ import annotations

from collections.abc import Callable

from jinja2 import Undefined, pass_environment
from jinja2.utils import url_quote

from mappings.engine.errors import ErrorCode, MappingError
from mappings.engine.hl7v2 import Field, _Node

from .codes import translate_code, v2_system
from .dates import fhir_datetime
from .values import to_integer

V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"


def reads_tables(*names: str) -> Callable:
    """Name the lookup tables a filter reads, for the references of the templates that call it (engine/references)."""

    def mark(function: Callable) -> Callable:
        function.reads_tables = names
        return function

    return mark


def _parts(value: object, name: str, kind: str) -> Callable[[int], _Node] | None:
    """`part(n)`, reading part n of the HL7 v2 node a filter was given as `node[n]` does (a field through its first
    repetition, taken once here), or None when it was given nothing (an empty field, none, undefined). These filters
    read a few dozen parts per segment: one call each instead of `node[n]`'s two or three."""
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


def _text(value: object) -> str:
    """A value as `"{{ value }}"` prints it inside a JSON string: nothing for none or undefined."""
    if type(value) is str:
        return value
    if value is None or isinstance(value, Undefined):
        return ""
    if type(value) is bool:
        return "true" if value else "false"
    return str(value)


def _put(into: dict, key: str, text: str) -> None:
    """Keep a text unless it is empty or only whitespace (what post-processing prunes)."""
    if text and not text.isspace():
        into[key] = text


def _texts(*values: object) -> list[str]:
    return [text for text in map(_text, values) if text and not text.isspace()]


def _period(env, start: object, end: object) -> dict | None:
    period: dict = {}
    _put(period, "start", _text(fhir_datetime(env, start)))
    _put(period, "end", _text(fhir_datetime(env, end)))
    return period or None


def _translated(env, node: _Node, table: str) -> str | None:
    return translate_code(env, node, table) if node else None


def _type_coding(code: str) -> dict:
    coding = {"system": V2_0203}
    _put(coding, "code", code)
    return {"coding": [coding]}


def system_from_hd(namespace: object, universal_id: object = None, universal_id_type: object = None) -> str | None:
    """HD parts (namespace, universal id, its type) → a system URI, `cx[4][1] | system_from_hd(cx[4][2], cx[4][3])`:
    ISO (or a bare OID) → urn:oid:, UUID → urn:uuid:, a URI as it is; only a namespace → its HL7 table 0396 URI
    (`v2_system`: NPI → us-npi), else urn:id:… (the assigning authority's name, percent-encoded: a FHIR uri has no
    spaces). Nothing when all are empty."""
    uid = _text(universal_id or "").strip()
    if uid and (_text(universal_id_type) == "ISO" or uid.replace(".", "").isdigit()):
        return f"urn:oid:{uid}"
    if uid and _text(universal_id_type) == "UUID":
        return f"urn:uuid:{uid.lower()}"
    if uid and ":" in uid and " " not in uid:
        return uid
    if namespace or uid:
        name = _text(namespace or uid).strip()
        return v2_system(name) or f"urn:id:{url_quote(name)}"
    return None


@pass_environment
def identifier_from_cx(env, cx: object, use: object = None, type_code: object = None) -> dict | None:
    """CX → Identifier: value CX-1, system from the assigning authority CX-4 (HD), type from CX-5 (v2-0203), else
    `type_code`, period CX-7/CX-8; `use` as given. Nothing when CX-1 is empty: `{{ cx | identifier_from_cx }}`,
    `{{ pv1[19] | identifier_from_cx(type_code="VN") }}`."""
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
        if system and not system.isspace():
            result["system"] = system
    if part(7) or part(8):
        period = _period(env, part(7), part(8))
        if period:
            result["period"] = period
    return result


@pass_environment
def identifier_from_ei(env, ei: object, type_code: object = None, use: object = None) -> dict | None:
    """EI → Identifier: value EI-1, system from EI-2..4 (namespace, universal id and its type), type `type_code`
    (placer and filler numbers: "PLAC", "FILL"). Nothing when EI-1 is empty:
    `{{ obr[2] | identifier_from_ei("PLAC") }}`."""
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
        if system and not system.isspace():
            result["system"] = system
    return result


@pass_environment
def identifier_from_xcn(env, xcn: object) -> dict | None:
    """XCN → Identifier: id XCN-1, system from the assigning authority XCN-9, type XCN-13 (v2-0203). Nothing when
    XCN-1 is empty."""
    part = _parts(xcn, "identifier_from_xcn", "XCN")
    if part is None or not part(1):
        return None
    result: dict = {}
    _put(result, "value", _text(part(1)))
    authority = part(9)
    if authority:
        system = system_from_hd(authority[1], authority[2], authority[3])
        if system and not system.isspace():
            result["system"] = system
    if part(13):
        result["type"] = _type_coding(_text(part(13)).strip())
    return result


@pass_environment
@reads_tables("hl7v2-name-use")
def human_name_from_xpn(env, xpn: object, use: object = None) -> dict | None:
    """XPN → HumanName: family XPN-1.1, given XPN-2/3, prefix XPN-5, suffix XPN-4/6/14, use from XPN-7 through the
    `hl7v2-name-use` table (else `use`: what the field implies, e.g. "old" for a previous name), period XPN-12/13
    (else the XPN-10 range). Nothing without family or given: `{{ xpn | human_name_from_xpn }}`."""
    part = _parts(xpn, "human_name_from_xpn", "XPN")
    if part is None or not (part(1) or part(2)):
        return None
    result = _human_name(env, part, use, family=1, given=(2, 3), prefix=5, suffix=(4, 6, 14), use_code=7)
    if part(10) or part(12) or part(13):
        period = _period(env, part(12) or part(10)[1], part(13) or part(10)[2])
        if period:
            result["period"] = period
    return result


@pass_environment
@reads_tables("hl7v2-name-use")
def human_name_from_xcn(env, xcn: object, use: object = None) -> dict | None:
    """XCN → HumanName: family XCN-2, given XCN-3/4, suffix XCN-5/7/21, prefix XCN-6, use from XCN-10 through the
    `hl7v2-name-use` table, else `use`. Nothing without family or given."""
    part = _parts(xcn, "human_name_from_xcn", "XCN")
    if part is None or not (part(2) or part(3)):
        return None
    return _human_name(env, part, use, family=2, given=(3, 4), prefix=6, suffix=(5, 7, 21), use_code=10)


def _human_name(
    env, part, use: object, *, family: int, given: tuple, prefix: int, suffix: tuple, use_code: int
) -> dict:
    """The HumanName parts XPN and XCN share, at their own positions (XCN's are XPN's shifted past the id)."""
    result: dict = {}
    _put(result, "use", _text(_translated(env, part(use_code), "hl7v2-name-use") or use))
    _put(result, "family", _text(part(family)[1]))
    _list(result, "given", _texts(*map(part, given)))
    _list(result, "prefix", _texts(part(prefix)))
    _list(result, "suffix", _texts(*map(part, suffix)))
    return result


def _list(into: dict, key: str, items: list) -> None:
    if items:
        into[key] = items


@pass_environment
@reads_tables("hl7v2-address-use", "hl7v2-address-type")
def address_from_xad(env, xad: object, use: object = None) -> dict | None:
    """XAD → Address: use and type from XAD-7 through the `hl7v2-address-use` / `hl7v2-address-type` tables (M
    mailing → type postal), else `use`; line from XAD-1 (street, street name and dwelling number joined) and XAD-2;
    city, state, zip, country XAD-3..6; district XAD-9; period XAD-13/14 (else the XAD-12 range). Nothing without
    street, city, state, zip or country: `{{ xad | address_from_xad }}`."""
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
    """XTN-1, else XTN-12 (unformatted), else `+country (area) local ext. extension` from XTN-5..8."""
    number = part(1) or part(12)
    if number:
        return number
    country, area, extension = part(5), part(6), part(8)
    return (
        (f"+{country} " if country else "")
        + (f"({area}) " if area else "")
        + _text(part(7))
        + (f" ext. {extension}" if extension else "")
    )


@pass_environment
@reads_tables("hl7v2-telecom-system", "hl7v2-telecom-use")
def telecom_from_xtn(env, xtn: object, use: object = None) -> dict | None:
    """XTN → ContactPoint: system from XTN-3 through the `hl7v2-telecom-system` table (when XTN-3 is empty: email if
    XTN-2 is NET or only XTN-4 is given, else phone); value XTN-1, else XTN-12, else +5 (6) 7 ext. 8 (email: XTN-4
    first); use mobile for XTN-3 CP, else XTN-2 through `hl7v2-telecom-use`, else `use` (what the field implies:
    PID-13 home, PID-14 work); rank XTN-18; period XTN-13/14. Nothing without a value:
    `{{ xtn | telecom_from_xtn("home") }}`."""
    part = _parts(xtn, "telecom_from_xtn", "XTN")
    if part is None:
        return None
    number = _phone_number(part)
    system = _translated(env, part(3), "hl7v2-telecom-system") or (
        "email" if part(2) == "NET" or (part(4) and not number) else "phone"
    )
    value = (part(4) or number) if system == "email" else number
    if not value:
        return None
    result: dict = {}
    _put(result, "system", _text(system))
    _put(result, "value", _text(value).strip())
    wanted = "mobile" if part(3) == "CP" else (_translated(env, part(2), "hl7v2-telecom-use") or use)
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
    """CWE-3 (or -6) through HL7 table 0396 (`v2_system`), else the default; an empty name prints as nothing."""
    return (v2_system(name) if name else None) or default


@pass_environment
def coding_from_cwe(env, cwe: object, default_system: object = None) -> dict | None:
    """The first triplet of a CE/CWE/CNE → Coding: code CWE-1, display CWE-2, system CWE-3 through HL7 table 0396
    (`v2_system`), else `default_system` (a URI, e.g. `"0007" | v2_table` for an IS field), version CWE-7. Nothing
    when CWE-1 is empty."""
    part = _parts(cwe, "coding_from_cwe", "CWE")
    if part is None or not part(1):
        return None
    return _coding(part(1), part(2), _system_of(part(3), default_system), part(7)) or None


@pass_environment
def codeable_concept_from_cwe(env, cwe: object, text: object = None, default_system: object = None) -> dict | None:
    """CE/CWE/CNE → CodeableConcept with both triplets as codings (1-3 with version 7, 4-6 with version 8), systems
    through HL7 table 0396 (`default_system`, a URI, when CWE-3 is empty: IS fields and legacy coding-method
    fields); text `text`, else the original text CWE-9, else the display CWE-2 / CWE-5. Nothing without a code or a
    text: `{{ cwe | codeable_concept_from_cwe }}`, `{{ dg1[3] | codeable_concept_from_cwe(text=dg1[4]) }}`."""
    part = _parts(cwe, "codeable_concept_from_cwe", "CWE")
    if part is None:
        if not text:
            return None
        label = _text(text)
        return {"text": label} if label and not label.isspace() else None
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
