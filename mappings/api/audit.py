"""/api/audit/: who changed what, when — every write the actions recorded, every sign-in and token, newest first
(admins only). The same rows as FHIR AuditEvent resources: /api/audit/fhir (mappings/api/audit_fhir.py)."""

from __future__ import annotations

from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from mappings.access import ADMIN, access_audit
from mappings.api.base import PAGE_PARAMETERS, StudioAPIView, errors, page_of, paginated
from mappings.models import AuditAction, AuditEvent


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
        responses={200: page_of(AuditEventOut), **errors(400, 404)},
        description=f"Every write, sign-in (and failed sign-in) and token issued or refused, newest first ({ADMIN} "
        "only); the same rows as FHIR AuditEvent resources: /api/audit/fhir.",
    )
    def get(self, request: Request) -> Response:
        access_audit(request.user)
        query = AuditQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        return paginated(self, request, audit_rows(query.validated_data), AuditEventOut)


def audit_rows(filters: dict) -> QuerySet:
    """The rows an AuditQuery's validated filters select, newest first: the JSON list, the FHIR AuditEvent export
    (mappings/api/audit_fhir.py) and the audit page answer the same question the same way."""
    rows = AuditEvent.objects.select_related("actor").order_by("-created_at", "-id")
    if filters.get("action"):
        rows = rows.filter(action=filters["action"])
    if filters.get("mapping"):
        rows = rows.filter(mapping_slug=filters["mapping"])
    if filters.get("actor"):
        rows = rows.filter(actor__username=filters["actor"])
    if filters.get("since"):
        rows = rows.filter(created_at__gte=filters["since"])
    return rows
