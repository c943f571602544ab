"""C-CDA (HL7 v3) data types → FHIR data types, as filters: `{{ ii | identifier_from_ii }}`,
`{{ cd | concept_from_cd }}`, `{{ pn | human_name_from_pn }}`, `{{ ad | address_from_ad }}`,
`{{ tel | contact_point_from_tel }}`, `{{ ts | period_from_ivl_ts }}`, `{{ pq | quantity_from_pq }}`.

Each takes an element of the parsed document (`doc.recordTarget.patientRole.id`, a node of `entry.all("id")`) and
gives one FHIR value as a dict, or nothing when the element is missing or carries only a nullFlavor ("no value" in
CDA); printed, a dict is JSON and nothing is nothing, so `"code": {{ obs.code | concept_from_cd }},` and
`[{% for ii in act.all("id") %}{{ ii | identifier_from_ii }},{% endfor %}]` need no `tojson` (a member or an item
that printed nothing is dropped by post-processing).

They give what the macros of `snippets/ccda/datatypes.j2` gave (those macros now call them), written in Python
because a C-CDA document reads these types on every entry: as macros they were about half of a CCD's render time.
Empty texts are left out, as post-processing would prune them. Code systems go through the mapping's
`ccda-code-systems` table first (OIDs the engine does not know), then `oid_uri`; `use` codes through `ccda-name-use`,
`ccda-address-use`, `ccda-telecom-use`, and URL schemes through `ccda-telecom-system`, each named on its function
(`reads_tables`) so that a mapping using one freezes those tables with its version.
"""

from __future__ import annotations

from jinja2 import Undefined, pass_environment
from markupsafe import Markup

from mappings.engine.errors import ErrorCode, MappingError
from mappings.engine.missing import note_missing_xml
from mappings.engine.xmlsource import _EMPTY, XmlNode, _attribute
from mappings.engine.xmltree import children_by_name

from .codes import oid_uri, translate_code
from .dates import fhir_datetime
from .hl7v2_types import _text, reads_tables  # _text: a value as `{{ value }}` prints it
from .values import coding, identifier, quantity, to_boolean, to_integer, tojson

# The CodeableConcept for "we were told nothing", for elements FHIR requires (concept_from_cd's `required`).
DATA_ABSENT_CONCEPT = {
    "coding": [
        {"system": "http://terminology.hl7.org/CodeSystem/data-absent-reason", "code": "unknown", "display": "Unknown"}
    ]
}


def _node(value: object, name: str, kind: str) -> XmlNode:
    """The element a filter was given; the empty element for nothing (a missing variable, none, "")."""
    if isinstance(value, XmlNode):
        return value
    if value is None or isinstance(value, Undefined) or value == "":
        return _EMPTY
    raise MappingError(
        ErrorCode.RND_FILTER_INPUT,
        f"{name} reads a C-CDA {kind} element (e.g. entry.act.code), not a {type(value).__name__}.",
    )


class _Parts:
    """One element's children grouped by name, read in one pass: `parts[name]` and `parts.all(name)` give what
    `node[name]` and `node.all(name)` give for an unprefixed name. A PN or AD is read by eight names or so, and
    each of those reads would build lxml's tag filter again (most of a lookup's cost)."""

    __slots__ = ("_el", "_groups")

    def __init__(self, node: XmlNode) -> None:
        el = self._el = node._el
        self._groups = children_by_name(el) if el is not None and len(el) else {}

    def __getitem__(self, name: str) -> XmlNode | str:
        found = self._groups.get(name)
        if found:
            return XmlNode(found[0])
        el = self._el
        if el is None:
            return _EMPTY
        value = _attribute(el, name)
        if value is None:
            note_missing_xml(el, name)  # as node[name] does: a misspelt name still warns
            return _EMPTY
        return value

    def all(self, name: str) -> list[XmlNode]:
        return [XmlNode(child) for child in self._groups.get(name, ())]

    def count(self) -> int:
        return sum(map(len, self._groups.values()))


def _put(into: dict, key: str, value: object) -> None:
    """Keep a value unless post-processing would prune it (nothing, an empty or whitespace-only text)."""
    if value is not None and (type(value) is not str or (value and not value.isspace())):
        into[key] = value


