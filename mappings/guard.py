"""The studio's outermost middleware: requests it must not serve, and every error in the shape of its part of the
studio — an OperationOutcome under /fhir/, the API's {code, message, details} under /api/, a plain page elsewhere.

Before anything else runs it refuses, in that shape: a Host not in ALLOWED_HOSTS (400), a URL longer than
MAX_URL_BYTES (414), more query parameters than DATA_UPLOAD_MAX_NUMBER_FIELDS (400), a /fhir/ body declared longer
than DATA_UPLOAD_MAX_MEMORY_SIZE and an /api/ one longer than api_body_limit() (413). The counts are the ones Django
itself would raise on, made here on the raw request so that no view, middleware or debug page ever sees such a
request. Requests gunicorn itself refuses (a request line or header past its limits) get the same shapes from
shaped_error (fhirstudio/gunicorn_conf.py).

After the rest has answered, an error response that is not already in its part's shape is replaced: under /fhir/ and
/api/ any HTML or plain-text error (Django's debug pages with a traceback, the settings or the URL map, in any mode)
and any empty one (Django's bare 405s); elsewhere empty errors, and in DEBUG Django's 400 and 403 pages. Outside
/fhir/ and /api/ with DEBUG on, Django's 404 and 500 debug pages stay: the developer asked for them (the host was
checked first, so only a host the studio serves can see them).

Every HTML answer leaves with the Content-Security-Policy of settings.CONTENT_SECURITY_POLICY (no inline scripts)."""

from __future__ import annotations

import json
from collections.abc import Callable
from http import HTTPStatus

from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string

from mappings.actions.batches import max_upload_bytes
from mappings.api.batches import MULTIPART_SLACK
from mappings.engine import operation_outcome
from mappings.errors import API_CODE_OF, FhirError, RequestCode

FHIR_PREFIX = "/fhir/"
API_PREFIX = "/api/"
KEPT_HEADERS = ("Allow", "WWW-Authenticate", "Retry-After", "X-Request-ID")
# What an error answered in FHIR says, by status (FS-REQ codes of mappings/errors.py)
REQUEST_CODE_OF = {
    401: RequestCode.UNAUTHORIZED,
    403: RequestCode.UNAUTHORIZED,
    404: RequestCode.NOT_FOUND,
    405: RequestCode.METHOD,
    406: RequestCode.FORMAT,
    415: RequestCode.FORMAT,
    500: RequestCode.INTERNAL,
}
MESSAGE_OF = {
    400: "The request is not valid.",
    403: "You may not do this.",
    404: "Nothing here answers {method} {path}.",
    405: "{path} does not take {method}.",
    413: "The request body is too large.",
    414: "The URL is too long.",
    500: "Something went wrong on our side; it has been logged.",
}


def area(request: HttpRequest) -> str:
    return area_of(request.path_info)


def area_of(path: str) -> str:
    if path.startswith(FHIR_PREFIX):
        return "fhir"
    if path.startswith(API_PREFIX):
        return "api"
    return "page"


def error_response(
    request: HttpRequest, status: int, message: str = "", *, code: str | None = None, details: dict | None = None
) -> HttpResponse:
    """An error in the shape of the request's part of the studio. Reads nothing of the request but its path and
    method: the request may be one that cannot be parsed (too many parameters) or trusted (a foreign Host)."""
    return shaped_error(request.path_info, request.method, status, message, code=code, details=details)


