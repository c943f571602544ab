"""The editor's server-rendered pages: each is a shell (layout, page script, a JSON config blob); the page script
gets everything else from the studio API, so the browser holds no logic the API lacks."""

from __future__ import annotations

import functools
import gzip
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import ClassVar
from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.contrib.staticfiles import finders
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.decorators import method_decorator
from django.views.decorators.gzip import gzip_page
from drf_spectacular.utils import extend_schema
from drf_spectacular.views import SpectacularJSONAPIView, SpectacularSwaggerView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import Serializer

from mappings.access import (
    ADMIN,
    AUTHOR,
    RANK,
    access_audit,
    access_batch,
    access_facade,
    access_lookup_table,
    access_mapping,
    access_snippet,
    role_of,
)
from mappings.api.audit import AuditQuery
from mappings.api.mapping_serializers import MappingQuery
from mappings.engine import SOURCE_FORMATS
from mappings.errors import StudioError
from mappings.models import AuditAction, ClientApp
from mappings.profiles import access_definition


def _page(
    request: HttpRequest,
    template: str,
    script: str,
    page_title: str,
    *,
    data: list[str] = (),
    lazy: bool = False,
    **config: object,
) -> HttpResponse:
    """A page shell. `data` lists the API reads the page script starts with, exactly as it fetches them: base.html
    preloads them with the HTML, so they are answered while the script is still loading (tests/ui/test_page_speed.py
    checks that each is used, not fetched twice). `lazy`: the script's import() calls run at once, preload them too."""
    role = role_of(request.user)
    if role is None:  # signed in without a studio role: no page, as no API answer
        raise PermissionDenied("Your account has no studio role; ask an admin for one.")
    page_config = {
        "username": request.user.get_username(),
        "role": role,
        "canWrite": RANK.get(role, 0) >= RANK[AUTHOR],
        **config,
    }
    context = {
        "page_script": script,
        "page_title": page_title,
        "page_config": page_config,
        "page_data": list(data),
        "page_lazy": lazy,
    }
    return render(request, template, context)


def _found(access, *args: object) -> object:
    """The same gate as the API; a missing (or invisible) object is the page's 404."""
    try:
        return access(*args)
    except StudioError as error:
        if error.code == "permission_denied":  # refused before the lookup: the same for every identifier
            raise PermissionDenied(error.message) from error
        raise Http404(error.message) from error


def _list_url(api: str, query: Serializer, given: dict[str, str], **fixed: str) -> str:
    """The first page of a list as its page script asks for it: the filters in the page's address that `query` (the
    API's own query serializer) accepts, in the order given, then `fixed`. The page's first read uses this URL
    (pageConfig().listUrl), so the preload in base.html answers it."""
    given = {name: value.strip() for name, value in given.items() if value.strip()}
    query = query(data=given)
    if not query.is_valid():  # a stale or mistyped link: list without the filters the API would refuse
        given = {name: value for name, value in given.items() if name not in query.errors}
    return f"{api}?{urlencode({**given, **fixed})}"


MAPPING_PAGE_SIZE = 50  # rows per page of the mapping list


def _page_of(request: HttpRequest, size: int) -> dict[str, str]:
    """page_size, and the page the address names when past the first: how the list scripts ask for a page."""
    page = request.GET.get("page", "")
    fixed = {"page_size": str(size)}
    if page.isdigit() and int(page) > 1:
        fixed["page"] = str(int(page))
    return fixed


@login_required
def mapping_list(request: HttpRequest) -> HttpResponse:
    filters = {name: request.GET.get(name, "") for name in ("search", "source_format", "status", "last_test")}
    url = _list_url("/api/mappings/", MappingQuery, filters, **_page_of(request, MAPPING_PAGE_SIZE))
    return _page(
        request,
        "mappings/list.html",
        "mapping_list",
        "Mappings",
        data=[url],
        listUrl=url,
        pageSize=MAPPING_PAGE_SIZE,
        sourceFormats=list(SOURCE_FORMATS),
    )


@login_required
def mapping_editor(request: HttpRequest, slug: str) -> HttpResponse:
    mapping = _found(access_mapping, request.user, slug)
    return _page(
        request,
        "mappings/editor.html",
        "editor",
        mapping.title,
        data=[f"/api/mappings/{mapping.slug}/draft", f"/api/mappings/{mapping.slug}/samples/"],
        slug=mapping.slug,
        title=mapping.title,
        sourceFormat=mapping.source_format,
        historyUrl=reverse("mapping-history-page", args=[mapping.slug]),
    )


@login_required
def mapping_history(request: HttpRequest, slug: str) -> HttpResponse:
    mapping = _found(access_mapping, request.user, slug)
    api = f"/api/mappings/{mapping.slug}"
    data = [f"{api}/versions/", f"/api/bindings/?mapping={mapping.slug}&page_size=500", f"{api}/draft"]
    if mapping.latest_version:  # the page opens on the newest version against the draft
        newest = f"{api}/versions/{mapping.latest_version.number}"
        data += [newest, f"{newest}/diff?against=draft"]
    return _page(
        request,
        "mappings/history.html",
        "history",
        f"{mapping.title} — versions",
        data=data,
        slug=mapping.slug,
        title=mapping.title,
        editorUrl=reverse("mapping-editor-page", args=[mapping.slug]),
    )


