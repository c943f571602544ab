"""Drafts and versions: save with optimistic locking, publish an immutable version with its test run, restore."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from mappings.actions.common import audit, compile_error
from mappings.actions.samples import run_samples
from mappings.compiling import (
    compile_draft,
    content_hash,
    dynamic_table_uses,
    frozen_library,
    references,
    table_names_in,
)
from mappings.engine import MappingError
from mappings.errors import StudioError
from mappings.models import (
    AuditAction,
    Draft,
    Mapping,
    MappingVersion,
    TestRun,
)


def _next_revision(
    draft: Draft, template: str, snippet_names: list[str], table_names: list[str], *, acting_user: AbstractBaseUser
) -> dict:
    """The draft's next revision with this text and library; returns the revision and hash it had, for the audit."""
    before = {"revision": draft.revision, "hash": draft.content_hash()}
    draft.template, draft.snippet_names, draft.table_names = template, snippet_names, table_names
    draft.revision += 1
    draft.updated_by = acting_user
    draft.save(update_fields=["template", "snippet_names", "table_names", "revision", "updated_at", "updated_by"])
    return before


@transaction.atomic(durable=True)
def do_save_draft(
    mapping: Mapping,
    *,
    acting_user: AbstractBaseUser,
    template: str,
    expected_revision: int | None,
    extra_tables: list[str] | None = None,
) -> Draft:
    """Save only if nobody saved since `expected_revision` (optimistic locking; the row lock makes the compare and
    the increment one step, so of two concurrent saves of the same revision exactly one wins)."""
    draft = Draft.objects.select_for_update().get(mapping=mapping)
    if expected_revision is not None and draft.revision != expected_revision:
        raise StudioError(
            "stale_draft",
            f"The draft changed since revision {expected_revision}: it is now at revision {draft.revision}. "
            "Reload it, merge your change, and save again.",
            details={"current_revision": draft.revision, "etag": draft.etag, "template": draft.template},
        )
    before = _next_revision(draft, template, *references(template, extra_tables), acting_user=acting_user)
    audit(
        acting_user,
        AuditAction.DRAFT_SAVED,
        draft,
        mapping_slug=mapping.slug,
        before=before,
        after={"revision": draft.revision, "hash": draft.content_hash()},
    )
    return draft


def _refuse_unlisted_tables(draft: Draft, snippets: dict[str, str]) -> None:
    """A lookup table named through a variable (`code | translate(table)`) is known only when the template runs, but
    a version freezes its tables when it is published: such a draft must list the tables it may use by hand."""
    places = dynamic_table_uses(draft.template, snippets)
    named = table_names_in(draft.template).union(*(table_names_in(text) for text in snippets.values()))
    if places and not set(draft.table_names) - named:
        raise StudioError(
            "tables_not_listed",
            f"translate() at {', '.join(places)} names its lookup table through a variable, so publishing cannot "
            "tell which tables to freeze into the version. Save the draft with the tables it may use listed "
            "(lookup_tables) and publish again.",
            details={"places": places},
        )


@transaction.atomic(durable=True)
def do_publish_version(mapping: Mapping, *, acting_user: AbstractBaseUser, message: str) -> MappingVersion:
    """Freeze the draft, with the snippets and lookup tables it uses, into the next immutable version, and record
    a test run of its samples with it."""
    mapping = Mapping.objects.select_for_update(of=("self",)).select_related("draft").get(pk=mapping.pk)
    try:
        compile_draft(mapping)
    except MappingError as error:
        raise compile_error(error) from error
    snippets, tables = frozen_library(mapping.draft)
    _refuse_unlisted_tables(mapping.draft, snippets)
    settings = mapping.engine_settings()
    version = MappingVersion.objects.create(
        mapping=mapping,
        number=mapping.next_version_number(),
        template=mapping.draft.template,
        snippets=snippets,
        lookup_tables=tables,
        engine_settings=settings,
        content_hash=content_hash(mapping.draft.template, snippets, tables, settings),
        message=message,
        author=acting_user,
    )
    version.test_run = run_samples(mapping, version, acting_user=acting_user, trigger=TestRun.Trigger.PUBLISH)
    version.save(update_fields=["test_run"])
    mapping.latest_version = version
    mapping.save(update_fields=["latest_version", "updated_at"])
    audit(
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
    library = sorted(version.snippets), sorted(version.lookup_tables)
    before = _next_revision(draft, version.template, *library, acting_user=acting_user)
    audit(
        acting_user,
        AuditAction.VERSION_RESTORED,
        version,
        mapping_slug=version.mapping.slug,
        before=before,
        after={"revision": draft.revision, "restored_version": version.number},
    )
    return draft
