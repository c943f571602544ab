"""The admin console: every studio model, with list columns, search and filters.

Writes go through the actions (mappings/actions.py), like everywhere else, so an admin's change gets the same checks
and the same audit row as one made in the API. What the studio never rewrites — published versions, snippet and table
history, test runs, audit rows, and drafts (saved only with optimistic locking, by the editor and the API) — is
read-only here. Each action runs in its own durable transaction, so the write views below do not wrap the request in
Django admin's usual transaction (which would nest them), and an action's refusal (a StudioError such as `in_use`)
comes back as an error message instead of a server error.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.admin.options import csrf_protect_m
from django.db.models import Model, OuterRef, QuerySet, Subquery
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


def _tally(run: TestRun | None) -> str:
    return "—" if run is None else f"{run.passed} passed, {run.failed} failed"


class ActionAdmin(admin.ModelAdmin):
    """A ModelAdmin whose saves and deletes call actions (subclasses implement save_model and delete_model)."""

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
    """Nobody adds, changes or deletes these here: they are history, written only by actions."""

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
    readonly_fields = fields
    verbose_name_plural = "Draft (edited in the editor or the API, with optimistic locking)"

    @admin.display(description="template")
    def template_text(self, draft: Draft) -> str:
        return _pre(draft.template)


class SampleCaseInline(ReadOnlyMixin, admin.TabularInline):
    model = SampleCase
    fields = ("name", "source_format", "has_expected", "assertion_count", "updated_at")
    readonly_fields = fields
    show_change_link = True
    extra = 0
    verbose_name_plural = "Samples (add and edit them under Sample cases)"

    @admin.display(boolean=True, description="expected output")
    def has_expected(self, sample: SampleCase) -> bool:
        return sample.expected is not None

    @admin.display(description="assertions")
    def assertion_count(self, sample: SampleCase) -> int:
        return len(sample.assertions or [])


class MappingVersionInline(ReadOnlyMixin, admin.TabularInline):
    model = MappingVersion
    fk_name = "mapping"
    fields = ("number", "message", "author", "created_at", "tests")
    readonly_fields = fields
    show_change_link = True
    extra = 0

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).select_related("author", "test_run")

    @admin.display(description="tests")
    def tests(self, version: MappingVersion) -> str:
        return _tally(version.test_run)


def _last_run(field_name: str) -> Subquery:
    runs = TestRun.objects.filter(mapping=OuterRef("pk")).order_by("-created_at", "-id")
    return Subquery(runs.values(field_name)[:1])


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
    fields = (
        "slug",
        "title",
        "description",
        "source_format",
        "source_options",
        "output_kind",
        "timezone",
        "strict",
        "owner",
        "latest_version",
        "created_at",
        "updated_at",
    )
    inlines = (DraftInline, MappingVersionInline, SampleCaseInline)
    actions = ("run_tests",)

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return (
            super()
            .get_queryset(request)
            .select_related("draft", "latest_version", "owner")
            .annotate(last_run_passed=_last_run("passed"), last_run_failed=_last_run("failed"))
        )

    def get_readonly_fields(self, request: HttpRequest, obj: Mapping | None = None) -> tuple[str, ...]:
        always = ("owner", "latest_version", "created_at", "updated_at")
        return ("slug", *always) if obj is not None else always  # the actions cannot rename a mapping

    @admin.display(description="draft rev.")
    def draft_revision(self, mapping: Mapping) -> int | None:
        draft = getattr(mapping, "draft", None)
        return draft.revision if draft else None

    @admin.display(description="latest version", ordering="latest_version__number")
    def latest_version_number(self, mapping: Mapping) -> str:
        return f"v{mapping.latest_version.number}" if mapping.latest_version else "—"

    @admin.display(description="last test run")
    def last_test_result(self, mapping: Mapping) -> str:
        if mapping.last_run_passed is None:
            return "—"
        return f"{mapping.last_run_passed} passed, {mapping.last_run_failed} failed"

    def save_model(self, request: HttpRequest, obj: Mapping, form, change: bool) -> None:
        fields = {name: form.cleaned_data[name] for name in actions.MAPPING_FIELDS if name in form.cleaned_data}
        if change:
            changed = {name: value for name, value in fields.items() if name in form.changed_data}
            saved = actions.do_update_mapping(Mapping.objects.get(pk=obj.pk), acting_user=request.user, **changed)
        else:
            saved = actions.do_create_mapping(acting_user=request.user, slug=obj.slug, **fields)
        _adopt(obj, saved)

    def delete_model(self, request: HttpRequest, obj: Mapping) -> None:
        actions.do_delete_mapping(obj, acting_user=request.user)

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
    readonly_fields = fields

    @admin.display(description="template")
    def template_text(self, draft: Draft) -> str:
        return _pre(draft.template)


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
    readonly_fields = fields

    @admin.display(description="tests")
    def tests(self, version: MappingVersion) -> str:
        return _tally(version.test_run)

    @admin.display(description="hash")
    def short_hash(self, version: MappingVersion) -> str:
        return version.content_hash[:12]

    @admin.display(description="template")
    def template_text(self, version: MappingVersion) -> str:
        return _pre(version.template)

    @admin.display(description="snippets (frozen)")
    def snippet_names(self, version: MappingVersion) -> str:
        return ", ".join(sorted(version.snippets)) or "—"

    @admin.display(description="lookup tables (frozen)")
    def table_names(self, version: MappingVersion) -> str:
        return ", ".join(sorted(version.lookup_tables)) or "—"


# --- samples and test runs ------------------------------------------------------------------------------------------


@admin.register(SampleCase)
class SampleCaseAdmin(ActionAdmin):
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

    @admin.display(boolean=True, description="expected output")
    def has_expected(self, sample: SampleCase) -> bool:
        return sample.expected is not None

    @admin.display(description="assertions")
    def assertion_count(self, sample: SampleCase) -> int:
        return len(sample.assertions or [])

    def save_model(self, request: HttpRequest, obj: SampleCase, form, change: bool) -> None:
        data = form.cleaned_data
        fields = {name: data[name] for name in actions.SAMPLE_FIELDS if name in data}
        for name in ("ignore_paths", "assertions"):  # an emptied JSON box means "none", not JSON null
            if name in fields:
                fields[name] = fields[name] or []
        if change:
            changed = {name: value for name, value in fields.items() if name in form.changed_data}
            saved = actions.do_update_sample(
                SampleCase.objects.select_related("mapping").get(pk=obj.pk), acting_user=request.user, **changed
            )
        else:
            payload = fields.pop("payload")
            saved = actions.do_create_sample(
                data["mapping"], acting_user=request.user, name=data["name"], payload=payload, **fields
            )
        _adopt(obj, saved)

    def delete_model(self, request: HttpRequest, obj: SampleCase) -> None:
        actions.do_delete_sample(obj, acting_user=request.user)


@admin.register(TestRun)
class TestRunAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "mapping", "target", "trigger", "passed", "failed", "duration_ms", "created_by")
    list_select_related = ("mapping", "version", "created_by")
    search_fields = ("mapping__slug",)
    list_filter = ("trigger", "created_at")
    fields = (
        "mapping",
        "version",
        "draft_revision",
        "trigger",
        "passed",
        "failed",
        "duration_ms",
        "created_by",
        "created_at",
        "results_text",
    )
    readonly_fields = fields

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


class SnippetVersionInline(ReadOnlyMixin, admin.TabularInline):
    model = SnippetVersion
    fields = ("revision", "author", "created_at")
    readonly_fields = fields
    show_change_link = True
    extra = 0


@admin.register(Snippet)
class SnippetAdmin(ActionAdmin):
    list_display = ("name", "revision", "updated_at", "updated_by")
    list_select_related = ("updated_by",)
    search_fields = ("name", "description", "text")
    list_filter = ("updated_at",)
    fields = ("name", "description", "text", "revision", "created_at", "updated_at", "updated_by")
    inlines = (SnippetVersionInline,)

    def get_readonly_fields(self, request: HttpRequest, obj: Snippet | None = None) -> tuple[str, ...]:
        always = ("revision", "created_at", "updated_at", "updated_by")
        return ("name", *always) if obj is not None else always

    def save_model(self, request: HttpRequest, obj: Snippet, form, change: bool) -> None:
        data = form.cleaned_data
        if change:
            saved = actions.do_update_snippet(
                Snippet.objects.get(pk=obj.pk),
                acting_user=request.user,
                text=data["text"] if "text" in form.changed_data else None,
                description=data["description"] if "description" in form.changed_data else None,
            )
        else:
            saved = actions.do_create_snippet(
                acting_user=request.user, name=data["name"], text=data["text"], description=data["description"]
            )
        _adopt(obj, saved)

    def delete_model(self, request: HttpRequest, obj: Snippet) -> None:
        actions.do_delete_snippet(obj, acting_user=request.user)


@admin.register(SnippetVersion)
class SnippetVersionAdmin(ReadOnlyAdmin):
    list_display = ("snippet", "revision", "author", "created_at")
    list_select_related = ("snippet", "author")
    search_fields = ("snippet__name",)
    fields = ("snippet", "revision", "author", "created_at", "text_view")
    readonly_fields = fields

    @admin.display(description="text")
    def text_view(self, version: SnippetVersion) -> str:
        return _pre(version.text)


class LookupTableVersionInline(ReadOnlyMixin, admin.TabularInline):
    model = LookupTableVersion
    fields = ("revision", "author", "created_at")
    readonly_fields = fields
    show_change_link = True
    extra = 0


@admin.register(LookupTable)
class LookupTableAdmin(ActionAdmin):
    list_display = ("name", "entry_count", "revision", "updated_at", "updated_by")
    list_select_related = ("updated_by",)
    search_fields = ("name", "description")
    list_filter = ("updated_at",)
    fields = ("name", "description", "data", "revision", "created_at", "updated_at", "updated_by")
    inlines = (LookupTableVersionInline,)

    def get_readonly_fields(self, request: HttpRequest, obj: LookupTable | None = None) -> tuple[str, ...]:
        always = ("revision", "created_at", "updated_at", "updated_by")
        return ("name", *always) if obj is not None else always

    @admin.display(description="entries")
    def entry_count(self, table: LookupTable) -> int:
        return table.entry_count

    def save_model(self, request: HttpRequest, obj: LookupTable, form, change: bool) -> None:
        data = form.cleaned_data
        if change:
            saved = actions.do_update_lookup_table(
                LookupTable.objects.get(pk=obj.pk),
                acting_user=request.user,
                data=data["data"] if "data" in form.changed_data else None,
                description=data["description"] if "description" in form.changed_data else None,
            )
        else:
            saved = actions.do_create_lookup_table(
                acting_user=request.user, name=data["name"], data=data["data"] or {}, description=data["description"]
            )
        _adopt(obj, saved)

    def delete_model(self, request: HttpRequest, obj: LookupTable) -> None:
        actions.do_delete_lookup_table(obj, acting_user=request.user)


@admin.register(LookupTableVersion)
class LookupTableVersionAdmin(ReadOnlyAdmin):
    list_display = ("table", "revision", "author", "created_at")
    list_select_related = ("table", "author")
    search_fields = ("table__name",)
    fields = ("table", "revision", "author", "created_at", "data")
    readonly_fields = fields


# --- audit ----------------------------------------------------------------------------------------------------------


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "action", "actor", "object_type", "object_id", "mapping_slug")
    list_select_related = ("actor",)
    search_fields = ("mapping_slug", "object_id", "actor__username")
    list_filter = ("action", "object_type", "created_at")
    fields = ("created_at", "action", "actor", "object_type", "object_id", "mapping_slug", "before", "after", "details")
    readonly_fields = fields
