"""Facades, their bindings and deployments, and the data sources they read (the studio side of /fhir/<facade>/).
Viewers read; authors create, bind, upload records, deploy and roll back."""

from __future__ import annotations

from django.db.models import Count
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from mappings import actions
from mappings.access import (
    AUTHOR,
    VIEWER,
    access_binding,
    access_data_source,
    access_facade,
    access_mapping,
    access_version,
    require_role,
)
from mappings.api.base import PAGE_PARAMETERS, StudioAPIView, errors, page_of, paginated
from mappings.api.facade_serializers import (
    BindingIn,
    BindingOut,
    DataSourceIn,
    DataSourceOut,
    DeployIn,
    DeploymentOut,
    FacadeIn,
    FacadeOut,
    FacadePatch,
    MetricsQuery,
    RecordsIn,
    RecordsOut,
    RollbackIn,
)
from mappings.facade.metrics import facade_metrics
from mappings.models import DataSource, Deployment, Facade

TAG = "facades"


def _facade_out(request: Request, facade: Facade) -> dict:
    return FacadeOut(facade, context={"request": request}).data


class FacadeList(StudioAPIView):
    @extend_schema(
        operation_id="facades_list",
        parameters=PAGE_PARAMETERS,
        tags=[TAG],
        summary="Facades",
        responses={200: page_of(FacadeOut), **errors(404)},
    )
    def get(self, request: Request) -> Response:
        require_role(request.user, VIEWER)
        facades = Facade.objects.prefetch_related("bindings__mapping", "bindings__source").order_by("slug")
        return paginated(self, request, facades, FacadeOut)

    @extend_schema(
        tags=[TAG],
        summary="Create a facade (author)",
        request=FacadeIn,
        responses={201: FacadeOut, **errors(400, 409)},
    )
    def post(self, request: Request) -> Response:
        require_role(request.user, AUTHOR)
        form = FacadeIn(data=request.data)
        form.is_valid(raise_exception=True)
        facade = actions.do_create_facade(acting_user=request.user, **form.validated_data)
        return Response(_facade_out(request, facade), status=201)


class FacadeDetail(StudioAPIView):
    @extend_schema(
        tags=[TAG],
        summary="One facade with its bindings and live deployments",
        responses={200: FacadeOut, **errors(404)},
    )
    def get(self, request: Request, slug: str) -> Response:
        return Response(_facade_out(request, access_facade(request.user, slug)))

    @extend_schema(
        tags=[TAG],
        summary="Rename, pause or resume a facade (author)",
        request=FacadePatch,
        responses={200: FacadeOut, **errors(400, 404)},
    )
    def patch(self, request: Request, slug: str) -> Response:
        facade = access_facade(request.user, slug, write=True)
        form = FacadePatch(data=request.data)
        form.is_valid(raise_exception=True)
        facade = actions.do_update_facade(facade, acting_user=request.user, **form.validated_data)
        return Response(_facade_out(request, facade))


class BindingList(StudioAPIView):
    @extend_schema(
        tags=[TAG], summary="Resource types a facade serves", responses={200: BindingOut(many=True), **errors(404)}
    )
    def get(self, request: Request, slug: str) -> Response:
        facade = access_facade(request.user, slug)
        bindings = facade.bindings.select_related("mapping", "source").order_by("resource_type")
        return Response(BindingOut(bindings, many=True).data)

    @extend_schema(
        tags=[TAG],
        summary="Serve a resource type from a source through a mapping (author)",
        request=BindingIn,
        responses={200: BindingOut, **errors(400, 404)},
    )
    def post(self, request: Request, slug: str) -> Response:
        facade = access_facade(request.user, slug, write=True)
        form = BindingIn(data=request.data)
        form.is_valid(raise_exception=True)
        binding = actions.do_bind_resource(
            facade,
            acting_user=request.user,
            resource_type=form.validated_data["resource_type"],
            mapping=access_mapping(request.user, form.validated_data["mapping"]),
            source=access_data_source(request.user, form.validated_data["source"]),
        )
        return Response(BindingOut(binding).data)


