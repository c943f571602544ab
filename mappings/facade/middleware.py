"""FHIR requests skip the studio's own middleware: sessions, CSRF, logins, messages and the rest serve the studio's
pages and API, and cost a facade read about 0.1 ms of its 0.5 ms of Python (bench/README.md). Facade views are
csrf-exempt, read no session or user, and answer every error themselves as an OperationOutcome (fhir_endpoint), so
FacadeShortcut, placed after SecurityMiddleware and WhiteNoise, hands a /fhir/ request that resolves straight to its
view. What the skipped middleware would have added to its answer is added here (Content-Length, X-Frame-Options);
a /fhir/ URL that resolves to nothing goes down the whole stack, to Django's 404 as before."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.urls import Resolver404, resolve

FHIR_PREFIX = "/fhir/"


class FacadeShortcut:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not request.path_info.startswith(FHIR_PREFIX):
            return self.get_response(request)
        try:
            match = resolve(request.path_info)
        except Resolver404:
            return self.get_response(request)
        request.resolver_match = match
        response = match.func(request, *match.args, **match.kwargs)
        # CommonMiddleware's and XFrameOptionsMiddleware's headers, as they would set them
        if not response.streaming and not response.has_header("Content-Length"):
            response.headers["Content-Length"] = str(len(response.content))
        if not response.has_header("X-Frame-Options"):
            response.headers["X-Frame-Options"] = getattr(settings, "X_FRAME_OPTIONS", "DENY").upper()
        return response