LIBRARY_PAGE_SIZE = 25  # rows per page of the snippet and lookup-table lists (the demo has 50 tables)


def _library_pages(kind: str, title: str, access: Callable) -> tuple[Callable, Callable]:
    """The list page and the item page of one kind of library item: snippets and lookup tables have the same two
    pages, with their own API path (`kind`), title and access gate."""

    @login_required
    def index(request: HttpRequest) -> HttpResponse:
        paging = _page_of(request, LIBRARY_PAGE_SIZE)  # in the script's order: page_size, search, page
        fixed = {"page_size": paging.pop("page_size"), "search": request.GET.get("search", "").strip(), **paging}
        url = f"/api/{kind}/?{urlencode(fixed)}"
        return _page(
            request,
            "library/index.html",
            "library_index",
            title,
            data=[url],
            listUrl=url,
            pageSize=LIBRARY_PAGE_SIZE,
            kind=kind,
        )

    @login_required
    def item(request: HttpRequest, name: str) -> HttpResponse:
        found = _found(access, request.user, name)
        api = f"/api/{kind}/{found.name}"
        return _page(
            request,
            "library/item.html",
            "library_item",
            found.name,
            data=[api, f"{api}/versions/"],
            lazy=kind == "snippets",  # a snippet's page is its editor; a table's opens CodeMirror only on demand
            kind=kind,
            name=found.name,
        )

    return index, item


snippet_list, snippet_editor = _library_pages("snippets", "Snippets", access_snippet)
lookup_table_list, lookup_table_editor = _library_pages("lookup-tables", "Lookup tables", access_lookup_table)


@login_required
def facade_list(request: HttpRequest) -> HttpResponse:
    return _page(request, "facades/list.html", "facade_list", "Facades")


@login_required
def facade_detail(request: HttpRequest, slug: str) -> HttpResponse:
    facade = _found(access_facade, request.user, slug)
    data = [
        f"/api/facades/{facade.slug}/",
        f"/api/facades/{facade.slug}/deployments/?page_size=50",
        f"/api/facades/{facade.slug}/metrics?minutes=60",
        "/api/sources/?page_size=500",
    ]
    if RANK.get(role_of(request.user), 0) >= RANK[AUTHOR]:  # the deploy and bind forms, filled at start for authors
        data += ["/api/mappings/?page_size=500", "/api/resource-types/"]
        # each bound mapping's versions (the deploy drop-downs), read once the facade is in: asked for with it
        bound = facade.bindings.order_by("mapping__slug").values_list("mapping__slug", flat=True).distinct()
        data += [f"/api/mappings/{mapping}/versions/" for mapping in bound]
    return _page(
        request,
        "facades/detail.html",
        "facade_detail",
        facade.title,
        data=data,
        slug=facade.slug,
        sourceFormats=list(SOURCE_FORMATS),
    )


BATCH_PAGE_SIZE = 20  # rows per page of the batch list
FAILURES_PAGE_SIZE = 50  # rows per page of a batch's dead-letter list


@login_required
def batch_list(request: HttpRequest) -> HttpResponse:
    url = f"/api/batches/?{urlencode(_page_of(request, BATCH_PAGE_SIZE))}"
    data = [url]
    if RANK.get(role_of(request.user), 0) >= RANK[AUTHOR]:  # the start form's mappings and stored sources
        data += ["/api/mappings/?page_size=500", "/api/sources/?page_size=500"]
    return _page(
        request, "mappings/batches.html", "batches", "Batches", data=data, listUrl=url, pageSize=BATCH_PAGE_SIZE
    )


@login_required
def batch_detail(request: HttpRequest, batch_id: int) -> HttpResponse:
    batch = _found(access_batch, request.user, batch_id)
    data = [f"/api/batches/{batch.pk}/", f"/api/batches/{batch.pk}/failures/?page_size={FAILURES_PAGE_SIZE}"]
    slug = batch.version.mapping.slug
    if RANK.get(role_of(request.user), 0) >= RANK[AUTHOR]:  # the versions to reprocess with
        data.append(f"/api/mappings/{slug}/versions/")
    return _page(
        request,
        "mappings/batches_detail.html",
        "batches_detail",
        f"Batch {batch.pk}",
        data=data,
        batchId=batch.pk,
        slug=slug,
        failuresPageSize=FAILURES_PAGE_SIZE,
    )


PROFILE_PAGE_SIZE = 25  # rows per page of the profile list


@login_required
def profile_list(request: HttpRequest) -> HttpResponse:
    return _page(request, "profiles/list.html", "profiles", "Profiles", pageSize=PROFILE_PAGE_SIZE)


