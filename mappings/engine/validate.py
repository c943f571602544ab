"""Stage 4: check the output is valid FHIR R4, as OperationOutcome issues with FHIRPath expressions.

Structure comes from fhir.resources' R4B models (pinned in requirements.txt). R4B is R4 plus a few changes: it lacks
the R4 resources EffectEvidenceSynthesis, RiskEvidenceSynthesis, SubstanceSpecification and the MedicinalProduct*
family (MedicinalProduct, …Authorization, …Contraindication, …Indication, …Ingredient, …Interaction,
…Manufactured, …Packaged, …Pharmaceutical, …UndesirableEffect), so those are reported as FS-VAL-002 rather than
validated. fhir.resources does not check calendar dates (2023-02-30), reference syntax or required-binding codes; cheap
walks here do (the code lists come from the models' own metadata, completed where it abbreviates them).
Profiles (StructureDefinitions) are a later stage.
"""

from __future__ import annotations

import re
from datetime import date
from functools import lru_cache

from pydantic import BaseModel, ValidationError

from .errors import ErrorCode, MappingError

DATE_PREFIX = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(?:T|$)")
REFERENCE = re.compile(
    r"^(#.*|urn:(uuid|oid):\S+|[A-Z][A-Za-z]+/[A-Za-z0-9\-.]{1,64}(/_history/[A-Za-z0-9\-.]{1,64})?|https?://\S+)$"
)


@lru_cache(maxsize=256)
def model_class(resource_type: str):
    from fhir.resources.R4B import get_fhir_model_class  # slow import, paid once

    if not re.fullmatch(r"[A-Z][A-Za-z]{1,63}", resource_type):
        return None
    try:
        return get_fhir_model_class(resource_type)
    except (KeyError, ValueError, AttributeError):  # fhir.resources raises ValueError for unknown names
        return None


# fhir.resources lists required-binding codes in each field's metadata, but abbreviates long lists with "+" and does
# not check them. These are the complete R4 value sets for the abbreviated ones mappings most often get wrong.
COMPLETE_CODES = {
    ("Observation", "status"): "registered preliminary final amended corrected cancelled entered-in-error unknown",
    ("DiagnosticReport", "status"): "registered partial preliminary final amended corrected appended cancelled "
    "entered-in-error unknown",
    ("Encounter", "status"): "planned arrived triaged in-progress onleave finished cancelled entered-in-error unknown",
    ("MedicationStatement", "status"): "active completed entered-in-error intended stopped on-hold unknown not-taken",
    ("Coverage", "status"): "active cancelled draft entered-in-error",
    ("Procedure", "status"): "preparation in-progress not-done on-hold stopped completed entered-in-error unknown",
    ("MedicationRequest", "status"): "active on-hold cancelled completed entered-in-error stopped draft unknown",
    ("ServiceRequest", "status"): "draft active on-hold revoked completed entered-in-error unknown",
    ("DocumentReference", "status"): "current superseded entered-in-error",
}


@lru_cache(maxsize=1024)
def _code_fields(model: type[BaseModel]) -> dict[str, tuple[str, frozenset[str]]]:
    """field name → (FHIR element name, allowed codes) for this class's required-binding code elements."""
    found = {}
    for name, info in model.model_fields.items():
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        values = extra.get("enum_values")
        if not values:
            continue
        element = info.alias or name
        if "+" in values:
            complete = COMPLETE_CODES.get((model.__name__, element))
            if not complete:
                continue
            values = complete.split()
        found[name] = (element, frozenset(values))
    return found


