"""FHIR over HTTP for the facade: answers in the negotiated format (formats.py: JSON, XML, Turtle), and every error as
an OperationOutcome with its status. Plain Django views rather than DRF: a read must stay within a few milliseconds
(target p50 ≤ 5 ms), and none of DRF's machinery (parsers, throttles, schema) applies to FHIR REST."""

from __future__ import annotations

import functools
import logging
import re
import time

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation, TooManyFieldsSent
from django.http import HttpRequest, HttpResponse
from django.utils.text import compress_string

from mappings import db_unavailable
from mappings.engine import operation_outcome
from mappings.errors import FhirError, RequestCode
from mappings.facade import request_log
from mappings.facade.formats import render, wanted_format
from mappings.security.enforcement import CHALLENGE

logger = logging.getLogger(__name__)

UNKNOWN_TYPE = "(not served)"
REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def fhir_response(request: HttpRequest, body: dict, status: int = 200, fmt: str | None = None) -> HttpResponse:
    # JSON, XML or Turtle: negotiation and writing live in facade/formats.py
    return render(request, body, status, fmt or wanted_format(request))


def fhir_endpoint(view):
    """Every answer of a facade view is FHIR: errors become OperationOutcomes (never an HTML page or a traceback),
    and X-Request-ID is echoed."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        started = time.perf_counter()
        resource_type = kwargs.get("resource_type") or ""
        try:
            response = view(request, *args, **kwargs)
        except FhirError as error:
            if error.request_code is RequestCode.NOT_SERVED:
                resource_type = UNKNOWN_TYPE  # made-up names (PATIENT, NoSuchType) share one bucket in the metrics
            response = _error_response(request, error)
        except RequestDataTooBig:  # a body sent without a Content-Length (chunked): mappings.guard saw no size
            message = f"The request body is larger than the limit of {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes."
            response = _error_response(request, FhirError(413, RequestCode.INVALID, message))
        except TooManyFieldsSent:  # a POST _search form of more fields than a URL may have parameters
            message = f"The request has more than {settings.DATA_UPLOAD_MAX_NUMBER_FIELDS} parameters."
            response = _error_response(request, FhirError(400, RequestCode.INVALID, message))
        except SuspiciousOperation as error:  # what Django refuses to parse
            response = _error_response(request, FhirError(400, RequestCode.INVALID, f"The request is refused: {error}"))
        except db_unavailable.UNAVAILABLE as error:  # PostgreSQL down or restarting: transient, the client may retry
            logger.warning("facade: database unavailable on %s: %s", request.path, type(error).__name__)
            unavailable = FhirError(503, RequestCode.DATABASE_UNAVAILABLE, db_unavailable.MESSAGE)
            response = _error_response(request, unavailable)
            response["Retry-After"] = str(db_unavailable.RETRY_AFTER_SECONDS)
        except Exception:  # the facade's one broad catch: an answer for the client, the details in the log
            logger.exception("facade error on %s %s", request.method, request.path)
            response = _error_response(
                request, FhirError(500, RequestCode.INTERNAL, "Something went wrong on our side.")
            )
        request_id = request.META.get("HTTP_X_REQUEST_ID", "")  # request.headers would copy every header first
        if REQUEST_ID.match(request_id):
            response["X-Request-ID"] = request_id
        response = _gzipped(request, response)
        request_log.record(
            kwargs.get("slug", ""),
            resource_type,
            _interaction(view.__name__, kwargs),
            response.status_code,
            (time.perf_counter() - started) * 1000,
        )
        return response

    return wrapper


INTERACTIONS = {
    "metadata": "capabilities",
    "instance": "read",
    "resource_type_view": "search-type",
    "search_post": "search-type",
    "convert_data": "operation",
    "validate": "operation",
    "export_system": "operation",
    "export_patients": "operation",
    "export_group": "operation",
    "export_status": "export-status",
    "export_file": "export-file",
    # a store facade's (mappings/facade/store_views.py, store_transactions.py)
    "store_instance": "instance",
    "store_type": "type",
    "store_search_post": "search-type",
    "vread": "vread",
    "instance_history": "history-instance",
    "type_history": "history-type",
    "bundle_view": "batch-transaction",
}


def _interaction(view_name: str, kwargs: dict) -> str:
    return INTERACTIONS.get(view_name, "unknown")


def _gzipped(request: HttpRequest, response: HttpResponse) -> HttpResponse:
    # Facade answers carry no secrets a compression side channel could leak (no CSRF token, no session), so unlike
    # the studio's pages they can be gzipped; searchset Bundles shrink 5-10 times.
    if "gzip" not in request.META.get("HTTP_ACCEPT_ENCODING", "") or response.streaming or len(response.content) < 1024:
        return response
    compressed = compress_string(response.content)
    if len(compressed) >= len(response.content):
        return response
    response.content = compressed
    response["Content-Encoding"] = "gzip"
    response["Content-Length"] = str(len(compressed))
    response["Vary"] = "Accept-Encoding"
    return response


def _error_response(request: HttpRequest, error: FhirError) -> HttpResponse:
    body = operation_outcome([error])
    try:
        fmt = wanted_format(request)
    except (FhirError, SuspiciousOperation):
        fmt = "json"  # the client accepts neither format, or its query cannot be read: say so in the default one
    return fhir_response(request, body, error.status, fmt)


def smart_endpoint(view):
    """fhir_endpoint, plus the WWW-Authenticate header a 401 or 403 of a protected facade carries."""
    inner = fhir_endpoint(view)

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        response = inner(request, *args, **kwargs)
        challenge = request.META.get(CHALLENGE)
        if challenge is not None and response.status_code in (401, 403):
            response["WWW-Authenticate"] = challenge
        return response

    return wrapper