def shaped_error(
    path: str, method: str, status: int, message: str = "", *, code: str | None = None, details: dict | None = None
) -> HttpResponse:
    """error_response for a request known by its path and method only: also gunicorn's refusals of requests it
    cannot parse, before any Django request exists (fhirstudio/gunicorn_conf.py)."""
    message = message or MESSAGE_OF.get(status, HTTPStatus(status).phrase).format(method=method, path=path[:200])
    kind = area_of(path)
    if kind == "fhir":
        error = FhirError(status, REQUEST_CODE_OF.get(status, RequestCode.INVALID), message)
        # JSON whatever was asked: negotiating would read the query this request may be refused for
        body = json.dumps(operation_outcome([error]))
        return HttpResponse(body, status=status, content_type="application/fhir+json; charset=utf-8")
    if kind == "api":
        body = {"code": code or API_CODE_OF.get(status, "error"), "message": message, "details": details or {}}
        return JsonResponse(body, status=status)
    page = render_to_string("error.html", {"status": status, "title": HTTPStatus(status).phrase, "message": message})
    response = HttpResponse(page, status=status, content_type="text/html; charset=utf-8")
    response.studio_error_page = True
    return response


def refusal(request: HttpRequest) -> HttpResponse | None:
    try:
        request.get_host()
    except DisallowedHost:
        return error_response(request, 400, "This studio does not serve that host name.", code="invalid_host")
    query = request.META.get("QUERY_STRING", "")
    if len(request.path_info) + len(query) > settings.MAX_URL_BYTES:
        return error_response(request, 414, f"The URL is longer than {settings.MAX_URL_BYTES} bytes.")
    limit = settings.DATA_UPLOAD_MAX_NUMBER_FIELDS
    if limit is not None and query.count("&") + 1 > limit:  # as Django (urllib's parse_qsl) counts them
        return error_response(request, 400, f"The URL has more than {limit} parameters.", code="too_many_parameters")
    kind = area(request)
    if kind != "page":
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return error_response(request, 400, "The Content-Length header is not a number.")
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE if kind == "fhir" else api_body_limit(request)
        if limit is not None and length > limit:
            return error_response(
                request,
                413,
                f"The request body is larger than the limit of {limit} bytes.",
                code="too_large",
                details={"max_bytes": limit},
            )
    return None


def api_body_limit(request: HttpRequest) -> int:
    """The largest body a studio API request may declare. Its JSON is read whole by the parser: past four times the
    largest mapping input (escaped payloads, a few samples), FHIR_STUDIO["MAX_API_BODY_BYTES"] when set. A file
    upload (multipart) may be as large as a batch's files, which the batch endpoint then checks exactly."""
    if request.META.get("CONTENT_TYPE", "").startswith("multipart/"):
        return max_upload_bytes() + MULTIPART_SLACK
    return settings.FHIR_STUDIO.get("MAX_API_BODY_BYTES") or 4 * settings.FHIR_STUDIO["MAX_INPUT_BYTES"]


def needs_cleaning(request: HttpRequest, response: HttpResponse) -> bool:
    if response.status_code < 400 or response.streaming or request.method == "HEAD":
        return False
    if area(request) != "page":
        # Django's pages (debug or not) and its bare 405s; a view's own error (an OperationOutcome, the API's JSON,
        # an OAuth error of the token endpoint) is answered as the view wrote it
        return not response.content or response.get("Content-Type", "").startswith(("text/html", "text/plain"))
    if getattr(response, "studio_error_page", False):
        return False
    if not response.content:
        return True
    return settings.DEBUG and response.status_code not in (404, 500)


class RequestGuard:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        refused = refusal(request)
        if refused is not None:
            return with_policy(refused)
        response = self.get_response(request)
        if needs_cleaning(request, response):
            clean = error_response(request, response.status_code)
            for header in KEPT_HEADERS:
                if response.has_header(header):
                    clean[header] = response[header]
            response = clean
        return with_policy(response)


def with_policy(response: HttpResponse) -> HttpResponse:
    """Every HTML answer (the studio's pages, the admin, error pages) gets the Content-Security-Policy: a script that
    found its way into a page through some unescaped value does not run, as only the studio's own files may."""
    policy = settings.CONTENT_SECURITY_POLICY
    if policy and response.get("Content-Type", "").startswith("text/html"):
        response.headers.setdefault("Content-Security-Policy", policy)
    return response
