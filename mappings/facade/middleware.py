"""FHIR requests skip the studio's own middleware: sessions, CSRF, logins, messages and the rest serve the studio's
pages and API, and cost a facade read about 0.1 ms of its 0.5 ms of Python (bench/README.md). Facade views are
csrf-exempt, read no session or user, and answer every error themselves as an OperationOutcome (fhir_endpoint), so
FacadeShortcut, placed after SecurityMiddleware and WhiteNoise, hands a /fhir/ request that resolves straight to its
view. What the skipped middleware would have added to its answer is added here (Content-Length, X-Frame-Options);
a /fhir/ URL that resolves to nothing goes down the whole stack, to Django's 404 as before.

Read and search, most of a facade's traffic and the first routes of mappings/facade/urls.py, are matched against
those two routes alone: Django's resolve() walks the root URLconf's include and builds a match at each of its levels
(about 0.03 ms of a read's 0.35 ms of Python). Any other /fhir/ URL is resolved as Django would."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.urls import Resolver404, URLPattern, resolve

from mappings.facade import urls

FHIR_PREFIX = "/fhir/"
# the read and search routes, which urls.py puts first: what they match, Django's resolve() would match the same way
FIRST_ROUTES: list[URLPattern] = urls.urlpatterns[:2]


class FacadeShortcut:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not request.path_info.startswith(FHIR_PREFIX):
            return self.get_response(request)
        rest = request.path_info[len(FHIR_PREFIX) :]
        match = FIRST_ROUTES[0].resolve(rest) or FIRST_ROUTES[1].resolve(rest)
        if match is None:
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
