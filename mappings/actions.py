"""Every write the studio makes. Each `do_*` runs in one durable transaction, takes the acting user keyword-only,
saves with update_fields and writes one AuditEvent. Actions share steps through private helpers, never by calling
each other; views call one action (or, like "save then test", two in sequence)."""

from __future__ import annotations

import difflib
import hashlib
import json
import time

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction

from mappings.compiling import compile_draft, compile_version, references, snippet_closure, tables_for
from mappings.engine import LookupTable as EngineTable
from mappings.engine import MappingError, compile_mapping
from mappings.errors import StudioError
from mappings.models import (
    AuditAction,
    AuditEvent,
    DataSource,
    Deployment,
    Draft,
    Facade,
    LookupTable,
    LookupTableVersion,
    Mapping,
    MappingVersion,
    ResourceBinding,
    SampleCase,
    Snippet,
    SnippetVersion,
    SourceRecord,
    TestRun,
)
from mappings.samples import run_case
from mappings.starters import starter

MAPPING_FIELDS = ("title", "description", "source_format", "source_options", "output_kind", "timezone", "strict")
SAMPLE_FIELDS = ("payload", "source_format", "expected", "ignore_paths", "assertions")


def _audit(
    actor: AbstractBaseUser | None,
    action: AuditAction,
    obj: object,
    *,
    mapping_slug: str = "",
    before: dict | None = None,
    after: dict | None = None,
    **details: object,
) -> None:
    AuditEvent.objects.create(
        actor=actor if actor is not None and actor.is_authenticated else None,
        action=action,
        object_type=type(obj).__name__,
        object_id=str(getattr(obj, "pk", "") or ""),
        mapping_slug=mapping_slug,
        before=before,
        after=after,
        details=details,
    )


def _compile_error(error: MappingError) -> StudioError:
    return StudioError(
        "draft_does_not_compile",
        f"The draft does not compile: {error.message}",
        details={"errors": [error.as_dict()]},
    )


# --- mappings -----------------------------------------------------------------------------------------------------


@transaction.atomic(durable=True)
def do_create_mapping(
    *,
    acting_user: AbstractBaseUser,
    slug: str,
    title: str,
    source_format: str,
    template: str = "",
    from_starter: bool = False,
    **fields: object,
) -> Mapping:
    """`from_starter`: the draft starts from the source format's starter template, with its sample as `starter`."""
    if Mapping.objects.filter(slug=slug).exists():
        raise StudioError("conflict", f"A mapping '{slug}' already exists.")
    first = starter(source_format) if from_starter else None
    if first is not None:
        template = first["template"]
    mapping = Mapping.objects.create(
        slug=slug,
        title=title,
        source_format=source_format,
        owner=acting_user,
        **{key: value for key, value in fields.items() if key in MAPPING_FIELDS},
    )
    snippet_names, table_names = references(template)
    Draft.objects.create(
        mapping=mapping, template=template, snippet_names=snippet_names, table_names=table_names, updated_by=acting_user
    )
    if first is not None:
        SampleCase.objects.create(mapping=mapping, name="starter", payload=first["sample"])
    _audit(
        acting_user,
        AuditAction.MAPPING_CREATED,
        mapping,
        mapping_slug=slug,
        after={"draft_revision": 1, "from_starter": from_starter},
    )
    return mapping


@transaction.atomic(durable=True)
def do_update_mapping(mapping: Mapping, *, acting_user: AbstractBaseUser, **fields: object) -> Mapping:
    changed = [key for key, value in fields.items() if key in MAPPING_FIELDS and getattr(mapping, key) != value]
    before = {key: getattr(mapping, key) for key in changed}
    for key in changed:
        setattr(mapping, key, fields[key])
    mapping.save(update_fields=[*changed, "updated_at"])
    _audit(
        acting_user,
        AuditAction.MAPPING_UPDATED,
        mapping,
        mapping_slug=mapping.slug,
        before=before,
        after={key: getattr(mapping, key) for key in changed},
    )
    return mapping


@transaction.atomic(durable=True)
def do_delete_mapping(mapping: Mapping, *, acting_user: AbstractBaseUser) -> None:
    bound = list(mapping.bindings.select_related("facade").values_list("facade__slug", "resource_type"))
    if bound:
        where = ", ".join(f"{facade}/{resource_type}" for facade, resource_type in bound)
        raise StudioError("deployed", f"'{mapping.slug}' serves facades ({where}); unbind it first.")
    slug, versions = mapping.slug, mapping.versions.count()
    _audit(acting_user, AuditAction.MAPPING_DELETED, mapping, mapping_slug=slug, before={"versions": versions})
    mapping.delete()


