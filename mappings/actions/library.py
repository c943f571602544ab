"""The library shared by mappings: snippets and lookup tables (revisions, optimistic locking, CSV/ConceptMap
import); deleting one a draft uses is refused."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from mappings.actions.common import audit
from mappings.compiling import snippet_closure
from mappings.engine import LookupTable as EngineTable
from mappings.engine import MappingError, compile_mapping
from mappings.errors import StudioError
from mappings.models import (
    AuditAction,
    Draft,
    LookupTable,
    LookupTableVersion,
    Snippet,
    SnippetVersion,
)

# --- snippets and lookup tables -------------------------------------------------------------------------------------


def _check_snippet_compiles(name: str, text: str) -> None:
    """A snippet must compile on its own (with the snippets it imports); importing one not written yet is allowed —
    drafts that use it will report it at their line."""
    snippets = {key: value for key, value in snippet_closure(text).items() if key != name}
    try:
        compile_mapping(text, snippets=snippets, name=name)
    except MappingError as error:
        if error.code != "FS-TPL-002":
            raise StudioError(
                "invalid", f"The snippet does not compile: {error.message}", details={"errors": [error.as_dict()]}
            ) from error


@transaction.atomic(durable=True)
def do_create_snippet(*, acting_user: AbstractBaseUser, name: str, text: str, description: str = "") -> Snippet:
    if Snippet.objects.filter(name=name).exists():
        raise StudioError("conflict", f"A snippet '{name}' already exists.")
    _check_snippet_compiles(name, text)
    snippet = Snippet.objects.create(name=name, text=text, description=description, updated_by=acting_user)
    SnippetVersion.objects.create(snippet=snippet, revision=1, text=text, author=acting_user)
    audit(acting_user, AuditAction.SNIPPET_CREATED, snippet, after={"name": name, "revision": 1})
    return snippet


def _revise_library_item(
    item,
    *,
    acting_user,
    content_field: str,
    content,
    checked,
    description: str | None,
    expected_revision: int | None,
    audit_action: AuditAction,
    history,
):
    """The shared body of updating a snippet or a lookup table: optimistic revision check, a new revision and a
    history row only when the content really changes, one audit row."""
    item = type(item).objects.select_for_update().get(pk=item.pk)
    _check_revision(item, expected_revision)
    before = {"revision": item.revision}
    fields = ["updated_at", "updated_by"]
    if description is not None:
        item.description = description
        fields.append("description")
    if content is not None and content != getattr(item, content_field):
        setattr(item, content_field, checked(content))
        item.revision += 1
        fields += [content_field, "revision"]
        history(item).save()
    item.updated_by = acting_user
    item.save(update_fields=fields)
    audit(acting_user, audit_action, item, before=before, after={"revision": item.revision})
    return item


@transaction.atomic(durable=True)
def do_update_snippet(
    snippet: Snippet,
    *,
    acting_user: AbstractBaseUser,
    text: str | None = None,
    description: str | None = None,
    expected_revision: int | None = None,
) -> Snippet:
    def checked(value: str) -> str:
        _check_snippet_compiles(snippet.name, value)
        return value

    return _revise_library_item(
        snippet,
        acting_user=acting_user,
        content_field="text",
        content=text,
        checked=checked,
        description=description,
        expected_revision=expected_revision,
        audit_action=AuditAction.SNIPPET_UPDATED,
        history=lambda item: SnippetVersion(snippet=item, revision=item.revision, text=item.text, author=acting_user),
    )


def _check_revision(item: Snippet | LookupTable | None, expected_revision: int | None) -> None:
    """Optimistic locking of every library write, the row locked by the caller: `expected_revision` None checks
    nothing; a missing item counts as revision 0 (so 0 means "create only")."""
    current = item.revision if item is not None else 0
    if expected_revision is not None and current != expected_revision:
        raise StudioError(
            "stale_revision",
            f"'{item.name}' changed: it is now at revision {current}." if item else "It no longer exists.",
            details={"current_revision": current or None, "etag": f'"{current}"' if current else None},
        )


def _drafts_using(kind: str, name: str) -> list[str]:
    field = "snippet_names" if kind == "snippet" else "table_names"
    return sorted(slug for slug, names in Draft.objects.values_list("mapping__slug", field) if name in names)


@transaction.atomic(durable=True)
def do_delete_snippet(snippet: Snippet, *, acting_user: AbstractBaseUser, expected_revision: int | None = None) -> None:
    snippet = Snippet.objects.select_for_update().get(pk=snippet.pk)
    _check_revision(snippet, expected_revision)
    users = _drafts_using("snippet", snippet.name)
    if users:
        raise StudioError(
            "in_use", f"'{snippet.name}' is used by the drafts of {', '.join(users)}.", details={"mappings": users}
        )
    audit(
        acting_user, AuditAction.SNIPPET_DELETED, snippet, before={"name": snippet.name, "revision": snippet.revision}
    )
    snippet.delete()


def _checked_table_data(name: str, data: dict) -> dict:
    try:
        EngineTable.from_dict(name, data)
    except MappingError as error:
        raise StudioError("invalid", error.message, details={"errors": [error.as_dict()]}) from error
    return data


@transaction.atomic(durable=True)
def do_create_lookup_table(
    *, acting_user: AbstractBaseUser, name: str, data: dict, description: str = ""
) -> LookupTable:
    if LookupTable.objects.filter(name=name).exists():
        raise StudioError("conflict", f"A lookup table '{name}' already exists.")
    table = LookupTable.objects.create(
        name=name, data=_checked_table_data(name, data), description=description, updated_by=acting_user
    )
    LookupTableVersion.objects.create(table=table, revision=1, data=table.data, author=acting_user)
    audit(acting_user, AuditAction.TABLE_CREATED, table, after={"name": name, "revision": 1})
    return table


@transaction.atomic(durable=True)
def do_update_lookup_table(
    table: LookupTable,
    *,
    acting_user: AbstractBaseUser,
    data: dict | None = None,
    description: str | None = None,
    expected_revision: int | None = None,
) -> LookupTable:
    return _revise_library_item(
        table,
        acting_user=acting_user,
        content_field="data",
        content=data,
        checked=lambda value: _checked_table_data(table.name, value),
        description=description,
        expected_revision=expected_revision,
        audit_action=AuditAction.TABLE_UPDATED,
        history=lambda item: LookupTableVersion(table=item, revision=item.revision, data=item.data, author=acting_user),
    )


@transaction.atomic(durable=True)
def do_delete_lookup_table(
    table: LookupTable, *, acting_user: AbstractBaseUser, expected_revision: int | None = None
) -> None:
    table = LookupTable.objects.select_for_update().get(pk=table.pk)
    _check_revision(table, expected_revision)
    users = _drafts_using("table", table.name)
    if users:
        raise StudioError(
            "in_use", f"'{table.name}' is used by the drafts of {', '.join(users)}.", details={"mappings": users}
        )
    audit(acting_user, AuditAction.TABLE_DELETED, table, before={"name": table.name, "revision": table.revision})
    table.delete()


# --- lookup table import --------------------------------------------------------------------------------------------


def _engine_table_as_data(table: EngineTable) -> dict:
    """The engine's parsed table back in the stored dict form. Source codes come back as the engine keys them:
    lower-cased unless the table is case-sensitive, which translates exactly as the imported codes would."""
    entries = [
        {
            "source": code,
            "source_system": source_system,
            "code": coding.get("code"),
            "display": coding.get("display"),
            "system": coding.get("system"),
        }
        for (source_system, code), coding in table.entries.items()
    ]
    data: dict = {"target_system": table.target_system, "case_sensitive": table.case_sensitive, "entries": entries}
    if table.default:
        data["default"] = table.default
    return data


def _concept_map_problem(concept_map: object) -> str | None:
    """What keeps `concept_map` from being read as group → element → target (the engine expects that shape)."""
    if not isinstance(concept_map, dict) or concept_map.get("resourceType") != "ConceptMap":
        return "resourceType must be 'ConceptMap'"
    groups = concept_map.get("group", [])
    if not isinstance(groups, list) or not all(isinstance(group, dict) for group in groups):
        return "group must be a list of objects"
    for number, group in enumerate(groups):
        elements = group.get("element", [])
        if not isinstance(elements, list) or not all(isinstance(element, dict) for element in elements):
            return f"group[{number}].element must be a list of objects"
        if not isinstance(group.get("unmapped") or {}, dict):
            return f"group[{number}].unmapped must be an object"
        if not all(isinstance(group.get(key) or "", str) for key in ("source", "target")):
            return f"group[{number}].source and .target must be strings (code system URIs)"
        for index, element in enumerate(elements):
            targets = element.get("target") or []
            if not isinstance(element.get("code", ""), str):
                return f"group[{number}].element[{index}].code must be a string"
            if not isinstance(targets, list) or not all(isinstance(target, dict) for target in targets):
                return f"group[{number}].element[{index}].target must be a list of objects"
            if not all(isinstance(target.get(key) or "", str) for target in targets for key in ("code", "display")):
                return f"group[{number}].element[{index}].target code and display must be strings"
    return None


def _imported_table_data(
    name: str, *, csv_text: str | None, concept_map: dict | None, target_system: str | None
) -> dict:
    import csv  # imported here to keep this section's changes to the module within it

    if (csv_text is None) == (concept_map is None):
        raise StudioError("invalid", "Import either CSV text or a ConceptMap, not both or neither.")
    problem = None if concept_map is None else _concept_map_problem(concept_map)
    if problem:
        raise StudioError("invalid", f"The content is not a FHIR ConceptMap the studio can import: {problem}.")
    try:
        if csv_text is not None:
            parsed = EngineTable.from_csv(name, csv_text, target_system=target_system)
        else:
            parsed = EngineTable.from_concept_map(name, concept_map)
    except MappingError as error:
        raise StudioError("invalid", error.message, details={"errors": [error.as_dict()]}) from error
    except csv.Error as error:  # a field over the csv module's size limit, a stray carriage return
        raise StudioError("invalid", f"Lookup table '{name}': the CSV could not be read: {error}.") from error
    return _engine_table_as_data(parsed)


@transaction.atomic(durable=True)
def do_import_lookup_table(
    name: str,
    *,
    acting_user: AbstractBaseUser,
    csv_text: str | None = None,
    concept_map: dict | None = None,
    target_system: str | None = None,
    description: str = "",
    expected_revision: int | None = None,
) -> tuple[LookupTable, bool]:
    """Create the table `name` from CSV text or a FHIR ConceptMap, or save the import as its next revision.
    Returns (table, created). An unchanged import leaves the revision as it is."""
    data = _imported_table_data(name, csv_text=csv_text, concept_map=concept_map, target_system=target_system)
    source = "csv" if csv_text is not None else "conceptmap"
    table = LookupTable.objects.select_for_update().filter(name=name).first()
    _check_revision(table, expected_revision)
    if table is None:
        table = LookupTable.objects.create(name=name, data=data, description=description, updated_by=acting_user)
        LookupTableVersion.objects.create(table=table, revision=1, data=data, author=acting_user)
        audit(acting_user, AuditAction.TABLE_CREATED, table, after={"name": name, "revision": 1}, imported=source)
        return table, True
    before = {"revision": table.revision}
    fields = ["updated_at", "updated_by"]
    if description:
        table.description = description
        fields.append("description")
    if data != table.data:
        table.data = data
        table.revision += 1
        fields += ["data", "revision"]
        LookupTableVersion.objects.create(table=table, revision=table.revision, data=data, author=acting_user)
    table.updated_by = acting_user
    table.save(update_fields=fields)
    audit(
        acting_user,
        AuditAction.TABLE_UPDATED,
        table,
        before=before,
        after={"revision": table.revision},
        imported=source,
    )
    return table, False
