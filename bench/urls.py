"""The studio's URLs plus /bench/static, a constant JSON answer: the ceiling for a Django view on this server."""

from django.http import HttpResponse
from django.urls import include, path

BODY = b'{"resourceType":"OperationOutcome","issue":[{"severity":"information","code":"informational"}]}'


def static_json(request):
    return HttpResponse(BODY, content_type="application/fhir+json")


urlpatterns = [path("bench/static", static_json), path("", include("fhirstudio.urls"))]
