"""Search parameters a facade supports, and the values each indexed resource contributes to them.

Values are extracted once, when a deployment is indexed, into SearchValue rows: strings and tokens lower-cased (FHIR
string search is case-insensitive and matches the start of a value), dates as [start, end) ranges so a partial date
(1980, 1980-02) matches as the spec says."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

# param → (type, what it reads); common params first, then per resource type.
COMMON = {"_id": "token", "_lastUpdated": "date"}
# What observations and diagnostic reports are both searched by (the spec's clinical-patient, -date and -code, with
# identifier and status).
CLINICAL = {
    "identifier": "token",
    "patient": "reference",
    "subject": "reference",
    "date": "date",
    "code": "token",
    "status": "token",
}
BY_TYPE: dict[str, dict[str, str]] = {
    "Patient": {
        "identifier": "token",
        "name": "string",
        "family": "string",
        "given": "string",
        "birthdate": "date",
        "gender": "token",
    },
    "Practitioner": {"identifier": "token", "name": "string", "family": "string", "given": "string", "gender": "token"},
    "RelatedPerson": {"identifier": "token", "name": "string", "patient": "reference", "gender": "token"},
    "Encounter": {
        "identifier": "token",
        "patient": "reference",
        "subject": "reference",
        "date": "date",
        "status": "token",
        "class": "token",
    },
    "Observation": {**CLINICAL, "category": "token"},
    "DiagnosticReport": CLINICAL,
    "Immunization": {
        "identifier": "token",
        "patient": "reference",
        "date": "date",
        "vaccine-code": "token",
        "status": "token",
    },
    "Condition": {"identifier": "token", "patient": "reference", "subject": "reference", "code": "token"},
    "AllergyIntolerance": {"identifier": "token", "patient": "reference", "code": "token"},
    "Coverage": {"identifier": "token", "patient": "reference", "beneficiary": "reference"},
    "Organization": {"identifier": "token", "name": "string"},
}
DEFAULT = {"identifier": "token"}


# Params search_values() writes at most one value of per resource (R4 cardinality 0..1, one value written).
SINGLE_VALUED = frozenset({"_id", "gender", "birthdate", "status", "class"})


# A single-valued date's row carries the resource's single-valued tokens in its (otherwise empty) value, as "<SEP>
# gender=female<SEP>": a count over such a date and such tokens (gender=female&birthdate=ge1980) is then one scan of
# the date index (search._tagged_rows), not two scans of ~50,000 entries and a hash join. Rows written before have
# no tag (''), and are counted the old way.
TAGS = ("gender", "status", "class")


def params_for(resource_type: str) -> dict[str, str]:
    return {**COMMON, **BY_TYPE.get(resource_type, DEFAULT)}


# --- values of a resource -----------------------------------------------------------------------------------------


# A token with a system (identifier, coding) is one value, "code<SEP>system", found by `code` (value LIKE
# 'code<SEP>%': the value index serves it) and by `system|code` (=). Indexes built before hold two values per token,
# "system|code" and "code", which searches read too (search._paired_condition); this one is half the rows (14 of an
# ADT Patient's 25 values were identifiers). SEP is a control character no system or code holds (removed if one did).
SEP = "\x1f"
PAIRED = frozenset({"identifier", "code", "vaccine-code", "category"})


def paired_token(system: object, code: object) -> str:
    return f"{str(code).replace(SEP, '')}{SEP}{str(system).replace(SEP, '')}".lower()


def tag(param: str, value: str) -> str:
    """What a tagged date value holds for one token (search._tagged_rows looks for it)."""
    return f"{SEP}{param}={value}{SEP}"


def date_tag(tokens: dict[str, list[str]], supported: dict[str, str]) -> str:
    """The tag of a resource's single-valued dates: SEP alone when it has none of the TAGS; '' (untagged: counted the
    old way rather than missed) when a token holds SEP or the tag is too long for a value."""
    found = [(param, tokens[param][0]) for param in TAGS if param in supported and tokens[param]]
    text = "".join(tag(param, value) for param, value in found) or SEP
    return "" if len(text) > 255 or any(SEP in value for _, value in found) else text


def _tokens_of_codeable(concept: object) -> list[str]:
    values = []
    for coding in (concept or {}).get("coding", []) if isinstance(concept, dict) else []:
        code = coding.get("code")
        if code:
            values.append(paired_token(coding.get("system", ""), code))
    return values


def _identifier_tokens(resource: dict) -> list[str]:
    values = []
    for identifier in resource.get("identifier", []) or []:
        if isinstance(identifier, dict) and identifier.get("value"):
            values.append(paired_token(identifier.get("system", ""), identifier["value"]))
    return values


def _names(resource: dict) -> tuple[list[str], list[str], list[str]]:
    family, given, every = [], [], []
    names = resource.get("name")
    if isinstance(names, str):  # Organization.name
        return [], [], [names.lower()]
    for name in names or []:
        if not isinstance(name, dict):
            continue
        if name.get("family"):
            family.append(name["family"].lower())
        given += [part.lower() for part in name.get("given", []) if isinstance(part, str)]
        if name.get("text"):
            every.append(name["text"].lower())
    return family, given, family + given + every


def date_range(text: str) -> tuple[datetime, datetime] | None:
    """[start, end) of a FHIR date or dateTime of any precision; None if it is not one."""
    try:
        if len(text) == 4:
            year = int(text)
            return datetime(year, 1, 1, tzinfo=UTC), datetime(year + 1, 1, 1, tzinfo=UTC)
        if len(text) == 7:
            year, month = int(text[:4]), int(text[5:7])
            start = datetime(year, month, 1, tzinfo=UTC)
            return start, datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)
        if len(text) == 10:
            day = date.fromisoformat(text)
            start = datetime(day.year, day.month, day.day, tzinfo=UTC)
            return start, start + timedelta(days=1)
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment, moment + timedelta(seconds=1)
    except (ValueError, OverflowError):  # OverflowError: the end of 9999-12-31 is past datetime.max
        return None


def _dates(resource: dict) -> list[str]:
    found = []
    for key in ("effectiveDateTime", "occurrenceDateTime", "issued", "recordedDate", "onsetDateTime"):
        if isinstance(resource.get(key), str):
            found.append(resource[key])
    for key in ("period", "effectivePeriod"):
        period = resource.get(key)
        if isinstance(period, dict) and isinstance(period.get("start"), str):
            found.append(period["start"])
    return found


def _reference(resource: dict, *keys: str) -> list[str]:
    found = []
    for key in keys:
        value = resource.get(key)
        if isinstance(value, dict) and isinstance(value.get("reference"), str):
            found.append(value["reference"].lower())
    return found


COMPARTMENT = "_compartment"  # not a search parameter: what a Patient or Group $export selects resources by


def patient_compartment(resource: dict) -> list[str]:
    """The patients a resource belongs to, as lower-cased "patient/<id>": a Patient itself, or every top-level
    reference to a Patient (subject, patient, beneficiary, …; in lists too)."""
    if resource.get("resourceType") == "Patient":
        return [f"patient/{resource.get('id', '')}".lower()] if resource.get("id") else []
    found = []
    for value in resource.values():
        for item in value if isinstance(value, list) else [value]:
            reference = item.get("reference") if isinstance(item, dict) else None
            if isinstance(reference, str) and reference.startswith("Patient/"):
                found.append(reference.lower())
    return list(dict.fromkeys(found))


def search_values(resource: dict, last_updated: datetime) -> list[tuple[str, str, datetime | None, datetime | None]]:
    """(param, value, start, end) rows for one resource; strings and tokens in `value`, dates in start/end."""
    kind = resource.get("resourceType", "")
    supported = params_for(kind)
    rows: list[tuple[str, str, datetime | None, datetime | None]] = [
        ("_id", str(resource.get("id", "")).lower(), None, None),
        ("_lastUpdated", "", last_updated, last_updated + timedelta(seconds=1)),
        *((COMPARTMENT, reference[:255], None, None) for reference in patient_compartment(resource)),
    ]
    strings: dict[str, list[str]] = {}
    if "name" in supported:
        family, given, every = _names(resource)
        strings.update({"family": family, "given": given, "name": every})
    tokens: dict[str, list[str]] = {
        "identifier": _identifier_tokens(resource),
        "gender": [resource["gender"].lower()] if isinstance(resource.get("gender"), str) else [],
        "status": [resource["status"].lower()] if isinstance(resource.get("status"), str) else [],
        "code": _tokens_of_codeable(resource.get("code")),
        "vaccine-code": _tokens_of_codeable(resource.get("vaccineCode")),
        "category": [t for concept in resource.get("category", []) or [] for t in _tokens_of_codeable(concept)],
        "class": [str(resource["class"].get("code", "")).lower()] if isinstance(resource.get("class"), dict) else [],
    }
    references = {
        "patient": _reference(resource, "subject", "patient", "beneficiary"),
        "subject": _reference(resource, "subject"),
        "beneficiary": _reference(resource, "beneficiary"),
    }
    for param, kind_of in supported.items():
        if param.startswith("_"):
            continue
        if kind_of == "date":
            texts = [resource["birthDate"]] if param == "birthdate" and resource.get("birthDate") else _dates(resource)
            tagged = date_tag(tokens, supported) if param in SINGLE_VALUED else ""
            for text in texts:
                span = date_range(text)
                if span:
                    rows.append((param, tagged, *span))
            continue
        values = strings.get(param) or tokens.get(param) or references.get(param) or []
        rows += [(param, value[:255], None, None) for value in dict.fromkeys(values) if value]
    return rows


def resources_of_type(output: dict | None, resource_type: str) -> list[dict]:
    """The resources of `resource_type` in a mapping's output: the output itself, or its Bundle's entries."""
    if not isinstance(output, dict):
        return []
    if output.get("resourceType") == resource_type:
        return [output]
    if output.get("resourceType") == "Bundle":
        entries = output.get("entry") or []
        return [
            e["resource"]
            for e in entries
            if isinstance(e, dict) and (e.get("resource") or {}).get("resourceType") == resource_type
        ]
    return []
