"""Request and response shapes of the editor-support endpoints (views in mappings/api/editor.py). The response
serializers document the answers in the OpenAPI schema; the views return the computed dicts as they are."""

from __future__ import annotations

from rest_framework import serializers

from mappings.api.mapping_serializers import EngineErrorOut, StrictCharField
from mappings.completions import PARTS
from mappings.engine import SOURCE_FORMATS

# --- source tree ------------------------------------------------------------------------------------------------------


class SourceTreeRequest(serializers.Serializer):
    payload = StrictCharField(allow_blank=True, trim_whitespace=False, help_text="The sample payload, as text")
    source_format = serializers.ChoiceField(choices=SOURCE_FORMATS, required=False, help_text="Default: the mapping's")


class SourceNodeOut(serializers.Serializer):
    label = serializers.CharField(
        help_text="HL7 v2: PID, OBX (2), PID-5, PID-3(2), PID-5.1, PID-3.4.2; XML: <patient>, @code; JSON: key, [0]"
    )
    description = serializers.CharField(help_text="HL7 v2.5 segment, field, component or sub-component name, or ''")
    value = serializers.CharField(
        allow_null=True,
        help_text="What {{ expression }} prints, cut at 200 characters (…); null for a container (segment, object, "
        "array, element with only child elements)",
    )
    expression = serializers.CharField(help_text="The Jinja expression that reaches this node, e.g. msg.PID[5][1]")
    children = serializers.ListField(child=serializers.DictField(), help_text="Nodes of the same shape")


class SourceTreeOut(serializers.Serializer):
    ok = serializers.BooleanField(help_text="False when the payload does not parse (see errors)")
    source_format = serializers.CharField()
    tree = SourceNodeOut(many=True)
    truncated = serializers.BooleanField(help_text="The tree stopped at 5,000 nodes")
    errors = EngineErrorOut(many=True)


# --- impact -----------------------------------------------------------------------------------------------------------


class SideField(serializers.RegexField):
    """A version number (as a number or text), `latest` or `draft`."""

    def __init__(self, **kwargs) -> None:
        super().__init__(r"^(draft|latest|[1-9][0-9]{0,8})$", **kwargs)

    def to_internal_value(self, data: object) -> str:
        return super().to_internal_value(str(data) if isinstance(data, int) and not isinstance(data, bool) else data)


# `from` is a Python keyword, so these two are built with type(); the serializer metaclass reads fields from the dict.
ImpactRequest = type(
    "ImpactRequest",
    (serializers.Serializer,),
    {
        "from": SideField(required=False, help_text="A version number, latest or draft (default: latest)"),
        "to": SideField(required=False, help_text="A version number, latest or draft (default: draft)"),
    },
)


class ImpactCaseOut(serializers.Serializer):
    case = serializers.CharField(help_text="The sample's name")
    changed = serializers.BooleanField(help_text="The output or the error codes differ")
    from_ok = serializers.BooleanField()
    to_ok = serializers.BooleanField()
    diff = serializers.CharField(
        help_text="Unified diff (from → to) of the pretty JSON outputs, volatile fields masked; '' when unchanged"
    )
    from_errors = EngineErrorOut(many=True)
    to_errors = EngineErrorOut(many=True)


ImpactOut = type(
    "ImpactOut",
    (serializers.Serializer,),
    {
        "from": serializers.CharField(help_text="vN or draft"),
        "to": serializers.CharField(help_text="vN or draft"),
        "cases": ImpactCaseOut(many=True),
        "changed": serializers.IntegerField(),
        "unchanged": serializers.IntegerField(),
    },
)


# --- completions ------------------------------------------------------------------------------------------------------


class CommaList(serializers.CharField):
    """`a,b,c` → ["a", "b", "c"]: at most 50 names in at most 500 characters."""

    def to_internal_value(self, data: object) -> list[str]:
        text = super().to_internal_value(data)
        items = [item.strip() for item in text.split(",") if item.strip()]
        if len(text) > 500 or len(items) > 50:
            raise serializers.ValidationError("At most 50 names, 500 characters in all.")
        return items


