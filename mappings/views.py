"""The few plain pages the foundation has: a landing page and a health check for load balancers and the run script."""

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from mappings.examples import list_examples


def home(request: HttpRequest) -> HttpResponse:
    examples = list_examples(settings.FHIR_STUDIO["EXAMPLES_DIR"])
    return render(request, "home.html", {"examples": examples})


def healthz(request: HttpRequest) -> JsonResponse:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"status": "ok", "database": connection.vendor})
