"""Mappings, their draft, published versions, live rendering, samples and test runs.

Each view: DRF authenticates, mappings.access decides, a serializer from mapping_serializers validates, one action
(or the engine) runs, and the answer is serialized. Errors are raised, never built here (mappings/errors.py)."""

from __future__ import annotations

import time
from collections.abc import Callable

from django.db.models import OuterRef, Q, Subquery
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from mappings import actions
from mappings.access import (
    AUTHOR,
    VIEWER,
    access_draft_to_run,
    access_mapping,
    access_sample,
    access_test_run,
    access_version,
    access_version_to_run,
    require_role,
)
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
from mappings.api.mapping_serializers import (
    DiffQuery,
    DraftOut,
    DraftRequest,
    LastRunOut,
    MappingCreateRequest,
    MappingOut,
    MappingQuery,
    MappingUpdateRequest,
    PublishRequest,
    RenderOut,
    RenderRequest,
    SampleCreateRequest,
    SampleOut,
    SampleUpdateRequest,
    SavedDraftOut,
    TestRunDetailOut,
    TestRunOut,
    TestRunQuery,
    TestRunRequest,
    TestRunRowOut,
    VersionDetailOut,
    VersionDiffOut,
    VersionOut,
)
from mappings.compiling import compile_draft, compile_version
from mappings.conf import engine_limits
from mappings.diffs import version_diff
from mappings.engine import CompiledMapping, ErrorCode, MappingError, operation_outcome, run_mapping
from mappings.models import Mapping, TestRun
from mappings.profiles import studio_registry

TAG = "mappings"


# --- mappings -------------------------------------------------------------------------------------------------------


def with_status(mapping: Mapping) -> Mapping:
    """The mapping again with the status MappingOut shows (one query), after access or an action."""
    return Mapping.objects.with_status().get(pk=mapping.pk)


STATUS_FILTERS = {
    "changed": Q(latest_version__isnull=False, draft_changed=True),
    "published": Q(latest_version__isnull=False, draft_changed=False),
    "never_published": Q(latest_version__isnull=True),
}
LAST_TEST_FILTERS = {
    "passed": Q(last_run_id__isnull=False, last_run_failed=0),
    "failed": Q(last_run_failed__gt=0),
    "none": Q(last_run_id__isnull=True),
}


class MappingList(StudioAPIView):
    """Mappings: list (filter, search, paginate) and create."""

    @extend_schema(
        operation_id="mappings_list",
        tags=[TAG],
        summary="List mappings",
        parameters=[MappingQuery, *PAGE_PARAMETERS],
        responses={200: page_of(MappingOut), **errors(400, 404)},
    )
    def get(self, request: Request) -> Response:
        require_role(request.user, VIEWER)
        query = MappingQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        mappings = Mapping.objects.with_status().order_by("slug")
        if "source_format" in query.validated_data:
            mappings = mappings.filter(source_format=query.validated_data["source_format"])
        if "status" in query.validated_data:
            mappings = mappings.filter(STATUS_FILTERS[query.validated_data["status"]])
        if "last_test" in query.validated_data:
            mappings = mappings.filter(LAST_TEST_FILTERS[query.validated_data["last_test"]])
        if query.validated_data.get("has_version") is not None:
            mappings = mappings.filter(latest_version__isnull=not query.validated_data["has_version"])
        if query.validated_data.get("search"):
            words = query.validated_data["search"]
            mappings = mappings.filter(
                Q(slug__icontains=words) | Q(title__icontains=words) | Q(description__icontains=words)
            )
        return paginated(self, request, mappings, MappingOut)

    @extend_schema(
        tags=[TAG],
        summary="Create a mapping (author)",
        request=MappingCreateRequest,
        responses={201: MappingOut, **errors(400, 404, 409)},
    )
    def post(self, request: Request) -> Response:
        require_role(request.user, AUTHOR)
        form = MappingCreateRequest(data=request.data)
        form.is_valid(raise_exception=True)
        fields = dict(form.validated_data)
        from_starter = fields.pop("starter") and "template" not in fields
        mapping = actions.do_create_mapping(acting_user=request.user, from_starter=from_starter, **fields)
        return Response(MappingOut(with_status(mapping)).data, status=201)


