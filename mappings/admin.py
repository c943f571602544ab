"""The admin console: every studio model, with list columns, search and filters.

Writes go through the actions (mappings/actions/), like everywhere else, so an admin's change gets the same checks
and the same audit row as one made in the API. What the studio never rewrites — published versions, snippet and table
history, test runs, audit rows, and drafts (saved only with optimistic locking, by the editor and the API) — is
read-only here. Each action runs in its own durable transaction, so the write views below do not wrap the request in
Django admin's usual transaction (which would nest them), and an action's refusal (a StudioError such as `in_use`)
comes back as an error message instead of a server error.
"""

from __future__ import annotations

from collections.abc import Callable

from django.contrib import admin, messages
from django.contrib.admin.options import csrf_protect_m
from django.contrib.admin.utils import flatten_fieldsets
from django.db.models import Model, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.utils.html import format_html

from mappings import actions
from mappings.errors import StudioError
from mappings.models import (
    AuditEvent,
    Draft,
    LookupTable,
    LookupTableVersion,
    Mapping,
    MappingVersion,
    ProcessedMessage,
    SampleCase,
    Snippet,
    SnippetVersion,
    TestRun,
)

admin.site.site_header = "FHIR Studio administration"
admin.site.site_title = "FHIR Studio"
admin.site.index_title = "Mappings, versions, facades and users"


def _adopt(obj: Model, saved: Model) -> None:
    """Give the admin's unsaved form instance the row an action saved, so Django's logging and redirects see it."""
    for model_field in obj._meta.concrete_fields:
        setattr(obj, model_field.attname, getattr(saved, model_field.attname))
    obj._state.adding = False
    obj._state.db = saved._state.db


def _pre(text: str) -> str:
    return format_html('<pre style="white-space: pre-wrap; margin: 0">{}</pre>', text)


def preformatted(field: str) -> Callable[[admin.ModelAdmin, Model], str]:
    """A read-only column showing a text field (a template, a snippet's text) as it is written."""

    @admin.display(description=field)
    def show(self: admin.ModelAdmin, obj: Model) -> str:
        return _pre(getattr(obj, field))

    return show


def _tally(run: TestRun | None) -> str:
    return "—" if run is None else f"{run.passed} passed, {run.failed} failed"


class ActionAdmin(admin.ModelAdmin):
    """A ModelAdmin whose saves and deletes call actions. Subclasses name them (`create`, `update`, `delete`, as
    staticmethods); the form's editable fields are their keyword arguments — on a change, only the fields the user
    changed. The identifying fields (slug, name, mapping) are editable only when adding."""

    create: Callable[..., Model]
    update: Callable[..., Model]
    delete: Callable[..., None]

    def cleaned(self, data: dict) -> dict:
        """The form's values as the actions take them."""
        return data

    def save_model(self, request: HttpRequest, obj: Model, form, change: bool) -> None:
        fields = self.cleaned(dict(form.cleaned_data))
        if change:
            changed = {name: value for name, value in fields.items() if name in form.changed_data}
            saved = self.update(self.model.objects.get(pk=obj.pk), acting_user=request.user, **changed)
        else:
            saved = self.create(acting_user=request.user, **fields)
        _adopt(obj, saved)

    def delete_model(self, request: HttpRequest, obj: Model) -> None:
        self.delete(obj, acting_user=request.user)

    def _refused(self, request: HttpRequest, error: StudioError) -> HttpResponse:
        self.message_user(request, f"{error.message} ({error.code})", messages.ERROR)
        return HttpResponseRedirect(request.get_full_path())

    @csrf_protect_m
    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:
            return self._changeform_view(request, object_id, form_url, extra_context)
        except StudioError as error:
            return self._refused(request, error)

    @csrf_protect_m
    def delete_view(self, request, object_id, extra_context=None):
        try:
            return self._delete_view(request, object_id, extra_context)
        except StudioError as error:
            return self._refused(request, error)

    def get_deleted_objects(self, objs, request: HttpRequest):
        # The action deletes a mapping's draft, versions and test runs (or a table's history) with it; those are
        # read-only here, which must not make Django refuse the delete the action itself allows.
        deleted, counts, _, protected = super().get_deleted_objects(objs, request)
        return deleted, counts, set(), protected

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        for obj in queryset:
            try:
                self.delete_model(request, obj)
            except StudioError as error:
                self.message_user(request, f"{obj}: {error.message}", messages.ERROR)


