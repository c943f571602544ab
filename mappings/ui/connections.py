"""The connections page (/connections/): the list, the add form and each row's Test button are drawn by
static/src/pages/connections.js from /api/connections/; every role reads, admins add and test (as in the API)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse

from mappings.access import ADMIN, role_of
from mappings.models import AuthMode
from mappings.ui.views import _page

LIST_URL = "/api/connections/?page_size=100"


@login_required
def connection_list(request: HttpRequest) -> HttpResponse:
    return _page(
        request,
        "mappings/connections.html",
        "connections",
        "Connections",
        data=[LIST_URL],
        listUrl=LIST_URL,
        canAdmin=role_of(request.user) == ADMIN,
        authModes=list(AuthMode.values),
    )