class MappingDetail(StudioAPIView):
    """One mapping's metadata: read, change, delete."""

    @extend_schema(tags=[TAG], summary="One mapping", responses={200: MappingOut, **errors(404)})
    def get(self, request: Request, slug: str) -> Response:
        mapping = access_mapping(request.user, slug)
        return Response(MappingOut(with_status(mapping)).data)

    @extend_schema(
        tags=[TAG],
        summary="Change a mapping's metadata (author); the slug never changes",
        request=MappingUpdateRequest,
        responses={200: MappingOut, **errors(400, 404)},
    )
    def patch(self, request: Request, slug: str) -> Response:
        mapping = access_mapping(request.user, slug, write=True)
        form = MappingUpdateRequest(data=request.data, partial=True)
        form.is_valid(raise_exception=True)
        mapping = actions.do_update_mapping(mapping, acting_user=request.user, **form.validated_data)
        return Response(MappingOut(with_status(mapping)).data)

    @extend_schema(
        tags=[TAG],
        summary="Delete a mapping with its draft, versions, samples and test runs (author)",
        description="409 `deployed` while a facade serves it.",
        responses={204: None, **errors(404, 409)},
    )
    def delete(self, request: Request, slug: str) -> Response:
        mapping = access_mapping(request.user, slug, write=True)
        actions.do_delete_mapping(mapping, acting_user=request.user)
        return Response(status=204)


# --- the draft ------------------------------------------------------------------------------------------------------


class DraftView(StudioAPIView):
    """A mapping's one editable draft, optimistically locked by its ETag."""

    @extend_schema(
        tags=[TAG],
        summary="The draft, with its revision in the ETag header",
        responses={200: DraftOut, **errors(404)},
    )
    def get(self, request: Request, slug: str) -> Response:
        mapping = access_mapping(request.user, slug)
        return with_etag(Response(DraftOut(mapping.draft).data), mapping.draft.etag)

    @extend_schema(
        tags=[TAG],
        summary="Save the draft (author), then run the samples against it",
        description="Optimistic locking: send the ETag you read in If-Match (`*`: whatever is current). A missing one "
        "gets 428 with the current ETag in details.etag; one that is not the draft's current ETag gets 412 "
        "`stale_draft` with details.current_revision, details.etag and details.template. The answer carries the new "
        "ETag and the summary of the test run the save triggered.",
        parameters=[if_match_parameter("draft", '"12-3"')],
        request=DraftRequest,
        responses={200: SavedDraftOut, **errors(400, 404, 412, 428)},
    )
    def put(self, request: Request, slug: str) -> Response:
        mapping = access_mapping(request.user, slug, write=True)
        expected = if_match(request, etag=mapping.draft.etag, revision=mapping.draft.revision)
        form = DraftRequest(data=request.data)
        form.is_valid(raise_exception=True)
        draft = actions.do_save_draft(
            mapping,
            acting_user=request.user,
            template=form.validated_data["template"],
            expected_revision=expected,
            extra_tables=form.validated_data.get("lookup_tables"),
        )
        run = actions.do_run_tests(mapping, acting_user=request.user, trigger=TestRun.Trigger.SAVE)
        return with_etag(Response(SavedDraftOut(draft, context={"test_run": run}).data), draft.etag)


# --- versions -------------------------------------------------------------------------------------------------------


