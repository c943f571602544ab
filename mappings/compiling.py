"""Stored mappings → engine: which snippets and lookup tables a template uses, and compiled mappings cached by their
content, so the render endpoint, test runs and the facade compile each distinct text once per process."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from mappings import caches
from mappings.conf import engine_limits
from mappings.engine import (
    CompiledMapping,
    TemplateReferences,
    closure_references,
    compile_mapping,
    template_references,
)
from mappings.errors import StudioError
from mappings.models import Draft, LookupTable, Mapping, MappingVersion, Snippet

ROOT_NAME = "template.j2"  # what compile_mapping calls a mapping's own template: places named here match its errors


def _references(text: str, name: str = ROOT_NAME) -> TemplateReferences:
    # Tolerant: drafts are saved while they do not parse, and must keep naming the snippets and tables they use (a
    # snippet in use cannot be deleted). Compiling such a text reports its syntax error (FS-TPL-001) at its line.
    return template_references(text, name, tolerant=True)


def imported_names(text: str) -> list[str]:
    return list(_references(text).snippets)


def table_names_in(text: str) -> set[str]:
    return set(_references(text).tables)


def snippet_closure(template: str) -> dict[str, str]:
    """The snippets a template imports, directly or through other snippets, as stored now ({name: text})."""
    found: dict[str, str] = {}
    pending = set(_references(template).snippets)
    while pending:
        rows = dict(Snippet.objects.filter(name__in=pending).values_list("name", "text"))
        found.update(rows)
        pending = {target for name, text in rows.items() for target in _references(text, name).snippets} - set(found)
    return found  # a name with no stored snippet is left out: compiling reports it as FS-TPL-002 at its line


def tables_for(template: str, snippets: dict[str, str], extra: list[str]) -> dict[str, dict]:
    names = set(_references(template).tables) | set(extra)
    for name, text in snippets.items():
        names.update(_references(text, name).tables)
    return dict(LookupTable.objects.filter(name__in=names).values_list("name", "data"))


def references(template: str, extra_tables: list[str] | None = None) -> tuple[list[str], list[str]]:
    """(snippet names, table names) a draft refers to, as stored on the Draft when it is saved."""
    snippets = snippet_closure(template)
    tables = tables_for(template, snippets, extra_tables or [])
    return sorted(snippets), sorted(tables)


def dynamic_table_uses(template: str, snippets: dict[str, str]) -> list[str]:
    """Where a lookup table is named by something other than a string literal (`code | translate(table)`), as
    "template:line", in the template and the snippets it reaches through `snippets`. Which table such an argument
    names is known only when the template runs, so the tables it may name must be listed by hand. A text that does
    not parse lists none here: compiling it fails first."""
    found = closure_references(template, snippets, name=ROOT_NAME, tolerant=True)
    return [f"{name}:{line}" for refs in found.values() for name, line in refs.dynamic_tables]


def content_hash(template: str, snippets: dict, tables: dict, settings: dict) -> str:
    """A hash of everything that affects compilation: the compile cache's key and a version's content_hash."""
    blob = json.dumps([template, snippets, tables, settings], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def frozen_library(draft: Draft) -> tuple[dict[str, str], dict[str, dict]]:
    """The snippets and lookup tables a draft uses, as stored now: what publishing freezes into a version."""
    snippets = snippet_closure(draft.template)
    return snippets, tables_for(draft.template, snippets, draft.table_names)


def compile_text(template: str, snippets: dict[str, str], tables: dict[str, dict], settings: dict) -> CompiledMapping:
    def build() -> CompiledMapping:
        return compile_mapping(
            template,
            snippets=snippets,
            lookup_tables=tables,
            source_format=settings.get("source_format"),
            source_options=settings.get("source_options") or {},
            strict=bool(settings.get("strict")),
            timezone=settings.get("timezone") or "UTC",
            limits=engine_limits(),
        )

    return caches.compiled.get_or_build(content_hash(template, snippets, tables, settings), build)


def compile_draft(mapping: Mapping, template: str | None = None, draft: Draft | None = None) -> CompiledMapping:
    """The draft (or `template`, for a preview of unsaved text) with the library as stored now."""
    draft = draft or mapping.draft
    text = draft.template if template is None else template
    snippets = snippet_closure(text)
    tables = tables_for(text, snippets, draft.table_names)
    return compile_text(text, snippets, tables, mapping.engine_settings())


def compile_version(version: MappingVersion) -> CompiledMapping:
    """A published version with the snippets and tables frozen into it. Versions never change, so the cache key is
    their id and content hash: no re-hashing of the frozen content on every request."""

    def build() -> CompiledMapping:
        return compile_text(version.template, version.snippets, version.lookup_tables, version.engine_settings)

    return caches.compiled.get_or_build(f"version:{version.pk}:{version.content_hash}", build)


# --- "run this mapping": the one resolver -----------------------------------------------------------------------------

LATEST, DRAFT = "latest", "draft"


@dataclass(frozen=True)
class Resolved:
    mapping: Mapping
    version: MappingVersion | None  # None: the draft
    compiled: CompiledMapping

    @property
    def label(self) -> str:
        return f"{self.mapping.slug} v{self.version.number}" if self.version else f"{self.mapping.slug} draft"


def find_version(mapping: Mapping, which: int | str | None) -> MappingVersion | None:
    """A version number, LATEST, DRAFT (None: the draft) or None (the latest published version, else the draft)
    → the published version it names, or None for the draft. Refused with not_found when it does not exist."""
    if which == DRAFT:
        return None
    if which is None or which == LATEST:
        if mapping.latest_version_id is None and which == LATEST:
            raise StudioError("not_found", f"'{mapping.slug}' has no published version yet.")
        return MappingVersion.objects.get(pk=mapping.latest_version_id) if mapping.latest_version_id else None
    number = int(which) if isinstance(which, int) or str(which).isdigit() else None
    version = mapping.versions.filter(number=number).first() if number is not None else None
    if version is None:
        raise StudioError("not_found", f"Mapping '{mapping.slug}' has no version {which}.")
    return version


def resolve_mapping(slug: str, which: int | str | None = None) -> Resolved:
    """slug plus a version number, LATEST or DRAFT (None: the latest published version, else the draft) → the
    compiled mapping to run. Render, the command line, facades, $convert-data and batch all run mappings through
    here. Refused with StudioError not_found for an unknown slug or version; a draft that does not compile raises
    the engine's MappingError."""
    mapping = Mapping.objects.select_related("draft").filter(slug=slug).first()
    if mapping is None:
        raise StudioError("not_found", f"No mapping '{slug}'.")
    version = find_version(mapping, which)
    compiled = compile_version(version) if version else compile_draft(mapping)
    return Resolved(mapping, version, compiled)


def resolve_version_id(version_id: int) -> Resolved:
    """A published version by id, as Celery tasks name it."""
    version = MappingVersion.objects.select_related("mapping").get(pk=version_id)
    return Resolved(version.mapping, version, compile_version(version))
