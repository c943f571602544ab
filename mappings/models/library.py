"""Snippets and lookup tables shared across mappings, each with its history of saved versions."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models

snippet_name = RegexValidator(
    r"^snippets/[a-z0-9][a-z0-9_\-]*(/[a-z0-9][a-z0-9_\-]*)*\.j2$",
    "A snippet name looks like snippets/<source>/<role>.j2 (lower case, digits, - and _).",
)


class LibraryItem(models.Model):
    """What snippets and lookup tables share: a unique `name` (each declares its own), a description, the revision
    each save counts up, and who saved it last. Abstract: each keeps its own table."""

    description = models.TextField(blank=True)
    revision = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        abstract = True
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Snippet(LibraryItem):
    name = models.CharField(max_length=200, unique=True, validators=[snippet_name])
    text = models.TextField()


class SnippetVersion(models.Model):
    snippet = models.ForeignKey(Snippet, on_delete=models.CASCADE, related_name="versions")
    revision = models.PositiveIntegerField()
    text = models.TextField()
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["snippet", "-revision"]
        constraints = [models.UniqueConstraint(fields=["snippet", "revision"], name="one_snippet_revision")]


class LookupTable(LibraryItem):
    """Code translation as data. `data` is the engine's table form: target_system, default, case_sensitive and
    entries [{source, source_system, code, display, system}] (see mappings/engine/lookup.py)."""

    name = models.SlugField(max_length=100, unique=True)
    data = models.JSONField(default=dict)

    @property
    def entry_count(self) -> int:
        entries = self.data.get("entries", [])
        return len(entries)


class LookupTableVersion(models.Model):
    table = models.ForeignKey(LookupTable, on_delete=models.CASCADE, related_name="versions")
    revision = models.PositiveIntegerField()
    data = models.JSONField(default=dict)
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["table", "-revision"]
        constraints = [models.UniqueConstraint(fields=["table", "revision"], name="one_table_revision")]
