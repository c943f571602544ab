"""The admin console's connections to FHIR servers: added, changed, removed and tested through
mappings/actions/connections.py, so each write is checked and audited as the API's. Secrets are write-only fields:
the page never holds a stored one, and a field left empty keeps it. Registered by mappings/admin.py."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from mappings.actions import connections as connection_actions
from mappings.admin import ActionAdmin
from mappings.models import Connection

SECRET_FIELDS = ("password", "token", "client_secret", "private_key")


class ConnectionForm(forms.ModelForm):
    base_url = forms.URLField(max_length=500, assume_scheme="https", help_text="The server's FHIR base URL")
    password = forms.CharField(required=False, widget=forms.PasswordInput, help_text="basic: left empty, kept")
    token = forms.CharField(required=False, widget=forms.PasswordInput, help_text="bearer: left empty, kept")
    client_secret = forms.CharField(
        required=False, widget=forms.PasswordInput, help_text="client-credentials: left empty, kept"
    )
    private_key = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 4, "autocomplete": "off"}),
        help_text="smart-backend: the PEM private key (RS384: RSA, ES384: P-384); left empty, kept",
    )

    class Meta:
        model = Connection
        fields = ("name", "base_url", "auth_mode", "auth", "timeout_seconds", "max_retries")

    @property
    def changed_data(self) -> list[str]:
        # A secret typed in is a change of `secrets`, the one argument the action takes them in.
        changed = super().changed_data
        return [*changed, "secrets"] if any(self.cleaned_data.get(name) for name in SECRET_FIELDS) else changed


@admin.register(Connection)
class ConnectionAdmin(ActionAdmin):
    form = ConnectionForm
    list_display = ("name", "base_url", "auth_mode", "check_code", "fhir_version", "software", "checked_at")
    search_fields = ("name", "base_url")
    list_filter = ("auth_mode", "check_code")
    actions = ("test_connections",)
    readonly_fields = (
        "secrets_stored",
        "check_code",
        "check_message",
        "software",
        "fhir_version",
        "resource_types",
        "checked_at",
        "created_at",
        "updated_at",
    )
    create = staticmethod(connection_actions.do_create_connection)
    update = staticmethod(connection_actions.do_update_connection)
    delete = staticmethod(connection_actions.do_delete_connection)

    def get_fields(self, request: HttpRequest, obj: Connection | None = None) -> list[str]:
        editable = ["name", "base_url", "auth_mode", "auth", *SECRET_FIELDS, "timeout_seconds", "max_retries"]
        return editable + list(self.readonly_fields if obj else ())

    def get_readonly_fields(self, request: HttpRequest, obj: Connection | None = None) -> tuple[str, ...]:
        return ("name", *self.readonly_fields) if obj else ()

    def cleaned(self, data: dict) -> dict:
        given = {name: data.pop(name) for name in SECRET_FIELDS if name in data}
        data["secrets"] = {name: value for name, value in given.items() if value}
        data["auth"] = data.get("auth") or {}
        return data

    @admin.display(description="secrets stored")
    def secrets_stored(self, connection: Connection) -> str:
        return ", ".join(connection.secrets_set) or "—"

    @admin.action(description="Test the selected connections (read their metadata)")
    def test_connections(self, request: HttpRequest, queryset: QuerySet) -> None:
        for connection in queryset:
            found = connection_actions.do_test_connection(connection, acting_user=request.user)
            level = messages.SUCCESS if found.ok else messages.WARNING
            self.message_user(request, f"{connection.name}: {found.code}: {found.message}", level)
