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

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.options import csrf_protect_m
from django.contrib.admin.utils import flatten_fieldsets
from django.db.models import Count, Model, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.utils.html import format_html

from mappings import actions
from mappings.engine import SOURCE_FORMATS
from mappings.errors import StudioError
from mappings.models import (
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


# --- facades --------------------------------------------------------------------------------------------------------


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _deployment_state(deployment: Deployment | None) -> str:
    if deployment is None:
        return "—"
    return f"v{deployment.version.number}" + ("" if deployment.ready else " (indexing)")


class BindingInline(ReadOnlyMixin, admin.TabularInline):
    model = ResourceBinding
    fields = ("resource_type", "mapping", "source", "live")
    show_change_link = True
    extra = 0
    verbose_name_plural = "Resource types (bind under Resource bindings; deploy in the studio, which runs the tests)"

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).with_deployments()

    @admin.display(description="live version")
    def live(self, binding: ResourceBinding) -> str:
        return _deployment_state(binding.live_deployment)


@admin.register(Facade)
class FacadeAdmin(ActionAdmin):
    list_display = ("slug", "title", "status", "auth_mode", "types", "updated_at")
    list_display_links = ("slug", "title")
    search_fields = ("slug", "title")
    list_filter = ("status", "auth_mode")
    fields = ("slug", "title", "status", "auth_mode", "convert_templates", "generation", "created_at", "updated_at")
    inlines = (BindingInline,)
    create = staticmethod(actions.do_create_facade)
    update = staticmethod(actions.do_update_facade)
    delete = staticmethod(actions.do_delete_facade)

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).annotate(binding_count=Count("bindings"))

    def get_readonly_fields(self, request: HttpRequest, obj: Facade | None = None) -> tuple[str, ...]:
        always = ("generation", "created_at", "updated_at")
        if obj is None:
            return ("status", *always)  # a new facade starts active
        return ("slug", "auth_mode", *always)  # do_update_facade changes title, status and convert_templates

    def cleaned(self, data: dict) -> dict:
        if "convert_templates" in data:
            data["convert_templates"] = data["convert_templates"] or {}
        return data

    @admin.display(description="resource types", ordering="binding_count")
    def types(self, facade: Facade) -> int:
        return facade.binding_count


class DataSourceForm(forms.ModelForm):
    source_format = forms.ChoiceField(choices=[(name, name) for name in SOURCE_FORMATS])

    class Meta:
        model = DataSource
        fields = ("name", "kind", "source_format", "description", "config")


@admin.register(DataSource)
class DataSourceAdmin(ActionAdmin):
    """Sources are created and deleted here; records are uploaded through the studio or the API (which re-index the
    deployments reading them), so a source's fields are read-only once it exists."""

    form = DataSourceForm
    list_display = ("name", "kind", "source_format", "records", "used_by", "created_at")
    search_fields = ("name", "description")
    list_filter = ("kind", "source_format")
    fields = ("name", "kind", "source_format", "description", "config", "created_at")
    readonly_fields = ("created_at",)
    create = staticmethod(actions.do_create_data_source)
    delete = staticmethod(actions.do_delete_data_source)

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return (
            super().get_queryset(request).annotate(record_count=Count("records")).prefetch_related("bindings__facade")
        )

    def has_change_permission(self, request: HttpRequest, obj: DataSource | None = None) -> bool:
        return False

    def cleaned(self, data: dict) -> dict:
        data["config"] = data.get("config") or {}
        return data

    @admin.display(description="records", ordering="record_count")
    def records(self, source: DataSource) -> str:
        return _plural(source.record_count, "record")

    @admin.display(description="read by")
    def used_by(self, source: DataSource) -> str:
        return ", ".join(sorted(str(binding) for binding in source.bindings.all())) or "—"


def _rebind(binding: ResourceBinding, *, acting_user, **changed: object) -> ResourceBinding:
    """A binding's change page: serve the type through another mapping or from another source."""
    return actions.do_bind_resource(
        binding.facade,
        acting_user=acting_user,
        resource_type=binding.resource_type,
        mapping=changed.get("mapping", binding.mapping),
        source=changed.get("source", binding.source),
    )


@admin.register(ResourceBinding)
class ResourceBindingAdmin(ActionAdmin):
    list_display = ("__str__", "mapping", "source", "live", "pending")
    list_filter = ("facade",)
    search_fields = ("facade__slug", "resource_type", "mapping__slug", "source__name")
    fields = ("facade", "resource_type", "mapping", "source", "live", "pending")
    create = staticmethod(actions.do_bind_resource)
    update = staticmethod(_rebind)
    delete = staticmethod(actions.do_delete_binding)

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).with_deployments()

    def get_readonly_fields(self, request: HttpRequest, obj: ResourceBinding | None = None) -> tuple[str, ...]:
        always = ("live", "pending")
        return ("facade", "resource_type", *always) if obj is not None else always

    @admin.display(description="live version")
    def live(self, binding: ResourceBinding) -> str:
        return _deployment_state(binding.live_deployment)

    @admin.display(description="indexing")
    def pending(self, binding: ResourceBinding) -> str:
        return _deployment_state(binding.pending_deployment)


@admin.register(Deployment)
class DeploymentAdmin(ReadOnlyAdmin):
    """History: a deploy runs the version's samples first, so it is made in the studio or the API, never here."""

    list_display = ("deployed_at", "binding", "version_number", "state", "indexed", "deployed_by")
    list_filter = ("ready", "superseded", "binding__facade", "deployed_at")
    search_fields = ("binding__facade__slug", "binding__resource_type", "version__mapping__slug")
    fields = (
        "binding",
        "version",
        "variables",
        "deployed_by",
        "deployed_at",
        "rollback_of",
        "ready",
        "superseded",
        "indexed",
        "index_errors",
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return (
            super()
            .get_queryset(request)
            .select_related("binding__facade", "version__mapping", "deployed_by")
            .defer("version__template", "version__snippets", "version__lookup_tables")
        )

    @admin.display(description="version", ordering="version__number")
    def version_number(self, deployment: Deployment) -> str:
        return f"{deployment.version.mapping.slug} v{deployment.version.number}"

    @admin.display(description="state")
    def state(self, deployment: Deployment) -> str:
        if deployment.ready:
            return "live"
        return "superseded" if deployment.superseded else "indexing"


# --- audit ----------------------------------------------------------------------------------------------------------


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "action", "actor", "object_type", "object_id", "mapping_slug")
    list_select_related = ("actor",)
    search_fields = ("mapping_slug", "object_id", "actor__username")
    list_filter = ("action", "object_type", "created_at")
    fields = ("created_at", "action", "actor", "object_type", "object_id", "mapping_slug", "before", "after", "details")
