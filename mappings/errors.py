"""One error shape for the studio API: {"code", "message", "details"}, raised as StudioError by access checks and
actions, and rendered by the one DRF exception handler below. Views never build error JSON themselves."""

from __future__ import annotations

import logging

from django.core.exceptions import PermissionDenied
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import set_rollback

from mappings.engine import MappingError

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


class StudioError(Exception):
    def __init__(self, code: str, message: str, *, details: object = None, status_code: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details if details is not None else {}
        self.status_code = status_code or STATUS_OF.get(code, status.HTTP_400_BAD_REQUEST)


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
    logger.exception("internal error in %s", context.get("view").__class__.__name__ if context.get("view") else "?")
    return Response(
        _body("internal_error", "Something went wrong on our side; it has been logged."),
        status=status.HTTP_500_INTERNAL_SERVER_ERROR,
    )
