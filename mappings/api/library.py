"""Snippets, lookup tables and the audit log: the library shared across mappings, and who changed what.

Views are thin: access (mappings.access) → validate (a serializer below) → one action (mappings.actions) → serialize.
Snippet and lookup-table writes take an optional `If-Match: "<revision>"`: sent, a stale revision is refused with 412
`stale_revision`; left out, the write applies to whatever is current (the library has no draft to lose)."""

from __future__ import annotations

from django.db.models import Q, QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from mappings import actions
from mappings.access import ADMIN, AUTHOR, VIEWER, access_audit, access_lookup_table, access_snippet, require_role
from mappings.api.base import StudioAPIView, StudioPagination, revision_from_etag
from mappings.errors import StudioError
from mappings.models import AuditAction, AuditEvent, LookupTable, Snippet
from mappings.models.library import snippet_name

# --- shared shapes --------------------------------------------------------------------------------------------------


def nul_paths(value: object, path: str = "") -> list[str]:
    """Where `value` holds a NUL character. PostgreSQL stores none in text or jsonb and fails the whole statement,
    so a NUL is bad input (400), never a 500."""
    if isinstance(value, str):
        return [path or "value"] if "\x00" in value else []
    if isinstance(value, dict):
        found = [path or "key"] if any("\x00" in str(key) for key in value) else []
        return found + [hit for key, item in value.items() for hit in nul_paths(item, f"{path}.{key}".lstrip("."))]
    if isinstance(value, list):
        return [hit for index, item in enumerate(value) for hit in nul_paths(item, f"{path}[{index}]")]
    return []


class LibraryErrorOut(serializers.Serializer):
    """The one error shape of the studio API (mappings/errors.py)."""

    code = serializers.CharField(help_text="Stable code: invalid, not_found, permission_denied, conflict, …")
    message = serializers.CharField()
    details = serializers.JSONField()


def errors(*statuses: int) -> dict[int, OpenApiResponse]:
    described = {
        400: "Bad input (`invalid`)",
        401: "Not authenticated",
        403: "Wrong role (`permission_denied`)",
        404: "No such object (`not_found`)",
        409: "Conflict (`conflict`, `in_use`)",
        412: "Stale If-Match revision (`stale_revision`)",
    }
    return {status: OpenApiResponse(LibraryErrorOut, description=described[status]) for status in statuses}


PAGE_PARAMETERS = [
    OpenApiParameter("page", OpenApiTypes.INT, description="1-based page number"),
    OpenApiParameter("page_size", OpenApiTypes.INT, description="Rows per page (default 50, at most 500)"),
]
IF_MATCH = OpenApiParameter(
    "If-Match",
    OpenApiTypes.STR,
    location=OpenApiParameter.HEADER,
    description='Optional: the revision you read, as its ETag (`"3"`). A stale one gets 412 `stale_revision`.',
)


def page_of(name: str, item: type[serializers.Serializer]) -> serializers.Serializer:
    """The response schema StudioPagination produces around `item` rows."""
    fields = {
        "count": serializers.IntegerField(),
        "next": serializers.URLField(allow_null=True),
        "previous": serializers.URLField(allow_null=True),
        "results": item(many=True),
    }
    return type(name, (serializers.Serializer,), fields)()


def paginated(view: StudioAPIView, request: Request, rows: QuerySet, out: type[serializers.Serializer]) -> Response:
    paginator = StudioPagination()
    page = paginator.paginate_queryset(rows, request, view=view)
    return paginator.get_paginated_response(out(page, many=True).data)


def expected_revision(request: Request) -> int | None:
    """The revision named by an optional If-Match header (`"3"`, `W/"3"`; `*` means any)."""
    sent = request.headers.get("If-Match")
    if sent is None or sent.strip() == "*":
        return None
    revision = revision_from_etag(sent)
    if revision is None:
        raise StudioError("invalid", 'If-Match must be the ETag you read, such as "3".', details={"if_match": sent})
    return revision


def with_etag(response: Response, revision: int) -> Response:
    response["ETag"] = f'"{revision}"'
    return response


def nameable(name: str, what: str) -> str:
    # A NUL cannot be in any stored name, and PostgreSQL refuses a query that contains one: answer as for any
    # name that does not exist, before the lookup.
    if "\x00" in name:
        raise StudioError("not_found", f"No {what} with that name.")
    return name


class SearchQuery(serializers.Serializer):
    search = serializers.CharField(required=False, allow_blank=True, max_length=200)


# --- snippets -------------------------------------------------------------------------------------------------------