# --- drafts and versions --------------------------------------------------------------------------------------------


@transaction.atomic(durable=True)
def do_save_draft(
    mapping: Mapping,
    *,
    acting_user: AbstractBaseUser,
    template: str,
    expected_revision: int,
    extra_tables: list[str] | None = None,
) -> Draft:
    """Save only if nobody saved since `expected_revision` (optimistic locking; the row lock makes the compare and
    the increment one step, so of two concurrent saves of the same revision exactly one wins)."""
    draft = Draft.objects.select_for_update().get(mapping=mapping)
    if draft.revision != expected_revision:
        raise StudioError(
            "stale_draft",
            f"The draft changed since revision {expected_revision}: it is now at revision {draft.revision}. "
            "Reload it, merge your change, and save again.",
            details={"current_revision": draft.revision, "etag": draft.etag, "template": draft.template},
        )
    before = {"revision": draft.revision, "hash": draft.content_hash()}
    draft.template = template
    draft.snippet_names, draft.table_names = references(template, extra_tables)
    draft.revision += 1
    draft.updated_by = acting_user
    draft.save(update_fields=["template", "snippet_names", "table_names", "revision", "updated_at", "updated_by"])
    _audit(
        acting_user,
        AuditAction.DRAFT_SAVED,
        draft,
        mapping_slug=mapping.slug,
        before=before,
        after={"revision": draft.revision, "hash": draft.content_hash()},
    )
    return draft


def _freeze(mapping: Mapping) -> tuple[dict, dict]:
    draft = mapping.draft
    snippets = snippet_closure(draft.template)
    return snippets, tables_for(draft.template, snippets, draft.table_names)


