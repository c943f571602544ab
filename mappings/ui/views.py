"""The editor's server-rendered pages: each is a shell (layout, page script, a JSON config blob); the page script
gets everything else from the studio API, so the browser holds no logic the API lacks."""

from __future__ import annotations

from collections.abc import Callable

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse

from mappings.access import (
    AUTHOR,
    RANK,
    access_facade,
    access_lookup_table,
    access_mapping,
    access_snippet,
    role_of,
)
from mappings.engine import SOURCE_FORMATS
from mappings.errors import StudioError


def _page(request: HttpRequest, template: str, script: str, page_title: str, **config: object) -> HttpResponse:
    role = role_of(request.user)
    page_config = {
        "username": request.user.get_username(),
        "role": role,
        "canWrite": RANK.get(role, 0) >= RANK[AUTHOR],
        **config,
    }
    return render(request, template, {"page_script": script, "page_title": page_title, "page_config": page_config})


def _found(access, *args: object) -> object:
    """The same gate as the API; a missing (or invisible) object is the page's 404."""
    try:
        return access(*args)
    except StudioError as error:
        raise Http404(error.message) from error


@login_required
def mapping_list(request: HttpRequest) -> HttpResponse:
    return _page(request, "mappings/list.html", "mapping_list", "Mappings", sourceFormats=list(SOURCE_FORMATS))


@login_required
def mapping_editor(request: HttpRequest, slug: str) -> HttpResponse:
    mapping = _found(access_mapping, request.user, slug)
    return _page(
        request,
        "mappings/editor.html",
        "editor",
        mapping.title,
        slug=mapping.slug,
        title=mapping.title,
        sourceFormat=mapping.source_format,
        historyUrl=reverse("mapping-history-page", args=[mapping.slug]),
    )


@login_required
def mapping_history(request: HttpRequest, slug: str) -> HttpResponse:
    mapping = _found(access_mapping, request.user, slug)
    return _page(
        request,
        "mappings/history.html",
        "history",
        f"{mapping.title} — versions",
        slug=mapping.slug,
        title=mapping.title,
        editorUrl=reverse("mapping-editor-page", args=[mapping.slug]),
    )


def _library_pages(kind: str, title: str, access: Callable) -> tuple[Callable, Callable]:
    """The list page and the item page of one kind of library item: snippets and lookup tables have the same two
    pages, with their own API path (`kind`), title and access gate."""

    @login_required
    def index(request: HttpRequest) -> HttpResponse:
        return _page(request, "library/index.html", "library_index", title, kind=kind)

    @login_required
    def item(request: HttpRequest, name: str) -> HttpResponse:
        found = _found(access, request.user, name)
        return _page(request, "library/item.html", "library_item", found.name, kind=kind, name=found.name)

    return index, item


snippet_list, snippet_editor = _library_pages("snippets", "Snippets", access_snippet)
lookup_table_list, lookup_table_editor = _library_pages("lookup-tables", "Lookup tables", access_lookup_table)


@login_required
def facade_list(request: HttpRequest) -> HttpResponse:
    return _page(request, "facades/list.html", "facade_list", "Facades")


@login_required
def facade_detail(request: HttpRequest, slug: str) -> HttpResponse:
    facade = _found(access_facade, request.user, slug)
    return _page(
        request,
        "facades/detail.html",
        "facade_detail",
        facade.title,
        slug=facade.slug,
        sourceFormats=list(SOURCE_FORMATS),
    )
