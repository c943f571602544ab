"""The health check for load balancers and the run script, and Django's error handlers (the studio's pages are in
mappings/ui/)."""

import sys

from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse

from mappings import db_unavailable
from mappings.guard import error_response


def healthz(request: HttpRequest) -> JsonResponse:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"status": "ok", "database": connection.vendor})


# Django's error handlers (fhirstudio/urls.py), in the shape of the request's part of the studio (mappings.guard).
def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    return error_response(request, 400)


def permission_denied(request: HttpRequest, exception: Exception) -> HttpResponse:
    return error_response(request, 403)


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    return error_response(request, 404)


def server_error(request: HttpRequest) -> HttpResponse:
    if db_unavailable.is_database_unavailable(sys.exc_info()[1]):  # Django calls this inside its except block
        return db_unavailable.unavailable_response(request, error_response)
    return error_response(request, 500)