@login_required
def profile_detail(request: HttpRequest, ref: str) -> HttpResponse:
    found = _found(access_definition, request.user, ref)
    url = found.url if not isinstance(found, dict) else found.get("url", ref)
    title = (found.title or found.name) if not isinstance(found, dict) else found.get("title") or found.get("name")
    return _page(request, "profiles/detail.html", "profiles_detail", title or url, ref=ref, url=url)


class ApiDocs(SpectacularSwaggerView):
    """Swagger UI at /api/docs/, inside the studio's navigation (templates/api_docs.html), from the sidecar package's
    files (SWAGGER_UI_DIST = "SIDECAR"): the page works offline. Its script and stylesheet come compressed from
    swagger_ui_file, with the package's version (`?v=`), so they are cached for good and a new version is fetched
    anew."""

    template_name = "api_docs.html"
    url_name = "api-docs-schema"
    # Swagger UI's settings (onComplete marks body[data-ready]; operations open by tag; no validator badge) live in
    # static/api_docs.js: the page runs no inline script (Content-Security-Policy script-src 'self').

    @extend_schema(exclude=True)
    def get(self, request: Request, *args: object, **kwargs: object) -> Response:
        response = super().get(request, *args, **kwargs)
        stamp = f"?v={version('drf-spectacular-sidecar')}"
        response.data.update(
            swagger_ui_css=reverse("api-docs-file", args=["swagger-ui.css"]) + stamp,
            swagger_ui_bundle=reverse("api-docs-file", args=["swagger-ui-bundle.js"]) + stamp,
            page_title="API",
            page_data=[response.data["schema_url"]],  # read at once by Swagger UI: preloaded with the page
            page_config={"role": role_of(request.user)} if request.user.is_authenticated else None,
        )
        return response


@method_decorator(gzip_page, name="dispatch")
class ApiDocsSchema(SpectacularJSONAPIView):
    """The schema the docs page shows, as JSON (Swagger UI parses it faster than the YAML of /api/schema/), made
    once per process: it changes only with the code, and making it takes ~0.3 s that every visit waited for.
    Requests naming a language or a version are made afresh, so the cache holds one schema. Gzipped: ~340 KiB of
    JSON is ~30 KiB on the wire."""

    cached: ClassVar[dict[str, object]] = {}

    @extend_schema(exclude=True)
    def get(self, request: Request, *args: object, **kwargs: object) -> Response:
        if request.GET.get("lang") or request.GET.get("version"):
            return super().get(request, *args, **kwargs)
        if "schema" not in self.cached:
            self.cached["schema"] = super().get(request, *args, **kwargs).data
        return Response(self.cached["schema"])


SWAGGER_UI_FILES = {"swagger-ui-bundle.js": "text/javascript", "swagger-ui.css": "text/css"}


@functools.cache
def _swagger_ui_file(name: str) -> tuple[bytes, bytes]:
    body = Path(finders.find(f"drf_spectacular_sidecar/swagger-ui-dist/{name}")).read_bytes()
    return body, gzip.compress(body, compresslevel=9)


def swagger_ui_file(request: HttpRequest, name: str) -> HttpResponse:
    """Swagger UI's script (1.5 MiB) and stylesheet from the sidecar package, gzipped once per process (~430 KiB):
    WhiteNoise sends only the compressed copies it finds beside a file, and the package ships none. That was 2 s of
    the docs page's first visit over a 10 Mbit/s link (bench/README.md)."""
    if name not in SWAGGER_UI_FILES:
        raise Http404(name)
    body, packed = _swagger_ui_file(name)
    zipped = "gzip" in request.headers.get("Accept-Encoding", "")
    response = HttpResponse(packed if zipped else body, content_type=f"{SWAGGER_UI_FILES[name]}; charset=utf-8")
    if zipped:
        response["Content-Encoding"] = "gzip"
    response["Vary"] = "Accept-Encoding"
    response["Cache-Control"] = "public, max-age=31536000, immutable"  # asked for with the package's version
    return response


AUDIT_PAGE_SIZE = 50  # rows per page of the audit log


@login_required
def audit_log(request: HttpRequest) -> HttpResponse:
    """Every audit row, filtered and paged by the page script from /api/audit/ (admins only, as in the API)."""
    _found(access_audit, request.user)
    filters = {name: request.GET.get(name, "") for name in ("action", "actor", "mapping", "since")}
    url = _list_url("/api/audit/", AuditQuery, filters, **_page_of(request, AUDIT_PAGE_SIZE))
    return _page(
        request,
        "mappings/audit.html",
        "audit",
        "Audit log",
        data=[url],
        listUrl=url,
        pageSize=AUDIT_PAGE_SIZE,
        actions=sorted(AuditAction.values),
    )


@login_required
def client_app_list(request: HttpRequest) -> HttpResponse:
    """SMART client apps (admins only, as in the API): who may get tokens for which protected facade."""
    if role_of(request.user) != ADMIN:
        raise PermissionDenied("Client apps are for admins.")
    apps = ClientApp.objects.prefetch_related("facades").order_by("client_id")
    base = request.build_absolute_uri("/").rstrip("/")
    return render(
        request, "security/client_apps.html", {"page_title": "Client apps", "client_apps": apps, "base": base}
    )
