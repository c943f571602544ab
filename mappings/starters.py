"""Starter templates: a small, commented, working template and sample per source format, so a new mapping opens on
something that renders (files in mappings/starter_templates/; tests render each one against the demo library).

Starters are written like the examples: the root template is an outline and the work is done by the shared snippets
and lookup tables the demo content loads (`manage.py fhirstudio demo`, run by scripts/run). Where the library lacks
one of them, the listing says which (`missing`) and creating a mapping from that starter is refused, rather than
opening on a template that cannot render."""

from __future__ import annotations

from pathlib import Path

from mappings.compiling import imported_names, table_names_in
from mappings.engine import SOURCE_FORMATS
from mappings.errors import StudioError
from mappings.models import LookupTable, Snippet

FOLDER = Path(__file__).resolve().parent / "starter_templates"
TITLES = {
    "hl7v2": "HL7 v2 message → Patient",
    "json": "JSON record → Patient",
    "ndjson": "NDJSON records → collection Bundle of Patients",
    "csv": "CSV rows → transaction Bundle of Patients",
    "xml": "C-CDA document → Patient",
    "fhir": "FHIR Patient → reshaped Patient",
}


def starter_files(source_format: str) -> dict:
    return {
        "source_format": source_format,
        "title": TITLES[source_format],
        "template": (FOLDER / f"{source_format}.j2").read_text(),
        "sample": (FOLDER / f"{source_format}.sample").read_text(),
    }


def missing_from_library(template: str, snippets: dict[str, str], tables: set[str]) -> list[str]:
    """Snippet and lookup-table names the template needs (directly or through its snippets) that `snippets` (all
    stored snippets, name → text) and `tables` (all stored table names) lack."""
    missing: list[str] = []
    needed_tables = table_names_in(template)
    pending, seen = list(imported_names(template)), set()
    while pending:
        name = pending.pop(0)
        if name in seen:
            continue
        seen.add(name)
        if name not in snippets:
            missing.append(name)
            continue
        pending += imported_names(snippets[name])
        needed_tables |= table_names_in(snippets[name])
    return sorted(missing) + sorted(needed_tables - tables)


def _library() -> tuple[dict[str, str], set[str]]:
    # The whole library in two queries: it is a few dozen rows, and each starter needs a different part of it.
    snippets = dict(Snippet.objects.values_list("name", "text"))
    return snippets, set(LookupTable.objects.values_list("name", flat=True))


def all_starters() -> list[dict]:
    """One starter per source format, each with `missing`: what the library lacks for it to render ([] = ready)."""
    snippets, tables = _library()
    found = []
    for source_format in SOURCE_FORMATS:
        files = starter_files(source_format)
        found.append({**files, "missing": missing_from_library(files["template"], snippets, tables)})
    return found


def starter(source_format: str) -> dict:
    """The starter a new mapping begins from (do_create_mapping with from_starter); refused while the library lacks
    what it needs."""
    files = starter_files(source_format)
    missing = missing_from_library(files["template"], *_library())
    if missing:
        raise StudioError(
            "library_missing",
            f"The {source_format} starter uses {', '.join(missing)}, which the library does not have. Load the demo "
            "content (manage.py fhirstudio demo) or create the mapping without a starter.",
            details={"missing": missing},
        )
    return files
