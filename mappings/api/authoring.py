"""What the browser editor asks besides CRUD: the parsed sample as a tree of template expressions, completion data,
the impact of a change on every sample, and starter templates. Read-only, viewer role (like render)."""

from __future__ import annotations

import hashlib
import json

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from mappings import completions
from mappings.access import VIEWER, access_mapping, access_version, require_role
from mappings.api.authoring_serializers import (
    CompletionsQuery,
    ImpactOut,
    ImpactRequest,
    SourceTreeOut,
    SourceTreeRequest,
    StarterOut,
)
from mappings.api.base import StudioAPIView
from mappings.api.mappings import _errors
from mappings.conf import engine_limits
from mappings.engine import MappingError, parse_source
from mappings.errors import StudioError
from mappings.impact import impact
from mappings.source_tree import source_tree
from mappings.starters import all_starters

TAG = "editor"


class SourceTree(StudioAPIView):
    """The sample as the template sees it."""

    @extend_schema(
        tags=[TAG],
        summary="Parse a payload and return it as a tree; each node has the template expression that reaches it",
        description="200 with ok=false and the engine's errors when the payload does not parse, like render. The "
        "tree stops at 5,000 nodes (truncated=true).",
        request=SourceTreeRequest,
        responses={200: SourceTreeOut, **_errors(400)},
    )
    def post(self, request: Request, slug: str) -> Response:
        mapping = access_mapping(request.user, slug)
        form = SourceTreeRequest(data=request.data)
        form.is_valid(raise_exception=True)
        source_format = form.validated_data.get("source_format") or mapping.source_format
        try:
            parsed = parse_source(
                form.validated_data["payload"],
                source_format,
                options=mapping.source_options,
                limits=engine_limits(),
            )
        except MappingError as error:
            return Response(
                {
                    "ok": False,
                    "source_format": source_format,
                    "tree": [],
                    "truncated": False,
                    "errors": [error.as_dict()],
                }
            )
        tree, truncated = source_tree(parsed)
        return Response(
            {"ok": True, "source_format": source_format, "tree": tree, "truncated": truncated, "errors": []}
        )


class Impact(StudioAPIView):
    """What a change does to every sample's output."""

    @extend_schema(
        tags=[TAG],
        summary="Run every sample on two sides (versions or the draft) and show whose output changes",
        description="`from` defaults to the latest version and `to` to the draft. Writes nothing. 400 `invalid` when "
        "`from` is omitted and nothing is published.",
        request=ImpactRequest,
        responses={200: ImpactOut, **_errors(400)},
    )
    def post(self, request: Request, slug: str) -> Response:
        mapping = access_mapping(request.user, slug)
        form = ImpactRequest(data=request.data)
        form.is_valid(raise_exception=True)
        sides = []
        for key, default in (("from", "latest"), ("to", "draft")):
            value = form.validated_data.get(key, default)
            if value == "latest":
                if mapping.latest_version_id is None:
                    raise StudioError("invalid", "Nothing is published yet: there is no version to compare with.")
                value = mapping.latest_version.number
            sides.append(None if value == "draft" else access_version(request.user, slug, int(value)))
        return Response(impact(mapping, *sides))


class Completions(StudioAPIView):
    """Completion data for the template editor."""

    @extend_schema(
        tags=[TAG],
        summary="Filters, functions, tests, snippet macros, lookup tables, HL7 v2 and FHIR names for completion",
        description="`part` picks one group (engine, library, hl7v2, fhir); without it every group but fhir "
        "elements comes back. HL7 v2 fields come only for the segments named in `segments` (all fields of every "
        "segment would be 830 KB). FHIR elements come for the resource types in `resource`. Cached by the browser: "
        "the answer has an ETag and Cache-Control private, max-age=300.",
        parameters=[CompletionsQuery],
        responses={200: OpenApiResponse(description="{engine..., library..., hl7v2..., fhir...}")},
    )
    def get(self, request: Request) -> Response:
        require_role(request.user, VIEWER)
        query = CompletionsQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        part = query.validated_data.get("part")
        answer: dict = {}
        if part in (None, "engine"):
            answer.update(completions.engine_names())
        if part in (None, "library"):
            answer.update(completions.library_names())
        if part in (None, "hl7v2"):
            answer["hl7v2"] = completions.hl7v2_names(query.validated_data.get("segments", []))
        if part == "fhir" or query.validated_data.get("resource"):
            types = query.validated_data.get("resource", [])
            answer["fhir"] = {
                "resource_types": completions.fhir_resource_types() if part == "fhir" and not types else [],
                "elements": {name: completions.fhir_elements(name) for name in types},
            }
        body = json.dumps(answer, sort_keys=True, default=str).encode()
        etag = f'"{hashlib.sha256(body).hexdigest()[:32]}"'
        if request.headers.get("If-None-Match") == etag:
            return Response(status=304, headers={"ETag": etag})
        return Response(answer, headers={"ETag": etag, "Cache-Control": "private, max-age=300"})


class Starters(StudioAPIView):
    """Starter templates, one per source format."""

    @extend_schema(
        tags=[TAG],
        summary="A small working template and sample per source format (POST /api/mappings/ with starter=true)",
        responses={200: StarterOut(many=True), **_errors()},
    )
    def get(self, request: Request) -> Response:
        require_role(request.user, VIEWER)
        return Response(StarterOut(all_starters(), many=True).data)
