"""Request and response shapes of the library endpoints: snippets and lookup tables (views in
mappings/api/library.py). Request serializers only validate; the views hand validated_data to an action."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from mappings.api.mapping_serializers import StrictSlugField, nul_paths
from mappings.models.library import snippet_name


class SearchQuery(serializers.Serializer):
    search = serializers.CharField(required=False, allow_blank=True, max_length=200)


class TableName(serializers.Serializer):
    name = StrictSlugField(max_length=100)


# --- what snippets and lookup tables share ---------------------------------------------------------------------------


class LibraryItemSummaryOut(serializers.Serializer):
    name = serializers.CharField()
    description = serializers.CharField()
    revision = serializers.IntegerField()
    updated_at = serializers.DateTimeField()
    updated_by = serializers.CharField(source="updated_by.username", allow_null=True)


class LibraryVersionOut(serializers.Serializer):
    revision = serializers.IntegerField()
    author = serializers.CharField(source="author.username", allow_null=True)
    created_at = serializers.DateTimeField()


class MappingUseOut(serializers.Serializer):
    """A mapping that uses a snippet or lookup table: its draft names it, or published versions froze a copy."""

    slug = serializers.CharField()
    title = serializers.CharField()
    draft = serializers.BooleanField(help_text="The mapping's draft uses it (so it cannot be deleted)")
    versions = serializers.ListField(
        child=serializers.IntegerField(), help_text="Published versions that froze a copy of it, oldest first"
    )


@extend_schema_field(MappingUseOut(many=True))
class UsedByField(serializers.Field):
    """`used_by` of a detail answer: computed by the view (mappings.api.library.used_by) and handed over in the
    serializer's context, so serializing does no query of its own."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(source="*", read_only=True, **kwargs)

    def to_representation(self, item: object) -> list[dict]:
        return self.context["used_by"]


class DescriptionPatch(serializers.Serializer):
    description = serializers.CharField(required=False, allow_blank=True)


# --- snippets ---------------------------------------------------------------------------------------------------------


class SnippetSummaryOut(LibraryItemSummaryOut):
    pass


class SnippetOut(SnippetSummaryOut):
    text = serializers.CharField()
    created_at = serializers.DateTimeField()
    used_by = UsedByField(help_text="Mappings that import it, by slug: from their draft, or frozen in versions")


class SnippetVersionOut(LibraryVersionOut):
    text = serializers.CharField()


class SnippetIn(serializers.Serializer):
    name = serializers.CharField(
        max_length=200, validators=[snippet_name], help_text="snippets/<source>/<role>.j2, e.g. snippets/hl7v2/ids.j2"
    )
    text = serializers.CharField(trim_whitespace=False, help_text="Jinja2 macros; must compile")
    description = serializers.CharField(required=False, allow_blank=True, default="")


class SnippetPatch(DescriptionPatch):
    text = serializers.CharField(required=False, trim_whitespace=False)


# --- lookup tables ----------------------------------------------------------------------------------------------------

CODING_SCHEMA = {
    "type": "object",
    "properties": {
        "code": {"type": "string", "nullable": True},
        "display": {"type": "string", "nullable": True},
        "system": {"type": "string", "nullable": True},
    },
    "additionalProperties": False,
}
ENTRY_SCHEMA = {
    "type": "object",
    "required": ["source"],
    "properties": {
        "source": {"type": "string", "minLength": 1, "description": "Source code"},
        "source_system": {"type": "string", "nullable": True},
        "code": {"type": "string", "nullable": True, "description": "Target code"},
        "display": {"type": "string", "nullable": True},
        "system": {"type": "string", "nullable": True, "description": "Target system (else target_system)"},
    },
    "additionalProperties": False,
}
TABLE_DATA_SCHEMA = {
    "type": "object",
    "description": "The engine's table: source code (per source system) → target coding, with a default. Other "
    "keys (a description, say) are kept and ignored.",
    "properties": {
        "target_system": {"type": "string", "nullable": True},
        "case_sensitive": {"type": "boolean"},
        "default": {"nullable": True, "oneOf": [{"type": "string"}, CODING_SCHEMA]},
        "entries": {
            "oneOf": [
                {"type": "array", "items": ENTRY_SCHEMA},
                {"type": "object", "additionalProperties": {"type": "string"}, "description": "source → code"},
            ]
        },
    },
    "additionalProperties": True,
}
ENTRY_KEYS = set(ENTRY_SCHEMA["properties"])
CODING_KEYS = set(CODING_SCHEMA["properties"])


