"""Batch conversions: start one over uploaded files or a stored source, follow its progress, cancel it, list the
messages that failed (the dead-letter list) and reprocess them with another version, download the results; with
push_to, what the server answered for each message pushed (/pushes/, or NDJSON: results?format=push).
Viewers read and download; authors start, cancel and reprocess."""

from __future__ import annotations

from collections.abc import Iterator

from django.core.exceptions import RequestDataTooBig, TooManyFilesSent
from django.db.models import IntegerField, OuterRef, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce
from django.http import HttpResponse, StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.parsers import MultiPartParser
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from mappings import actions
from mappings.access import (
    AUTHOR,
    VIEWER,
    access_batch,
    access_connection,
    access_data_source,
    access_mapping,
    access_version,
    require_role,
)
from mappings.actions.batches import max_upload_bytes
from mappings.api.base import PAGE_PARAMETERS, StudioAPIView, errors, page_of, paginated
from mappings.api.batch_serializers import (
    BatchIn,
    BatchOut,
    BatchQuery,
    FailureOut,
    PushedMessageOut,
    PushesQuery,
    ReprocessIn,
    ResultsQuery,
    expanded_entries,
)
from mappings.api.parsers import StudioJSONParser
from mappings.engine.formats.decimals import dumps, loads
from mappings.errors import StudioError
from mappings.job_files import read_lines
from mappings.models import BatchChunk, BatchItem, BatchJob, ChunkStatus, Mapping, MappingVersion

TAG = "batches"
NDJSON = "application/fhir+ndjson"
MULTIPART_SLACK = 1024 * 1024  # the form's own bytes around the files
PUSH_COUNTS = ("pushed", "push_failed", "entries_created", "entries_updated", "entries_failed")  # BatchChunk's
PUSH_LINES_PER_QUERY = 2000  # items read at a time while streaming push results


def with_counts(batches: QuerySet) -> QuerySet:
    """Batches with what BatchOut shows, in one query whatever their number: the chunks' counts summed."""

    def chunk_sum(field: str) -> Subquery:
        sums = BatchChunk.objects.filter(batch_id=OuterRef("pk")).values("batch_id").annotate(total=Sum(field))
        return Coalesce(Subquery(sums.values("total"), output_field=IntegerField()), 0)

    return (
        batches.select_related("version__mapping", "source", "created_by")
        .defer("version__template", "version__snippets", "version__lookup_tables", "version__engine_settings")
        .annotate(
            done_count=chunk_sum("done"),
            failed_count=chunk_sum("failed"),
            **{f"{name}_count": chunk_sum(name) for name in PUSH_COUNTS},
        )
    )


def _batch_out(batch: BatchJob) -> dict:
    return BatchOut(with_counts(BatchJob.objects.filter(pk=batch.pk)).get()).data


def _version(request: Request, mapping: Mapping, number: int | None) -> MappingVersion:
    if number is not None:
        return access_version(request.user, mapping.slug, number)
    if mapping.latest_version_id is None:
        raise StudioError("invalid", f"'{mapping.slug}' has no published version: publish one to run a batch.")
    return access_version(request.user, mapping.slug, mapping.latest_version.number)


def _content_length(request: Request) -> int:
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0  # Django reads such a body as empty too