def _content_hash(template: str, snippets: dict, tables: dict, settings: dict) -> str:
    blob = json.dumps([template, snippets, tables, settings], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


@transaction.atomic(durable=True)
def do_publish_version(mapping: Mapping, *, acting_user: AbstractBaseUser, message: str) -> MappingVersion:
    """Freeze the draft, with the snippets and lookup tables it uses, into the next immutable version, and record
    a test run of its samples with it."""
    mapping = Mapping.objects.select_for_update(of=("self",)).select_related("draft").get(pk=mapping.pk)
    try:
        compile_draft(mapping)
    except MappingError as error:
        raise _compile_error(error) from error
    snippets, tables = _freeze(mapping)
    settings = mapping.engine_settings()
    version = MappingVersion.objects.create(
        mapping=mapping,
        number=mapping.next_version_number(),
        template=mapping.draft.template,
        snippets=snippets,
        lookup_tables=tables,
        engine_settings=settings,
        content_hash=_content_hash(mapping.draft.template, snippets, tables, settings),
        message=message,
        author=acting_user,
    )
    version.test_run = _run_tests(mapping, version, acting_user=acting_user, trigger=TestRun.Trigger.PUBLISH)
    version.save(update_fields=["test_run"])
    mapping.latest_version = version
    mapping.save(update_fields=["latest_version", "updated_at"])
    _audit(
        acting_user,
        AuditAction.VERSION_PUBLISHED,
        version,
        mapping_slug=mapping.slug,
        after={"number": version.number, "hash": version.content_hash, "draft_revision": mapping.draft.revision},
        message=message,
        tests={"passed": version.test_run.passed, "failed": version.test_run.failed},
    )
    return version


@transaction.atomic(durable=True)
def do_restore_version(version: MappingVersion, *, acting_user: AbstractBaseUser) -> Draft:
    """Copy an old version's template into the draft (a new draft revision); the version itself never changes."""
    draft = Draft.objects.select_for_update().get(mapping=version.mapping)
    before = {"revision": draft.revision, "hash": draft.content_hash()}
    draft.template = version.template
    draft.snippet_names = sorted(version.snippets)
    draft.table_names = sorted(version.lookup_tables)
    draft.revision += 1
    draft.updated_by = acting_user
    draft.save(update_fields=["template", "snippet_names", "table_names", "revision", "updated_at", "updated_by"])
    _audit(
        acting_user,
        AuditAction.VERSION_RESTORED,
        version,
        mapping_slug=version.mapping.slug,
        before=before,
        after={"revision": draft.revision, "restored_version": version.number},
    )
    return draft


def version_diff(version: MappingVersion, against: MappingVersion | Draft) -> dict:
    """Unified diffs of template, snippets and lookup tables between two versions (or a version and the draft)."""
    if isinstance(against, Draft):
        old_label, snippets_b, tables_b = "draft", *_freeze(against.mapping)
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


# --- samples and test runs ------------------------------------------------------------------------------------------


def _sample_snapshot(sample: SampleCase) -> dict:
    return {"name": sample.name, "payload_sha256": hashlib.sha256(sample.payload.encode()).hexdigest()}


@transaction.atomic(durable=True)
def do_create_sample(
    mapping: Mapping, *, acting_user: AbstractBaseUser, name: str, payload: str, **fields: object
) -> SampleCase:
    try:
        with transaction.atomic():
            sample = SampleCase.objects.create(
                mapping=mapping,
                name=name,
                payload=payload,
                **{key: value for key, value in fields.items() if key in SAMPLE_FIELDS},
            )
    except IntegrityError as exc:
        raise StudioError("conflict", f"Mapping '{mapping.slug}' already has a sample '{name}'.") from exc
    _audit(acting_user, AuditAction.SAMPLE_CREATED, sample, mapping_slug=mapping.slug, after=_sample_snapshot(sample))
    return sample


@transaction.atomic(durable=True)
def do_update_sample(sample: SampleCase, *, acting_user: AbstractBaseUser, **fields: object) -> SampleCase:
    before = _sample_snapshot(sample)
    changed = [key for key, value in fields.items() if key in SAMPLE_FIELDS and getattr(sample, key) != value]
    for key in changed:
        setattr(sample, key, fields[key])
    sample.save(update_fields=[*changed, "updated_at"])
    _audit(
        acting_user,
        AuditAction.SAMPLE_UPDATED,
        sample,
        mapping_slug=sample.mapping.slug,
        before=before,
        after=_sample_snapshot(sample),
        fields=changed,
    )
    return sample


@transaction.atomic(durable=True)
def do_delete_sample(sample: SampleCase, *, acting_user: AbstractBaseUser) -> None:
    _audit(
        acting_user,
        AuditAction.SAMPLE_DELETED,
        sample,
        mapping_slug=sample.mapping.slug,
        before=_sample_snapshot(sample),
    )
    sample.delete()


def _run_tests(
    mapping: Mapping, version: MappingVersion | None, *, acting_user: AbstractBaseUser, trigger: str
) -> TestRun:
    started = time.perf_counter()
    results = []
    draft = None if version else Draft.objects.get(mapping_id=mapping.pk)  # fresh: a save may just have happened
    try:
        compiled = compile_version(version) if version else compile_draft(mapping, draft=draft)
    except MappingError as error:
        compiled, compile_error = None, error
    for sample in mapping.samples.all():
        if compiled is None:
            results.append(
                {
                    "case": sample.name,
                    "passed": False,
                    "problems": [f"{compile_error.code}: {compile_error.message}"],
                    "issues": None,
                    "timings": {},
                }
            )
            continue
        outcome = run_case(
            compiled,
            sample.name,
            sample.payload,
            expected=sample.expected,
            assertions=sample.assertions,
            ignore_paths=sample.ignore_paths,
            source_format=sample.source_format or None,
        )
        results.append(
            {
                "case": sample.name,
                "passed": outcome.passed,
                "problems": outcome.problems,
                "issues": outcome.result.issues,
                "timings": outcome.result.timings,
                "errors": [error.as_dict() for error in outcome.result.errors],
            }
        )
    passed = sum(1 for result in results if result["passed"])
    return TestRun.objects.create(
        mapping=mapping,
        version=version,
        draft_revision=None if version else draft.revision,
        trigger=trigger,
        passed=passed,
        failed=len(results) - passed,
        results=results,
        duration_ms=round((time.perf_counter() - started) * 1000, 3),
        created_by=acting_user if acting_user is not None and acting_user.is_authenticated else None,
    )


@transaction.atomic(durable=True)
def do_run_tests(
    mapping: Mapping,
    *,
    acting_user: AbstractBaseUser,
    version: MappingVersion | None = None,
    trigger: str = TestRun.Trigger.MANUAL,
) -> TestRun:
    """Run every sample of the mapping against the draft (or a version) and record the result."""
    run = _run_tests(mapping, version, acting_user=acting_user, trigger=trigger)
    _audit(
        acting_user,
        AuditAction.TESTS_RUN,
        run,
        mapping_slug=mapping.slug,
        after={"passed": run.passed, "failed": run.failed, "version": version.number if version else None},
    )
    return run


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
    _audit(acting_user, AuditAction.SNIPPET_CREATED, snippet, after={"name": name, "revision": 1})
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
    if expected_revision is not None and item.revision != expected_revision:
        raise StudioError(
            "stale_revision",
            f"'{item.name}' changed: it is now at revision {item.revision}.",
            details={"current_revision": item.revision},
        )
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
    _audit(acting_user, audit_action, item, before=before, after={"revision": item.revision})
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


def _drafts_using(kind: str, name: str) -> list[str]:
    field = "snippet_names" if kind == "snippet" else "table_names"
    return sorted(slug for slug, names in Draft.objects.values_list("mapping__slug", field) if name in names)


@transaction.atomic(durable=True)
def do_delete_snippet(snippet: Snippet, *, acting_user: AbstractBaseUser) -> None:
    users = _drafts_using("snippet", snippet.name)
    if users:
        raise StudioError(
            "in_use", f"'{snippet.name}' is used by the drafts of {', '.join(users)}.", details={"mappings": users}
        )
    _audit(
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
    _audit(acting_user, AuditAction.TABLE_CREATED, table, after={"name": name, "revision": 1})
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
def do_delete_lookup_table(table: LookupTable, *, acting_user: AbstractBaseUser) -> None:
    users = _drafts_using("table", table.name)
    if users:
        raise StudioError(
            "in_use", f"'{table.name}' is used by the drafts of {', '.join(users)}.", details={"mappings": users}
        )
    _audit(acting_user, AuditAction.TABLE_DELETED, table, before={"name": table.name, "revision": table.revision})
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
) -> tuple[LookupTable, bool]:
    """Create the table `name` from CSV text or a FHIR ConceptMap, or save the import as its next revision.
    Returns (table, created). An unchanged import leaves the revision as it is."""
    data = _imported_table_data(name, csv_text=csv_text, concept_map=concept_map, target_system=target_system)
    source = "csv" if csv_text is not None else "conceptmap"
    table = LookupTable.objects.select_for_update().filter(name=name).first()
    if table is None:
        table = LookupTable.objects.create(name=name, data=data, description=description, updated_by=acting_user)
        LookupTableVersion.objects.create(table=table, revision=1, data=data, author=acting_user)
        _audit(acting_user, AuditAction.TABLE_CREATED, table, after={"name": name, "revision": 1}, imported=source)
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
    _audit(
        acting_user,
        AuditAction.TABLE_UPDATED,
        table,
        before=before,
        after={"revision": table.revision},
        imported=source,
    )
    return table, False


# --- facades --------------------------------------------------------------------------------------------------------


@transaction.atomic(durable=True)
def do_create_facade(*, acting_user: AbstractBaseUser, slug: str, title: str, auth_mode: str = "open") -> Facade:
    if Facade.objects.filter(slug=slug).exists():
        raise StudioError("conflict", f"A facade '{slug}' already exists.")
    facade = Facade.objects.create(slug=slug, title=title, auth_mode=auth_mode)
    _audit(acting_user, AuditAction.FACADE_CREATED, facade, after={"slug": slug, "auth_mode": auth_mode})
    return facade


@transaction.atomic(durable=True)
def do_update_facade(facade: Facade, *, acting_user: AbstractBaseUser, **fields: object) -> Facade:
    changed = [key for key, value in fields.items() if key in ("title", "status") and getattr(facade, key) != value]
    before = {key: getattr(facade, key) for key in changed}
    for key in changed:
        setattr(facade, key, fields[key])
    facade.save(update_fields=[*changed, "updated_at"])
    from mappings.facade.views import forget_live_deployments

    transaction.on_commit(forget_live_deployments)
    _audit(acting_user, AuditAction.FACADE_UPDATED, facade, before=before, after={key: fields[key] for key in changed})
    return facade


@transaction.atomic(durable=True)
def do_create_data_source(
    *,
    acting_user: AbstractBaseUser,
    name: str,
    source_format: str,
    description: str = "",
    kind: str = "stored",
    config: dict | None = None,
) -> DataSource:
    if DataSource.objects.filter(name=name).exists():
        raise StudioError("conflict", f"A data source '{name}' already exists.")
    source = DataSource.objects.create(
        name=name, source_format=source_format, description=description, kind=kind, config=config or {}
    )
    _audit(acting_user, AuditAction.SOURCE_CREATED, source, after={"name": name, "source_format": source_format})
    return source


@transaction.atomic(durable=True)
def do_upload_records(source: DataSource, *, acting_user: AbstractBaseUser, records: list[tuple[str, str]]) -> dict:
    """Store payloads by their key; a key already stored is replaced (the sender re-sent it)."""
    keys = [key for key, _ in records]
    existing = dict(SourceRecord.objects.filter(source=source, key__in=keys).values_list("key", "id"))
    new = [SourceRecord(source=source, key=key, payload=payload) for key, payload in records if key not in existing]
    SourceRecord.objects.bulk_create(new, batch_size=1000)
    replaced = [SourceRecord(id=existing[key], payload=payload) for key, payload in records if key in existing]
    SourceRecord.objects.bulk_update(replaced, ["payload"], batch_size=1000)
    counts = {"created": len(new), "replaced": len(replaced)}
    _audit(acting_user, AuditAction.RECORDS_UPLOADED, source, after=counts)
    reindexed = []
    for binding in source.bindings.select_related("facade"):
        live = binding.deployments.first()
        if live is not None:  # the live deployment serves the new records too
            _index(live)
            reindexed.append(f"{binding.facade.slug}/{binding.resource_type}")
    return {**counts, "reindexed": reindexed}


@transaction.atomic(durable=True)
def do_bind_resource(
    facade: Facade, *, acting_user: AbstractBaseUser, resource_type: str, mapping: Mapping, source: DataSource
) -> ResourceBinding:
    binding, _ = ResourceBinding.objects.update_or_create(
        facade=facade, resource_type=resource_type, defaults={"mapping": mapping, "source": source}
    )
    _audit(
        acting_user,
        AuditAction.BINDING_SAVED,
        binding,
        mapping_slug=mapping.slug,
        after={"facade": facade.slug, "resource_type": resource_type, "source": source.name},
    )
    return binding


def _go_live(binding: ResourceBinding, version: MappingVersion, variables: dict, acting_user, rollback_of=None):
    deployment = Deployment.objects.create(
        binding=binding, version=version, variables=variables, deployed_by=acting_user, rollback_of=rollback_of
    )
    _index(deployment)
    return deployment


def _index(deployment: Deployment) -> None:
    """Small sources are indexed inside the request; bigger ones by a Celery task once this transaction commits."""
    from mappings.facade.indexing import INLINE_RECORDS, index_deployment_direct
    from mappings.facade.views import forget_live_deployments
    from mappings.tasks import index_deployment

    transaction.on_commit(forget_live_deployments)
    if deployment.binding.source.kind != DataSource.Kind.STORED:
        deployment.ready = True  # a live source is asked on each request: nothing to index
        deployment.save(update_fields=["ready"])
    elif deployment.binding.source.records.count() <= INLINE_RECORDS:
        index_deployment_direct(deployment)
    else:
        transaction.on_commit(lambda: index_deployment.delay(deployment.pk))


@transaction.atomic(durable=True)
def do_deploy(
    binding: ResourceBinding, *, acting_user: AbstractBaseUser, version: MappingVersion, variables: dict | None = None
) -> Deployment:
    """Make a published version live for a binding. Refused while its samples fail: a deploy is gated by tests."""
    if version.mapping_id != binding.mapping_id:
        raise StudioError("invalid", f"Version {version.number} is not a version of '{binding.mapping.slug}'.")
    run = _run_tests(version.mapping, version, acting_user=acting_user, trigger=TestRun.Trigger.MANUAL)
    if run.failed:
        failing = [result["case"] for result in run.results if not result["passed"]]
        raise StudioError(
            "tests_failing",
            f"v{version.number} fails {run.failed} of its samples ({', '.join(failing)}); fix them before deploying.",
            details={"test_run": run.pk, "failing": failing},
            status_code=409,
        )
    deployment = _go_live(binding, version, variables or {}, acting_user)
    _audit(
        acting_user,
        AuditAction.DEPLOYED,
        deployment,
        mapping_slug=version.mapping.slug,
        after={"facade": binding.facade.slug, "resource_type": binding.resource_type, "version": version.number},
    )
    return deployment


@transaction.atomic(durable=True)
def do_rollback(binding: ResourceBinding, *, acting_user: AbstractBaseUser) -> Deployment:
    """Deploy again the version that was live before the current one."""
    recent = list(binding.deployments.select_related("version")[:2])
    if len(recent) < 2:
        raise StudioError("invalid", f"{binding.resource_type} has no earlier deployment to roll back to.")
    live, previous = recent
    deployment = _go_live(binding, previous.version, previous.variables, acting_user, rollback_of=live)
    _audit(
        acting_user,
        AuditAction.ROLLED_BACK,
        deployment,
        mapping_slug=binding.mapping.slug,
        before={"version": live.version.number},
        after={
            "facade": binding.facade.slug,
            "resource_type": binding.resource_type,
            "version": previous.version.number,
        },
    )
    return deployment
