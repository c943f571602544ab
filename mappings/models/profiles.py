"""Definitions uploaded to the studio: StructureDefinitions (profiles, extensions), ValueSets and CodeSystems, alone
or from an IG package. They layer over the R4 core (mappings.profiles.studio_registry) and never change once
uploaded: to change one, delete it and upload the new one."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from mappings.engine.formats.decimals import FhirJSONDecoder, FhirJSONEncoder


class DefinitionType(models.TextChoices):
    STRUCTURE_DEFINITION = "StructureDefinition"
    VALUE_SET = "ValueSet"
    CODE_SYSTEM = "CodeSystem"


class ProfilePackage(models.Model):
    """An IG package (`name#version`); its definitions come and go with it."""

    name = models.CharField(max_length=200)
    version = models.CharField(max_length=50)
    description = models.TextField(blank=True)
    dependencies = models.JSONField(default=dict, blank=True)  # {package name: version}, as in its package.json
    skipped = models.PositiveIntegerField(default=0)  # resources it holds that are not definitions (examples …)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    uploaded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "version"]
        constraints = [models.UniqueConstraint(fields=["name", "version"], name="one_package_version")]

    def __str__(self) -> str:
        return self.key

    @property
    def key(self) -> str:
        return f"{self.name}#{self.version}"


class ProfileDefinition(models.Model):
    """One uploaded definition: its canonical URL (unique among uploads; it may shadow a core one), what it
    describes, and its JSON with a snapshot (generated at upload when only a differential was given)."""

    resource_type = models.CharField(max_length=30, choices=DefinitionType.choices)
    url = models.CharField(max_length=500, unique=True)
    version = models.CharField(max_length=100, blank=True)
    name = models.CharField(max_length=200, blank=True)
    title = models.CharField(max_length=300, blank=True)
    type = models.CharField(max_length=100, blank=True, db_index=True)  # StructureDefinition.type: Patient, Extension
    kind = models.CharField(max_length=30, blank=True)  # resource, complex-type, primitive-type, logical
    derivation = models.CharField(max_length=20, blank=True)
    base_definition = models.CharField(max_length=500, blank=True, db_index=True)
    extension_urls = models.JSONField(default=list, blank=True)  # extension definitions its elements name
    snapshot_generated = models.BooleanField(default=False)
    content = models.JSONField(encoder=FhirJSONEncoder, decoder=FhirJSONDecoder)
    package = models.ForeignKey(
        ProfilePackage, null=True, blank=True, on_delete=models.PROTECT, related_name="definitions"
    )
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    uploaded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["url"]

    def __str__(self) -> str:
        return self.url

    @property
    def is_extension(self) -> bool:
        return self.resource_type == DefinitionType.STRUCTURE_DEFINITION and self.type == "Extension"
