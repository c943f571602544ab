"""Native Python versions of the core invariants that run on most resources, each beside the exact R4 expression it
stands for (invariants.py uses a native only when the definition's expression is that text). Each function gets the
element the constraint is on and the resource (%resource) and says whether the invariant holds.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime

from .fastpath import FallbackError


def _items(value: object) -> list:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _has_value_key(node: dict, stem: str) -> bool:
    """A choice element such as value[x] is present under any of its typed keys (valueQuantity, _valueString …)."""
    size = len(stem)
    for key in node:
        if key.startswith(stem) and len(key) > size and key[size].isupper():
            return True
        if key.startswith("_" + stem) and len(key) > size + 1 and key[size + 1].isupper():
            return True
    return False


def ext_1(node: dict, resource: dict) -> bool:
    return ("extension" in node) != _has_value_key(node, "value")


def dom_2(node: dict, resource: dict) -> bool:
    return not any(isinstance(item, dict) and "contained" in item for item in _items(node.get("contained")))


def _local_references(value: object) -> Iterator[str]:
    """Every '#…' string below value: Reference.reference and canonical/uri values alike (dom-3's descendants)."""
    if isinstance(value, dict):
        for item in value.values():
            if isinstance(item, str):
                if item[:1] == "#":
                    yield item
            elif isinstance(item, dict | list):
                yield from _local_references(item)
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, str):
                if item[:1] == "#":
                    yield item
            elif isinstance(item, dict | list):
                yield from _local_references(item)


def dom_3(node: dict, resource: dict) -> bool:
    contained = _items(node.get("contained"))
    if not contained:
        return True
    references = set(_local_references(node))
    if "#" in references:  # a contained resource pointing back at its container counts for all of them
        return True
    return all(not isinstance(item, dict) or f"#{item.get('id')}" in references for item in contained)


def dom_4(node: dict, resource: dict) -> bool:
    for item in _items(node.get("contained")):
        meta = item.get("meta") if isinstance(item, dict) else None
        if isinstance(meta, dict) and ("versionId" in meta or "lastUpdated" in meta):
            return False
    return True


def dom_5(node: dict, resource: dict) -> bool:
    for item in _items(node.get("contained")):
        meta = item.get("meta") if isinstance(item, dict) else None
        if isinstance(meta, dict) and meta.get("security"):
            return False
    return True


def dom_6(node: dict, resource: dict) -> bool:
    text = node.get("text")
    return isinstance(text, dict) and "div" in text


def att_1(node: dict, resource: dict) -> bool:
    return "data" not in node or "contentType" in node


def cpt_2(node: dict, resource: dict) -> bool:
    return "value" not in node or "system" in node


def qty_3(node: dict, resource: dict) -> bool:
    return "code" not in node or "system" in node


def per_1(node: dict, resource: dict) -> bool:
    start, end = node.get("start"), node.get("end")
    if not isinstance(start, str) or not isinstance(end, str):
        return True
    zone_start, zone_end = start[19:].lstrip(".0123456789"), end[19:].lstrip(".0123456789")
    if len(start) == len(end) and (len(start) <= 10 or zone_start == zone_end):
        return start <= end  # same precision and zone: the text orders like the instant
    try:
        begins, ends = datetime.fromisoformat(start), datetime.fromisoformat(end)
        return begins <= ends if (begins.tzinfo is None) == (ends.tzinfo is None) else True
    except ValueError:
        return True  # different precisions: FHIRPath calls them incomparable (empty), which does not fail


def rng_2(node: dict, resource: dict) -> bool:
    """low <= high, for quantities of the same unit (FHIRPath cannot compare others: they hold)."""
    low, high = node.get("low"), node.get("high")
    if type(low) is not dict or type(high) is not dict:
        return True
    a, b = low.get("value"), high.get("value")
    numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (a, b))
    same_unit = (low.get("system"), low.get("code")) == (high.get("system"), high.get("code"))
    return not (numbers and same_unit) or a <= b


def obs_6(node: dict, resource: dict) -> bool:
    return "dataAbsentReason" not in node or not _has_value_key(node, "value")


def _codings(concept: object) -> list[tuple]:
    if not isinstance(concept, dict):
        return []
    return [
        tuple(sorted((k, repr(v)) for k, v in coding.items()))
        for coding in _items(concept.get("coding"))
        if isinstance(coding, dict)
    ]


