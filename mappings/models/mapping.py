"""A mapping and its one editable draft."""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.db import models
from django.db.models import BooleanField, Case, F, OuterRef, Subquery, Value, When

from mappings.engine import SOURCE_FORMATS

from .facade import Deployment
from .testing import TestRun

SOURCE_FORMAT_CHOICES = [(name, name) for name in SOURCE_FORMATS]


class MappingQuerySet(models.QuerySet):
    def with_status(self) -> MappingQuerySet:
        """Each mapping's status in one query however many rows: owner_username, draft_revision,
        latest_version_number, last_run_* (id, passed, failed, created_at), deployed_version (what its most recently
        deployed live binding serves) and draft_changed (the draft's template differs from the latest version's,
        compared in SQL; true when nothing is published)."""
        last_run = TestRun.objects.filter(mapping=OuterRef("pk")).order_by("-created_at", "-id")
        live = Deployment.objects.live().filter(binding__mapping=OuterRef("pk")).order_by("-deployed_at", "-id")
        return self.annotate(
            owner_username=F("owner__username"),
            draft_revision=F("draft__revision"),
            latest_version_number=F("latest_version__number"),
            last_run_id=Subquery(last_run.values("id")[:1]),
            last_run_passed=Subquery(last_run.values("passed")[:1]),
            last_run_failed=Subquery(last_run.values("failed")[:1]),
            last_run_created_at=Subquery(last_run.values("created_at")[:1]),
            deployed_version=Subquery(live.values("version__number")[:1]),
            draft_changed=Case(
                When(latest_version__isnull=True, then=Value(True)),
                When(draft__template=F("latest_version__template"), then=Value(False)),
                default=Value(True),
                output_field=BooleanField(),
            ),
        )


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

    objects = MappingQuerySet.as_manager()

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