class ReadOnlyMixin:
    """Nobody adds, changes or deletes these here: they are history, written only by actions. Every field shown is
    read-only."""

    def get_readonly_fields(self, request: HttpRequest, obj: Model | None = None) -> tuple[str, ...]:
        return tuple(flatten_fieldsets(self.fieldsets)) if self.fieldsets else self.fields

    def has_add_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False


class ReadOnlyAdmin(ReadOnlyMixin, admin.ModelAdmin):
    pass


# --- mappings -------------------------------------------------------------------------------------------------------


class DraftInline(ReadOnlyMixin, admin.StackedInline):
    model = Draft
    fields = ("revision", "template_text", "snippet_names", "table_names", "updated_at", "updated_by")
    verbose_name_plural = "Draft (edited in the editor or the API, with optimistic locking)"

    template_text = preformatted("template")


class SampleColumns:
    """What a sample's row shows besides its fields, in the inline and in its own admin."""

    @admin.display(boolean=True, description="expected output")
    def has_expected(self, sample: SampleCase) -> bool:
        return sample.expected is not None

    @admin.display(description="assertions")
    def assertion_count(self, sample: SampleCase) -> int:
        return len(sample.assertions or [])


class SampleCaseInline(SampleColumns, ReadOnlyMixin, admin.TabularInline):
    model = SampleCase
    fields = ("name", "source_format", "has_expected", "assertion_count", "updated_at")
    show_change_link = True
    extra = 0
    verbose_name_plural = "Samples (add and edit them under Sample cases)"


class MappingVersionInline(ReadOnlyMixin, admin.TabularInline):
    model = MappingVersion
    fk_name = "mapping"
    fields = ("number", "message", "author", "created_at", "tests")
    show_change_link = True
    extra = 0

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).select_related("author", "test_run")

    @admin.display(description="tests")
    def tests(self, version: MappingVersion) -> str:
        return _tally(version.test_run)


@admin.register(Mapping)
class MappingAdmin(ActionAdmin):
    list_display = (
        "slug",
        "title",
        "source_format",
        "output_kind",
        "draft_revision",
        "latest_version_number",
        "last_test_result",
        "updated_at",
    )
    list_display_links = ("slug", "title")
    search_fields = ("slug", "title", "description")
    list_filter = ("source_format", "output_kind", "strict", ("latest_version", admin.EmptyFieldListFilter))
    fieldsets = (
        (None, {"fields": ("slug", "title", "description")}),
        ("Engine settings", {"fields": ("source_format", "source_options", "output_kind", "timezone", "strict")}),
        ("Status", {"fields": ("owner", "latest_version", "created_at", "updated_at")}),
    )
    inlines = (DraftInline, MappingVersionInline, SampleCaseInline)
    create = staticmethod(actions.do_create_mapping)
    update = staticmethod(actions.do_update_mapping)
    delete = staticmethod(actions.do_delete_mapping)
    actions = ("run_tests",)  # from here on, `actions` in this class body is the admin's list

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).with_status()

    def get_readonly_fields(self, request: HttpRequest, obj: Mapping | None = None) -> tuple[str, ...]:
        always = ("owner", "latest_version", "created_at", "updated_at")
        return ("slug", *always) if obj is not None else always  # the actions cannot rename a mapping

    @admin.display(description="draft rev.", ordering="draft_revision")
    def draft_revision(self, mapping: Mapping) -> int | None:
        return mapping.draft_revision

    @admin.display(description="latest version", ordering="latest_version_number")
    def latest_version_number(self, mapping: Mapping) -> str:
        return "—" if mapping.latest_version_number is None else f"v{mapping.latest_version_number}"

    @admin.display(description="last test run")
    def last_test_result(self, mapping: Mapping) -> str:
        if mapping.last_run_id is None:
            return "—"
        return f"{mapping.last_run_passed} passed, {mapping.last_run_failed} failed"

    @admin.action(description="Run tests (samples against the draft)")
    def run_tests(self, request: HttpRequest, queryset: QuerySet) -> None:
        for mapping in queryset:
            run = actions.do_run_tests(mapping, acting_user=request.user, trigger=TestRun.Trigger.MANUAL)
            level = messages.SUCCESS if run.ok else messages.WARNING
            self.message_user(request, f"{mapping.slug}: {run.passed} passed, {run.failed} failed", level)


