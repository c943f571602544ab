"""What stored and live exports write the same way: `_elements` subsets (tagged SUBSETTED, as the spec asks) and the
OperationOutcome line of a record that did not convert. One module both import (exports.py imports export_live.py,
so neither can hold these for the other)."""

from __future__ import annotations

from mappings.engine.errors import ErrorCode, issue

SUBSETTED = {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "SUBSETTED"}
ALWAYS_KEPT = ("resourceType", "id", "meta")


def elements_for(elements: list[str], resource_type: str) -> set[str] | None:
    """The top-level elements `_elements` keeps for this type ("name" or "Patient.name"); None: the whole resource."""
    if not elements:
        return None
    kept = set()
    for element in elements:
        owner, _, name = element.rpartition(".")
        if not owner or owner == resource_type:
            kept.add(name)
    return kept or None


def subset(resource: dict, elements: set[str]) -> dict:
    kept = {key: value for key, value in resource.items() if key in elements or key in ALWAYS_KEPT}
    meta = dict(kept.get("meta") or {})
    meta["tag"] = [*meta.get("tag", []), SUBSETTED]
    kept["meta"] = meta
    return kept


def record_outcome(resource_type: str, label: str, code: str, message: str) -> dict:
    """The error[] line of a record that did not convert: its FS code (FS-RND-099 when the engine gave none)."""
    return {
        "resourceType": "OperationOutcome",
        "issue": [
            issue(
                code or ErrorCode.RND_UNEXPECTED.code,
                "processing",
                f"Record {label} did not convert to {resource_type}: {message}",
                diagnostics=f"record {label}",
            )
        ],
    }