def _texts(nodes: list) -> list[str]:
    return [text for text in map(_text, nodes) if text and not text.isspace()]


def _first_word(code: object) -> str:
    # @use may list several codes ("L SRCH", "HP WP"): the first one counts.
    text = _text(code)
    return text.split()[0] if " " in text else text


@reads_tables("ccda-code-systems")
@pass_environment
def system_from_oid(env, oid: object) -> str:
    """A C-CDA codeSystem OID → its FHIR system URI: the `ccda-code-systems` table first (OIDs the engine does not
    know), then `oid_uri` (`2.16.840.1.113883.6.1` → `http://loinc.org`, else `urn:oid:…`); "" for none."""
    return translate_code(env, oid, "ccda-code-systems") or oid_uri(oid) or ""


@pass_environment
def identifier_from_ii(env, ii: object, use: object = None) -> dict | None:
    """II → Identifier. With an extension, the root names the namespace (an OID, or a UUID); without one, the root
    is the identifier itself, written as a URI (FHIR's urn:ietf:rfc:3986 system). Nothing for a nullFlavor or an
    II without root and extension: `{{ ii | identifier_from_ii }}`."""
    node = _node(ii, "identifier_from_ii", "II")
    root = _text(node["root"]).strip()
    extension = _text(node["extension"]).strip()
    if node["nullFlavor"] or not (root or extension):
        return None
    is_uuid = len(root) == 36 and root[8] == "-"
    if extension:
        return identifier(env, extension, f"urn:uuid:{root}" if is_uuid else oid_uri(root), None, use)
    return identifier(env, ("urn:uuid:" if is_uuid else "urn:oid:") + root, "urn:ietf:rfc:3986", None, use)


@reads_tables("ccda-code-systems")
@pass_environment
def coding_from_cd(env, cd: object) -> dict | None:
    """CD → one Coding (valueCoding and the like): code, system (`system_from_oid`), display. Nothing without a
    code."""
    node = _node(cd, "coding_from_cd", "CD")
    return coding(env, node["code"], system_from_oid(env, node["codeSystem"]), node["displayName"])


@reads_tables("ccda-code-systems")
@pass_environment
def concept_from_cd(env, cd: object, fallback_text: object = None, required: object = False) -> dict | None:
    """CD/CE/CV/CO → CodeableConcept: the code itself and every translation as codings (a nullFlavor code or
    translation has no @code and gives no coding); text from originalText, else the display name, else
    `fallback_text` (e.g. the name of the material a code stands for). Nothing without a code or a text; with
    `required` (Observation.code, Immunization.vaccineCode…), the data-absent-reason code "unknown" instead:
    `{{ obs.code | concept_from_cd(required=True) }}`."""
    node = _node(cd, "concept_from_cd", "CD")
    parts = _Parts(node)
    code = parts["code"]
    display = parts["displayName"]
    translations = [item for item in parts.all("translation") if item["code"]] if parts["translation"] else []
    label = _text(parts["originalText"]) or _text(display).strip() or _text(fallback_text or "")
    if not (code or translations or label):
        return DATA_ABSENT_CONCEPT if required else None
    codings = []
    if code:
        codings.append(coding(env, code, system_from_oid(env, parts["codeSystem"]), display))
    for item in translations:
        codings.append(coding(env, item["code"], system_from_oid(env, item["codeSystem"]), item["displayName"]))
    result: dict = {}
    codings = [one for one in codings if one]
    if codings:
        result["coding"] = codings
    _put(result, "text", label)
    return result or None


@reads_tables("ccda-name-use")
@pass_environment
def human_name_from_pn(env, pn: object) -> dict | None:
    """PN → HumanName: use (the first @use code through `ccda-name-use`), family (several <family> parts, two
    surnames, are one FHIR family), given, prefix, suffix; a name written as plain text (no parts) becomes
    HumanName.text. Nothing for a missing name or a nullFlavor."""
    node = _node(pn, "human_name_from_pn", "PN")
    parts = _Parts(node)
    if not node or parts["nullFlavor"]:
        return None
    result: dict = {}
    _put(result, "use", translate_code(env, _first_word(parts["use"]), "ccda-name-use"))
    _put(result, "family", " ".join(_texts([_text(part).strip() for part in parts.all("family")])))
    for key in ("given", "prefix", "suffix"):
        texts = _texts(parts.all(key))
        if texts:
            result[key] = texts
    if not parts.count():
        _put(result, "text", _text(node))
    return result or None


