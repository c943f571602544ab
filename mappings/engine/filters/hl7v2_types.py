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
from functools import lru_cache

from jinja2 import Undefined, pass_environment
from jinja2.utils import url_quote

from mappings.engine.errors import ErrorCode, MappingError
from mappings.engine.hl7v2 import Component, Field, Repetition, SubComponent
from mappings.engine.hl7v2_text import _COMP, _REP, _SUB, RawValue, _decode, read_value

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


def _read(value: object, name: str, kind: str) -> RawValue | None:
    """The parts of the HL7 v2 node a filter was given, read from its raw text as `node[n]` reads them (a field
    through its first repetition), or None when it was given nothing (an empty field, none, undefined). These filters
    read a few dozen parts per segment: splitting the text once is cheaper than building a node per part."""
    kind_of = type(value)
    if kind_of is Field:
        if not value:
            return None
        raw, enc = value._raw, value._enc
        i = raw.find(enc[_REP])
        return read_value(raw if i < 0 else raw[:i], enc, _COMP)
    if kind_of is Repetition:
        return read_value(value._raw, value._enc, _COMP) if value else None
    if kind_of is Component or kind_of is SubComponent:
        return read_value(value._raw, value._enc, _SUB) if value else None
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


def _kept(texts) -> list[str]:
    """The texts that are neither empty nor only whitespace."""
    return [text for text in texts if text and not text.isspace()]


def _period(env, start: object, end: object) -> dict | None:
    period: dict = {}
    _put(period, "start", _text(fhir_datetime(env, start)))
    _put(period, "end", _text(fhir_datetime(env, end)))
    return period or None


def _translated(env, texts: list[str], has: list, n: int, table: str) -> str | None:
    """Part n (of `RawValue.parts`) through a lookup table, nothing when the part is empty."""
    return translate_code(env, texts[n], table) if has[n] else None


def _type_coding(code: str) -> dict:
    coding = {"system": V2_0203}
    _put(coding, "code", code)
    return {"coding": [coding]}


def system_from_hd(namespace: object, universal_id: object = None, universal_id_type: object = None) -> str | None:
    """HD parts (namespace, universal id, its type) → a system URI, `cx[4][1] | system_from_hd(cx[4][2], cx[4][3])`:
    ISO (or a bare OID) → urn:oid:, UUID → urn:uuid:, a URI as it is; only a namespace → its HL7 table 0396 URI
    (`v2_system`: NPI → us-npi), else urn:id:… (the assigning authority's name, percent-encoded: a FHIR uri has no
    spaces). Nothing when all are empty."""
    name = _text(namespace) if namespace else None
    return _hd_system(name, _text(universal_id or "").strip(), _text(universal_id_type))


@lru_cache(maxsize=1024)
def _hd_system(namespace: str | None, uid: str, uid_type: str) -> str | None:
    """system_from_hd on texts; `namespace` is None when the namespace part is empty (its text may be empty while the
    part is not: an escape sequence that prints nothing). Cached: a sender names the same few assigning authorities
    in every message, and the answer depends on these texts alone."""
    if uid and (uid_type == "ISO" or uid.replace(".", "").isdigit()):
        return f"urn:oid:{uid}"
    if uid and uid_type == "UUID":
        return f"urn:uuid:{uid.lower()}"
    if uid and ":" in uid and " " not in uid:
        return uid
    if namespace is not None or uid:
        name = (uid if namespace is None else namespace).strip()
        return v2_system(name) or f"urn:id:{url_quote(name)}"
    return None


def _hd_system_at(value: RawValue, n: int) -> str | None:
    """The system of the HD in part n (its sub-components: namespace, universal id, its type), split once."""
    namespace, uid, uid_type = value.sub_texts(n, 3)
    return _hd_system(namespace, (uid or "").strip(), uid_type or "")


def _put_system(into: dict, system: str | None) -> None:
    if system and not system.isspace():
        into["system"] = system


