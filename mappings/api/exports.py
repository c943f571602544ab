"""A facade's bulk exports and patient groups, for the studio (clients use /fhir/<facade>/$export): the export jobs
with their progress and files, and the groups `Group/<id>/$export` exports. Viewers read; authors define groups."""

from __future__ import annotations

from django.db.models import Count, Sum
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from mappings import actions
from mappings.access import access_facade, access_patient_group
from mappings.api.base import PAGE_PARAMETERS, StudioAPIView, errors, page_of, paginated
from mappings.models import ExportJob, PatientGroup

TAG = "facades"


class ExportJobOut(serializers.ModelSerializer):
    """An export as the studio shows it; `resources` and `failed` are summed from its chunks."""

    resources = serializers.IntegerField(read_only=True)
    failed = serializers.IntegerField(read_only=True)
    chunk_count = serializers.IntegerField(read_only=True)
    status_url = serializers.SerializerMethodField()

    class Meta:
        model = ExportJob
        fields = [
            "key",
            "level",
            "group_id",
            "status",
            "request",
            "parameters",
            "client",
            "planned",
            "resources",
            "failed",
            "chunk_count",
            "error",
            "transaction_time",
            "created_at",
            "finished_at",
            "files_deleted_at",
            "status_url",
        ]

    def get_status_url(self, job: ExportJob) -> str:
        return self.context["request"].build_absolute_uri(f"/fhir/{job.facade.slug}/$export-status/{job.key}")


class PatientGroupIn(serializers.Serializer):
    group_id = serializers.RegexField(r"^[A-Za-z0-9\-.]{1,64}$", help_text="The id clients use: Group/<group_id>")
    name = serializers.CharField(max_length=200)
    patient_ids = serializers.ListField(
        child=serializers.RegexField(r"^[A-Za-z0-9\-.]{1,64}$"), max_length=100_000, allow_empty=False
    )


class PatientGroupOut(serializers.ModelSerializer):
    class Meta:
        model = PatientGroup
        fields = ["group_id", "name", "patient_ids", "created_at"]


class ExportJobList(StudioAPIView):
    @extend_schema(
        operation_id="facades_exports_list",
        tags=[TAG],
        summary="A facade's bulk exports, newest first, with their progress",
        parameters=PAGE_PARAMETERS,
        responses={200: page_of(ExportJobOut), **errors(404)},
    )
    def get(self, request: Request, slug: str) -> Response:
        facade = access_facade(request.user, slug)
        jobs = (
            ExportJob.objects.filter(facade=facade)
            .select_related("facade")
            .annotate(resources=Sum("chunks__done"), failed=Sum("chunks__failed"), chunk_count=Count("chunks"))
            .order_by("-created_at", "-id")
        )
        return paginated(self, request, jobs, ExportJobOut)


class PatientGroupList(StudioAPIView):
    @extend_schema(
        operation_id="facades_groups_list",
        tags=[TAG],
        summary="The patient groups `Group/<id>/$export` exports",
        parameters=PAGE_PARAMETERS,
        responses={200: page_of(PatientGroupOut), **errors(404)},
    )
    def get(self, request: Request, slug: str) -> Response:
        facade = access_facade(request.user, slug)
        return paginated(self, request, facade.groups.order_by("group_id"), PatientGroupOut)

    @extend_schema(
        tags=[TAG],
        summary="Define a patient group, or redefine one with the same group_id (author)",
        request=PatientGroupIn,
        responses={201: PatientGroupOut, **errors(400, 404)},
    )
    def post(self, request: Request, slug: str) -> Response:
        facade = access_facade(request.user, slug, write=True)
        form = PatientGroupIn(data=request.data)
        form.is_valid(raise_exception=True)
        group = actions.do_save_patient_group(facade, acting_user=request.user, **form.validated_data)
        return Response(PatientGroupOut(group).data, status=201)


class PatientGroupDetail(StudioAPIView):
    @extend_schema(tags=[TAG], summary="One patient group", responses={200: PatientGroupOut, **errors(404)})
    def get(self, request: Request, slug: str, group_id: str) -> Response:
        return Response(PatientGroupOut(access_patient_group(request.user, slug, group_id)).data)

    @extend_schema(tags=[TAG], summary="Delete a patient group (author)", responses={204: None, **errors(404)})
    def delete(self, request: Request, slug: str, group_id: str) -> Response:
        group = access_patient_group(request.user, slug, group_id, write=True)
        actions.do_delete_patient_group(group, acting_user=request.user)
        return Response(status=204)