@reads_tables("ccda-address-use")
@pass_environment
def address_from_ad(env, ad: object) -> dict | None:
    """AD → Address: use (the first @use code through `ccda-address-use`), line (each streetAddressLine), city,
    district (county), state, postalCode, country; an address written as plain text becomes Address.text. Nothing
    for a missing address or a nullFlavor."""
    node = _node(ad, "address_from_ad", "AD")
    parts = _Parts(node)
    if not node or parts["nullFlavor"]:
        return None
    result: dict = {}
    _put(result, "use", translate_code(env, _first_word(parts["use"]), "ccda-address-use"))
    lines = _texts(parts.all("streetAddressLine"))
    if lines:
        result["line"] = lines
    for key, name in (("city", "city"), ("district", "county"), ("state", "state"), ("postalCode", "postalCode")):
        _put(result, key, _text(parts[name]))
    _put(result, "country", _text(parts["country"]))
    if not parts.count():
        _put(result, "text", _text(node))
    return result or None


@reads_tables("ccda-telecom-system", "ccda-telecom-use")
@pass_environment
def contact_point_from_tel(env, tel: object) -> dict | None:
    """TEL → ContactPoint. The URL scheme gives the system (through `ccda-telecom-system`) and is stripped from the
    value ("tel: +1(555)555-1004" → phone "+1(555)555-1004", "mailto://a@b" → email "a@b"); web addresses keep
    theirs; no scheme means a phone; use is the first @use code through `ccda-telecom-use`. Nothing without a
    value or with a nullFlavor."""
    node = _node(tel, "contact_point_from_tel", "TEL")
    raw = _text(node["value"]).strip()
    if not raw or node["nullFlavor"]:
        return None
    scheme, _, rest = raw.partition(":") if ":" in raw else ("", "", raw)
    system = translate_code(env, scheme, "ccda-telecom-system") if scheme else "phone"
    value = raw if system == "url" or not system else rest.strip().lstrip("/")
    if not value:
        return None
    result: dict = {"system": system or "other"}
    _put(result, "value", value)
    _put(result, "use", translate_code(env, _first_word(node["use"]), "ccda-telecom-use"))
    return result


@pass_environment
def period_from_ivl_ts(env, ts: object) -> dict | None:
    """IVL_TS (or TS) → Period: start from low (else the point in time, else center), end from high; a point in time
    is a period that starts then. Nothing for a missing element."""
    node = _node(ts, "period_from_ivl_ts", "IVL_TS")
    if not node:
        return None
    parts = _Parts(node)
    result: dict = {}
    _put(result, "start", fhir_datetime(env, parts["low"]["value"] or parts["value"] or parts["center"]["value"]))
    _put(result, "end", fhir_datetime(env, parts["high"]["value"]))
    return result or None


@pass_environment
def quantity_from_pq(env, pq: object) -> dict | None:
    """PQ → Quantity: CDA units are UCUM by definition ("1", the unit of a count, is left out). Nothing for a PQ
    without a number (nullFlavor)."""
    node = _node(pq, "quantity_from_pq", "PQ")
    value = node["value"]
    if not value:
        return None
    unit = node["unit"]
    return quantity(env, value, "" if unit == "1" else unit)


def _member(env, name: object, suffix: str, json: str) -> Markup:
    """`"<name><suffix>": <json>,` as the macros printed it: a member of the object being written, the name as any
    printed value (JSON-escaped), Markup so that it is printed as it is."""
    return str.__new__(Markup, f'"{env.finalize(name)}{suffix}": {json},')


def _printed(env, value: object) -> str:
    """A filter's answer as `{{ value }}` prints it (a dict as JSON, nothing as nothing)."""
    return str(env.finalize(value))