class VersionList(StudioAPIView):
    """A mapping's published, immutable versions; POST publishes the draft."""

    @extend_schema(
        operation_id="mappings_versions_list",
        parameters=PAGE_PARAMETERS,
        tags=[TAG],
        summary="Published versions, newest first",
        responses={200: page_of(VersionOut), **errors(404)},
    )
    def get(self, request: Request, slug: str) -> Response:
        mapping = access_mapping(request.user, slug)
        runs = TestRun.objects.filter(version=OuterRef("pk")).order_by("-created_at", "-id")
        versions = (
            mapping.versions.select_related("author", "test_run")
            .defer("template", "snippets", "lookup_tables", "engine_settings", "test_run__results")
            .annotate(**{f"last_run_{key}": Subquery(runs.values(key)[:1]) for key in LastRunOut().fields})
            .order_by("-number")
        )
        return paginated(self, request, versions, VersionOut)

    @extend_schema(
        tags=[TAG],
        summary="Publish the draft as the next immutable version (author)",
        description="Freezes the draft with the snippets and lookup tables it uses and records a run of the samples "
        "with it. A draft that does not compile is refused: 400 `draft_does_not_compile` with the engine error "
        "(code, template, line) in details.errors.",
        request=PublishRequest,
        responses={201: VersionDetailOut, **errors(400, 404)},
    )
    def post(self, request: Request, slug: str) -> Response:
        mapping = access_mapping(request.user, slug, write=True)
        form = PublishRequest(data=request.data)
        form.is_valid(raise_exception=True)
        version = actions.do_publish_version(mapping, acting_user=request.user, message=form.validated_data["message"])
        return Response(VersionDetailOut(version).data, status=201)


class VersionDetail(StudioAPIView):
    """One published version."""

    @extend_schema(
        tags=[TAG],
        summary="One published version, with everything frozen into it and its test run",
        responses={200: VersionDetailOut, **errors(404)},
    )
    def get(self, request: Request, slug: str, number: int) -> Response:
        version = access_version(request.user, slug, number)
        return Response(VersionDetailOut(version).data)


class VersionDiff(StudioAPIView):
    """The difference between two versions, or a version and the draft."""

    @extend_schema(
        tags=[TAG],
        summary="What changed between another version (or the draft) and this one",
        description="Unified diffs of the template, the snippets and the lookup tables, from `against` to version "
        "{number}. `against` is a version number or `draft`; omitted, it is the previous version, and for "
        "version 1 (which has none) the draft. 404 when that version does not exist; 400 when it is neither a "
        "number nor `draft`.",
        parameters=[
            OpenApiParameter(
                "against", str, pattern=r"^(draft|[1-9][0-9]*)$", description="A version number or `draft`"
            )
        ],
        responses={200: VersionDiffOut, **errors(400, 404)},
    )
    def get(self, request: Request, slug: str, number: int) -> Response:
        version = access_version(request.user, slug, number)
        query = DiffQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        default = number - 1 if number > 1 else "draft"
        against = query.validated_data.get("against", default)
        other = version.mapping.draft if against == "draft" else access_version(request.user, slug, against)
        return Response(version_diff(version, other))


class VersionRestore(StudioAPIView):
    """Restore a version into the draft."""

    @extend_schema(
        tags=[TAG],
        summary="Copy a version into the draft (author); the version itself never changes",
        request=None,
        responses={200: DraftOut, **errors(404)},
    )
    def post(self, request: Request, slug: str, number: int) -> Response:
        require_role(request.user, AUTHOR)
        version = access_version(request.user, slug, number)
        draft = actions.do_restore_version(version, acting_user=request.user)
        return with_etag(Response(DraftOut(draft).data), draft.etag)


# --- render ---------------------------------------------------------------------------------------------------------


RENDERED_CAP = 200_000  # characters of a failed output sent to the editor (a window around the error when larger)


