"""Stored mappings → engine: which snippets and lookup tables a template uses, and compiled mappings cached by their
content, so the render endpoint, test runs and the facade compile each distinct text once per process."""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict

from mappings.conf import engine_limits
from mappings.engine import (
    CompiledMapping,
    TemplateReferences,
    closure_references,
    compile_mapping,
    template_references,
)
from mappings.models import Draft, LookupTable, Mapping, MappingVersion, Snippet

CACHE_SIZE = 256
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


class _Cache:
    """A small thread-safe LRU of compiled mappings keyed by a hash of everything that affects compilation."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.items: OrderedDict[str, CompiledMapping] = OrderedDict()
        self.lock = threading.Lock()

    def get_or_compile(self, key: str, build) -> CompiledMapping:
        with self.lock:
            found = self.items.get(key)
            if found is not None:
                self.items.move_to_end(key)
                return found
        compiled = build()  # outside the lock: compiling can take milliseconds
        with self.lock:
            self.items[key] = compiled
            while len(self.items) > self.size:
                self.items.popitem(last=False)
        return compiled

    def clear(self) -> None:
        with self.lock:
            self.items.clear()


compiled_cache = _Cache(CACHE_SIZE)


def _key(template: str, snippets: dict, tables: dict, settings: dict) -> str:
    blob = json.dumps([template, snippets, tables, settings], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


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

    return compiled_cache.get_or_compile(_key(template, snippets, tables, settings), build)


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

    return compiled_cache.get_or_compile(f"version:{version.pk}:{version.content_hash}", build)
