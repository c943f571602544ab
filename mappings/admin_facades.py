"""The admin console's facade pages: facades, data sources (with record counts), bindings and deployments. Writes go
through the actions, as everywhere; deployments are read-only history. Registered by mappings/admin.py, which holds
the shared admin bases."""

from __future__ import annotations

import json

from django import forms
from django.contrib import admin
from django.db.models import Count, QuerySet
from django.http import HttpRequest

from mappings import actions, secrets
from mappings.admin import ActionAdmin, ReadOnlyAdmin, ReadOnlyMixin
from mappings.engine import SOURCE_FORMATS
from mappings.models import DataSource, Deployment, Facade, ResourceBinding
from mappings.security import introspection

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


INTROSPECTION_FORM_FIELDS = tuple(f"introspection_{name}" for name in introspection.FIELDS)


class FacadeForm(forms.ModelForm):
    # Write-only, as the API: the stored (sealed) secret is never put in the page; left empty, it is kept.
    introspection_client_secret = forms.CharField(
        label="Introspection client secret",
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Stored encrypted and never shown; leave empty to keep the stored one.",
    )
    # Optional: an open or SMART facade's form leaves it empty (the action keeps 5 s unless told otherwise).
    introspection_timeout_s = forms.FloatField(
        label="Introspection timeout (s)",
        required=False,
        min_value=0.1,
        max_value=introspection.MAX_TIMEOUT_S,
        help_text="How long to wait for the authorization server before answering 503.",
    )

    class Meta:
        model = Facade
        fields = ("slug", "title", "status", "auth_mode", "convert_templates", *INTROSPECTION_FORM_FIELDS)


@admin.register(Facade)
class FacadeAdmin(ActionAdmin):
    form = FacadeForm
    list_display = ("slug", "title", "status", "auth_mode", "types", "updated_at")
    list_display_links = ("slug", "title")
    search_fields = ("slug", "title")
    list_filter = ("status", "auth_mode")
    fields = (
        "slug",
        "title",
        "status",
        "auth_mode",
        "convert_templates",
        *INTROSPECTION_FORM_FIELDS,
        "generation",
        "created_at",
        "updated_at",
    )
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
        # do_update_facade changes title, status, convert_templates and the introspection settings
        return ("slug", "auth_mode", *always)

    def save_model(self, request: HttpRequest, obj: Facade, form: forms.ModelForm, change: bool) -> None:
        # The action takes the introspection fields as one `introspection` argument (cleaned() makes it), which
        # ActionAdmin passes on a change only when the form says it changed.
        if any(name in form.changed_data for name in INTROSPECTION_FORM_FIELDS):
            form.changed_data.append("introspection")
        super().save_model(request, obj, form, change)

    def cleaned(self, data: dict) -> dict:
        if "convert_templates" in data:
            data["convert_templates"] = data["convert_templates"] or {}
        given = {
            name: data.pop(f"introspection_{name}") for name in introspection.FIELDS if f"introspection_{name}" in data
        }
        if introspection.is_given(given):
            data["introspection"] = given
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

    def get_fields(self, request: HttpRequest, obj: DataSource | None = None) -> tuple[str, ...]:
        if obj is None:
            return self.fields
        return tuple("settings" if name == "config" else name for name in self.fields)  # never the stored secrets

    @admin.display(description="config")
    def settings(self, source: DataSource) -> str:
        """The settings with credentials masked, as the API shows them (stored encrypted: mappings/secrets.py)."""
        return json.dumps(secrets.masked(source.config), indent=2)

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