def obs_7(node: dict, resource: dict) -> bool:
    components = [component for component in _items(node.get("component")) if isinstance(component, dict)]
    if not components or not _has_value_key(node, "value"):
        return True  # most Observations have no component: 4 µs of key scans and code tuples saved each
    own = set(_codings(resource.get("code")))
    if not own:
        return True
    return not any(own.intersection(_codings(component.get("code"))) for component in components)


def obs_3(node: dict, resource: dict) -> bool:
    return "low" in node or "high" in node or "text" in node


def pat_1(node: dict, resource: dict) -> bool:
    return any(key in node for key in ("name", "telecom", "address", "organization"))


def bdl_1(node: dict, resource: dict) -> bool:
    return "total" not in node or node.get("type") in ("searchset", "history")


def bdl_2(node: dict, resource: dict) -> bool:
    entries = _items(node.get("entry"))
    return node.get("type") == "searchset" or not any(isinstance(e, dict) and "search" in e for e in entries)


def bdl_3(node: dict, resource: dict) -> bool:
    wanted = resource.get("type") in ("batch", "transaction", "history")
    return all(("request" in e) == wanted for e in _items(node.get("entry")) if isinstance(e, dict))


def bdl_4(node: dict, resource: dict) -> bool:
    wanted = resource.get("type") in ("batch-response", "transaction-response", "history")
    return all(("response" in e) == wanted for e in _items(node.get("entry")) if isinstance(e, dict))


def bdl_7(node: dict, resource: dict) -> bool:
    if node.get("type") == "history":
        return True
    seen = set()
    for entry in _items(node.get("entry")):
        if not isinstance(entry, dict) or type(entry.get("fullUrl")) is not str:
            continue
        inner = entry.get("resource")
        meta = inner.get("meta") if isinstance(inner, dict) else None
        version = meta.get("versionId") if isinstance(meta, dict) else None
        version = version if type(version) is str else None
        key = (entry["fullUrl"], version)
        if key in seen:
            return False
        seen.add(key)
    return True


def bdl_9(node: dict, resource: dict) -> bool:
    if node.get("type") != "document":
        return True
    identifier = node.get("identifier")
    return isinstance(identifier, dict) and "system" in identifier and "value" in identifier


def bdl_10(node: dict, resource: dict) -> bool:
    return node.get("type") != "document" or isinstance(node.get("timestamp"), str)


def _first_type(node: dict) -> str | None:
    entries = _items(node.get("entry"))
    first = entries[0] if entries else None
    inner = first.get("resource") if isinstance(first, dict) else None
    return inner.get("resourceType") if isinstance(inner, dict) else None


def bdl_11(node: dict, resource: dict) -> bool:
    return node.get("type") != "document" or _first_type(node) == "Composition"


def bdl_12(node: dict, resource: dict) -> bool:
    return node.get("type") != "message" or _first_type(node) == "MessageHeader"


def bdl_5(node: dict, resource: dict) -> bool:
    return "resource" in node or "request" in node or "response" in node


def bdl_8(node: dict, resource: dict) -> bool:
    full_url = node.get("fullUrl")
    return not isinstance(full_url, str) or "/_history/" not in full_url


def txt_1(node: object, resource: dict) -> bool:
    """htmlChecks() (fhirpathpy has none): an XHTML div, without scripts or event handlers."""
    if not isinstance(node, str):
        return True
    lowered = node.lower()
    return lowered.lstrip().startswith("<div") and "<script" not in lowered and " onload=" not in lowered


def txt_2(node: object, resource: dict) -> bool:
    """htmlChecks(): the narrative has some non-whitespace text (not only tags)."""
    if not isinstance(node, str):
        return True
    return bool(TAG.sub("", node).strip()) or "<img" in node.lower()


TAG = re.compile(r"<[^>]*>")


def org_1(node: dict, resource: dict) -> bool:
    return bool(node.get("identifier")) or "name" in node


def no_home_use(node: dict, resource: dict) -> bool:
    """org-2 (Organization.address) and org-3 (Organization.telecom): an organization has no home address or phone."""
    return not (type(node) is dict and node.get("use") == "home")


