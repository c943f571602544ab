"""The admin console's SMART pages: client apps (registered, changed and removed through the security actions, so
each write is audited and checked as the API checks it). Registered by mappings/admin.py, as admin_facades is."""

from __future__ import annotations

from django.contrib import admin
from django.db import models
from django.http import HttpRequest

from mappings.admin import ActionAdmin
from mappings.models import ClientApp
from mappings.security import actions


@admin.register(ClientApp)
class ClientAppAdmin(ActionAdmin):
    list_display = ("client_id", "name", "active", "allowed", "used_by", "updated_at")
    search_fields = ("client_id", "name")
    list_filter = ("active", "facades")
    fields = ("client_id", "name", "active", "facades", "scopes", "jwks", "jwks_url", "created_at", "updated_at")
    filter_horizontal = ("facades",)
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}  # Django 6's default, said now
    create = staticmethod(actions.do_register_client_app)
    update = staticmethod(actions.do_update_client_app)
    delete = staticmethod(actions.do_delete_client_app)

    def get_queryset(self, request: HttpRequest):
        return super().get_queryset(request).prefetch_related("facades")

    def get_readonly_fields(self, request: HttpRequest, obj: ClientApp | None = None) -> tuple[str, ...]:
        always = ("created_at", "updated_at")
        if obj is None:
            return ("active", *always)  # a new client app starts active
        return ("client_id", *always)

    def cleaned(self, data: dict) -> dict:
        if "facades" in data:
            data["facades"] = list(data["facades"])
        if "jwks" in data:
            data["jwks"] = data["jwks"] or None
        if "scopes" in data and isinstance(data["scopes"], str):
            data["scopes"] = data["scopes"].split()
        return data

    @admin.display(description="allowed scopes")
    def allowed(self, client: ClientApp) -> str:
        return " ".join(client.scopes)

    @admin.display(description="facades")
    def used_by(self, client: ClientApp) -> str:
        return ", ".join(sorted(facade.slug for facade in client.facades.all())) or "—"