class DeploymentList(StudioAPIView):
    @extend_schema(
        operation_id="facades_deployments_list",
        parameters=PAGE_PARAMETERS,
        tags=[TAG],
        summary="Deployment history, newest first",
        responses={200: page_of(DeploymentOut), **errors(404)},
    )
    def get(self, request: Request, slug: str) -> Response:
        facade = access_facade(request.user, slug)
        history = (
            Deployment.objects.filter(binding__facade=facade)
            .select_related("binding", "version__mapping", "deployed_by")
            .defer("version__template", "version__snippets", "version__lookup_tables")
        )
        return paginated(self, request, history.order_by("-deployed_at", "-id"), DeploymentOut)

    @extend_schema(
        tags=[TAG],
        summary="Deploy a published version for a resource type (author)",
        description="Runs the version's samples first: 409 `tests_failing` (with the failing cases) when any fails. "
        "The stored records are indexed before the answer for small sources, by a Celery task for big ones.",
        request=DeployIn,
        responses={201: DeploymentOut, **errors(400, 404, 409)},
    )
    def post(self, request: Request, slug: str) -> Response:
        form = DeployIn(data=request.data)
        form.is_valid(raise_exception=True)
        binding = access_binding(request.user, slug, form.validated_data["resource_type"], write=True)
        version = access_version(request.user, binding.mapping.slug, form.validated_data["version"])
        deployment = actions.do_deploy(
            binding, acting_user=request.user, version=version, variables=form.validated_data["variables"]
        )
        return Response(DeploymentOut(deployment).data, status=201)


class Rollback(StudioAPIView):
    @extend_schema(
        tags=[TAG],
        summary="Deploy again the version that was live before (author)",
        request=RollbackIn,
        responses={201: DeploymentOut, **errors(400, 404)},
    )
    def post(self, request: Request, slug: str) -> Response:
        form = RollbackIn(data=request.data)
        form.is_valid(raise_exception=True)
        binding = access_binding(request.user, slug, form.validated_data["resource_type"], write=True)
        deployment = actions.do_rollback(binding, acting_user=request.user)
        return Response(DeploymentOut(deployment).data, status=201)


class DataSourceList(StudioAPIView):
    @extend_schema(
        operation_id="sources_list",
        parameters=PAGE_PARAMETERS,
        tags=[TAG],
        summary="Data sources",
        responses={200: page_of(DataSourceOut), **errors(404)},
    )
    def get(self, request: Request) -> Response:
        require_role(request.user, VIEWER)
        sources = DataSource.objects.annotate(record_count=Count("records")).order_by("name")
        return paginated(self, request, sources, DataSourceOut)

    @extend_schema(
        tags=[TAG],
        summary="Create a stored data source (author)",
        request=DataSourceIn,
        responses={201: DataSourceOut, **errors(400, 409)},
    )
    def post(self, request: Request) -> Response:
        require_role(request.user, AUTHOR)
        form = DataSourceIn(data=request.data)
        form.is_valid(raise_exception=True)
        source = actions.do_create_data_source(acting_user=request.user, **form.validated_data)
        source.record_count = 0
        return Response(DataSourceOut(source).data, status=201)


class DataSourceRecords(StudioAPIView):
    @extend_schema(
        tags=[TAG],
        summary="Store records (author): up to 10,000 {key, payload} per request",
        description="A key already stored is replaced. Live deployments reading this source are re-indexed.",
        request=RecordsIn,
        responses={200: RecordsOut, **errors(400, 404)},
    )
    def post(self, request: Request, name: str) -> Response:
        source = access_data_source(request.user, name, write=True)
        form = RecordsIn(data=request.data)
        form.is_valid(raise_exception=True)
        records = [(record["key"], record["payload"]) for record in form.validated_data["records"]]
        return Response(actions.do_upload_records(source, acting_user=request.user, records=records))


class FacadeMetrics(StudioAPIView):
    @extend_schema(
        tags=[TAG],
        summary="Requests, p50/p95 latency and errors of a facade, per resource type and per minute",
        parameters=[MetricsQuery],
        responses={
            200: OpenApiResponse(description="{requests, errors, p50_ms, p95_ms, by_type, per_minute}"),
            **errors(400, 404),
        },
    )
    def get(self, request: Request, slug: str) -> Response:
        facade = access_facade(request.user, slug)
        query = MetricsQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        return Response(facade_metrics(facade.slug, query.validated_data["minutes"]))