class SnippetSummaryOut(serializers.Serializer):
    name = serializers.CharField()
    description = serializers.CharField()
    revision = serializers.IntegerField()
    updated_at = serializers.DateTimeField()
    updated_by = serializers.CharField(source="updated_by.username", allow_null=True)


class SnippetOut(SnippetSummaryOut):
    text = serializers.CharField()
    created_at = serializers.DateTimeField()


class SnippetVersionOut(serializers.Serializer):
    revision = serializers.IntegerField()
    text = serializers.CharField()
    author = serializers.CharField(source="author.username", allow_null=True)
    created_at = serializers.DateTimeField()


class SnippetIn(serializers.Serializer):
    name = serializers.CharField(
        max_length=200, validators=[snippet_name], help_text="snippets/<source>/<role>.j2, e.g. snippets/hl7v2/ids.j2"
    )
    text = serializers.CharField(trim_whitespace=False, help_text="Jinja2 macros; must compile")
    description = serializers.CharField(required=False, allow_blank=True, default="")


class SnippetPatch(serializers.Serializer):
    text = serializers.CharField(required=False, trim_whitespace=False)
    description = serializers.CharField(required=False, allow_blank=True)


SNIPPET_NAME = OpenApiParameter(
    "name",
    OpenApiTypes.STR,
    location=OpenApiParameter.PATH,
    description="The snippet's name, slashes included (snippets/hl7v2/datatypes.j2); percent-encode them or not.",
)


class SnippetList(StudioAPIView):
    @extend_schema(
        operation_id="snippets_list",
        parameters=[
            OpenApiParameter("search", OpenApiTypes.STR, description="In name or description"),
            *PAGE_PARAMETERS,
        ],
        responses={200: page_of("PaginatedSnippetList", SnippetSummaryOut), **errors(400, 401, 403, 404)},
    )
    def get(self, request: Request) -> Response:
        require_role(request.user, VIEWER)
        query = SearchQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        rows = Snippet.objects.select_related("updated_by").order_by("name")
        if search := query.validated_data.get("search"):
            rows = rows.filter(Q(name__icontains=search) | Q(description__icontains=search))
        return paginated(self, request, rows, SnippetSummaryOut)

    @extend_schema(
        operation_id="snippets_create",
        request=SnippetIn,
        responses={201: SnippetOut, **errors(400, 401, 403, 409)},
        description="Add a snippet (author). 400 if it does not compile, 409 if the name is taken.",
    )
    def post(self, request: Request) -> Response:
        require_role(request.user, AUTHOR)
        form = SnippetIn(data=request.data)
        form.is_valid(raise_exception=True)
        snippet = actions.do_create_snippet(acting_user=request.user, **form.validated_data)
        return with_etag(Response(SnippetOut(snippet).data, status=201), snippet.revision)


class SnippetDetail(StudioAPIView):
    @extend_schema(
        operation_id="snippets_retrieve",
        parameters=[SNIPPET_NAME],
        responses={200: SnippetOut, **errors(401, 403, 404)},
    )
    def get(self, request: Request, name: str) -> Response:
        snippet = access_snippet(request.user, nameable(name, "snippet"))
        return with_etag(Response(SnippetOut(snippet).data), snippet.revision)

    @extend_schema(
        operation_id="snippets_partial_update",
        parameters=[SNIPPET_NAME, IF_MATCH],
        request=SnippetPatch,
        responses={200: SnippetOut, **errors(400, 401, 403, 404, 412)},
        description="Change the text (a new revision, if it compiles) or the description (author).",
    )
    def patch(self, request: Request, name: str) -> Response:
        snippet = access_snippet(request.user, nameable(name, "snippet"), write=True)
        form = SnippetPatch(data=request.data)
        form.is_valid(raise_exception=True)
        snippet = actions.do_update_snippet(
            snippet, acting_user=request.user, expected_revision=expected_revision(request), **form.validated_data
        )
        return with_etag(Response(SnippetOut(snippet).data), snippet.revision)

    @extend_schema(
        operation_id="snippets_destroy",
        parameters=[SNIPPET_NAME],
        responses={204: None, **errors(401, 403, 404, 409)},
        description="Delete a snippet (author); 409 `in_use` while a draft imports it.",
    )
    def delete(self, request: Request, name: str) -> Response:
        snippet = access_snippet(request.user, nameable(name, "snippet"), write=True)
        actions.do_delete_snippet(snippet, acting_user=request.user)
        return Response(status=204)