class CompletionsQuery(serializers.Serializer):
    part = serializers.ChoiceField(choices=PARTS, required=False, help_text="One group only")
    segments = CommaList(required=False, help_text="HL7 v2 segment ids, e.g. PID,PV1 (at most 50)")
    resource = CommaList(required=False, help_text="FHIR resource types, e.g. Patient,Encounter (at most 50)")


def origin_field() -> serializers.ChoiceField:
    return serializers.ChoiceField(
        choices=["studio", "jinja"], help_text="studio: FHIR Studio's helpers (listed first); jinja: Jinja's built-ins"
    )


class FunctionOut(serializers.Serializer):
    name = serializers.CharField()
    signature = serializers.CharField(help_text="fhir_date(tz=None): a filter's value before the | is left out")
    doc = serializers.CharField(help_text="First paragraph of the docstring")
    origin = origin_field()


class JinjaTestOut(serializers.Serializer):
    name = serializers.CharField()
    doc = serializers.CharField()
    origin = origin_field()


class MacroOut(serializers.Serializer):
    name = serializers.CharField()
    args = serializers.ListField(child=serializers.CharField())
    signature = serializers.CharField(help_text="identifier_from_cx(cx, use=None, type_code=None)")
    doc = serializers.CharField(help_text="The {# … #} comment right above the macro, or ''")
    line = serializers.IntegerField()


class SnippetMacrosOut(serializers.Serializer):
    name = serializers.CharField(help_text="snippets/hl7v2/datatypes.j2")
    description = serializers.CharField()
    macros = MacroOut(many=True)


class NamedOut(serializers.Serializer):
    name = serializers.CharField()
    description = serializers.CharField()


class HL7ComponentOut(serializers.Serializer):
    position = serializers.IntegerField()
    name = serializers.CharField()
    datatype = serializers.CharField()
    components = serializers.ListField(
        child=serializers.DictField(), required=False, help_text="Sub-components: {position, name, datatype}"
    )


class HL7FieldOut(serializers.Serializer):
    position = serializers.IntegerField()
    name = serializers.CharField(help_text="Patient Name")
    datatype = serializers.CharField(help_text="XPN")
    repeats = serializers.BooleanField()
    table = serializers.CharField(allow_null=True, help_text="HL7 table id, e.g. HL70001")
    components = HL7ComponentOut(many=True)


class HL7SegmentOut(serializers.Serializer):
    id = serializers.CharField()
    description = serializers.CharField(help_text="Segment title ('' for the rarer ones)")


class HL7Out(serializers.Serializer):
    version = serializers.CharField(help_text="2.5")
    segments = HL7SegmentOut(many=True)
    fields = serializers.DictField(
        child=HL7FieldOut(many=True), help_text="{segment id: fields}, for the segments named in `segments`"
    )


class FHIRElementOut(serializers.Serializer):
    name = serializers.CharField(help_text="The JSON name: birthDate, deceasedBoolean")
    type = serializers.CharField(help_text="date, HumanName, Reference…")
    cardinality = serializers.CharField(help_text="0..1, 1..1, 0..*, 1..*")
    codes = serializers.ListField(child=serializers.CharField(), required=False, help_text="Required-binding codes")


class FHIROut(serializers.Serializer):
    resource_types = serializers.ListField(
        child=serializers.CharField(), help_text="Filled for part=fhir without `resource`; else []"
    )
    elements = serializers.DictField(child=FHIRElementOut(many=True), help_text="{resource type: elements}")


class CompletionsOut(serializers.Serializer):
    filters = FunctionOut(many=True, required=False)
    globals = FunctionOut(many=True, required=False)
    tests = JinjaTestOut(many=True, required=False)
    snippets = SnippetMacrosOut(many=True, required=False)
    lookup_tables = NamedOut(many=True, required=False)
    hl7v2 = HL7Out(required=False)
    extensions = serializers.ListField(
        child=serializers.DictField(), required=False, help_text="part=extensions: [{url, name, types, source}]"
    )
    fhir = FHIROut(required=False)


# --- starters ---------------------------------------------------------------------------------------------------------


class StarterOut(serializers.Serializer):
    source_format = serializers.CharField()
    title = serializers.CharField()
    template = serializers.CharField()
    sample = serializers.CharField()
    missing = serializers.ListField(
        child=serializers.CharField(),
        help_text="Snippets and lookup tables the starter uses that the library lacks; [] when ready",
    )