# ait-1/2 and con-3/4/5 run on every AllergyIntolerance and Condition. Their natives evaluate exactly as fastpath.py
# does (the closures they replace, 2-7 µs each): JSON null dropped, a list flattened, every coding visited, and
# FallbackError (fhirpathpy decides) wherever fastpath would raise it, in the same order.
def _collection(value: object) -> list:
    if value is None:
        return []
    return [item for item in value if item is not None] if type(value) is list else [value]


def _equals_text(items: list, text: str) -> bool | None:
    """`items = 'text'`: None when empty; a number, boolean or list compared with text is fhirpathpy's to judge."""
    if not items:
        return None
    if len(items) != 1 or type(items[0]) is dict:
        return False
    if not isinstance(items[0], str):
        raise FallbackError("equality of mixed types")
    return items[0] == text


def _coded(concept: object, system: str, codes: tuple[str, ...]) -> bool:
    """`concept.coding.where(system = … and (code = … or …)).exists()`."""
    found = False
    for item in _collection(concept):
        if type(item) is not dict:
            continue
        for coding in _collection(item.get("coding")):
            if type(coding) is not dict:
                continue
            same_system = _equals_text(_collection(coding.get("system")), system)
            if same_system is False:
                continue  # `and` stops here: the codes are not compared
            code = _collection(coding.get("code"))
            _equals_text(code, codes[0])  # raises where each `code = …` would
            if same_system and len(code) == 1 and code[0] in codes:
                found = True
    return found


def _present(node: dict, key: str) -> bool:
    return bool(_collection(node.get(key)))


AIT_VERIFICATION = "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification"
CON_VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
CON_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
ERROR = ("entered-in-error",)


def ait_1(node: dict, resource: dict) -> bool:
    return _coded(node.get("verificationStatus"), AIT_VERIFICATION, ERROR) or _present(node, "clinicalStatus")


def ait_2(node: dict, resource: dict) -> bool:
    return not _coded(node.get("verificationStatus"), AIT_VERIFICATION, ERROR) or not _present(node, "clinicalStatus")


def con_3(node: dict, resource: dict) -> bool:
    if _present(node, "clinicalStatus") or _coded(node.get("verificationStatus"), CON_VERIFICATION, ERROR):
        return True
    # `category.select($this = 'problem-list-item')` answers once per category (a concept is never equal to text):
    # empty only without a category.
    categories = _collection(node.get("category"))
    if any(type(item) is not dict and not isinstance(item, str) for item in categories):
        raise FallbackError("equality of mixed types")
    return not categories


def con_4(node: dict, resource: dict) -> bool:
    abatement = node.get("abatement")
    if abatement is None:  # abatement[x]: the first key naming one of its types
        suffixes = _type_suffixes()
        for key, candidate in node.items():
            if key.startswith("abatement") and key[9:] in suffixes:
                abatement = candidate
                break
    return not _collection(abatement) or _coded(
        node.get("clinicalStatus"), CON_CLINICAL, ("resolved", "remission", "inactive")
    )


def con_5(node: dict, resource: dict) -> bool:
    return not _coded(node.get("verificationStatus"), CON_VERIFICATION, ERROR) or not _present(node, "clinicalStatus")


def _type_suffixes() -> frozenset[str]:
    from .invariants import _choice_names  # read from the definitions once, cached there

    return _choice_names()[1]


# An invariant that holds whenever this member is absent is not run on objects without it (most objects).
REQUIRES = {
    "dom-2": "contained",
    "dom-3": "contained",
    "dom-4": "contained",
    "dom-5": "contained",
    "att-1": "data",
    "cpt-2": "value",
    "qty-3": "code",
    "per-1": "end",
    "rng-2": "high",
    "obs-6": "dataAbsentReason",
    "bdl-1": "total",
    "bdl-8": "fullUrl",
}

