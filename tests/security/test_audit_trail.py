"""The audit trail is complete (issue 15): sign-in, sign-out, a wrong password, a throttled sign-in, the API's script
token issued and refused, accounts and roles changed in the admin console, a deploy, a SMART token issued and refused
and a bulk export each write their row, and no row holds a secret: no password, no API token, no access token, no
private key, no source credential."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import Group, User
from django.core.cache import cache
from django.core.management import call_command
from django.test import Client
from rest_framework.authtoken.models import Token

from mappings import actions
from mappings.models import AuditEvent
from tests.api.conftest import client_for, make_user
from tests.security.conftest import access_token, assertion, register, token_request

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery staple"


def rows(action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action).order_by("id"))


def trail() -> str:
    """Every audit row as the JSON the API and the AuditEvent export are made from."""
    fields = ("action", "object_type", "object_id", "mapping_slug", "before", "after", "details")
    return json.dumps(list(AuditEvent.objects.values(*fields)), default=str)


@pytest.fixture
def lena(settings):
    settings.FHIR_STUDIO = {**settings.FHIR_STUDIO, "LOGIN_FAILURES": 2, "LOGIN_WINDOW_SECONDS": 600}
    cache.clear()  # the throttle's counts, kept in the cache between tests
    user = User.objects.create_user(username="lena", password=PASSWORD)
    user.groups.add(Group.objects.get_or_create(name="author")[0])
    yield user
    cache.clear()


def test_it_records_a_sign_in_and_a_sign_out(lena) -> None:
    client = Client(REMOTE_ADDR="10.1.2.3")
    assert client.post("/login/", {"username": "lena", "password": PASSWORD}).status_code == 302
    [login] = rows("auth.login")
    assert (login.actor, login.object_type, login.object_id) == (lena, "User", str(lena.pk))
    assert login.details == {"address": "10.1.2.3"}
    assert client.post("/logout/").status_code == 302
    [logout] = rows("auth.logout")
    assert logout.actor == lena and logout.details == {"address": "10.1.2.3"}
    assert PASSWORD not in trail()


def test_it_records_each_wrong_password_without_it_and_a_throttled_sign_in_as_refused(lena) -> None:
    client = Client(REMOTE_ADDR="10.1.2.4")
    for attempt in ("guess-one", "guess-two"):
        assert client.post("/login/", {"username": "lena", "password": attempt}).status_code == 200
    failed = rows("auth.login_failed")
    assert [(row.actor, row.object_type, row.object_id) for row in failed] == [(None, "Login", "lena")] * 2
    assert failed[0].details == {"address": "10.1.2.4"}
    # the third is refused by the throttle before the password is read: a refusal, not another failure
    assert client.post("/login/", {"username": "lena", "password": PASSWORD}).status_code == 429
    assert len(rows("auth.login_refused")) == 1 and len(rows("auth.login_failed")) == 2
    assert rows("auth.login") == []
    text = trail()
    assert "guess-one" not in text and "guess-two" not in text and PASSWORD not in text


def test_it_records_a_sign_in_through_the_admin_console_form(lena) -> None:
    lena.is_staff = lena.is_superuser = True
    lena.save(update_fields=["is_staff", "is_superuser"])
    client = Client()
    assert client.post("/admin/login/?next=/admin/", {"username": "lena", "password": "nope"}).status_code == 200
    assert client.post("/admin/login/?next=/admin/", {"username": "lena", "password": PASSWORD}).status_code == 302
    assert [row.action for row in AuditEvent.objects.order_by("id")] == ["auth.login_failed", "auth.login"]


def test_it_records_an_api_token_issued_and_one_refused_without_the_key(lena) -> None:
    token = actions.do_issue_api_token(lena, acting_user=None)
    [issued] = rows("auth.api_token_issued")
    assert (issued.object_type, issued.object_id, issued.details) == ("User", str(lena.pk), {"created": True})
    assert actions.do_issue_api_token(lena, acting_user=None).key == token.key  # the same token, issued again
    assert rows("auth.api_token_issued")[1].details == {"created": False}
    client = Client(REMOTE_ADDR="10.9.9.9")
    wrong = "0" * 40
    answer = client.get("/api/mappings/", HTTP_AUTHORIZATION=f"Token {wrong}")
    assert answer.status_code == 401 and answer.json()["code"] == "authentication_failed"
    [refused] = rows("auth.api_token_refused")
    assert refused.actor is None and refused.details == {"address": "10.9.9.9", "reason": "Invalid token."}
    assert client.get("/api/mappings/", HTTP_AUTHORIZATION=f"Token {token.key}").status_code == 200
    text = trail()
    assert token.key not in text and wrong not in text


def test_the_token_command_issues_through_the_action(lena, capsys) -> None:
    with pytest.raises(SystemExit) as exited:
        call_command("fhirstudio", "token", "lena")
    assert exited.value.code == 0
    key = capsys.readouterr().out.strip()
    assert key == lena.auth_token.key
    [issued] = rows("auth.api_token_issued")
    assert (issued.actor, issued.object_id) == (None, str(lena.pk)) and key not in trail()


def test_it_records_an_api_token_issued_in_the_admin_console_without_its_key(db) -> None:
    root = User.objects.create_superuser("root", password="pw-root")
    nina = User.objects.create_user("nina", password="pw-nina")
    console = Client()
    console.force_login(root)
    assert console.post("/admin/authtoken/tokenproxy/add/", {"user": str(nina.pk)}).status_code == 302
    [issued] = rows("auth.api_token_issued")
    assert (issued.actor, issued.object_id, issued.details) == (root, str(nina.pk), {"created": True})
    assert nina.auth_token.key not in trail()
    assert console.get(f"/admin/authtoken/tokenproxy/{nina.pk}/change/").status_code == 200  # shown, not editable
    moved = console.post(f"/admin/authtoken/tokenproxy/{nina.pk}/change/", {"user": str(root.pk)})
    assert moved.status_code == 403 and Token.objects.get(user=nina)


def test_it_records_accounts_and_roles_changed_in_the_admin_console(db) -> None:
    root = User.objects.create_superuser("root", password="pw-root")
    console = Client()
    console.force_login(root)
    author = Group.objects.get_or_create(name="author")[0]
    admin = Group.objects.get_or_create(name="admin")[0]
    added = console.post(
        "/admin/auth/user/add/",
        {"username": "nina", "password1": "A-long-new-Passw0rd!", "password2": "A-long-new-Passw0rd!"},
    )
    assert added.status_code == 302, added.content[:500]
    nina = User.objects.get(username="nina")
    [created] = rows("user.created")
    assert (created.actor, created.object_id, created.before) == (root, str(nina.pk), None)
    assert created.after["groups"] == [] and "password" in created.details["fields"]
    change = {
        "username": "nina",
        "is_active": "on",
        "is_staff": "on",
        "groups": [str(author.pk), str(admin.pk)],
        "date_joined_0": "2026-01-01",
        "date_joined_1": "00:00:00",
        "initial-date_joined_0": "2026-01-01",
        "initial-date_joined_1": "00:00:00",
    }
    changed = console.post(f"/admin/auth/user/{nina.pk}/change/", change)
    assert changed.status_code == 302, changed.content[:2000]
    [updated] = rows("user.updated")
    assert updated.before["groups"] == [] and updated.after["groups"] == ["admin", "author"]
    assert updated.before["is_staff"] is False and updated.after["is_staff"] is True
    password = console.post(
        f"/admin/auth/user/{nina.pk}/password/",
        {"password1": "Another-l0ng-Passw0rd", "password2": "Another-l0ng-Passw0rd", "usable_password": "true"},
    )
    assert password.status_code == 302, password.content[:2000]
    assert rows("user.updated")[-1].details == {"fields": ["password"]}
    renamed = console.post(f"/admin/auth/group/{author.pk}/change/", {"name": "author", "permissions": []})
    assert renamed.status_code == 302
    assert rows("user.group_changed")[0].after == {"name": "author", "permissions": []}
    assert console.post(f"/admin/auth/user/{nina.pk}/delete/", {"post": "yes"}).status_code == 302
    [deleted] = rows("user.deleted")
    assert deleted.object_id == str(nina.pk) and deleted.before["username"] == "nina"
    text = trail()
    assert "A-long-new-Passw0rd!" not in text and "Another-l0ng-Passw0rd" not in text
    assert "pbkdf2" not in text and "md5$" not in text  # no password hash either


def test_an_admin_of_the_admin_group_manages_accounts_in_the_console(db) -> None:
    # mappings.access.AdminRoleBackend (AUTHENTICATION_BACKENDS) gives the admin group the console's permissions
    staff_admin = make_user("ops", "admin")
    staff_admin.is_staff = True
    staff_admin.save(update_fields=["is_staff"])
    staff_author = make_user("staff-author", "author")
    staff_author.is_staff = True
    staff_author.save(update_fields=["is_staff"])
    console = Client()
    console.force_login(staff_admin)
    assert console.get("/admin/auth/user/").status_code == 200
    assert console.get("/admin/mappings/auditevent/").status_code == 200
    other = Client()
    other.force_login(staff_author)
    assert other.get("/admin/auth/user/").status_code == 302  # to the console's login: not an admin


@pytest.mark.django_db(transaction=True)  # a deploy indexes its records on commit
def test_deploys_smart_tokens_and_exports_are_recorded_and_no_row_holds_a_secret(protected, client, settings) -> None:
    # protected: json-patient deployed to the `clinic` facade, marked smart-backend (tests/security/conftest.py)
    [deployed] = rows("facade.deployed")
    assert deployed.actor == protected["author"] and deployed.mapping_slug == "json-patient"
    app = register(["clinic"], ["system/Patient.rs"])
    token = access_token(client, app, "system/Patient.rs")
    [issued] = rows("smart.token_issued")
    assert issued.details["facade"] == "clinic" and issued.object_id == str(app["client"].pk)
    started = client.get("/fhir/clinic/$export", HTTP_PREFER="respond-async", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert started.status_code == 202, started.content
    [export] = rows("export.started")
    assert export.details["facade"] == "clinic"
    signed = assertion(app, claims={"aud": "https://elsewhere.example/token"})
    assert token_request(client, signed).status_code in (400, 401)
    [refused] = rows("smart.token_refused")
    assert refused.details["facade"] == "clinic" and refused.details["client"] == app["client"].client_id
    # a source credential, written through the API (the source is not called: its host need only be allowed)
    settings.FHIR_STUDIO = {**settings.FHIR_STUDIO, "SOURCE_ALLOWED_HOSTS": ["legacy.example"]}
    api = client_for(protected["author"])
    source = {"name": "vault", "kind": "http", "source_format": "json"}
    config = {
        "base_url": "https://legacy.example/api",
        "read_path": "/p/{id}",
        "search_path": "/p",
        "auth": {"type": "bearer"},
    }
    config["auth"]["token"] = "source-credential-123"
    assert api.post("/api/sources/", {**source, "config": config}, format="json").status_code == 201
    assert rows("source.created")
    text = trail()
    private = app["key"].as_dict(private=True)
    for secret in (token, signed, private["d"], "source-credential-123", "pw-author"):
        assert secret not in text
