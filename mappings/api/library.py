"""Snippets and lookup tables: the library shared across mappings. One set of views serves both kinds (a `Kind` says
what differs: model, access check, shapes, actions, words), plus the lookup-table import.

Views are thin: access (mappings.access) → validate (mappings/api/library_serializers.py) → one action → serialize.
Every write over a revision names the ETag it read, `If-Match: "<revision>"` (mappings.api.base.if_match): 428
without it, 412 `stale_revision` when it is not the current one, `*` for whatever is current. That covers PATCH,
DELETE and an import into an existing table; creating (POST, or an import under a new name) needs none."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from django.db.models import Model, Q
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from mappings import actions
from mappings.access import AUTHOR, VIEWER, access_lookup_table, access_snippet, require_role
from mappings.api.base import (
    PAGE_PARAMETERS,
    StudioAPIView,
    errors,
    if_match,
    if_match_parameter,
    page_of,
    paginated,
    with_etag,
)
from mappings.api.library_serializers import (
    LookupTableImportIn,
    LookupTableIn,
    LookupTableOut,
    LookupTablePatch,
    LookupTableSummaryOut,
    LookupTableVersionOut,
    SearchQuery,
    SnippetIn,
    SnippetOut,
    SnippetPatch,
    SnippetSummaryOut,
    SnippetVersionOut,
    TableName,
)
from mappings.errors import StudioError
from mappings.models import Draft, LookupTable, MappingVersion, Snippet


def etag_of(item: Snippet | LookupTable) -> str:
    """A library item's ETag: its revision, quoted (`"3"`)."""
    return f'"{item.revision}"'


@dataclass(frozen=True)
class Kind:
    """What differs between snippets and lookup tables; everything else is one set of views."""

    noun: str  # in messages: "snippet", "lookup table"
    operation: str  # operation ids: snippets_list, lookup_tables_retrieve, …
    model: type[Model]
    access: Callable[..., Snippet | LookupTable]
    summary_out: type[serializers.Serializer]
    detail_out: type[serializers.Serializer]
    version_out: type[serializers.Serializer]
    create_in: type[serializers.Serializer]
    patch_in: type[serializers.Serializer]
    create: Callable  # the actions
    update: Callable
    delete: Callable
    name: OpenApiParameter
    refused: str  # why a create or an update gets 400
    users: str  # who keeps it from being deleted
    draft_names: str  # the Draft field that lists the names a draft uses
    frozen: str  # the MappingVersion field that holds the copies a version froze, by name
    versions_note: str = ""


SNIPPETS = Kind(
    noun="snippet",
    operation="snippets",
    model=Snippet,
    access=access_snippet,
    summary_out=SnippetSummaryOut,
    detail_out=SnippetOut,
    version_out=SnippetVersionOut,
    create_in=SnippetIn,
    patch_in=SnippetPatch,
    create=actions.do_create_snippet,
    update=actions.do_update_snippet,
    delete=actions.do_delete_snippet,
    name=OpenApiParameter(
        "name",
        OpenApiTypes.STR,
        location=OpenApiParameter.PATH,
        description="The snippet's name, slashes included (snippets/hl7v2/datatypes.j2); percent-encode them or not.",
    ),
    refused="its text does not compile",
    users="a draft imports it",
    draft_names="snippet_names",
    frozen="snippets",
    versions_note=" Routed before snippets/{name}: a snippet name ends in .j2, so it can never end in /versions/.",
)
LOOKUP_TABLES = Kind(
    noun="lookup table",
    operation="lookup_tables",
    model=LookupTable,
    access=access_lookup_table,
    summary_out=LookupTableSummaryOut,
    detail_out=LookupTableOut,
    version_out=LookupTableVersionOut,
    create_in=LookupTableIn,
    patch_in=LookupTablePatch,
    create=actions.do_create_lookup_table,
    update=actions.do_update_lookup_table,
    delete=actions.do_delete_lookup_table,
    name=OpenApiParameter("name", OpenApiTypes.STR, location=OpenApiParameter.PATH, description="The table's name"),
    refused="the engine cannot read its data",
    users="a draft uses it",
    draft_names="table_names",
    frozen="lookup_tables",
)
SEARCH = OpenApiParameter("search", OpenApiTypes.STR, description="In name or description")
IF_MATCH = if_match_parameter("snippet or lookup table", '"3"')


