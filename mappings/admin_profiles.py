"""The admin console's profiles: uploaded definitions and IG packages. Read-only: they are uploaded and deleted in
the studio (API and Profiles page) through the actions, which check what uses them. Registered by mappings/admin.py."""

from __future__ import annotations

from django.contrib import admin

from mappings.admin import ReadOnlyAdmin, ReadOnlyMixin
from mappings.models import ProfileDefinition, ProfilePackage


class ProfileDefinitionInline(ReadOnlyMixin, admin.TabularInline):
    model = ProfileDefinition
    fields = ("url", "resource_type", "type", "derivation", "snapshot_generated")
    extra = 0


@admin.register(ProfilePackage)
class ProfilePackageAdmin(ReadOnlyAdmin):
    list_display = ("name", "version", "uploaded_by", "uploaded_at")
    search_fields = ("name", "description")
    list_select_related = ("uploaded_by",)
    fields = ("name", "version", "description", "dependencies", "skipped", "uploaded_by", "uploaded_at")
    inlines = (ProfileDefinitionInline,)


@admin.register(ProfileDefinition)
class ProfileDefinitionAdmin(ReadOnlyAdmin):
    list_display = ("url", "resource_type", "type", "derivation", "package", "uploaded_at")
    list_filter = ("resource_type", "derivation", "kind")
    search_fields = ("url", "name", "title", "type")
    list_select_related = ("package",)
    fields = (
        "url",
        "version",
        "name",
        "title",
        "resource_type",
        "type",
        "kind",
        "derivation",
        "base_definition",
        "extension_urls",
        "snapshot_generated",
        "package",
        "uploaded_by",
        "uploaded_at",
        "content",
    )
