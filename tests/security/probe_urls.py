"""The studio's URLs plus views that fail on purpose, one under each part (/fhir/, /api/, pages), for
test_probe_errors.py."""

from django.core.exceptions import PermissionDenied, SuspiciousOperation
from django.http import HttpResponse
from django.urls import path
from django.views.decorators.http import require_GET

from fhirstudio.urls import handler400, handler403, handler404, handler500, urlpatterns  # noqa: F401


def fail(request):
    raise RuntimeError("a fault of ours, on purpose")


def denied(request):
    raise PermissionDenied


def suspicious(request):
    raise SuspiciousOperation("on purpose")


@require_GET
def get_only(request):
    return HttpResponse("ok")


urlpatterns = [
    path("probe/api/fail", fail),
    *[path(f"{prefix}probe-fail", fail) for prefix in ("api/", "fhir/", "")],
    *[path(f"{prefix}probe-denied", denied) for prefix in ("api/", "fhir/", "")],
    *[path(f"{prefix}probe-bad", suspicious) for prefix in ("api/", "fhir/", "")],
    *[path(f"{prefix}probe-get-only", get_only) for prefix in ("api/", "")],
    *urlpatterns,
]
