"""A mapping and its one editable draft."""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.db import models

from mappings.engine import SOURCE_FORMATS

SOURCE_FORMAT_CHOICES = [(name, name) for name in SOURCE_FORMATS]


class Mapping(models.Model):
    slug = models.SlugField(max_length=100, unique=True)
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    source_format = models.CharField(max_length=20, choices=SOURCE_FORMAT_CHOICES)
    source_options = models.JSONField(default=dict, blank=True)  # e.g. {"delimiter": ";", "encoding": "latin-1"}
    output_kind = models.CharField(max_length=60, default="Bundle", help_text="Resource type, or Bundle")
    timezone = models.CharField(max_length=60, default="UTC")
    strict = models.BooleanField(default=False, help_text="Undefined names are errors, not empty")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    latest_version = models.ForeignKey(
        "MappingVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug

    def next_version_number(self) -> int:
        last = self.versions.order_by("-number").values_list("number", flat=True).first()
        return (last or 0) + 1

    def engine_settings(self) -> dict:
        """What the engine needs besides the template, frozen into each published version."""
        return {
            "source_format": self.source_format,
            "source_options": self.source_options,
            "timezone": self.timezone,
            "strict": self.strict,
        }


class Draft(models.Model):
    """The text being edited. `revision` grows on every save; the API's ETag is built from it, so two clients
    saving the same revision cannot both win."""

    mapping = models.OneToOneField(Mapping, on_delete=models.CASCADE, related_name="draft")
    template = models.TextField(blank=True)
    # Snippet and lookup-table names the template uses: found from its imports and translate() calls when saved,
    # plus any listed by hand (tables named in a variable cannot be found).
    snippet_names = models.JSONField(default=list, blank=True)
    table_names = models.JSONField(default=list, blank=True)
    revision = models.PositiveIntegerField(default=1)
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    def __str__(self) -> str:
        return f"{self.mapping.slug} draft r{self.revision}"

    @property
    def etag(self) -> str:
        return f'"{self.mapping_id}-{self.revision}"'

    def content_hash(self) -> str:
        return hashlib.sha256(self.template.encode()).hexdigest()