@pass_environment
def identifier_from_cx(env, cx: object, use: object = None, type_code: object = None) -> dict | None:
    """CX → Identifier: value CX-1, system from the assigning authority CX-4 (HD), type from CX-5 (v2-0203), else
    `type_code`, period CX-7/CX-8; `use` as given. Nothing when CX-1 is empty: `{{ cx | identifier_from_cx }}`,
    `{{ pv1[19] | identifier_from_cx(type_code="VN") }}`."""
    value = _read(cx, "identifier_from_cx", "CX")
    if value is None:
        return None
    texts, has = value.parts(8)
    if not has[1]:
        return None
    result: dict = {}
    _put(result, "use", _text(use))
    _put(result, "value", texts[1])
    if has[5]:
        result["type"] = _type_coding(texts[5].strip())
    elif type_code:
        result["type"] = _type_coding(_text(type_code).strip())
    if has[4]:
        _put_system(result, _hd_system_at(value, 4))
    if has[7] or has[8]:
        period = _period(env, texts[7], texts[8])
        if period:
            result["period"] = period
    return result


@pass_environment
def identifier_from_ei(env, ei: object, type_code: object = None, use: object = None) -> dict | None:
    """EI → Identifier: value EI-1, system from EI-2..4 (namespace, universal id and its type), type `type_code`
    (placer and filler numbers: "PLAC", "FILL"). Nothing when EI-1 is empty:
    `{{ obr[2] | identifier_from_ei("PLAC") }}`."""
    value = _read(ei, "identifier_from_ei", "EI")
    if value is None:
        return None
    texts, has = value.parts(4)
    if not has[1]:
        return None
    result: dict = {}
    _put(result, "use", _text(use))
    _put(result, "value", texts[1])
    if type_code:
        result["type"] = _type_coding(_text(type_code))
    if has[2] or has[3]:
        _put_system(result, _hd_system(texts[2] if has[2] else None, texts[3].strip(), texts[4]))
    return result


@pass_environment
def identifier_from_xcn(env, xcn: object) -> dict | None:
    """XCN → Identifier: id XCN-1, system from the assigning authority XCN-9, type XCN-13 (v2-0203). Nothing when
    XCN-1 is empty."""
    value = _read(xcn, "identifier_from_xcn", "XCN")
    if value is None:
        return None
    texts, has = value.parts(13)
    if not has[1]:
        return None
    result: dict = {}
    _put(result, "value", texts[1])
    if has[9]:
        _put_system(result, _hd_system_at(value, 9))
    if has[13]:
        result["type"] = _type_coding(texts[13].strip())
    return result


@pass_environment
@reads_tables("hl7v2-name-use")
def human_name_from_xpn(env, xpn: object, use: object = None) -> dict | None:
    """XPN → HumanName: family XPN-1.1, given XPN-2/3, prefix XPN-5, suffix XPN-4/6/14, use from XPN-7 through the
    `hl7v2-name-use` table (else `use`: what the field implies, e.g. "old" for a previous name), period XPN-12/13
    (else the XPN-10 range). Nothing without family or given: `{{ xpn | human_name_from_xpn }}`."""
    value = _read(xpn, "human_name_from_xpn", "XPN")
    if value is None:
        return None
    texts, has = value.parts(14)
    if not (has[1] or has[2]):
        return None
    result = _human_name(env, value, texts, has, use, family=1, given=(2, 3), prefix=5, suffix=(4, 6, 14), use_code=7)
    if has[10] or has[12] or has[13]:
        start = texts[12] if has[12] else value.sub(10, 1)  # else the XPN-10 range (DR)
        period = _period(env, start, texts[13] if has[13] else value.sub(10, 2))
        if period:
            result["period"] = period
    return result


@pass_environment
@reads_tables("hl7v2-name-use")
def human_name_from_xcn(env, xcn: object, use: object = None) -> dict | None:
    """XCN → HumanName: family XCN-2, given XCN-3/4, suffix XCN-5/7/21, prefix XCN-6, use from XCN-10 through the
    `hl7v2-name-use` table, else `use`. Nothing without family or given."""
    value = _read(xcn, "human_name_from_xcn", "XCN")
    if value is None:
        return None
    texts, has = value.parts(21)
    if not (has[2] or has[3]):
        return None
    return _human_name(env, value, texts, has, use, family=2, given=(3, 4), prefix=6, suffix=(5, 7, 21), use_code=10)


