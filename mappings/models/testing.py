"""Sample payloads with expectations, and the recorded runs of them."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from mappings.engine.formats.decimals import FhirJSONDecoder, FhirJSONEncoder


class SampleCase(models.Model):
    mapping = models.ForeignKey("Mapping", on_delete=models.CASCADE, related_name="samples")
    name = models.SlugField(max_length=100)
    payload = models.TextField()
    source_format = models.CharField(max_length=20, blank=True, help_text="Empty: the mapping's")
    # the expected output, or null to check validity only; decimals keep their digits
    expected = models.JSONField(null=True, blank=True, encoder=FhirJSONEncoder, decoder=FhirJSONDecoder)
    ignore_paths = models.JSONField(default=list, blank=True)  # keys masked before comparing, e.g. ["timestamp"]
    assertions = models.JSONField(default=list, blank=True)  # FHIRPath expressions that must be true
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["mapping", "name"]
        constraints = [models.UniqueConstraint(fields=["mapping", "name"], name="one_sample_name_per_mapping")]

    def __str__(self) -> str:
        return f"{self.mapping.slug}/{self.name}"


class TestRun(models.Model):
    __test__ = False  # not a pytest test class, despite the name

    class Trigger(models.TextChoices):
        SAVE = "save"
        PUBLISH = "publish"
        MANUAL = "manual"
        DEPLOY = "deploy"

    mapping = models.ForeignKey("Mapping", on_delete=models.CASCADE, related_name="test_runs")
    version = models.ForeignKey(
        "MappingVersion", null=True, blank=True, on_delete=models.CASCADE, related_name="test_runs"
    )  # null: the draft at draft_revision
    draft_revision = models.PositiveIntegerField(null=True, blank=True)
    trigger = models.CharField(max_length=10, choices=Trigger.choices)
    passed = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    results = models.JSONField(default=list)  # [{case, passed, problems, issues, timings}]
    duration_ms = models.FloatField(default=0)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        target = f"v{self.version.number}" if self.version_id else f"draft r{self.draft_revision}"
        return f"{self.mapping.slug} {target}: {self.passed} passed, {self.failed} failed"

    @property
    def ok(self) -> bool:
        return self.failed == 0
