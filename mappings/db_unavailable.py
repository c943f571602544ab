"""PostgreSQL down or restarting is a transient fault, not a bug: every part of the studio answers it with a 503 in
its own shape and a Retry-After, never a 500 with a traceback — an OperationOutcome (FS-REQ-013) under /fhir/
(mappings/facade/http.py), `{"code": "database_unavailable", …}` under /api/ (mappings/errors.py), the error page
elsewhere (mappings/views.server_error). Django drops a connection that failed and, with CONN_HEALTH_CHECKS
(fhirstudio/settings.py), checks a kept one before reusing it, so the studio answers normally again as soon as the
database is back, without a restart (tests/security/test_faults.py)."""

from __future__ import annotations

from django.db import InterfaceError, OperationalError

# Raised when the server is unreachable, restarting, or closed the connection (psycopg's errors as Django wraps them)
UNAVAILABLE = (OperationalError, InterfaceError)
RETRY_AFTER_SECONDS = 5
MESSAGE = "The studio's database is not answering right now; try again in a few seconds."
API_CODE = "database_unavailable"


def is_database_unavailable(exc: BaseException | None) -> bool:
    return isinstance(exc, UNAVAILABLE)
