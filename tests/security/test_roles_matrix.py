"""Roles everywhere (issue 15), checked against Django's URL resolver rather than a list kept by hand: every route of
the studio API and every page, for every method its view answers, asked by each role. A route added tomorrow is
probed by this test without anyone editing it.

The identifiers in the URLs name nothing that exists. A refusal must come before the lookup (mappings/access.py
checks the role first), so a refused caller learns nothing about which objects exist: the answer is the same
`permission_denied` for every identifier. The rules:

- anonymous: 401 `not_authenticated` (API), a redirect to the login page (pages);
- a user in no group: 403 `permission_denied` for everything;
- viewer: reads; every write refused with 403 `permission_denied`, except the POSTs that only compute (READ_POSTS);
- author: everything except the admin-only routes (ADMIN_ONLY: the audit trail, SMART client apps) and writes
  (ADMIN_ONLY_WRITES: connections, which hold credentials; an author may push a render through one);
- admin: everything.
No answer is ever a 500, and every refusal has the API's error shape {code, message, details}."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from mappings import actions
from tests.api.conftest import client_for, make_user

pytestmark = pytest.mark.django_db

WRITES = ("post", "put", "patch", "delete")
# Not the studio's roles: the facade's runtime (open, or SMART tokens: tests/security/test_enforcement.py), the
# health check, signing in and out, and the API's schema and docs, which are public (drf-spectacular's default
# AllowAny): they describe the routes, never an object.
UNGATED = re.compile(r"^(fhir/|healthz$|login/$|logout/$|api/schema/$|api/docs/)")
# POSTs that compute an answer and change nothing: a viewer may run them.
READ_POSTS = re.compile(r"^api/(mappings/<slug:slug>/(render|source-tree|impact)|convert)$")
# Admin-only, whatever the method: who did what, and who may get tokens for patient data.
ADMIN_ONLY = re.compile(r"^(api/audit/|api/client-apps/|client-apps/$|audit/$)")
# Admin-only writes: connections to other FHIR servers hold their credentials (mappings/api/connections.py); pushing a
# render's output through one is an author's (it changes no connection).
ADMIN_ONLY_WRITES = re.compile(r"^api/connections/(?!<str:name>/push$)")
DUMMY = {"slug": "no-such-thing", "int": "987654", "path": "no/such/thing", "str": "no-such-thing"}


@dataclass(frozen=True)
class Route:
    pattern: str  # as written in the urlconfs, e.g. api/mappings/<slug:slug>/draft
    url: str  # with identifiers that name nothing
    methods: tuple[str, ...]

    @property
    def is_api(self) -> bool:
        return self.pattern.startswith("api/")

    def __str__(self) -> str:
        return self.pattern


def _walk(patterns: list, prefix: str = "") -> Iterator[tuple[str, URLPattern]]:
    for entry in patterns:
        if isinstance(entry, URLResolver):
            yield from _walk(entry.url_patterns, prefix + str(entry.pattern))
        else:
            yield prefix + str(entry.pattern), entry


def _url(pattern: str) -> str:
    def dummy(match: re.Match) -> str:
        converter = match.group(1)
        return str(uuid.UUID(int=1)) if converter == "uuid" else DUMMY[converter]

    return "/" + re.sub(r"<(\w+):\w+>", dummy, pattern)


def _methods(entry: URLPattern) -> tuple[str, ...]:
    view = getattr(entry.callback, "cls", None) or getattr(entry.callback, "view_class", None)
    if view is None:
        return ("get",)  # a page: function views answer GET
    return tuple(method for method in ("get", *WRITES) if hasattr(view, method))


def studio_routes() -> list[Route]:
    found = {}
    for pattern, entry in _walk(get_resolver().url_patterns):
        if pattern.startswith("admin/") or UNGATED.match(pattern):
            continue
        found.setdefault(pattern, Route(pattern, _url(pattern), _methods(entry)))
    return sorted(found.values(), key=str)


ROUTES = studio_routes()


def ask(client: Client, route: Route, method: str):
    if method in ("get", "delete"):
        return getattr(client, method)(route.url)
    return getattr(client, method)(route.url, {}, format="json")


def assert_refused(answer, status: int, code: str, where: str) -> None:
    assert answer.status_code == status, f"{where}: {answer.status_code} {answer.content[:300]!r}"
    body = answer.json()
    assert set(body) == {"code", "message", "details"}, f"{where}: {body}"
    assert body["code"] == code, f"{where}: {body}"


def test_it_finds_the_routes_it_checks() -> None:
    patterns = {route.pattern for route in ROUTES}
    # the walk reaches every urlconf the studio includes: a sample from each
    for expected in (
        "api/mappings/<slug:slug>/draft",
        "api/facades/<slug:slug>/deployments/",
        "api/batches/",
        "api/client-apps/",
        "api/audit/",
        "api/profiles/<path:ref>",
        "facades/<slug:slug>/",
        "",
    ):
        assert expected in patterns, expected
    assert len([route for route in ROUTES if route.is_api]) > 50


@pytest.mark.parametrize("route", ROUTES, ids=str)
def test_it_refuses_anonymous_callers(route: Route) -> None:
    client = client_for(None)
    for method in route.methods:
        answer = ask(client, route, method)
        if route.is_api:
            assert_refused(answer, 401, "not_authenticated", f"{method.upper()} {route.url}")
        else:
            assert answer.status_code == 302, route.url
            assert answer["Location"].startswith("/login/?next="), route.url


@pytest.mark.parametrize("route", ROUTES, ids=str)
def test_it_refuses_a_user_in_no_group_everything(route: Route, users) -> None:
    api, pages = client_for(users["norole"]), _signed_in(users["norole"])
    for method in route.methods:
        if route.is_api:
            assert_refused(ask(api, route, method), 403, "permission_denied", f"{method.upper()} {route.url}")
        else:
            assert pages.get(route.url).status_code == 403, route.url


@pytest.mark.parametrize("route", ROUTES, ids=str)
def test_a_viewer_reads_and_changes_nothing(route: Route, users) -> None:
    api, pages = client_for(users["viewer"]), _signed_in(users["viewer"])
    for method in route.methods:
        where = f"{method.upper()} {route.url}"
        if not route.is_api:
            status = pages.get(route.url).status_code
            assert status == 403 if ADMIN_ONLY.match(route.pattern) else status in (200, 404), (where, status)
            continue
        answer = ask(api, route, method)
        refused = ADMIN_ONLY.match(route.pattern) or (method in WRITES and not READ_POSTS.match(route.pattern))
        if refused:
            assert_refused(answer, 403, "permission_denied", where)
        else:
            assert answer.status_code not in (401, 403) and answer.status_code < 500, (where, answer.content[:300])


@pytest.mark.parametrize("route", ROUTES, ids=str)
def test_an_author_reaches_everything_but_the_admin_only_routes(route: Route, users) -> None:
    api, pages = client_for(users["author"]), _signed_in(users["author"])
    for method in route.methods:
        where = f"{method.upper()} {route.url}"
        answer = ask(api, route, method) if route.is_api else pages.get(route.url)
        if ADMIN_ONLY.match(route.pattern) or (method in WRITES and ADMIN_ONLY_WRITES.match(route.pattern)):
            if route.is_api:
                assert_refused(answer, 403, "permission_denied", where)
            else:
                assert answer.status_code == 403, where
        else:
            assert answer.status_code not in (401, 403) and answer.status_code < 500, (where, answer.content[:300])


@pytest.mark.parametrize("route", ROUTES, ids=str)
def test_an_admin_reaches_everything(route: Route, users) -> None:
    api, pages = client_for(users["admin"]), _signed_in(users["admin"])
    for method in route.methods:
        answer = ask(api, route, method) if route.is_api else pages.get(route.url)
        assert answer.status_code not in (401, 403) and answer.status_code < 500, (method, route.url, answer.content)


def _signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


# --- the admin console ----------------------------------------------------------------------------------------------

ADMIN_PAGES = ("/admin/", "/admin/auth/user/", "/admin/mappings/auditevent/", "/admin/mappings/facade/")


def test_only_admins_reach_the_admin_console(users) -> None:
    staff_author = make_user("staff-author", "author")
    staff_author.is_staff = True
    staff_author.save(update_fields=["is_staff"])
    staff_nobody = make_user("staff-nobody", None)
    staff_nobody.is_staff = True
    staff_nobody.save(update_fields=["is_staff"])
    refused = [None, users["norole"], users["viewer"], users["author"], users["admin"], staff_author, staff_nobody]
    for user in refused:  # users["admin"] is in the admin group but not staff: the console also needs is_staff
        client = _signed_in(user) if user is not None else Client()
        for path in ADMIN_PAGES:
            answer = client.get(path)
            assert answer.status_code == 302, (user, path, answer.status_code)
            assert answer["Location"].startswith("/admin/login/"), (user, path)
    staff_admin = make_user("staff-admin", "admin")
    staff_admin.is_staff = True
    staff_admin.save(update_fields=["is_staff"])
    root = make_user("root", None)
    root.is_staff = root.is_superuser = True
    root.save(update_fields=["is_staff", "is_superuser"])
    for user in (staff_admin, root):
        assert _signed_in(user).get("/admin/").status_code == 200, user
    assert _signed_in(root).get("/admin/auth/user/").status_code == 200


# --- probes ---------------------------------------------------------------------------------------------------------


def test_a_refusal_reads_the_same_for_an_object_that_exists_and_one_that_does_not(users, json_patient) -> None:
    actions.do_create_facade(acting_user=users["author"], slug="clinic", title="Clinic")
    probes = [
        ("viewer", "patch", "/api/mappings/{}/", "json-patient"),
        ("viewer", "delete", "/api/mappings/{}/", "json-patient"),
        ("viewer", "put", "/api/mappings/{}/draft", "json-patient"),
        ("viewer", "delete", "/api/facades/{}/", "clinic"),
        ("author", "get", "/api/client-apps/{}/", "lab-sync"),
        ("norole", "get", "/api/mappings/{}/", "json-patient"),
        ("norole", "get", "/api/facades/{}/", "clinic"),
    ]
    for role, method, path, name in probes:
        client = client_for(users[role])
        existing = ask(client, Route(path, path.format(name), (method,)), method)
        missing = ask(client, Route(path, path.format("no-such-thing"), (method,)), method)
        assert existing.status_code == missing.status_code == 403, (role, method, path)
        assert existing.content == missing.content, (role, method, path)