def used_by(kind: Kind, name: str) -> list[dict]:
    """The mappings that use an item, by slug: their draft names it (what keeps it from being deleted), or published
    versions froze a copy of it (those keep running their copy whatever happens to it). Two queries whatever the
    number of mappings: the drafts' name lists (a JSON list is filtered here, as SQLite has no JSON `contains`) and
    the versions whose frozen copies have the name as a key (their texts are not loaded)."""
    uses: dict[str, dict] = {}
    for slug, title, names in Draft.objects.values_list("mapping__slug", "mapping__title", kind.draft_names):
        if name in names:
            uses[slug] = {"slug": slug, "title": title, "draft": True, "versions": []}
    frozen = (
        MappingVersion.objects.filter(**{f"{kind.frozen}__has_key": name})
        .values_list("mapping__slug", "mapping__title", "number")
        .order_by("number")
    )
    for slug, title, number in frozen:
        uses.setdefault(slug, {"slug": slug, "title": title, "draft": False, "versions": []})["versions"].append(number)
    return [uses[slug] for slug in sorted(uses)]


def detail(kind: Kind, item: Snippet | LookupTable, *, status: int = 200) -> Response:
    """The detail answer of an item, with who uses it and its ETag."""
    body = kind.detail_out(item, context={"used_by": used_by(kind, item.name)}).data
    return with_etag(Response(body, status=status), etag_of(item))


def nameable(name: str, kind: Kind) -> str:
    # A NUL cannot be in any stored name, and PostgreSQL refuses a query that contains one: answer as for any
    # name that does not exist, before the lookup.
    if "\x00" in name:
        raise StudioError("not_found", f"No {kind.noun} with that name.")
    return name


