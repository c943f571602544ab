"""Facades, their bindings and deployments, and the data sources they read (the studio side of /fhir/<facade>/).
Viewers read; authors create, bind, upload records, deploy, roll back and delete."""

from __future__ import annotations

from django.db.models import Count, Prefetch, Q, QuerySet
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
from mappings.api.base import PAGE_PARAMETERS, StudioAPIView, cacheable, errors, page_of, paginated
from mappings.api.facade_serializers import (
    BindingIn,
    BindingOut,
    BindingQuery,
    DataSourceIn,
    DataSourceOut,
    DataSourceQuery,
    DataSourceUpdate,
    DeployIn,
    DeploymentOut,
    FacadeIn,
    FacadeOut,
    FacadePatch,
    FacadeQuery,
    MetricsQuery,
    RecordsIn,
    RecordsOut,
    RollbackIn,
    ServedBindingOut,
)
from mappings.facade.metrics import facade_metrics
from mappings.fhir_types import R4_RESOURCE_TYPES, R4_VERSION
from mappings.models import DataSource, Deployment, Facade, ResourceBinding

TAG = "facades"


def _with_bindings(facades: QuerySet) -> QuerySet:
    bindings = ResourceBinding.objects.with_deployments().order_by("resource_type")
    return facades.prefetch_related(Prefetch("bindings", queryset=bindings))


def _facade_out(request: Request, facade: Facade) -> dict:
    facade = _with_bindings(Facade.objects.filter(pk=facade.pk)).get()
    return FacadeOut(facade, context={"request": request}).data


def _sources() -> QuerySet:
    return DataSource.objects.annotate(record_count=Count("records")).prefetch_related(
        Prefetch("bindings", queryset=ResourceBinding.objects.select_related("facade"))
    )


class FacadeList(StudioAPIView):
    @extend_schema(
        operation_id="facades_list",
        parameters=[FacadeQuery, *PAGE_PARAMETERS],
        tags=[TAG],
        summary="Facades, by slug; `search` in the slug or title",
        responses={200: page_of(FacadeOut), **errors(400, 404)},
    )
    def get(self, request: Request) -> Response:
        require_role(request.user, VIEWER)
        query = FacadeQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        facades = Facade.objects.order_by("slug")
        if words := query.validated_data.get("search", "").strip():
            facades = facades.filter(Q(slug__icontains=words) | Q(title__icontains=words))
        return paginated(self, request, _with_bindings(facades), FacadeOut)

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

    @extend_schema(
        tags=[TAG],
        summary="Delete a facade with its bindings, deployments and request log (author)",
        description="Its FHIR API answers 404 from the next request. The data sources and mappings it used stay.",
        responses={204: None, **errors(404)},
    )
    def delete(self, request: Request, slug: str) -> Response:
        facade = access_facade(request.user, slug, write=True)
        actions.do_delete_facade(facade, acting_user=request.user)
        return Response(status=204)


class BindingList(StudioAPIView):
    @extend_schema(
        tags=[TAG], summary="Resource types a facade serves", responses={200: BindingOut(many=True), **errors(404)}
    )
    def get(self, request: Request, slug: str) -> Response:
        facade = access_facade(request.user, slug)
        bindings = ResourceBinding.objects.with_deployments().filter(facade=facade).order_by("resource_type")
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


class BindingDetail(StudioAPIView):
    @extend_schema(
        tags=[TAG],
        summary="Stop serving a resource type (author)",
        description="Deletes the binding with its deployments and index; every worker stops serving the type from "
        "its next request. The mapping and the data source stay.",
        responses={204: None, **errors(404)},
    )
    def delete(self, request: Request, slug: str, resource_type: str) -> Response:
        binding = access_binding(request.user, slug, resource_type, write=True)
        actions.do_delete_binding(binding, acting_user=request.user)
        return Response(status=204)


class ServedBindings(StudioAPIView):
    @extend_schema(
        operation_id="bindings_list",
        parameters=[BindingQuery, *PAGE_PARAMETERS],
        tags=[TAG],
        summary="Bindings of every facade (`mapping`: those a mapping serves), with their live versions",
        responses={200: page_of(ServedBindingOut), **errors(400, 404)},
    )
    def get(self, request: Request) -> Response:
        require_role(request.user, VIEWER)
        query = BindingQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        bindings = ResourceBinding.objects.with_deployments().order_by("facade__slug", "resource_type")
        if "mapping" in query.validated_data:
            bindings = bindings.filter(mapping__slug=query.validated_data["mapping"])
        return paginated(self, request, bindings, ServedBindingOut)


