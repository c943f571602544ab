"""Starter templates: a small, commented, working template and sample per source format, so a new mapping opens on
something that renders (files in mappings/starter_templates/; tests render each one)."""

from __future__ import annotations

from pathlib import Path

from mappings.engine import SOURCE_FORMATS

FOLDER = Path(__file__).resolve().parent / "starter_templates"
TITLES = {
    "hl7v2": "HL7 v2 message → Patient",
    "json": "JSON record → Patient",
    "ndjson": "NDJSON records → Bundle of Patients",
    "csv": "CSV rows → transaction Bundle of Patients",
    "xml": "C-CDA document → Patient",
    "fhir": "FHIR Patient → reshaped Patient",
}


def starter(source_format: str) -> dict:
    return {
        "source_format": source_format,
        "title": TITLES[source_format],
        "template": (FOLDER / f"{source_format}.j2").read_text(),
        "sample": (FOLDER / f"{source_format}.sample").read_text(),
    }


def all_starters() -> list[dict]:
    return [starter(source_format) for source_format in SOURCE_FORMATS]