def _is_text(value: object, *, nullable: bool = True) -> bool:
    return isinstance(value, str) or (nullable and value is None)


def table_data_problems(data: object) -> list[str]:
    """Where `data` strays from TABLE_DATA_SCHEMA: the engine reads only that shape (an unhashable source system,
    say, would fail inside it rather than as bad input)."""
    if not isinstance(data, dict):
        return ["must be an object"]
    problems = []
    if not _is_text(data.get("target_system")):
        problems.append("target_system must be a string or null")
    if not isinstance(data.get("case_sensitive", False), bool):
        problems.append("case_sensitive must be true or false")
    default = data.get("default")
    if isinstance(default, dict):
        if set(default) - CODING_KEYS or not all(_is_text(value) for value in default.values()):
            problems.append("default must be a code or an object of code, display and system strings")
    elif not _is_text(default):
        problems.append("default must be a code or an object of code, display and system strings")
    entries = data.get("entries", [])
    if isinstance(entries, dict):
        if not all(isinstance(value, str) for value in entries.values()):
            problems.append("entries given as an object map each source code to a target code string")
    elif isinstance(entries, list):
        for index, entry in enumerate(entries):
            if not isinstance(entry, dict) or set(entry) - ENTRY_KEYS:
                problems.append(f"entries[{index}] must be an object with keys from {', '.join(sorted(ENTRY_KEYS))}")
            elif not isinstance(entry.get("source"), str) or not entry["source"].strip():
                problems.append(f"entries[{index}].source must be a non-empty code")
            elif not all(_is_text(entry.get(key)) for key in ENTRY_KEYS):
                problems.append(f"entries[{index}] values must be strings or null")
    else:
        problems.append("entries must be a list of entries or an object of source → target code")
    problems += [f"{path} contains a NUL character" for path in nul_paths(data)]
    return problems


@extend_schema_field(TABLE_DATA_SCHEMA)
class TableDataField(serializers.JSONField):
    def to_internal_value(self, data: object) -> dict:
        value = super().to_internal_value(data)
        problems = table_data_problems(value)
        if problems:
            raise serializers.ValidationError(problems)
        return value


class LookupTableSummaryOut(LibraryItemSummaryOut):
    entry_count = serializers.IntegerField()


class LookupTableOut(LookupTableSummaryOut):
    data = TableDataField()
    created_at = serializers.DateTimeField()
    used_by = UsedByField(help_text="Mappings that read it, by slug: from their draft, or frozen in versions")


class LookupTableVersionOut(LibraryVersionOut):
    data = TableDataField()


class LookupTableIn(serializers.Serializer):
    name = StrictSlugField(max_length=100)
    data = TableDataField()
    description = serializers.CharField(required=False, allow_blank=True, default="")


class LookupTablePatch(DescriptionPatch):
    data = TableDataField(required=False)


@extend_schema_field(
    {
        "oneOf": [
            {"type": "string", "description": "CSV: source_code,target_code[,target_display,source_system,…]"},
            {"type": "object", "description": "A FHIR ConceptMap resource", "additionalProperties": True},
        ]
    }
)
class ImportContentField(serializers.JSONField):
    pass


class LookupTableImportIn(serializers.Serializer):
    format = serializers.ChoiceField(choices=["csv", "conceptmap"])
    content = ImportContentField(help_text="CSV text (format csv) or a ConceptMap object (format conceptmap)")
    target_system = serializers.CharField(
        required=False, allow_null=True, default=None, help_text="CSV only: the target system of every row"
    )
    description = serializers.CharField(required=False, allow_blank=True, default="")

    def validate(self, attrs: dict) -> dict:
        content = attrs["content"]
        if attrs["format"] == "csv" and not isinstance(content, str):
            raise serializers.ValidationError({"content": ["A CSV import sends the CSV text as a string."]})
        if attrs["format"] == "conceptmap" and not isinstance(content, dict):
            raise serializers.ValidationError({"content": ["A ConceptMap import sends the ConceptMap JSON object."]})
        if nul_paths(content):
            raise serializers.ValidationError({"content": ["Must not contain NUL characters."]})
        return attrs