class ResourceTypes(StudioAPIView):
    @extend_schema(
        tags=[TAG],
        summary="The FHIR R4 resource types a binding may name",
        responses={200: OpenApiResponse(description="{fhir_version, resource_types: [names]}"), **errors()},
    )
    def get(self, request: Request) -> Response:
        require_role(request.user, VIEWER)
        return cacheable(request, {"fhir_version": R4_VERSION, "resource_types": list(R4_RESOURCE_TYPES)})


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
        require_role(request.user, AUTHOR)  # refused before the body is read: the refusal tells nothing of the API
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
        require_role(request.user, AUTHOR)  # as for a deploy
        form = RollbackIn(data=request.data)
        form.is_valid(raise_exception=True)
        binding = access_binding(request.user, slug, form.validated_data["resource_type"], write=True)
        deployment = actions.do_rollback(binding, acting_user=request.user)
        return Response(DeploymentOut(deployment).data, status=201)


class DataSourceList(StudioAPIView):
    @extend_schema(
        operation_id="sources_list",
        parameters=[DataSourceQuery, *PAGE_PARAMETERS],
        tags=[TAG],
        summary="Data sources, by name; `search` in the name or description",
        responses={200: page_of(DataSourceOut), **errors(400, 404)},
    )
    def get(self, request: Request) -> Response:
        require_role(request.user, VIEWER)
        query = DataSourceQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        sources = _sources().order_by("name")
        if "kind" in query.validated_data:
            sources = sources.filter(kind=query.validated_data["kind"])
        if words := query.validated_data.get("search", "").strip():
            sources = sources.filter(Q(name__icontains=words) | Q(description__icontains=words))
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


class DataSourceDetail(StudioAPIView):
    @extend_schema(tags=[TAG], summary="One data source", responses={200: DataSourceOut, **errors(404)})
    def get(self, request: Request, name: str) -> Response:
        source = access_data_source(request.user, name)
        return Response(DataSourceOut(_sources().get(pk=source.pk)).data)

    @extend_schema(
        tags=[TAG],
        summary="Change a data source's description or settings (author)",
        description="Credentials are write-only: answers show them as `***`; a config that sends `***` "
        "(or leaves a token/password out of an auth of the same type) keeps the stored one.",
        request=DataSourceUpdate,
        responses={200: DataSourceOut, **errors(400, 404)},
    )
    def patch(self, request: Request, name: str) -> Response:
        source = access_data_source(request.user, name, write=True)
        form = DataSourceUpdate(data=request.data)
        form.is_valid(raise_exception=True)
        actions.do_update_data_source(source, acting_user=request.user, **form.validated_data)
        return Response(DataSourceOut(_sources().get(pk=source.pk)).data)

    @extend_schema(
        tags=[TAG],
        summary="Delete a data source with its stored records (author)",
        description="409 `in_use` while a binding reads it; details.bindings names them (facade/type).",
        responses={204: None, **errors(404, 409)},
    )
    def delete(self, request: Request, name: str) -> Response:
        source = access_data_source(request.user, name, write=True)
        actions.do_delete_data_source(source, acting_user=request.user)
        return Response(status=204)


class DataSourceRecords(StudioAPIView):
    @extend_schema(
        tags=[TAG],
        summary="Store records (author): up to 10,000 {key, payload} per request",
        description="A key already stored is replaced. Live deployments reading this source are re-indexed. A record "
        "of an HL7 v2 source is one message: a payload holding several is refused (400 `invalid`).",
        request=RecordsIn,
        responses={200: RecordsOut, **errors(400, 404)},
    )
    def post(self, request: Request, name: str) -> Response:
        source = access_data_source(request.user, name, write=True)
        form = RecordsIn(data=request.data, context={"source_format": source.source_format})
        form.is_valid(raise_exception=True)
        records = [(record["key"], record["payload"]) for record in form.validated_data["records"]]
        if not records:  # nothing stored, so nothing to audit or re-index
            return Response({"created": 0, "replaced": 0, "reindexed": []})
        return Response(actions.do_upload_records(source, acting_user=request.user, records=records))


class FacadeMetrics(StudioAPIView):
    @extend_schema(
        tags=[TAG],
        summary="Requests, p50/p95 latency and errors of a facade, per resource type and per minute",
        parameters=[MetricsQuery],
        responses={
            200: OpenApiResponse(
                description="{requests, errors, client_errors (4xx), server_errors (5xx), by_status_class, p50_ms, "
                "p95_ms, by_type, per_minute: [{minute, requests, errors, client_errors, server_errors, p95_ms}]}"
            ),
            **errors(400, 404),
        },
    )
    def get(self, request: Request, slug: str) -> Response:
        facade = access_facade(request.user, slug)
        query = MetricsQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        return Response(facade_metrics(facade.slug, query.validated_data["minutes"]))
