"""PostgreSQL down or restarting is a transient fault, not a bug: every part of the studio answers it with a 503 in
its own shape and a Retry-After, never a 500 with a traceback — an OperationOutcome (FS-REQ-013) under /fhir/
(mappings/facade/http.py), `{"code": "database_unavailable", …}` under /api/ (mappings/errors.py), the error page
elsewhere (mappings/views.server_error). Django drops a connection that failed and, with CONN_HEALTH_CHECKS
(fhirstudio/settings.py), checks a kept one before reusing it, so the studio answers normally again as soon as the
database is back, without a restart (tests/security/test_faults.py)."""

from __future__ import annotations

import json
from collections.abc import Callable

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse

# Raised when the server is unreachable, restarting, or closed the connection (psycopg's errors as Django wraps them)
UNAVAILABLE = (OperationalError, InterfaceError)
RETRY_AFTER_SECONDS = 5
MESSAGE = "The studio's database is not answering right now; try again in a few seconds."
API_CODE = "database_unavailable"


def is_database_unavailable(exc: BaseException | None) -> bool:
    return isinstance(exc, UNAVAILABLE)


def unavailable_response(request: HttpRequest, shaped: Callable[..., HttpResponse]) -> HttpResponse:
    """The 503 for a request whose view failed outside the API's and the facade's own handlers (Django's 500 handler:
    a page, /healthz, a /fhir/ view that reached the database before its fhir_endpoint wrapper). `shaped` is
    mappings.guard.error_response, passed in: this module is imported by mappings.errors, below the guard's layer."""
    from mappings.engine import operation_outcome  # here, not at the top: mappings.errors imports this module
    from mappings.errors import FhirError, RequestCode

    if request.path_info.startswith("/fhir/"):
        error = FhirError(503, RequestCode.DATABASE_UNAVAILABLE, MESSAGE)
        body = json.dumps(operation_outcome([error]))
        response = HttpResponse(body, status=503, content_type="application/fhir+json; charset=utf-8")
    else:
        response = shaped(request, 503, MESSAGE, code=API_CODE)
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response
