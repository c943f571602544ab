"""The message log page (/messages/): its filters, rows and reprocess button are drawn by static/src/pages/messages.js
from /api/messages/; viewers read, authors also reprocess failed messages."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse

from mappings.api.message_serializers import MessageQuery
from mappings.ui.views import _list_url, _page, _page_of

MESSAGE_PAGE_SIZE = 50  # rows per page of the log
FILTERS = tuple(MessageQuery().fields)


@login_required
def message_list(request: HttpRequest) -> HttpResponse:
    given = {name: request.GET[name] for name in FILTERS if name in request.GET}
    url = _list_url("/api/messages/", MessageQuery, given, **_page_of(request, MESSAGE_PAGE_SIZE))
    return _page(
        request,
        "mappings/messages.html",
        "messages",
        "Message log",
        data=[url],
        listUrl=url,
        pageSize=MESSAGE_PAGE_SIZE,
        filters=list(FILTERS),
    )
