"""Request and response shapes of the editor-support endpoints (views in mappings/api/authoring.py)."""

from __future__ import annotations

from rest_framework import serializers

from mappings.api.mapping_serializers import EngineErrorOut, StrictCharField
from mappings.engine import SOURCE_FORMATS


class SourceTreeRequest(serializers.Serializer):
    payload = StrictCharField(allow_blank=True, trim_whitespace=False, help_text="The sample payload, as text")
    source_format = serializers.ChoiceField(choices=SOURCE_FORMATS, required=False, help_text="Default: the mapping's")


class SourceNodeOut(serializers.Serializer):
    label = serializers.CharField(help_text="PID-5, PID-5.1, <patient>, @code, name, [0]")
    description = serializers.CharField(help_text="HL7 v2 field or component name, when known")
    value = serializers.CharField(allow_null=True, help_text="The decoded value (cut at 200 characters)")
    expression = serializers.CharField(help_text="The template expression that reaches this node")
    children = serializers.ListField(child=serializers.DictField(), help_text="Nodes of the same shape")


class SourceTreeOut(serializers.Serializer):
    ok = serializers.BooleanField()
    source_format = serializers.CharField()
    tree = SourceNodeOut(many=True)
    truncated = serializers.BooleanField(help_text="The tree stopped at 5,000 nodes")
    errors = EngineErrorOut(many=True)


class SideField(serializers.RegexField):
    def __init__(self, **kwargs) -> None:
        super().__init__(r"^(draft|latest|[1-9][0-9]{0,8})$", **kwargs)

    def to_internal_value(self, data: object) -> str:
        return super().to_internal_value(str(data) if isinstance(data, int) and not isinstance(data, bool) else data)


class ImpactRequest(serializers.Serializer):
    pass


ImpactRequest._declared_fields["from"] = SideField(required=False, help_text="A version number, latest or draft")
ImpactRequest._declared_fields["to"] = SideField(required=False, help_text="A version number, latest or draft")


class ImpactCaseOut(serializers.Serializer):
    case = serializers.CharField()
    changed = serializers.BooleanField()
    from_ok = serializers.BooleanField()
    to_ok = serializers.BooleanField()
    diff = serializers.CharField(help_text="Unified diff of the two outputs (pretty JSON, volatile fields masked)")
    from_errors = EngineErrorOut(many=True)
    to_errors = EngineErrorOut(many=True)


class ImpactOut(serializers.Serializer):
    to = serializers.CharField()
    cases = ImpactCaseOut(many=True)
    changed = serializers.IntegerField()
    unchanged = serializers.IntegerField()


ImpactOut._declared_fields["from"] = serializers.CharField(help_text="vN or draft")


class CommaList(serializers.CharField):
    def to_internal_value(self, data: object) -> list[str]:
        text = super().to_internal_value(data)
        return [item.strip() for item in text.split(",") if item.strip()][:50]


class CompletionsQuery(serializers.Serializer):
    part = serializers.ChoiceField(choices=["engine", "library", "hl7v2", "fhir"], required=False)
    segments = CommaList(required=False, max_length=500, help_text="HL7 v2 segment ids, e.g. PID,PV1")
    resource = CommaList(required=False, max_length=500, help_text="FHIR resource types, e.g. Patient,Encounter")


class StarterOut(serializers.Serializer):
    source_format = serializers.CharField()
    title = serializers.CharField()
    template = serializers.CharField()
    sample = serializers.CharField()