def _human_name(
    env,
    value: RawValue,
    texts: list[str],
    has: list,
    use: object,
    *,
    family: int,
    given: tuple,
    prefix: int,
    suffix: tuple,
    use_code: int,
) -> dict:
    """The HumanName parts XPN and XCN share, at their own positions (XCN's are XPN's shifted past the id); `texts`
    and `has` are the value's parts."""
    result: dict = {}
    _put(result, "use", _text(_translated(env, texts, has, use_code, "hl7v2-name-use") or use))
    _put(result, "family", value.sub(family, 1) if has[family] else "")
    _list(result, "given", _kept([texts[n] for n in given]))
    _list(result, "prefix", _kept([texts[prefix]]))
    _list(result, "suffix", _kept([texts[n] for n in suffix]))
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
    value = _read(xad, "address_from_xad", "XAD")
    if value is None:
        return None
    texts, has = value.parts(14)
    if not (has[1] or has[3] or has[4] or has[5] or has[6]):
        return None
    result: dict = {}
    _put(result, "use", _text(_translated(env, texts, has, 7, "hl7v2-address-use") or use))
    _put(result, "type", _text(_translated(env, texts, has, 7, "hl7v2-address-type")))
    if value.has_sub(1, 2) or value.has_sub(1, 3):  # SAD: street, street name, dwelling number
        first_line = " ".join(_decode(part, value._enc) for part in value.subs(1) if part and part != '""')
    else:
        first_line = texts[1]
    _list(result, "line", _kept([first_line, texts[2]]))
    _put(result, "city", texts[3])
    if has[9]:
        _put(result, "district", value.sub(9, 1) if value.has_sub(9, 1) else value.sub(9, 2))
    _put(result, "state", texts[4])
    _put(result, "postalCode", texts[5])
    _put(result, "country", texts[6])
    if has[12] or has[13] or has[14]:
        start = texts[13] if has[13] else value.sub(12, 1)  # else the XAD-12 range (DR)
        period = _period(env, start, texts[14] if has[14] else value.sub(12, 2))
        if period:
            result["period"] = period
    return result


def display_from_pl(pl: object) -> str | None:
    """PL → the place as display text: the location description PL-9, else the point of care, room, bed, building,
    floor and facility (PL-1, 2, 3, 7, 8, 4.1) that hold something, joined with ", ". Nothing for an empty PL:
    `"location": {"display": {{ pv1[3] | display_from_pl | tojson }}}`."""
    value = _read(pl, "display_from_pl", "PL")
    if value is None:
        return None
    texts, has = value.parts(9)
    if has[9]:
        return texts[9]
    shown = [texts[n] for n in (1, 2, 3, 7, 8) if has[n]]
    if value.has_sub(4, 1):
        shown.append(value.sub(4, 1))
    return ", ".join(shown)


def text_from_cwes(field: object) -> str:
    """A repeating CE/CWE field → one text: the display CWE-2 of every repetition that has one, joined with ", ", else
    their codes CWE-1 so joined ("" when there is neither). The required text of the US Core race and ethnicity
    extensions: `"valueString": {{ pid[10] | text_from_cwes | tojson }}`."""
    if type(field) is Field:
        enc = field._enc
        reps = [read_value(raw, enc, _COMP) for raw in field._raw.split(enc[_REP])] if field._raw else []
    else:
        value = _read(field, "text_from_cwes", "CWE field")
        reps = [value] if value is not None else []
    for n in (2, 1):
        text = ", ".join([rep.text(n) for rep in reps if rep.has(n)])
        if text:
            return text
    return ""


def _phone_number(texts: list[str], has: list) -> tuple[bool, str]:
    """XTN-1, else XTN-12 (unformatted), else `+country (area) local ext. extension` from XTN-5..8; and whether it
    holds anything (a part can hold an escape sequence that prints nothing). `texts` and `has` are the XTN's parts."""
    for n in (1, 12):
        if has[n]:
            return True, texts[n]
    number = (
        (f"+{texts[5]} " if has[5] else "")
        + (f"({texts[6]}) " if has[6] else "")
        + texts[7]
        + (f" ext. {texts[8]}" if has[8] else "")
    )
    return bool(number), number