@admin.register(Draft)
class DraftAdmin(ReadOnlyAdmin):
    list_display = ("mapping", "revision", "updated_at", "updated_by")
    list_select_related = ("mapping", "updated_by")
    search_fields = ("mapping__slug", "template")
    fields = ("mapping", "revision", "template_text", "snippet_names", "table_names", "updated_at", "updated_by")

    template_text = preformatted("template")


@admin.register(MappingVersion)
class MappingVersionAdmin(ReadOnlyAdmin):
    list_display = ("mapping", "number", "message", "author", "created_at", "tests", "short_hash")
    list_select_related = ("mapping", "author", "test_run")
    search_fields = ("mapping__slug", "message", "content_hash")
    list_filter = ("created_at",)
    fields = (
        "mapping",
        "number",
        "message",
        "author",
        "created_at",
        "content_hash",
        "engine_settings",
        "template_text",
        "snippet_names",
        "table_names",
        "test_run",
    )

    @admin.display(description="tests")
    def tests(self, version: MappingVersion) -> str:
        return _tally(version.test_run)

    @admin.display(description="hash")
    def short_hash(self, version: MappingVersion) -> str:
        return version.content_hash[:12]

    template_text = preformatted("template")

    @admin.display(description="snippets (frozen)")
    def snippet_names(self, version: MappingVersion) -> str:
        return ", ".join(sorted(version.snippets)) or "—"

    @admin.display(description="lookup tables (frozen)")
    def table_names(self, version: MappingVersion) -> str:
        return ", ".join(sorted(version.lookup_tables)) or "—"


# --- samples and test runs ------------------------------------------------------------------------------------------


@admin.register(SampleCase)
class SampleCaseAdmin(SampleColumns, ActionAdmin):
    list_display = ("name", "mapping", "source_format", "has_expected", "assertion_count", "updated_at")
    list_select_related = ("mapping",)
    search_fields = ("name", "mapping__slug")
    list_filter = ("mapping", "source_format")
    fields = (
        "mapping",
        "name",
        "source_format",
        "payload",
        "expected",
        "ignore_paths",
        "assertions",
        "created_at",
        "updated_at",
    )

    def get_readonly_fields(self, request: HttpRequest, obj: SampleCase | None = None) -> tuple[str, ...]:
        always = ("created_at", "updated_at")
        return ("mapping", "name", *always) if obj is not None else always  # the actions cannot move or rename one

    create = staticmethod(actions.do_create_sample)
    update = staticmethod(actions.do_update_sample)
    delete = staticmethod(actions.do_delete_sample)

    def cleaned(self, data: dict) -> dict:
        for name in ("ignore_paths", "assertions"):  # an emptied JSON box means "none", not JSON null
            if name in data:
                data[name] = data[name] or []
        return data


@admin.register(TestRun)
class TestRunAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "mapping", "target", "trigger", "passed", "failed", "duration_ms", "created_by")
    list_select_related = ("mapping", "version", "created_by")
    search_fields = ("mapping__slug",)
    list_filter = ("trigger", "created_at")
    fieldsets = (
        (None, {"fields": ("mapping", "version", "draft_revision", "trigger", "created_by", "created_at")}),
        ("Results", {"fields": ("passed", "failed", "duration_ms", "results_text")}),
    )

    @admin.display(description="ran")
    def target(self, run: TestRun) -> str:
        return f"v{run.version.number}" if run.version_id else f"draft r{run.draft_revision}"

    @admin.display(description="results")
    def results_text(self, run: TestRun) -> str:
        lines = []
        for result in run.results:
            lines.append(f"{'ok  ' if result.get('passed') else 'FAIL'} {result.get('case')}")
            lines += [f"     {problem}" for problem in result.get("problems") or []]
        return _pre("\n".join(lines) or "no samples")


# --- snippets and lookup tables -------------------------------------------------------------------------------------


class LibraryVersionInline(ReadOnlyMixin, admin.TabularInline):
    fields = ("revision", "author", "created_at")
    show_change_link = True
    extra = 0


