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


@lru_cache(maxsize=1024)
def _element_names(model: type[BaseModel]) -> dict[str, str]:
    return {name: info.alias or name for name, info in model.model_fields.items()}


def _render_path(path: tuple | str) -> str:
    """Paths are built as cheap nested tuples (parent, element[, index]) and only turned into text for an issue."""
    parts = []
    while isinstance(path, tuple):
        if len(path) == 3:
            parts.append(f".{path[1]}[{path[2]}]")
        else:
            parts.append(f".{path[1]}")
        path = path[0]
    return path + "".join(reversed(parts))


def binding_issues(instance: BaseModel, path: tuple | str, found: list[MappingError]) -> None:
    """Codes outside their required value set (Patient.gender = 'M'), which the models accept."""
    model = type(instance)
    codes = _code_fields(model)
    names = _element_names(model)
    values = instance.__dict__
    for name in instance.model_fields_set:
        value = values.get(name)
        if value is None:
            continue
        if name in codes:
            allowed = codes[name][1]
            for index, code in enumerate(value if type(value) is list else [value]):
                if isinstance(code, str) and code not in allowed:
                    where = _render_path((path, names[name], index) if type(value) is list else (path, names[name]))
                    found.append(
                        MappingError(
                            ErrorCode.VAL_BAD_CODE,
                            f"{where} '{code}' is not in its required value set ({', '.join(sorted(allowed))}). "
                            "Translate source codes with a lookup table.",
                            expression=[where],
                        )
                    )
        elif type(value) is list:
            for index, item in enumerate(value):
                if isinstance(item, BaseModel):
                    binding_issues(item, (path, names[name], index), found)
        elif isinstance(value, BaseModel):
            binding_issues(value, (path, names[name]), found)


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


def _unknown_inner_types(node: object, path: str) -> list[MappingError]:
    """Nested resources (Bundle entries, contained, Parameters) whose resourceType no model knows, with their path."""
    found: list[MappingError] = []
    if isinstance(node, dict):
        inner = node.get("resourceType")
        if path.count(".") and isinstance(inner, str) and model_class(inner) is None:
            found.append(
                MappingError(
                    ErrorCode.VAL_UNKNOWN_TYPE,
                    f"{path} '{inner}' is not an FHIR R4 resource type this validator knows.",
                    expression=[path],
                )
            )
        for key, value in node.items():
            if isinstance(value, dict | list):
                found.extend(_unknown_inner_types(value, f"{path}.{key}"))
    elif isinstance(node, list):
        for index, item in enumerate(node):
            found.extend(_unknown_inner_types(item, f"{path}[{index}]"))
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
    except KeyError:
        # fhir.resources raises KeyError, not a validation error, on a nested resourceType it has no model for
        unknown = _unknown_inner_types(resource, resource_type)
        if not unknown:
            raise
        return unknown
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
    return sorted(issues, key=lambda issue: issue.expression)  # fields were visited in set order


def value_issues(value: object, path: tuple | str, found: list[MappingError]) -> None:
    """Impossible calendar dates and malformed references, which the models let through."""
    if type(value) is dict:
        for key, item in value.items():
            kind = type(item)
            if kind is str:
                if key == "reference" and not REFERENCE.match(item):
                    where = _render_path((path, key))
                    found.append(
                        MappingError(
                            ErrorCode.VAL_BAD_REFERENCE,
                            f"{where} '{item}' is not a valid reference (Type/id, urn:uuid:…, an absolute URL or #id).",
                            expression=[where],
                        )
                    )
                elif len(item) >= 10 and item[4] == "-":
                    _check_date(item, (path, key), found)
            elif kind is dict or kind is list:
                value_issues(item, (path, key), found)
    elif type(value) is list:
        for index, item in enumerate(value):
            kind = type(item)
            if kind is dict or kind is list:
                value_issues(item, (path[0], path[1], index), found)
            elif kind is str and len(item) >= 10 and item[4] == "-":
                _check_date(item, (path[0], path[1], index), found)


def _check_date(text: str, path: tuple, found: list[MappingError]) -> None:
    match = DATE_PREFIX.match(text)
    if match is None:
        return
    try:
        date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:
        where = _render_path(path)
        found.append(
            MappingError(ErrorCode.VAL_BAD_DATE, f"{where} '{text}' is not a calendar date.", expression=[where])
        )


def validate_output(resource: dict) -> list[MappingError]:
    issues = structure_issues(resource)
    value_issues(resource, str(resource.get("resourceType", "")), issues)
    return issues