def binding_issues(instance: BaseModel, path: str, found: list[MappingError]) -> None:
    """Codes outside their required value set (Patient.gender = 'M'), which the models accept."""
    model = type(instance)
    codes = _code_fields(model)
    present = instance.model_fields_set
    for name in model.model_fields:  # in definition order, so issues come out in a stable order
        if name not in present:
            continue
        value = getattr(instance, name, None)
        if value is None:
            continue
        info = model.model_fields[name]
        element = f"{path}.{info.alias or name}"
        if name in codes:
            allowed = codes[name][1]
            for index, code in enumerate(value if isinstance(value, list) else [value]):
                if isinstance(code, str) and code not in allowed:
                    where = f"{element}[{index}]" if isinstance(value, list) else element
                    found.append(
                        MappingError(
                            ErrorCode.VAL_BAD_CODE,
                            f"{where} '{code}' is not in its required value set ({', '.join(sorted(allowed))}). "
                            "Translate source codes with a lookup table.",
                            expression=[where],
                        )
                    )
        elif isinstance(value, BaseModel):
            binding_issues(value, element, found)
        elif isinstance(value, list):
            for index, item in enumerate(value):
                if isinstance(item, BaseModel):
                    binding_issues(item, f"{element}[{index}]", found)


def _path(root: str, loc: tuple) -> str:
    path = root
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif isinstance(part, str) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", part):
            path += f".{part.removesuffix('__ext')}"
    return path


def _message(error: dict) -> str:
    kind = error.get("type")
    if kind == "missing":
        return "is required but missing"
    if kind == "extra_forbidden":
        return "is not an element of this type (check the spelling and the resource's definition)"
    return str(error.get("msg", "is invalid")).removeprefix("Value error, ")


def _resource_type_at(resource: dict, loc: tuple) -> str:
    """The resourceType of the innermost resource on the path (entry[3].resource → Patient)."""
    found = resource.get("resourceType", "")
    node: object = resource
    for part in loc:
        try:
            node = node[part]  # type: ignore[index]
        except (KeyError, IndexError, TypeError):
            break
        if isinstance(node, dict) and isinstance(node.get("resourceType"), str):
            found = node["resourceType"]
    return found


def structure_issues(resource: dict) -> list[MappingError]:
    resource_type = resource.get("resourceType")
    model = model_class(resource_type) if isinstance(resource_type, str) else None
    if model is None:
        return [
            MappingError(
                ErrorCode.VAL_UNKNOWN_TYPE,
                f"'{resource_type}' is not an FHIR R4 resource type this validator knows.",
                expression=[str(resource_type)],
            )
        ]
    try:
        instance = model.model_validate(resource)
    except ValidationError as exc:
        issues = []
        for error in exc.errors(include_url=False)[:200]:
            loc = tuple(error.get("loc", ()))
            expression = _path(resource_type, loc)
            inner = _resource_type_at(resource, loc)
            where = f" ({inner})" if inner and inner != resource_type else ""
            issues.append(
                MappingError(
                    ErrorCode.VAL_STRUCTURE, f"{expression}{where} {_message(error)}.", expression=[expression]
                )
            )
        return issues
    issues: list[MappingError] = []
    binding_issues(instance, resource_type, issues)
    return issues


def value_issues(value: object, path: str, found: list[MappingError]) -> None:
    """Impossible calendar dates and malformed references, which the models let through."""
    if isinstance(value, dict):
        for key, item in value.items():
            child = f"{path}.{key}"
            if key == "reference" and isinstance(item, str) and not REFERENCE.match(item):
                found.append(
                    MappingError(
                        ErrorCode.VAL_BAD_REFERENCE,
                        f"{child} '{item}' is not a valid reference (Type/id, urn:uuid:…, an absolute URL or #id).",
                        expression=[child],
                    )
                )
            else:
                value_issues(item, child, found)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            value_issues(item, f"{path}[{index}]", found)
    elif isinstance(value, str) and len(value) >= 10 and value[4] == "-":
        match = DATE_PREFIX.match(value)
        if match:
            try:
                date(int(match[1]), int(match[2]), int(match[3]))
            except ValueError:
                found.append(
                    MappingError(ErrorCode.VAL_BAD_DATE, f"{path} '{value}' is not a calendar date.", expression=[path])
                )


def validate_output(resource: dict) -> list[MappingError]:
    issues = structure_issues(resource)
    value_issues(resource, str(resource.get("resourceType", "")), issues)
    return issues