def failed_output(text: str, offset: int | None) -> dict:
    """The rendered text that could not be parsed as JSON, for the editor to show with the bad spot marked: all of
    it when small, else RENDERED_CAP characters around the error. `offset` counts from the start of the whole
    output; `start` is where `text` begins in it."""
    start = 0
    if len(text) > RENDERED_CAP:
        start = max(0, min((offset or 0) - RENDERED_CAP // 2, len(text) - RENDERED_CAP))
    return {
        "text": text[start : start + RENDERED_CAP],
        "start": start,
        "offset": offset,
        "total_chars": len(text),
        "truncated": len(text) > RENDERED_CAP,
    }


def _milliseconds_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


def render_preview(compile_: Callable[[], CompiledMapping], payload: str, options: dict) -> dict:
    """Compile (cached) and run, reporting a compile error like any other failed stage: the editor underlines the
    line either way, so neither is an HTTP error."""
    started = time.perf_counter()
    try:
        compiled = compile_()
    except MappingError as error:
        took = _milliseconds_since(started)
        errors = [error]
        return {
            "ok": False,
            "output": None,
            "issues": operation_outcome(errors),
            "errors": [error.as_dict() for error in errors],
            "timings": {"compile": took, "total": took},
            "trace": {},
            "rendered": None,
        }
    compile_ms = _milliseconds_since(started)
    registry = studio_registry()  # uploaded profiles and extension definitions count in the run
    result = run_mapping(
        compiled,
        payload,
        source_format=options.get("source_format") or None,
        limits=engine_limits(),
        validate=options["validate"],
        variables=options.get("variables"),
        locate_issues=options.get("locate", True),
        registry=registry,
    )
    trace = dict(result.trace)
    text = trace.pop("rendered", None)  # the whole output, uncapped: only its capped window leaves, as `rendered`
    not_json = next((error for error in result.errors if error.error is ErrorCode.PST_NOT_JSON), None)
    return {
        "ok": result.ok,
        "output": result.output,
        "issues": result.issues,
        "errors": [error.as_dict() for error in result.errors],
        "timings": {"compile": compile_ms, **result.timings, "total": round(compile_ms + result.timings["total"], 3)},
        "trace": trace,
        "rendered": failed_output(text, not_json.offset) if text is not None and not_json else None,
    }


class Render(StudioAPIView):
    """Live preview: the editor's run of a template on a payload."""

    @extend_schema(
        tags=[TAG],
        summary="Run the draft, a version or unsaved template text on a payload (viewer; writes nothing)",
        description="200 for every completed run, successful or not: errors of the template (stage `template`, with "
        "its line), of the payload (stage `source`) or of the output are in the body with ok=false. Only a bad "
        "request (no payload, both `version` and `template`, wrong types) is a 400, and an unknown version a 404.",
        request=RenderRequest,
        responses={200: RenderOut, **errors(400, 404)},
    )
    def post(self, request: Request, slug: str) -> Response:
        form = RenderRequest(data=request.data)
        if not form.is_valid():
            # A caller without a role is refused, not told what a render needs; a valid render checks the role once,
            # in access_*_to_run (the render's fast path).
            require_role(request.user, VIEWER)
            raise ValidationError(form.errors)
        options = form.validated_data
        if options.get("version") is not None:
            version = access_version_to_run(request.user, slug, options["version"])
            result = render_preview(lambda: compile_version(version), options["payload"], options)
        else:
            mapping = access_draft_to_run(request.user, slug)
            template = options.get("template")
            result = render_preview(lambda: compile_draft(mapping, template=template), options["payload"], options)
        return Response(result)


# --- samples --------------------------------------------------------------------------------------------------------


class SampleList(StudioAPIView):
    """A mapping's sample payloads with their expectations."""

    @extend_schema(
        operation_id="mappings_samples_list",
        parameters=PAGE_PARAMETERS,
        tags=[TAG],
        summary="A mapping's samples",
        responses={200: page_of(SampleOut), **errors(404)},
    )
    def get(self, request: Request, slug: str) -> Response:
        mapping = access_mapping(request.user, slug)
        return paginated(self, request, mapping.samples.order_by("name"), SampleOut)

    @extend_schema(
        tags=[TAG],
        summary="Add a sample (author)",
        request=SampleCreateRequest,
        responses={201: SampleOut, **errors(400, 404, 409)},
    )
    def post(self, request: Request, slug: str) -> Response:
        mapping = access_mapping(request.user, slug, write=True)
        form = SampleCreateRequest(data=request.data)
        form.is_valid(raise_exception=True)
        sample = actions.do_create_sample(mapping, acting_user=request.user, **form.validated_data)
        return Response(SampleOut(sample).data, status=201)


class SampleDetail(StudioAPIView):
    """One sample."""

    @extend_schema(tags=[TAG], summary="One sample", responses={200: SampleOut, **errors(404)})
    def get(self, request: Request, slug: str, name: str) -> Response:
        sample = access_sample(request.user, slug, name)
        return Response(SampleOut(sample).data)

    @extend_schema(
        tags=[TAG],
        summary="Change a sample (author); the name never changes",
        request=SampleUpdateRequest,
        responses={200: SampleOut, **errors(400, 404)},
    )
    def patch(self, request: Request, slug: str, name: str) -> Response:
        sample = access_sample(request.user, slug, name, write=True)
        form = SampleUpdateRequest(data=request.data, partial=True)
        form.is_valid(raise_exception=True)
        sample = actions.do_update_sample(sample, acting_user=request.user, **form.validated_data)
        return Response(SampleOut(sample).data)

    @extend_schema(tags=[TAG], summary="Delete a sample (author)", responses={204: None, **errors(404)})
    def delete(self, request: Request, slug: str, name: str) -> Response:
        sample = access_sample(request.user, slug, name, write=True)
        actions.do_delete_sample(sample, acting_user=request.user)
        return Response(status=204)


# --- test runs ------------------------------------------------------------------------------------------------------


class TestRunList(StudioAPIView):
    """Runs of a mapping's samples: recorded ones, and a new one on demand."""

    __test__ = False  # not a pytest test class, despite the name

    @extend_schema(
        operation_id="mappings_test_runs_list",
        parameters=[TestRunQuery, *PAGE_PARAMETERS],
        tags=[TAG],
        summary="Recorded test runs, newest first (per-case results only with results=true)",
        description="The first row is the mapping's last test run, the one the mapping list shows; the editor asks "
        "for it with `page_size=1&results=true`.",
        responses={200: page_of(TestRunRowOut), **errors(400, 404)},
    )
    def get(self, request: Request, slug: str) -> Response:
        mapping = access_mapping(request.user, slug)
        query = TestRunQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        with_results = query.validated_data["results"]
        runs = (
            mapping.test_runs.select_related("version", "created_by")
            .defer("version__template", "version__snippets", "version__lookup_tables")
            .order_by("-created_at", "-id")
        )
        if not with_results:
            runs = runs.defer("results")
        return paginated(self, request, runs, TestRunDetailOut if with_results else TestRunOut)

    @extend_schema(
        tags=[TAG],
        summary="Run every sample against the draft or a version (author)",
        request=TestRunRequest,
        responses={201: TestRunDetailOut, **errors(400, 404)},
    )
    def post(self, request: Request, slug: str) -> Response:
        mapping = access_mapping(request.user, slug, write=True)
        form = TestRunRequest(data=request.data)
        form.is_valid(raise_exception=True)
        number = form.validated_data.get("version")
        version = access_version(request.user, slug, number) if number is not None else None
        run = actions.do_run_tests(mapping, acting_user=request.user, version=version, trigger=TestRun.Trigger.MANUAL)
        return Response(TestRunDetailOut(run).data, status=201)


class TestRunDetail(StudioAPIView):
    """One recorded test run."""

    __test__ = False

    @extend_schema(
        tags=[TAG], summary="One test run with its per-case results", responses={200: TestRunDetailOut, **errors(404)}
    )
    def get(self, request: Request, slug: str, run_id: int) -> Response:
        run = access_test_run(request.user, slug, run_id)
        return Response(TestRunDetailOut(run).data)