class LibraryView(StudioAPIView):
    """A view of one kind: a subclass names it (`class SnippetList(LibraryList, kind=SNIPPETS)`) and gets the
    kind's OpenAPI description from `described`."""

    kind: ClassVar[Kind]

    def __init_subclass__(cls, *, kind: Kind | None = None, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if kind is not None:
            cls.kind = kind
            extend_schema_view(**cls.described(kind))(cls)

    @staticmethod
    def described(kind: Kind) -> dict:
        return {}

    def item(self, request: Request, name: str, *, write: bool = False) -> Snippet | LookupTable:
        return self.kind.access(request.user, nameable(name, self.kind), write=write)


class LibraryList(LibraryView):
    @staticmethod
    def described(kind: Kind) -> dict:
        return {
            "get": extend_schema(
                operation_id=f"{kind.operation}_list",
                parameters=[SEARCH, *PAGE_PARAMETERS],
                responses={200: page_of(kind.summary_out), **errors(400, 404)},
            ),
            "post": extend_schema(
                operation_id=f"{kind.operation}_create",
                request=kind.create_in,
                responses={201: kind.detail_out, **errors(400, 409)},
                description=f"Add a {kind.noun} (author). 400 if {kind.refused}, 409 if the name is taken.",
            ),
        }

    def get(self, request: Request) -> Response:
        require_role(request.user, VIEWER)
        query = SearchQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        rows = self.kind.model.objects.select_related("updated_by").order_by("name")
        if search := query.validated_data.get("search"):
            rows = rows.filter(Q(name__icontains=search) | Q(description__icontains=search))
        return paginated(self, request, rows, self.kind.summary_out)

    def post(self, request: Request) -> Response:
        require_role(request.user, AUTHOR)
        form = self.kind.create_in(data=request.data)
        form.is_valid(raise_exception=True)
        item = self.kind.create(acting_user=request.user, **form.validated_data)
        return detail(self.kind, item, status=201)


class LibraryDetail(LibraryView):
    @staticmethod
    def described(kind: Kind) -> dict:
        return {
            "get": extend_schema(
                operation_id=f"{kind.operation}_retrieve",
                parameters=[kind.name],
                responses={200: kind.detail_out, **errors(404)},
                description='The ETag header holds the revision (`"3"`): send it back in If-Match to change it. '
                f"`used_by` lists the mappings whose draft uses the {kind.noun} and the published versions that "
                "froze a copy of it.",
            ),
            "patch": extend_schema(
                operation_id=f"{kind.operation}_partial_update",
                parameters=[kind.name, IF_MATCH],
                request=kind.patch_in,
                responses={200: kind.detail_out, **errors(400, 404, 412, 428)},
                description=f"Change the content (a new revision; 400 if {kind.refused}) or the description "
                "(author). If-Match is required: 428 without it, 412 `stale_revision` when stale.",
            ),
            "delete": extend_schema(
                operation_id=f"{kind.operation}_destroy",
                parameters=[kind.name, IF_MATCH],
                responses={204: None, **errors(404, 409, 412, 428)},
                description=f"Delete a {kind.noun} (author); 409 `in_use` while {kind.users}. If-Match is required "
                "as for a change: what is deleted is the revision you saw.",
            ),
        }

    def get(self, request: Request, name: str) -> Response:
        return detail(self.kind, self.item(request, name))

    def patch(self, request: Request, name: str) -> Response:
        item = self.item(request, name, write=True)
        expected = if_match(request, etag=etag_of(item), revision=item.revision)
        form = self.kind.patch_in(data=request.data)
        form.is_valid(raise_exception=True)
        item = self.kind.update(item, acting_user=request.user, expected_revision=expected, **form.validated_data)
        return detail(self.kind, item)

    def delete(self, request: Request, name: str) -> Response:
        item = self.item(request, name, write=True)
        expected = if_match(request, etag=etag_of(item), revision=item.revision)
        self.kind.delete(item, acting_user=request.user, expected_revision=expected)
        return Response(status=204)


class LibraryVersions(LibraryView):
    @staticmethod
    def described(kind: Kind) -> dict:
        return {
            "get": extend_schema(
                operation_id=f"{kind.operation}_versions_list",
                parameters=[kind.name, *PAGE_PARAMETERS],
                responses={200: page_of(kind.version_out), **errors(404)},
                description=f"Every saved revision of the {kind.noun}, newest first.{kind.versions_note}",
            )
        }

    def get(self, request: Request, name: str) -> Response:
        item = self.item(request, name)
        rows = item.versions.select_related("author").order_by("-revision")
        return paginated(self, request, rows, self.kind.version_out)


class SnippetList(LibraryList, kind=SNIPPETS):
    pass


class SnippetDetail(LibraryDetail, kind=SNIPPETS):
    pass


class SnippetVersions(LibraryVersions, kind=SNIPPETS):
    pass


class LookupTableList(LibraryList, kind=LOOKUP_TABLES):
    pass


class LookupTableDetail(LibraryDetail, kind=LOOKUP_TABLES):
    pass


class LookupTableVersions(LibraryVersions, kind=LOOKUP_TABLES):
    pass


class LookupTableImport(StudioAPIView):
    @extend_schema(
        operation_id="lookup_tables_import",
        parameters=[
            LOOKUP_TABLES.name,
            OpenApiParameter(
                "If-Match",
                OpenApiTypes.STR,
                location=OpenApiParameter.HEADER,
                description='Required when the table exists: the ETag you read (`"3"`), or `*` for whatever is '
                "current (428 without it, 412 `stale_revision` when stale). A new table needs none.",
            ),
        ],
        request=LookupTableImportIn,
        responses={
            200: OpenApiResponse(LookupTableOut, description="Imported as the table's next revision"),
            201: OpenApiResponse(LookupTableOut, description="Imported as a new table"),
            **errors(400, 412, 428),
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
        # Every author may import into any table: the role above is the whole access rule, so look it up directly.
        # A table that does not exist yet counts as revision 0, so one created meanwhile is not overwritten.
        table = LookupTable.objects.filter(name=name).only("revision").first()
        expected = 0 if table is None else if_match(request, etag=etag_of(table), revision=table.revision)
        table, created = actions.do_import_lookup_table(
            name,
            acting_user=request.user,
            csv_text=given["content"] if given["format"] == "csv" else None,
            concept_map=given["content"] if given["format"] == "conceptmap" else None,
            target_system=given["target_system"],
            description=given["description"],
            expected_revision=expected,
        )
        return detail(LOOKUP_TABLES, table, status=201 if created else 200)
