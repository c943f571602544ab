"""What the browser editor asks besides CRUD: the parsed sample as a tree of template expressions, completion data,
the impact of a change on every sample, and starter templates. All read-only, viewer role (like render); the editor
shows what these answer and computes nothing itself."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from mappings.access import VIEWER, access_mapping, access_version, require_role
from mappings.api.base import StudioAPIView, cacheable, errors
from mappings.api.editor_serializers import (
    CompletionsOut,
    CompletionsQuery,
    ImpactOut,
    ImpactRequest,
    SourceTreeOut,
    SourceTreeRequest,
    StarterOut,
)
from mappings.completions import completions
from mappings.conf import engine_limits
from mappings.errors import StudioError
from mappings.impact import Side, impact
from mappings.models import Mapping
from mappings.source_tree import describe_payload
from mappings.starters import all_starters

TAG = "editor"


class SourceTree(StudioAPIView):
    """The sample as the template sees it."""

    @extend_schema(
        tags=[TAG],
        summary="Parse a payload and return it as a tree; each node has the template expression that reaches it",
        description="`source_format` defaults to the mapping's, and the mapping's source options (CSV delimiter, "
        "encoding) apply. A payload that does not parse is a 200 with ok=false and the engine's errors, like "
        "render. The tree stops at 5,000 nodes (truncated=true); values are cut at 200 characters.",
        request=SourceTreeRequest,
        responses={200: SourceTreeOut, **errors(400, 404)},
    )
    def post(self, request: Request, slug: str) -> Response:
        mapping = access_mapping(request.user, slug)
        form = SourceTreeRequest(data=request.data)
        form.is_valid(raise_exception=True)
        answer = describe_payload(
            form.validated_data["payload"],
            form.validated_data.get("source_format") or mapping.source_format,
            options=mapping.source_options,
            limits=engine_limits(),
        )
        return Response(answer)


def _side(request: Request, mapping: Mapping, value: str) -> Side:
    """A side of the comparison: None for the draft, else the version (`latest` = the newest published one)."""
    if value == "draft":
        return None
    if value == "latest":
        if mapping.latest_version_id is None:
            raise StudioError("invalid", "Nothing is published yet: there is no version to compare with.")
        value = mapping.latest_version.number
    return access_version(request.user, mapping.slug, int(value))


class Impact(StudioAPIView):
    """What a change does to every sample's output."""

    @extend_schema(
        tags=[TAG],
        summary="Run every sample on two sides (versions or the draft) and show whose output changes",
        description="`from` defaults to the latest version and `to` to the draft; each is a version number, "
        "`latest` or `draft`. Outputs are compared as pretty JSON with volatile fields (timestamp, lastUpdated) and "
        "each sample's ignorable paths masked, on the tests' pinned clock. Writes nothing. 400 `invalid` when "
        "`latest` is asked for (or defaulted to) and nothing is published; 404 for an unknown version.",
        request=ImpactRequest,
        responses={200: ImpactOut, **errors(400, 404)},
    )
    def post(self, request: Request, slug: str) -> Response:
        mapping = access_mapping(request.user, slug)
        form = ImpactRequest(data=request.data)
        form.is_valid(raise_exception=True)
        old = _side(request, mapping, form.validated_data.get("from", "latest"))
        new = _side(request, mapping, form.validated_data.get("to", "draft"))
        return Response(impact(mapping, old, new))


class Completions(StudioAPIView):
    """Completion data for the template editor."""

    @extend_schema(
        tags=[TAG],
        summary="Filters, functions, tests, snippet macros, lookup tables, HL7 v2 and FHIR names for completion",
        description="`part` picks one group (engine: filters/globals/tests; library: snippets/lookup_tables; "
        "hl7v2; fhir); without it every group but fhir comes back. HL7 v2 fields come only for the segments named "
        "in `segments` (every field of every segment would be 830 KB). FHIR elements come for the resource types "
        "named in `resource`; `part=fhir` without `resource` lists the resource types. Strong ETag and "
        "Cache-Control private, max-age=300: send If-None-Match to get a 304.",
        parameters=[CompletionsQuery],
        responses={200: CompletionsOut, 304: OpenApiResponse(description="Not modified"), **errors(400)},
    )
    def get(self, request: Request) -> Response:
        require_role(request.user, VIEWER)
        query = CompletionsQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        answer = completions(
            part=query.validated_data.get("part"),
            segments=query.validated_data.get("segments", []),
            resources=query.validated_data.get("resource", []),
        )
        return cacheable(request, answer)


class Starters(StudioAPIView):
    """Starter templates, one per source format."""

    @extend_schema(
        tags=[TAG],
        summary="A small working template and sample per source format (POST /api/mappings/ with starter=true)",
        description="Starters use the shared snippets and lookup tables of the demo content; `missing` lists those "
        "the library lacks (empty when the starter is ready to use).",
        responses={200: StarterOut(many=True), **errors()},
    )
    def get(self, request: Request) -> Response:
        require_role(request.user, VIEWER)
        return Response(StarterOut(all_starters(), many=True).data)
