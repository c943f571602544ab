"""The studio's two error types and their one rendering each.

- StudioError: the studio API's {"code", "message", "details"}, raised by access checks and actions, rendered by the
  one DRF exception handler below. Views never build error JSON themselves.
- FhirError: what a facade answers as an OperationOutcome with an HTTP status. Its issue comes from the engine's
  issue builder, so an FS-REQ code sits in details.coding exactly where a mapping run's FS-* codes do."""

from __future__ import annotations

import logging

from django.core.exceptions import PermissionDenied
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import set_rollback

from mappings import db_unavailable
from mappings.engine import MappingError
from mappings.engine.errors import IssueCode, issue

logger = logging.getLogger(__name__)

STATUS_OF = {
    "invalid": status.HTTP_400_BAD_REQUEST,
    "draft_does_not_compile": status.HTTP_400_BAD_REQUEST,
    "not_authenticated": status.HTTP_401_UNAUTHORIZED,
    "permission_denied": status.HTTP_403_FORBIDDEN,
    "not_found": status.HTTP_404_NOT_FOUND,
    "conflict": status.HTTP_409_CONFLICT,
    "in_use": status.HTTP_409_CONFLICT,
    "deployed": status.HTTP_409_CONFLICT,
    "stale_draft": status.HTTP_412_PRECONDITION_FAILED,
    "stale_revision": status.HTTP_412_PRECONDITION_FAILED,
    "precondition_required": status.HTTP_428_PRECONDITION_REQUIRED,
}


# The API's code for an error no view raised (mappings.guard: Django's own 404s and 405s, refused requests, 500s
# outside DRF). Stable, like STATUS_OF's; the guard adds `invalid_host` and `too_many_parameters` (both 400).
API_CODE_OF = {
    400: "bad_request",
    401: "not_authenticated",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "request_too_large",
    414: "uri_too_long",
    415: "unsupported_media_type",
    500: "internal_error",
}


class StudioError(Exception):
    def __init__(self, code: str, message: str, *, details: object = None, status_code: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details if details is not None else {}
        self.status_code = status_code or STATUS_OF.get(code, status.HTTP_400_BAD_REQUEST)


class RequestCode(IssueCode):
    """FS-REQ: a FHIR request a facade cannot answer as asked (the engine's FS-* codes cover mapping runs).
    Append-only, like the engine's; each has a facade test that triggers it (tests/facade/test_request_codes.py)."""

    # (code, FHIR issue type)
    NOT_FOUND = ("FS-REQ-001", "not-found")  # no such facade, endpoint, resource or mapping (404)
    NOT_SERVED = ("FS-REQ-002", "not-supported")  # the facade does not serve this type (404)
    METHOD = ("FS-REQ-003", "not-supported")  # an interaction the facade does not support (405)
    FORMAT = ("FS-REQ-004", "not-supported")  # a format it cannot answer in (406) or read (415)
    PARAMETER = ("FS-REQ-005", "not-supported")  # a search parameter, modifier or option it does not support (400)
    INVALID = ("FS-REQ-006", "invalid")  # a parameter value or body it cannot read (400)
    REQUIRED = ("FS-REQ-007", "required")  # a required parameter is missing (400)
    PAUSED = ("FS-REQ-008", "transient")  # the facade is paused (503)
    UNAUTHORIZED = ("FS-REQ-009", "security")  # the facade needs authorization the request lacks (401)
    SOURCE_UNAVAILABLE = ("FS-REQ-010", "transient")  # the legacy source did not answer in time (502/504)
    SOURCE_FAILED = ("FS-REQ-011", "exception")  # the legacy source is misconfigured or refused the request
    EXPORT_FAILED = ("FS-REQ-012", "exception")  # a bulk export failed as a whole (500 at its status URL)
    DATABASE_UNAVAILABLE = ("FS-REQ-013", "transient")  # the studio's database is down or restarting (503)
    INTERNAL = ("FS-REQ-099", "exception")  # a fault of ours, logged (500)


class FhirError(Exception):
    """A facade failure: the HTTP status, an FS-REQ code, and a message that says what to change."""

    def __init__(
        self,
        status: int,
        code: RequestCode,
        message: str,
        *,
        expression: str | None = None,
        severity: str = "error",
    ) -> None:
        super().__init__(message)
        self.status = status
        self.request_code = code
        self.message = message
        self.expression = expression
        self.severity = severity

    @property
    def code(self) -> str:
        return self.request_code.code

    def as_issue(self) -> dict:
        """One OperationOutcome.issue, so `operation_outcome([...])` takes FhirErrors and MappingErrors alike."""
        return issue(
            self.code,
            self.request_code.fhir_type,
            self.message,
            severity=self.severity,
            diagnostics=self.message,  # FHIR clients (fhirclient, fhirpy) show diagnostics to their users
            expression=[self.expression] if self.expression else None,
        )


def _body(code: str, message: str, details: object = None) -> dict:
    return {"code": code, "message": message, "details": details if details is not None else {}}


def studio_exception_handler(exc: Exception, context: dict) -> Response:
    """Classify any exception once. Unknown ones are logged and answered 500 `internal_error`, same shape."""
    set_rollback()
    if isinstance(exc, StudioError):
        return Response(_body(exc.code, exc.message, exc.details), status=exc.status_code)
    if isinstance(exc, MappingError):
        return Response(_body(exc.code, exc.message, exc.as_dict()), status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    if isinstance(exc, exceptions.APIException):
        headers = {}
        if getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = exc.auth_header
        if getattr(exc, "wait", None):
            headers["Retry-After"] = str(int(exc.wait))
        detail = exc.detail
        if isinstance(detail, (list, dict)):
            return Response(
                _body(
                    exc.default_code if isinstance(detail, dict) else "invalid",
                    "The request is not valid; see details.",
                    detail,
                ),
                status=exc.status_code,
                headers=headers,
            )
        code = getattr(detail, "code", None) or exc.default_code
        return Response(_body(str(code), str(detail)), status=exc.status_code, headers=headers)
    if db_unavailable.is_database_unavailable(exc):  # transient (mappings/db_unavailable.py): no traceback logged
        logger.warning("database unavailable: %s", type(exc).__name__)
        return Response(
            _body(db_unavailable.API_CODE, db_unavailable.MESSAGE),
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": str(db_unavailable.RETRY_AFTER_SECONDS)},
        )
    logger.exception("internal error in %s", context.get("view").__class__.__name__ if context.get("view") else "?")
    return Response(
        _body("internal_error", "Something went wrong on our side; it has been logged."),
        status=status.HTTP_500_INTERNAL_SERVER_ERROR,
    )
