"""Request and response shapes of the profile endpoints (views in mappings/api/profiles.py)."""

from __future__ import annotations

from rest_framework import serializers

from mappings.models import DefinitionType

SOURCES = ("core", "uploaded")


class ProfileQuery(serializers.Serializer):
    resource_type = serializers.ChoiceField(
        choices=DefinitionType.choices, required=False, help_text="Default: every kind (core ones are profiles)"
    )
    type = serializers.CharField(
        required=False, max_length=100, help_text="StructureDefinition.type: Patient, Extension…"
    )
    kind = serializers.ChoiceField(
        choices=["resource", "complex-type", "primitive-type", "logical"],
        required=False,
        help_text="StructureDefinition.kind",
    )
    search = serializers.CharField(required=False, allow_blank=True, max_length=200, help_text="In URL, name or title")
    source = serializers.ChoiceField(choices=SOURCES, required=False, help_text="core (shipped) or uploaded")

    def validate_type(self, value: str) -> str:
        if "\x00" in value:
            raise serializers.ValidationError("Must not contain a NUL character.")
        return value

    def validate_search(self, value: str) -> str:
        return self.validate_type(value)


class ProfileUploadIn(serializers.Serializer):
    file = serializers.FileField(
        help_text="A StructureDefinition, ValueSet or CodeSystem as JSON or FHIR XML, or an IG package (.tgz)"
    )


class ProfileSummaryOut(serializers.Serializer):
    id = serializers.IntegerField(allow_null=True, help_text="Uploaded definitions only; core ones are named by URL")
    url = serializers.CharField()
    name = serializers.CharField()
    title = serializers.CharField()
    version = serializers.CharField()
    resource_type = serializers.CharField()
    type = serializers.CharField()
    kind = serializers.CharField()
    derivation = serializers.CharField()
    base_definition = serializers.CharField()
    source = serializers.ChoiceField(choices=SOURCES)
    package = serializers.CharField(allow_null=True, help_text="name#version of the package it came with")
    is_extension = serializers.BooleanField()


class TypeOut(serializers.Serializer):
    code = serializers.CharField()
    profiles = serializers.ListField(child=serializers.CharField())
    target_profiles = serializers.ListField(child=serializers.CharField())


class ElementOut(serializers.Serializer):
    id = serializers.CharField()
    path = serializers.CharField()
    depth = serializers.IntegerField(help_text="Dots in the id: 0 for the root")
    slice_name = serializers.CharField(allow_null=True)
    min = serializers.IntegerField(allow_null=True)
    max = serializers.CharField(allow_null=True)
    types = TypeOut(many=True)
    binding = serializers.JSONField(allow_null=True, help_text="{strength, valueSet}")
    fixed = serializers.JSONField(help_text="{fixedUri: …} when the element has a fixed value")
    pattern = serializers.JSONField(help_text="{patternCodeableConcept: …} when it has a pattern")
    must_support = serializers.BooleanField()
    short = serializers.CharField()
    slicing = serializers.JSONField(allow_null=True)


class ExtensionUseOut(serializers.Serializer):
    id = serializers.CharField()
    slice_name = serializers.CharField()
    url = serializers.CharField()
    min = serializers.IntegerField(allow_null=True)
    max = serializers.CharField(allow_null=True)
    must_support = serializers.BooleanField()


class ProfileDetailOut(ProfileSummaryOut):
    description = serializers.CharField()
    snapshot_generated = serializers.BooleanField(
        help_text="The snapshot was generated at upload from the differential"
    )
    differential = ElementOut(many=True)
    snapshot = ElementOut(many=True)
    extensions = ExtensionUseOut(many=True, help_text="The extension slices of the snapshot")
    extension_value_types = serializers.ListField(
        child=serializers.CharField(),
        allow_null=True,
        help_text="For an extension definition: the value types it allows ([] for a complex one)",
    )
    used_by = serializers.ListField(
        child=serializers.CharField(), help_text="Uploaded profiles that build on it or name it as an extension"
    )
    uploaded_by = serializers.CharField(allow_null=True)
    uploaded_at = serializers.DateTimeField(allow_null=True)
    content = serializers.JSONField(allow_null=True, help_text="The ValueSet or CodeSystem itself (null for profiles)")


class PackageOut(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    version = serializers.CharField()
    description = serializers.CharField()
    dependencies = serializers.DictField(child=serializers.CharField())
    skipped = serializers.IntegerField(help_text="Resources in it that are not definitions (examples …)")
    definitions = serializers.IntegerField(source="definition_count")
    uploaded_by = serializers.CharField(source="uploaded_by.username", allow_null=True)
    uploaded_at = serializers.DateTimeField()


class UploadOut(serializers.Serializer):
    definitions = ProfileSummaryOut(many=True, help_text="What was uploaded: one definition, or a package's")
    package = PackageOut(allow_null=True, help_text="The package, when a .tgz was uploaded")