@pass_environment
def choice_from_ts(env, ts: object, name: object, open_interval_as_period: object = False) -> Markup:
    """TS or IVL_TS → an effective[x]-style choice, as the member `"<name>DateTime": …,` or `"<name>Period": …,`
    (a fragment of the object being written, so the one that fits is written and no other): a point in time is a
    dateTime; an interval with an end is a Period; an interval with only a start is that start as a dateTime (when
    was it observed), or an open Period with `open_interval_as_period` (since when has it been going on: a medication
    still taken). Nothing for a missing element: `{{ obs.effectiveTime | choice_from_ts("effective") }}`.
    The macro `dt.choice_from_ts(name, ts)` of `snippets/ccda/datatypes.j2`, in Python: most entries have one."""
    node = _node(ts, "choice_from_ts", "IVL_TS")
    point = node["value"]
    if point:
        return _member(env, name, "DateTime", tojson(fhir_datetime(env, point)))
    if not node:
        return _NOTHING
    start = node["low"]["value"]
    end = node["high"]["value"]
    if end or (start and open_interval_as_period):
        period = f'{{"start": {tojson(fhir_datetime(env, start))}, "end": {tojson(fhir_datetime(env, end))}}}'
        return _member(env, name, "Period", period)
    if start or node["center"]["value"]:
        return _member(env, name, "DateTime", tojson(fhir_datetime(env, start or node["center"]["value"])))
    return _NOTHING


_NOTHING = str.__new__(Markup, "")
_CODED = frozenset(("CD", "CE", "CV", "CO", "CS"))
_RATIOS = frozenset(("RTO", "RTO_PQ_PQ", "RTO_INT_INT", "RTO_MO_PQ"))
_RATIO_PARTS = ("numerator", "denominator")


@pass_environment
def value_from_any(env, value: object, name: object) -> Markup:
    """A value of any CDA type (observation/value, by its xsi:type) → FHIR's value[x], as the member
    `"<name><Type>": …,` (PQ → Quantity, CD/CE/CV/CO/CS → CodeableConcept, ST/ED → String, INT → Integer, REAL →
    Quantity, BL → Boolean, TS → DateTime, IVL_PQ → Range, IVL_TS → Period, RTO… → Ratio), so the one element that
    fits is written and no other. An untyped value (not valid CDA) is typed by its attributes. Types this does not
    know, and a value with only a nullFlavor, give nothing: `{{ obs.value | value_from_any("value") }}`.
    The macro `dt.value_from_any(name, value)` of `snippets/ccda/datatypes.j2`, in Python: every observation has one."""
    node = _node(value, "value_from_any", "ANY")
    if not node:
        return _NOTHING
    kind = str(node["xsi:type"]).upper()
    if not kind:
        kind = "CD" if node["code"] else ("PQ" if node["value"] else ("ST" if str(node) else ""))
    if kind == "PQ":
        return _member(env, name, "Quantity", _printed(env, quantity_from_pq(env, node)))
    if kind in _CODED:
        return _member(env, name, "CodeableConcept", _printed(env, concept_from_cd(env, node)))
    if kind in ("ST", "ED") and node["representation"] != "B64":
        return _member(env, name, "String", tojson(node))
    if kind == "INT":
        return _member(env, name, "Integer", tojson(to_integer(node["value"])))
    if kind == "REAL":
        return _member(env, name, "Quantity", tojson(quantity(env, node["value"])))
    if kind == "BL":
        return _member(env, name, "Boolean", tojson(to_boolean(node["value"])))
    if kind == "TS":
        return _member(env, name, "DateTime", tojson(fhir_datetime(env, node["value"])))
    if kind == "IVL_PQ":
        low, high = (_printed(env, quantity_from_pq(env, node[end])) for end in ("low", "high"))
        return _member(env, name, "Range", f'{{"low": {low}, "high": {high}}}')
    if kind == "IVL_TS":
        return _member(env, name, "Period", _printed(env, period_from_ivl_ts(env, node)))
    if kind in _RATIOS:
        numerator, denominator = (_printed(env, quantity_from_pq(env, node[part])) for part in _RATIO_PARTS)
        return _member(env, name, "Ratio", f'{{"numerator": {numerator}, "denominator": {denominator}}}')
    return _NOTHING
