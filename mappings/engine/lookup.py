"""Lookup tables: code translation as data (like a FHIR ConceptMap), versioned with the mapping, never an if-ladder.

A table maps source codes (optionally per source system) to a target coding, with an optional default for codes it
does not list. Tables load from a plain dict (the studio's JSON form), CSV (source_code,target_code,target_display,…)
or a FHIR ConceptMap.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field

from .errors import ErrorCode, MappingError


@dataclass(frozen=True)
class LookupTable:
    name: str
    target_system: str | None = None
    entries: dict[tuple[str | None, str], dict] = field(default_factory=dict)  # (source system, code) → coding
    default: dict | None = None
    case_sensitive: bool = False

    def _key(self, code: str) -> str:
        return code if self.case_sensitive else code.lower()

    def translate(self, code: object, source_system: object = None) -> dict | None:
        found = self.coding(code, source_system)
        return dict(found) if found is not None else None  # a copy: a template may change the dict it is given

    def coding(self, code: object, source_system: object = None) -> dict | None:
        """The table's own coding for a code (else its default, else None): not to be changed, see `translate`."""
        text = str(code or "").strip()
        if not text:
            return None
        key = text if self.case_sensitive else text.lower()
        system = str(source_system).strip() if source_system else None
        found = self.entries.get((system, key)) if system else None
        if found is None:
            found = self.entries.get((None, key))
        return found if found is not None else (self.default or None)

    @classmethod
    def from_dict(cls, name: str, data: dict) -> LookupTable:
        """`{"target_system": "...", "default": {"code": "unknown"}, "case_sensitive": false,
        "entries": [{"source": "M", "code": "male", "display": "Male", "source_system": null, "system": null}]}`
        — `entries` may also be a plain `{"M": "male"}` object."""
        if not isinstance(data, dict):
            raise MappingError(ErrorCode.TPL_BAD_LOOKUP_TABLE, f"Lookup table '{name}' must be a JSON object.")
        target_system = data.get("target_system")
        case_sensitive = bool(data.get("case_sensitive", False))
        table = cls(name, target_system, {}, None, case_sensitive)
        raw = data.get("entries", {})
        rows = [{"source": key, "code": value} for key, value in raw.items()] if isinstance(raw, dict) else raw
        entries = {}
        for row in rows:
            if not isinstance(row, dict) or not str(row.get("source", "")).strip():
                raise MappingError(
                    ErrorCode.TPL_BAD_LOOKUP_TABLE, f"Lookup table '{name}': every entry needs a 'source' code."
                )
            target = row.get("code")
            if isinstance(target, dict):
                target = target.get("code")
            entries[(row.get("source_system") or None, table._key(str(row["source"]).strip()))] = _coding(
                row.get("system") or target_system, target, row.get("display")
            )
        default = data.get("default")
        if isinstance(default, str):
            default = {"code": default}
        default_coding = (
            _coding(default.get("system") or target_system, default.get("code"), default.get("display"))
            if isinstance(default, dict)
            else None
        )
        return cls(name, target_system, entries, default_coding, case_sensitive)

    @classmethod
    def from_csv(cls, name: str, text: str, *, target_system: str | None = None) -> LookupTable:
        """Columns: source_code, target_code, and optionally target_display, source_system, target_system."""
        reader = csv.DictReader(io.StringIO(text))
        if not reader.fieldnames or not {"source_code", "target_code"} <= set(reader.fieldnames):
            raise MappingError(
                ErrorCode.TPL_BAD_LOOKUP_TABLE,
                f"Lookup table '{name}': the CSV header must name at least source_code and target_code.",
            )
        rows = [
            {
                "source": row["source_code"],
                "code": row["target_code"],
                "display": row.get("target_display") or None,
                "source_system": row.get("source_system") or None,
                "system": row.get("target_system") or None,
            }
            for row in reader
        ]
        return cls.from_dict(name, {"target_system": target_system, "entries": rows})

    @classmethod
    def from_concept_map(cls, name: str, concept_map: dict) -> LookupTable:
        """Each group's source/target systems and element → target codes (first target wins)."""
        rows = []
        for group in concept_map.get("group", []):
            for element in group.get("element", []):
                targets = element.get("target") or []
                if not targets:
                    continue
                rows.append(
                    {
                        "source": element.get("code", ""),
                        "source_system": group.get("source"),
                        "code": targets[0].get("code"),
                        "display": targets[0].get("display"),
                        "system": group.get("target"),
                    }
                )
        data: dict = {"entries": rows}
        unmapped = (concept_map.get("group") or [{}])[0].get("unmapped") or {}
        if unmapped.get("mode") == "fixed":
            data["default"] = {"code": unmapped.get("code"), "display": unmapped.get("display")}
        return cls.from_dict(name, data)


def _coding(system: object, code: object, display: object) -> dict:
    result = {"system": system, "code": str(code) if code is not None else None, "display": display}
    return {key: value for key, value in result.items() if value}
