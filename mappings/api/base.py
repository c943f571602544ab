"""What every studio API view shares: authentication, JSON only, the one error shape, pagination, ETags."""

from __future__ import annotations

from rest_framework.pagination import PageNumberPagination
from rest_framework.permissions import IsAuthenticated
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.views import APIView

from mappings.api.parsers import StudioJSONParser
from mappings.errors import StudioError


class StudioPagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500


class StudioAPIView(APIView):
    """Authenticated JSON views; access decisions are made by mappings.access, errors by mappings.errors."""

    permission_classes = [IsAuthenticated]
    renderer_classes = [JSONRenderer]
    parser_classes = [StudioJSONParser]


def required_revision(request: Request, current_etag: str) -> None:
    """Optimistic locking: a write must name the revision it read in If-Match (428 without, 412 when stale)."""
    sent = request.headers.get("If-Match")
    if not sent:
        raise StudioError(
            "precondition_required", "Send the ETag you read in an If-Match header.", details={"etag": current_etag}
        )


def revision_from_etag(etag: str) -> int | None:
    """`"<mapping id>-<revision>"` (quotes and a weak W/ prefix allowed) → revision, or None if unreadable."""
    value = etag.strip().removeprefix("W/").strip('"')
    _, _, revision = value.rpartition("-")
    return int(revision) if revision.isdigit() else None