class BatchList(StudioAPIView):
    parser_classes = [MultiPartParser, StudioJSONParser]

    @extend_schema(
        operation_id="batches_list",
        parameters=[BatchQuery, *PAGE_PARAMETERS],
        tags=[TAG],
        summary="Batch conversions, newest first",
        responses={200: page_of(BatchOut), **errors(400, 404)},
    )
    def get(self, request: Request) -> Response:
        require_role(request.user, VIEWER)
        query = BatchQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        batches = BatchJob.objects.all()
        if "mapping" in query.validated_data:
            batches = batches.filter(version__mapping__slug=query.validated_data["mapping"])
        if "status" in query.validated_data:
            batches = batches.filter(status=query.validated_data["status"])
        return paginated(self, request, with_counts(batches).order_by("-created_at", "-id"), BatchOut)

    @extend_schema(
        tags=[TAG],
        summary="Start a batch conversion (author)",
        description="multipart/form-data with `files` (one or more) or JSON with `source`: a stored data source, "
        "or `{connection, resource_type, params}` / `{connection, export: {type}}` to pull resources from a "
        "connection. `push_to: {connection, kind}` sends each converted output to a connection. "
        "The files are stored and split into messages by a worker: the answer is the batch, queued. Files over "
        "the size limit get 413 `too_large`.",
        request={"multipart/form-data": BatchIn, "application/json": BatchIn},
        responses={
            201: BatchOut,
            413: OpenApiResponse(description="`too_large`: the files are over the limit (details.max_bytes)"),
            **errors(400, 404),
        },
    )
    def post(self, request: Request) -> Response:
        require_role(request.user, AUTHOR)
        limit = max_upload_bytes()
        if _content_length(request) > limit + MULTIPART_SLACK:  # refused before the body is read
            raise StudioError(
                "too_large",
                f"A batch takes at most {limit:,} bytes of files; split them into several batches.",
                details={"max_bytes": limit},
                status_code=413,
            )
        try:
            data = request.data
        except (RequestDataTooBig, TooManyFilesSent) as exc:
            raise StudioError(
                "too_large", f"The request is too big: {exc}", details={"max_bytes": limit}, status_code=413
            ) from exc
        form = BatchIn(data=data)
        form.is_valid(raise_exception=True)
        given = form.validated_data
        mapping = access_mapping(request.user, given["mapping"])
        version = _version(request, mapping, given.get("version"))
        files, source, pull = given.get("files"), None, None
        if isinstance(given.get("source"), dict):
            pull = given["source"]
            access_connection(request.user, pull["connection"])
        elif given.get("source"):
            source = access_data_source(request.user, given["source"])
        if given.get("push_to"):
            access_connection(request.user, given["push_to"]["connection"])
        batch = actions.do_start_batch(
            version,
            acting_user=request.user,
            uploads=[(upload.name, upload) for upload in files] if files else None,
            source=source,
            validate=given["validate"],
            key_column=given.get("key_column"),
            pull=pull,
            push_to=given.get("push_to"),
        )
        return Response(_batch_out(batch), status=201)


class BatchDetail(StudioAPIView):
    @extend_schema(
        tags=[TAG],
        summary="A batch's progress: status, counts, rate and time left",
        responses={200: BatchOut, **errors(404)},
    )
    def get(self, request: Request, batch_id: int) -> Response:
        return Response(_batch_out(access_batch(request.user, batch_id)))


class BatchCancel(StudioAPIView):
    @extend_schema(
        tags=[TAG],
        summary="Stop a queued or running batch (author)",
        description="Chunks not yet done are cancelled; the messages converted so far stay downloadable. "
        "409 `conflict` once the batch has finished.",
        request=None,
        responses={200: BatchOut, **errors(404, 409)},
    )
    def post(self, request: Request, batch_id: int) -> Response:
        batch = access_batch(request.user, batch_id, write=True)
        return Response(_batch_out(actions.do_cancel_batch(batch, acting_user=request.user)))


class BatchReprocess(StudioAPIView):
    @extend_schema(
        tags=[TAG],
        summary="Run the messages that failed again, with another version (author)",
        description="A new batch over the failed messages of this one (a finished batch), with `version` of the same "
        "mapping (default: its latest). 409 `conflict` while this one runs; 400 when nothing failed.",
        request=ReprocessIn,
        responses={201: BatchOut, **errors(400, 404, 409)},
    )
    def post(self, request: Request, batch_id: int) -> Response:
        batch = access_batch(request.user, batch_id, write=True)
        form = ReprocessIn(data=request.data)
        form.is_valid(raise_exception=True)
        mapping = access_mapping(request.user, batch.version.mapping.slug)
        version = _version(request, mapping, form.validated_data.get("version"))
        again = actions.do_reprocess_batch(batch, acting_user=request.user, version=version)
        return Response(_batch_out(again), status=201)


class BatchFailures(StudioAPIView):
    @extend_schema(
        operation_id="batches_failures_list",
        parameters=PAGE_PARAMETERS,
        tags=[TAG],
        summary="The messages that did not convert, in input order (the dead-letter list)",
        responses={200: page_of(FailureOut), **errors(404)},
    )
    def get(self, request: Request, batch_id: int) -> Response:
        batch = access_batch(request.user, batch_id)
        failed = BatchItem.objects.filter(batch_id=batch.pk, status=BatchItem.Status.FAILED).defer("payload")
        return paginated(self, request, failed.order_by("seq"), FailureOut)