class SnippetVersions(StudioAPIView):
    @extend_schema(
        operation_id="snippets_versions_list",
        parameters=[SNIPPET_NAME, *PAGE_PARAMETERS],
        responses={200: page_of("PaginatedSnippetVersionList", SnippetVersionOut), **errors(401, 403, 404)},
        description="Every saved text of the snippet, newest first. Routed before snippets/{name}: a snippet "
        "name ends in .j2, so it can never end in /versions/.",
    )
    def get(self, request: Request, name: str) -> Response:
        snippet = access_snippet(request.user, nameable(name, "snippet"))
        return paginated(
            self, request, snippet.versions.select_related("author").order_by("-revision"), SnippetVersionOut
        )


# --- lookup tables --------------------------------------------------------------------------------------------------

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


class LookupTableSummaryOut(serializers.Serializer):
    name = serializers.CharField()
    description = serializers.CharField()
    revision = serializers.IntegerField()
    entry_count = serializers.IntegerField()
    updated_at = serializers.DateTimeField()
    updated_by = serializers.CharField(source="updated_by.username", allow_null=True)


class LookupTableOut(LookupTableSummaryOut):
    data = TableDataField()
    created_at = serializers.DateTimeField()


class LookupTableVersionOut(serializers.Serializer):
    revision = serializers.IntegerField()
    data = TableDataField()
    author = serializers.CharField(source="author.username", allow_null=True)
    created_at = serializers.DateTimeField()


class LookupTableIn(serializers.Serializer):
    name = serializers.SlugField(max_length=100)
    data = TableDataField()
    description = serializers.CharField(required=False, allow_blank=True, default="")


class LookupTablePatch(serializers.Serializer):
    data = TableDataField(required=False)
    description = serializers.CharField(required=False, allow_blank=True)


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


class TableName(serializers.Serializer):
    name = serializers.SlugField(max_length=100)


TABLE_NAME = OpenApiParameter("name", OpenApiTypes.STR, location=OpenApiParameter.PATH, description="The table's name")


class LookupTableList(StudioAPIView):
    @extend_schema(
        operation_id="lookup_tables_list",
        parameters=[
            OpenApiParameter("search", OpenApiTypes.STR, description="In name or description"),
            *PAGE_PARAMETERS,
        ],
        responses={200: page_of("PaginatedLookupTableList", LookupTableSummaryOut), **errors(400, 401, 403, 404)},
    )
    def get(self, request: Request) -> Response:
        require_role(request.user, VIEWER)
        query = SearchQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        rows = LookupTable.objects.select_related("updated_by").order_by("name")
        if search := query.validated_data.get("search"):
            rows = rows.filter(Q(name__icontains=search) | Q(description__icontains=search))
        return paginated(self, request, rows, LookupTableSummaryOut)

    @extend_schema(
        operation_id="lookup_tables_create",
        request=LookupTableIn,
        responses={201: LookupTableOut, **errors(400, 401, 403, 409)},
        description="Add a lookup table (author). 400 if the engine cannot read its data, 409 if the name is taken.",
    )
    def post(self, request: Request) -> Response:
        require_role(request.user, AUTHOR)
        form = LookupTableIn(data=request.data)
        form.is_valid(raise_exception=True)
        table = actions.do_create_lookup_table(acting_user=request.user, **form.validated_data)
        return with_etag(Response(LookupTableOut(table).data, status=201), table.revision)


class LookupTableDetail(StudioAPIView):
    @extend_schema(
        operation_id="lookup_tables_retrieve",
        parameters=[TABLE_NAME],
        responses={200: LookupTableOut, **errors(401, 403, 404)},
    )
    def get(self, request: Request, name: str) -> Response:
        table = access_lookup_table(request.user, nameable(name, "lookup table"))
        return with_etag(Response(LookupTableOut(table).data), table.revision)

    @extend_schema(
        operation_id="lookup_tables_partial_update",
        parameters=[TABLE_NAME, IF_MATCH],
        request=LookupTablePatch,
        responses={200: LookupTableOut, **errors(400, 401, 403, 404, 412)},
        description="Change the data (a new revision) or the description (author).",
    )
    def patch(self, request: Request, name: str) -> Response:
        table = access_lookup_table(request.user, nameable(name, "lookup table"), write=True)
        form = LookupTablePatch(data=request.data)
        form.is_valid(raise_exception=True)
        table = actions.do_update_lookup_table(
            table, acting_user=request.user, expected_revision=expected_revision(request), **form.validated_data
        )
        return with_etag(Response(LookupTableOut(table).data), table.revision)

    @extend_schema(
        operation_id="lookup_tables_destroy",
        parameters=[TABLE_NAME],
        responses={204: None, **errors(401, 403, 404, 409)},
        description="Delete a lookup table (author); 409 `in_use` while a draft uses it.",
    )
    def delete(self, request: Request, name: str) -> Response:
        table = access_lookup_table(request.user, nameable(name, "lookup table"), write=True)
        actions.do_delete_lookup_table(table, acting_user=request.user)
        return Response(status=204)