@pass_environment
@reads_tables("hl7v2-telecom-system", "hl7v2-telecom-use")
def telecom_from_xtn(env, xtn: object, use: object = None) -> dict | None:
    """XTN → ContactPoint: system from XTN-3 through the `hl7v2-telecom-system` table (when XTN-3 is empty: email if
    XTN-2 is NET or only XTN-4 is given, else phone); value XTN-1, else XTN-12, else +5 (6) 7 ext. 8 (email: XTN-4
    first); use mobile for XTN-3 CP, else XTN-2 through `hl7v2-telecom-use`, else `use` (what the field implies:
    PID-13 home, PID-14 work); rank XTN-18; period XTN-13/14. Nothing without a value:
    `{{ xtn | telecom_from_xtn("home") }}`."""
    value = _read(xtn, "telecom_from_xtn", "XTN")
    if value is None:
        return None
    texts, has = value.parts(18)
    has_number, number = _phone_number(texts, has)
    system = _translated(env, texts, has, 3, "hl7v2-telecom-system") or (
        "email" if texts[2] == "NET" or (has[4] and not has_number) else "phone"
    )
    if system == "email" and has[4]:
        has_number, number = True, texts[4]
    if not has_number:
        return None
    result: dict = {}
    _put(result, "system", _text(system))
    _put(result, "value", number.strip())
    wanted = "mobile" if texts[3] == "CP" else (_translated(env, texts, has, 2, "hl7v2-telecom-use") or use)
    _put(result, "use", _text(wanted))
    if has[18]:
        rank = to_integer(texts[18])
        if rank and rank > 0:
            result["rank"] = rank
    if has[13] or has[14]:
        period = _period(env, texts[13], texts[14])
        if period:
            result["period"] = period
    return result


def _coding(texts: list[str], code: int, system: object, version: int) -> dict:
    """The Coding of one CWE triplet (`texts`: the CWE's parts): code at `code`, display right after it, version at
    `version`."""
    coding: dict = {}
    _put(coding, "system", _text(system))
    _put(coding, "version", texts[version])
    _put(coding, "code", texts[code].strip())
    _put(coding, "display", texts[code + 1])
    return coding


def _system_of(texts: list[str], has: list, n: int, default: object = None) -> object:
    """CWE-3 (or -6) through HL7 table 0396 (`v2_system`), else the default; an empty name prints as nothing."""
    return (v2_system(texts[n]) if has[n] else None) or default


@pass_environment
def coding_from_cwe(env, cwe: object, default_system: object = None) -> dict | None:
    """The first triplet of a CE/CWE/CNE → Coding: code CWE-1, display CWE-2, system CWE-3 through HL7 table 0396
    (`v2_system`), else `default_system` (a URI, e.g. `"0007" | v2_table` for an IS field), version CWE-7. Nothing
    when CWE-1 is empty."""
    value = _read(cwe, "coding_from_cwe", "CWE")
    if value is None:
        return None
    texts, has = value.parts(7)
    if not has[1]:
        return None
    return _coding(texts, 1, _system_of(texts, has, 3, default_system), 7) or None


@pass_environment
def codeable_concept_from_cwe(env, cwe: object, text: object = None, default_system: object = None) -> dict | None:
    """CE/CWE/CNE → CodeableConcept with both triplets as codings (1-3 with version 7, 4-6 with version 8), systems
    through HL7 table 0396 (`default_system`, a URI, when CWE-3 is empty: IS fields and legacy coding-method
    fields); text `text`, else the original text CWE-9, else the display CWE-2 / CWE-5. Nothing without a code or a
    text: `{{ cwe | codeable_concept_from_cwe }}`, `{{ dg1[3] | codeable_concept_from_cwe(text=dg1[4]) }}`."""
    value = _read(cwe, "codeable_concept_from_cwe", "CWE")
    if value is None:
        if not text:
            return None
        label = _text(text)
        return {"text": label} if label and not label.isspace() else None
    texts, has = value.parts(9)
    if not (has[1] or has[2] or has[4] or has[5] or has[9] or text):
        return None
    codings = []
    if has[1]:
        codings.append(_coding(texts, 1, _system_of(texts, has, 3, default_system), 7))
    if has[4]:
        codings.append(_coding(texts, 4, _system_of(texts, has, 6), 8))
    result: dict = {}
    _list(result, "coding", [coding for coding in codings if coding])
    if text:
        _put(result, "text", _text(text))
    else:
        _put(result, "text", texts[9] if has[9] else texts[2] if has[2] else texts[5])
    return result or None