NATIVES = {
    "ext-1": ("extension.exists() != value.exists()", ext_1),
    "dom-2": ("contained.contained.empty()", dom_2),
    "dom-3": (
        "contained.where((('#'+id in (%resource.descendants().reference | %resource.descendants().as(canonical) | "
        "%resource.descendants().as(uri) | %resource.descendants().as(url))) or descendants().where(reference = '#')"
        ".exists() or descendants().where(as(canonical) = '#').exists() or descendants().where(as(canonical) = '#')"
        ".exists()).not()).trace('unmatched', id).empty()",
        dom_3,
    ),
    "dom-4": ("contained.meta.versionId.empty() and contained.meta.lastUpdated.empty()", dom_4),
    "dom-5": ("contained.meta.security.empty()", dom_5),
    "dom-6": ("text.`div`.exists()", dom_6),
    "att-1": ("data.empty() or contentType.exists()", att_1),
    "cpt-2": ("value.empty() or system.exists()", cpt_2),
    "qty-3": ("code.empty() or system.exists()", qty_3),
    "per-1": ("start.hasValue().not() or end.hasValue().not() or (start <= end)", per_1),
    "obs-3": ("low.exists() or high.exists() or text.exists()", obs_3),
    "rng-2": ("low.empty() or high.empty() or (low <= high)", rng_2),
    "obs-6": ("dataAbsentReason.empty() or value.empty()", obs_6),
    "obs-7": (
        "value.empty() or component.code.where(coding.intersect(%resource.code.coding).exists()).empty()",
        obs_7,
    ),
    "pat-1": ("name.exists() or telecom.exists() or address.exists() or organization.exists()", pat_1),
    "ait-1": (
        "verificationStatus.coding.where(system = 'http://terminology.hl7.org/CodeSystem/allergyintolerance-verification'"
        " and code = 'entered-in-error').exists() or clinicalStatus.exists()",
        ait_1,
    ),
    "ait-2": (
        "verificationStatus.coding.where(system = 'http://terminology.hl7.org/CodeSystem/allergyintolerance-verification'"
        " and code = 'entered-in-error').empty() or clinicalStatus.empty()",
        ait_2,
    ),
    "con-3": (
        "clinicalStatus.exists() or verificationStatus.coding.where(system='http://terminology.hl7.org/CodeSystem/"
        "condition-ver-status' and code = 'entered-in-error').exists() or category.select($this='problem-list-item')"
        ".empty()",
        con_3,
    ),
    "con-4": (
        "abatement.empty() or clinicalStatus.coding.where(system='http://terminology.hl7.org/CodeSystem/"
        "condition-clinical' and (code='resolved' or code='remission' or code='inactive')).exists()",
        con_4,
    ),
    "con-5": (
        "verificationStatus.coding.where(system='http://terminology.hl7.org/CodeSystem/condition-ver-status' and "
        "code='entered-in-error').empty() or clinicalStatus.empty()",
        con_5,
    ),
    "org-1": ("(identifier.count() + name.count()) > 0", org_1),
    "org-2": ("where(use = 'home').empty()", no_home_use),
    "org-3": ("where(use = 'home').empty()", no_home_use),
    "bdl-1": ("total.empty() or (type = 'searchset') or (type = 'history')", bdl_1),
    "bdl-2": ("entry.search.empty() or (type = 'searchset')", bdl_2),
    "bdl-3": (
        "entry.all(request.exists() = (%resource.type = 'batch' or %resource.type = 'transaction' or "
        "%resource.type = 'history'))",
        bdl_3,
    ),
    "bdl-4": (
        "entry.all(response.exists() = (%resource.type = 'batch-response' or %resource.type = "
        "'transaction-response' or %resource.type = 'history'))",
        bdl_4,
    ),
    "bdl-5": ("resource.exists() or request.exists() or response.exists()", bdl_5),
    "bdl-7": (
        "(type = 'history') or entry.where(fullUrl.exists()).select(fullUrl&resource.meta.versionId).isDistinct()",
        bdl_7,
    ),
    "bdl-8": ("fullUrl.exists() implies fullUrl.contains('/_history/').not()", bdl_8),
    "bdl-9": ("type = 'document' implies (identifier.system.exists() and identifier.value.exists())", bdl_9),
    "bdl-10": ("type = 'document' implies (timestamp.hasValue())", bdl_10),
    "bdl-11": ("type = 'document' implies entry.first().resource.is(Composition)", bdl_11),
    "bdl-12": ("type = 'message' implies entry.first().resource.is(MessageHeader)", bdl_12),
    "txt-1": ("htmlChecks()", txt_1),
    "txt-2": ("htmlChecks()", txt_2),
}