class BatchPushes(StudioAPIView):
    @extend_schema(
        operation_id="batches_pushes_list",
        parameters=[PushesQuery, *PAGE_PARAMETERS],
        tags=[TAG],
        summary="What the push_to server answered for each message pushed, entry by entry, in input order",
        description="Each entry's status, location (Type/id/_history/version of what was created or updated) and "
        "ETag; an OperationOutcome only for a failed entry. A message whose whole Bundle was refused has no entries "
        "here (code push_refused or push_unreachable): its outcome is in the dead-letter list. `failed=true`: only "
        "the messages the server did not keep whole.",
        responses={200: page_of(PushedMessageOut), **errors(400, 404)},
    )
    def get(self, request: Request, batch_id: int) -> Response:
        batch = access_batch(request.user, batch_id)
        query = PushesQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        pushed = _pushed_items(batch).only("batch", "seq", "key", "push")
        if query.validated_data["failed"] is True:
            pushed = pushed.exclude(push__code="ok")
        elif query.validated_data["failed"] is False:
            pushed = pushed.filter(push__code="ok")
        return paginated(self, request, pushed.order_by("seq"), PushedMessageOut)


def _pushed_items(batch: BatchJob) -> QuerySet:
    return BatchItem.objects.filter(batch_id=batch.pk, push__isnull=False)


class FileAnswerView(StudioAPIView):
    """Answers a file, whatever the client accepts; only errors are JSON."""

    def perform_content_negotiation(self, request: Request, force: bool = False) -> tuple:
        # DRF would read `?format=` as a renderer's name, and refuse an Accept without JSON with 406.
        return JSONRenderer(), JSONRenderer.media_type


class BatchResults(FileAnswerView):
    @extend_schema(
        tags=[TAG],
        summary="The converted outputs, streamed as NDJSON",
        description="`format=ndjson`: every resource on its own line, Bundle entries flattened (what a FHIR "
        "server's $import or a bulk loader takes); `format=bundles`: each message's output on its own line. In "
        "input order; while the batch runs, what its finished chunks wrote.",
        parameters=[ResultsQuery],
        responses={
            (200, NDJSON): OpenApiResponse(OpenApiTypes.STR, description="FHIR NDJSON"),
            **errors(400, 404),
        },
    )
    def get(self, request: Request, batch_id: int) -> StreamingHttpResponse:
        batch = access_batch(request.user, batch_id)
        query = ResultsQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        if query.validated_data["format"] == "push":
            response = StreamingHttpResponse(_push_lines(batch), content_type="application/x-ndjson")
            response["Content-Disposition"] = f'attachment; filename="batch-{batch.pk}-push.ndjson"'
            return response
        flat = query.validated_data["format"] == "ndjson"
        chunks = BatchChunk.objects.filter(batch_id=batch.pk, status=ChunkStatus.DONE).order_by("first_seq")
        names = [file["name"] for files in chunks.values_list("files", flat=True) for file in files]
        response = StreamingHttpResponse(_result_lines(names, flat=flat), content_type=NDJSON)
        kind = "resources" if flat else "bundles"
        response["Content-Disposition"] = f'attachment; filename="batch-{batch.pk}-{kind}.ndjson"'
        return response


def _push_lines(batch: BatchJob) -> Iterator[bytes]:
    """One line per message pushed, as /pushes/ shows it; read in slices, so a 100,000-message batch streams."""
    rows = _pushed_items(batch).order_by("seq").values_list("seq", "key", "push")
    for seq, key, push in rows.iterator(chunk_size=PUSH_LINES_PER_QUERY):
        line = {
            "seq": seq,
            "key": key,
            "code": push.get("code", ""),
            "status": push.get("status"),
            "entries": expanded_entries(push),
            "more": push.get("more", 0),
        }
        yield dumps(line) + b"\n"


def _result_lines(names: list[str], *, flat: bool) -> Iterator[bytes]:
    for name in names:
        for line in read_lines(name):
            if not flat:
                yield line + b"\n"
                continue
            output = loads(line)  # FHIR decimals keep their digits
            if output.get("resourceType") != "Bundle":
                yield line + b"\n"
                continue
            for entry in output.get("entry") or []:
                if isinstance(entry, dict) and isinstance(entry.get("resource"), dict):
                    yield dumps(entry["resource"]) + b"\n"


class BatchItemPayload(FileAnswerView):
    @extend_schema(
        tags=[TAG],
        summary="One message of a batch as it was split from its input (to look at a failed one)",
        responses={(200, "text/plain"): OpenApiResponse(OpenApiTypes.STR), **errors(404)},
    )
    def get(self, request: Request, batch_id: int, seq: int) -> HttpResponse:
        batch = access_batch(request.user, batch_id)
        item = BatchItem.objects.filter(batch_id=batch.pk, seq=seq).values("payload", "record__payload").first()
        if item is None:
            raise StudioError("not_found", f"Batch {batch.pk} has no message {seq}.")
        text = item["payload"] or item["record__payload"] or ""
        return HttpResponse(text, content_type="text/plain; charset=utf-8")
