"""Stored mappings → engine: which snippets and lookup tables a template uses, and compiled mappings cached by their
content, so the render endpoint, test runs and the facade compile each distinct text once per process."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass

from django.db import connection

from mappings import caches
from mappings.conf import engine_limits
from mappings.engine import (
    CompiledMapping,
    MappingError,
    TemplateReferences,
    closure_references,
    compile_mapping,
    template_references,
)
from mappings.engine.lookup import LookupTable as EngineTable
from mappings.engine.reuse_compiled import LexedToken, lex, prime_compiled_code
from mappings.errors import StudioError
from mappings.models import Draft, LookupTable, Mapping, MappingVersion, Snippet

ROOT_NAME = "template.j2"  # what compile_mapping calls a mapping's own template: places named here match its errors


def _references(text: str, name: str = ROOT_NAME) -> TemplateReferences:
    # Tolerant: drafts are saved while they do not parse, and must keep naming the snippets and tables they use (a
    # snippet in use cannot be deleted). Compiling such a text reports its syntax error (FS-TPL-001) at its line.
    return template_references(text, name, tolerant=True)


def _code_tokens(tokens: list[LexedToken] | None) -> tuple[LexedToken, ...] | None:
    """A text's tokens without its literal template text (`data`): everything Jinja's parser decides on, so all
    that template_references reads. None when the lexer refused the text (an unclosed tag)."""
    if tokens is None:
        return None
    return tuple(token for token in tokens if token[1] != "data")


def root_references(text: str, tokens: list[LexedToken] | None = None) -> TemplateReferences:
    """The references of a draft's own template, for a preview. Most keystrokes change only literal text (the JSON
    the template writes), which cannot change what the text imports or which tables it names: such a text reuses the
    references of one with the same code tokens instead of parsing it again (issue 14: on the ADT demo the lexer
    takes 3 ms of CPU where the parse took 6). `tokens`: `lex(text)`, when the caller has them."""
    code = _code_tokens(lex(text) if tokens is None else tokens)
    if code is None:
        return _references(text)
    found = caches.root_references.get(code)
    if found is None:
        found = _references(text)
        caches.root_references.put(code, found)
    return found


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


def compile_text(
    template: str,
    snippets: dict[str, str],
    tables: dict[str, dict | EngineTable],
    settings: dict,
    *,
    key: str | None = None,
    tokens: list[LexedToken] | None = None,
) -> CompiledMapping:
    """Compiled once per content: `key` (a hash of the same content computed more cheaply) or the content hash.
    `tokens` (the template's, from `lex`) when it is unsaved text typed in the editor: its code is then made from
    that of an earlier text differing only in literal text, when there is one (engine/reuse_compiled.py)."""

    def build() -> CompiledMapping:
        if tokens is not None:
            prime_compiled_code(template, tokens)
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

    return caches.compiled.get_or_build(key or content_hash(template, snippets, tables, settings), build)


# --- the library a draft reaches, re-read only when it changed --------------------------------------------------------

Stamp = tuple  # (kind, name, id, revision, updated_at) of a stored snippet or lookup table, as the database gives it


@dataclass(frozen=True)
class Library:
    """The snippets and lookup tables some names reach, as stored when read. `stamps` are the rows read; every name
    looked up, found or not, is in `snippet_names` or `table_names`, so one query tells whether it all still holds:
    a row edited (its revision and updated_at grow), deleted, or created under a name that was missing."""

    snippet_names: frozenset[str]
    table_names: frozenset[str]
    stamps: frozenset[Stamp]
    snippets: dict[str, str]
    tables: dict[str, dict]
    digest: str  # a hash of snippets and tables
    # The tables as the engine reads them, built once per read of the library instead of once per compile (each
    # keystroke of a preview is a compile); one that does not load stays a dict, so compiling reports it as always.
    engine_tables: dict[str, EngineTable | dict]


SNIPPET, TABLE = "snippet", "table"


def _stamps(snippet_names: frozenset[str], table_names: frozenset[str]) -> frozenset[Stamp]:
    """The stamps of the rows stored under these names, in one query. Written out: the ORM takes longer to build
    this query than SQLite takes to answer it, and it runs on every draft preview. updated_at tells apart a row
    created again under an id a rolled-back transaction had used (SQLite reuses it)."""
    parts, params = [], []
    for kind, model, names in ((SNIPPET, Snippet, snippet_names), (TABLE, LookupTable, table_names)):
        if names:
            table = connection.ops.quote_name(model._meta.db_table)
            marks = ", ".join(["%s"] * len(names))
            parts.append(f"SELECT '{kind}', name, id, revision, updated_at FROM {table} WHERE name IN ({marks})")
            params += sorted(names)
    if not parts:
        return frozenset()
    with connection.cursor() as cursor:
        cursor.execute(" UNION ALL ".join(parts), params)
        return frozenset(tuple(row) for row in cursor.fetchall())


def _read_library(snippet_names: frozenset[str], table_names: frozenset[str]) -> tuple[Library, bool]:
    """The closure of `snippet_names` (snippets import snippets) and every table they or `table_names` name, and
    whether it may be cached: its stamps, read after it, show the same revisions (nothing was saved in between)."""
    snippets: dict[str, str] = {}
    revisions: set[tuple[str, str, int, int]] = set()
    looked_up: set[str] = set()
    pending = set(snippet_names)
    while pending:
        looked_up |= pending
        found = {}
        rows = Snippet.objects.filter(name__in=pending).values_list("name", "text", "id", "revision")
        for name, text, pk, revision in rows:
            found[name] = text
            revisions.add((SNIPPET, name, pk, revision))
        snippets.update(found)
        pending = {target for name, text in found.items() for target in _references(text, name).snippets} - looked_up
    tables_named = set(table_names)
    for name, text in snippets.items():
        tables_named.update(_references(text, name).tables)
    tables: dict[str, dict] = {}
    rows = LookupTable.objects.filter(name__in=tables_named).values_list("name", "data", "id", "revision")
    for name, data, pk, revision in rows:
        tables[name] = data
        revisions.add((TABLE, name, pk, revision))
    stamps = _stamps(frozenset(looked_up), frozenset(tables_named))
    blob = json.dumps([snippets, tables], sort_keys=True, default=str)
    library = Library(
        frozenset(looked_up),
        frozenset(tables_named),
        stamps,
        snippets,
        tables,
        hashlib.sha256(blob.encode()).hexdigest(),
        {name: _engine_table(name, data) for name, data in tables.items()},
    )
    return library, {stamp[:4] for stamp in stamps} == revisions


def _engine_table(name: str, data: dict) -> EngineTable | dict:
    try:
        return EngineTable.from_dict(name, data)
    except MappingError:
        return data


def library_for(snippet_names: Iterable[str], table_names: Iterable[str]) -> Library:
    """The stored library these names reach. Cached by the names; a cached answer is used only after one query shows
    that none of its rows changed (saved snippets and tables bump their revision), so it is never stale."""
    key = (frozenset(snippet_names), frozenset(table_names))
    library = caches.libraries.get(key)
    if library is None or _stamps(library.snippet_names, library.table_names) != library.stamps:
        library, cacheable = _read_library(*key)
        if cacheable:
            caches.libraries.put(key, library)
    return library


def compile_draft(mapping: Mapping, template: str | None = None, draft: Draft | None = None) -> CompiledMapping:
    """The draft (or `template`, for a preview of unsaved text) with the library as stored now."""
    draft = draft or mapping.draft
    text = draft.template if template is None else template
    tokens = lex(text)  # once, for both: what the text references, and its code's shape (kept for a second render)
    root = root_references(text, tokens)
    library = library_for(root.snippets, [*root.tables, *draft.table_names])
    settings = mapping.engine_settings()
    # The library's digest stands for its content: hashing 10s of KB of snippets and tables on every preview is
    # most of what a cached compile cost.
    blob = json.dumps([text, library.digest, settings], sort_keys=True, default=str)
    key = "draft:" + hashlib.sha256(blob.encode()).hexdigest()
    return compile_text(text, library.snippets, library.engine_tables, settings, key=key, tokens=tokens)


def compile_version(version: MappingVersion) -> CompiledMapping:
    """A published version with the snippets and tables frozen into it. Versions never change, so the cache key is
    their id and content hash: no re-hashing of the frozen content on every request."""

    def build() -> CompiledMapping:
        content = {"template", "snippets", "lookup_tables", "engine_settings"}
        if version.get_deferred_fields() & content:  # loaded lean to run (mappings.access): read it in one query
            version.refresh_from_db(fields=sorted(version.get_deferred_fields() & content))
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