class SnippetVersionInline(LibraryVersionInline):
    model = SnippetVersion


class LookupTableVersionInline(LibraryVersionInline):
    model = LookupTableVersion


class LibraryItemAdmin(ActionAdmin):
    """Snippets and lookup tables: named once, then changed (a new revision, or the description) or deleted."""

    list_select_related = ("updated_by",)
    list_filter = ("updated_at",)

    def get_readonly_fields(self, request: HttpRequest, obj: Model | None = None) -> tuple[str, ...]:
        always = ("revision", "created_at", "updated_at", "updated_by")
        return ("name", *always) if obj is not None else always


@admin.register(Snippet)
class SnippetAdmin(LibraryItemAdmin):
    list_display = ("name", "revision", "updated_at", "updated_by")
    search_fields = ("name", "description", "text")
    fields = ("name", "description", "text", "revision", "created_at", "updated_at", "updated_by")
    inlines = (SnippetVersionInline,)
    create = staticmethod(actions.do_create_snippet)
    update = staticmethod(actions.do_update_snippet)
    delete = staticmethod(actions.do_delete_snippet)


@admin.register(SnippetVersion)
class SnippetVersionAdmin(ReadOnlyAdmin):
    list_display = ("snippet", "revision", "author", "created_at")
    list_select_related = ("snippet", "author")
    search_fields = ("snippet__name",)
    fields = ("snippet", "revision", "author", "created_at", "text_view")

    text_view = preformatted("text")


@admin.register(LookupTable)
class LookupTableAdmin(LibraryItemAdmin):
    list_display = ("name", "entry_count", "revision", "updated_at", "updated_by")
    search_fields = ("name", "description")
    fields = ("name", "description", "data", "revision", "created_at", "updated_at", "updated_by")
    inlines = (LookupTableVersionInline,)
    create = staticmethod(actions.do_create_lookup_table)
    update = staticmethod(actions.do_update_lookup_table)
    delete = staticmethod(actions.do_delete_lookup_table)

    def cleaned(self, data: dict) -> dict:
        if "data" in data:
            data["data"] = data["data"] or {}  # an emptied JSON box: an empty table, not JSON null
        return data

    @admin.display(description="entries")
    def entry_count(self, table: LookupTable) -> int:
        return table.entry_count


@admin.register(LookupTableVersion)
class LookupTableVersionAdmin(ReadOnlyAdmin):
    list_display = ("table", "revision", "author", "created_at")
    list_select_related = ("table", "author")
    search_fields = ("table__name",)
    fields = ("table", "revision", "author", "created_at", "data")


# --- audit ----------------------------------------------------------------------------------------------------------


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "action", "actor", "object_type", "object_id", "mapping_slug")
    list_select_related = ("actor",)
    search_fields = ("mapping_slug", "object_id", "actor__username")
    list_filter = ("action", "object_type", "created_at")
    fields = ("created_at", "action", "actor", "object_type", "object_id", "mapping_slug", "before", "after", "details")


# --- message log ------------------------------------------------------------------------------------------------------


@admin.register(ProcessedMessage)
class ProcessedMessageAdmin(ReadOnlyAdmin):
    """The message log, read-only (reprocess is on the Messages page and the API). Searches match a key exactly, so
    they use the log's indexes."""

    list_display = ("created_at", "channel", "mapping_slug", "version_number", "status", "error_code",
                    "message_control_id", "patient_identifier", "record_key")  # fmt: skip
    list_filter = ("status", "channel", "created_at")
    search_fields = ("=message_control_id", "=patient_identifier", "=record_key", "=mapping_slug")
    fields = ("created_at", "channel", "facade_slug", "batch_id", "mapping_slug", "version_number", "source_format",
              "message_control_id", "patient_identifier", "record_key", "status", "error_code", "error_line",
              "error_message", "outcome", "payload_text", "payload_truncated", "reprocessed_from")  # fmt: skip
    payload_text = preformatted("payload")


# The facade and job admins live in their own modules (this one grew past 600 lines); importing them registers them.
from mappings import (  # noqa: E402, F401
    admin_connections,
    admin_facades,
    admin_jobs,
    admin_profiles,
    admin_security,
    admin_users,
)
