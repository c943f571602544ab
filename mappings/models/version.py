"""Published, immutable mapping versions: everything needed to run them is frozen inside."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class MappingVersion(models.Model):
    mapping = models.ForeignKey("Mapping", on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    template = models.TextField()
    snippets = models.JSONField(default=dict)  # {name: text} as they were when published
    lookup_tables = models.JSONField(default=dict)  # {name: table data} as they were when published
    engine_settings = models.JSONField(default=dict)  # source format, options, time zone, strict
    content_hash = models.CharField(max_length=64)
    message = models.TextField()
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    test_run = models.ForeignKey("TestRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["mapping", "-number"]
        constraints = [models.UniqueConstraint(fields=["mapping", "number"], name="one_number_per_version")]

    def __str__(self) -> str:
        return f"{self.mapping.slug} v{self.number}"