class LookupTableVersions(StudioAPIView):
    @extend_schema(
        operation_id="lookup_tables_versions_list",
        parameters=[TABLE_NAME, *PAGE_PARAMETERS],
        responses={200: page_of("PaginatedLookupTableVersionList", LookupTableVersionOut), **errors(401, 403, 404)},
        description="Every saved revision of the table's data, newest first.",
    )
    def get(self, request: Request, name: str) -> Response:
        table = access_lookup_table(request.user, nameable(name, "lookup table"))
        return paginated(
            self, request, table.versions.select_related("author").order_by("-revision"), LookupTableVersionOut
        )


class LookupTableImport(StudioAPIView):
    @extend_schema(
        operation_id="lookup_tables_import",
        parameters=[TABLE_NAME],
        request=LookupTableImportIn,
        responses={
            200: OpenApiResponse(LookupTableOut, description="Imported as the table's next revision"),
            201: OpenApiResponse(LookupTableOut, description="Imported as a new table"),
            **errors(400, 401, 403),
        },
        description="Create the table from CSV text or a FHIR ConceptMap, or import into it as a new revision "
        "(author). CSV columns: source_code, target_code, and optionally target_display, source_system, "
        "target_system.",
    )
    def post(self, request: Request, name: str) -> Response:
        require_role(request.user, AUTHOR)
        TableName(data={"name": name}).is_valid(raise_exception=True)
        form = LookupTableImportIn(data=request.data)
        form.is_valid(raise_exception=True)
        given = form.validated_data
        table, created = actions.do_import_lookup_table(
            name,
            acting_user=request.user,
            csv_text=given["content"] if given["format"] == "csv" else None,
            concept_map=given["content"] if given["format"] == "conceptmap" else None,
            target_system=given["target_system"],
            description=given["description"],
        )
        return with_etag(Response(LookupTableOut(table).data, status=201 if created else 200), table.revision)


# --- audit log ------------------------------------------------------------------------------------------------------


class AuditQuery(serializers.Serializer):
    action = serializers.ChoiceField(choices=AuditAction.choices, required=False, allow_blank=True)
    mapping = serializers.CharField(required=False, allow_blank=True, max_length=100)
    actor = serializers.CharField(required=False, allow_blank=True, max_length=150)
    since = serializers.DateTimeField(required=False)


class AuditEventOut(serializers.Serializer):
    id = serializers.IntegerField()
    actor = serializers.CharField(source="actor.username", allow_null=True)
    action = serializers.CharField()
    object_type = serializers.CharField()
    object_id = serializers.CharField()
    mapping_slug = serializers.CharField()
    before = serializers.JSONField(allow_null=True)
    after = serializers.JSONField(allow_null=True)
    details = serializers.JSONField()
    created_at = serializers.DateTimeField()


class AuditList(StudioAPIView):
    @extend_schema(
        operation_id="audit_list",
        parameters=[
            OpenApiParameter("action", OpenApiTypes.STR, enum=AuditAction.values, description="e.g. draft.saved"),
            OpenApiParameter("mapping", OpenApiTypes.STR, description="Mapping slug"),
            OpenApiParameter("actor", OpenApiTypes.STR, description="Username"),
            OpenApiParameter("since", OpenApiTypes.DATETIME, description="Only events at or after (ISO 8601)"),
            *PAGE_PARAMETERS,
        ],
        responses={200: page_of("PaginatedAuditEventList", AuditEventOut), **errors(400, 401, 403, 404)},
        description=f"Every write, newest first ({ADMIN} only).",
    )
    def get(self, request: Request) -> Response:
        access_audit(request.user)
        query = AuditQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        rows = AuditEvent.objects.select_related("actor").order_by("-created_at", "-id")
        filters = query.validated_data
        if filters.get("action"):
            rows = rows.filter(action=filters["action"])
        if filters.get("mapping"):
            rows = rows.filter(mapping_slug=filters["mapping"])
        if filters.get("actor"):
            rows = rows.filter(actor__username=filters["actor"])
        if filters.get("since"):
            rows = rows.filter(created_at__gte=filters["since"])
        return paginated(self, request, rows, AuditEventOut)
