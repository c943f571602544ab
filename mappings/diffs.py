"""What changed between two versions of a mapping (or a version and the draft): unified diffs of the template and
of the snippets and lookup tables frozen into each."""

from __future__ import annotations

import difflib
import json

from mappings.compiling import frozen_library
from mappings.models import Draft, MappingVersion


def version_diff(version: MappingVersion, against: MappingVersion | Draft) -> dict:
    """Unified diffs of template, snippets and lookup tables between two versions (or a version and the draft)."""
    if isinstance(against, Draft):
        old_label, snippets_b, tables_b = "draft", *frozen_library(against)
        template_b = against.template
    else:
        old_label, snippets_b, tables_b = f"v{against.number}", against.snippets, against.lookup_tables
        template_b = against.template
    new_label = f"v{version.number}"

    def diff(a: str, b: str, name: str) -> str:
        return "".join(
            difflib.unified_diff(
                b.splitlines(keepends=True), a.splitlines(keepends=True), f"{old_label}/{name}", f"{new_label}/{name}"
            )
        )

    def as_text(table: dict | None) -> str:
        return "" if table is None else json.dumps(table, indent=2, sort_keys=True) + "\n"

    snippet_diffs = {
        name: diff(version.snippets.get(name, ""), snippets_b.get(name, ""), name)
        for name in sorted(set(version.snippets) | set(snippets_b))
    }
    table_diffs = {
        name: diff(as_text(version.lookup_tables.get(name)), as_text(tables_b.get(name)), name)
        for name in sorted(set(version.lookup_tables) | set(tables_b))
    }
    return {
        "from": old_label,
        "to": new_label,
        "template": diff(version.template, template_b, "template.j2"),
        "snippets": {name: text for name, text in snippet_diffs.items() if text},
        "lookup_tables": {name: text for name, text in table_diffs.items() if text},
    }
