"""Facades behind an external authorization server (auth_mode "introspection", RFC 7662): the bearer token is POSTed
to the server's introspection endpoint with the studio's client credentials, and its answer decides — active, exp,
aud and scope honoured, scopes enforced as for the studio's own tokens, active answers cached, the server down or
slow a 503. The settings are checked (allow-listed host) and the secret never shown back.

The authorization server is a small real HTTP server started on 127.0.0.1 by the test: it stands in for the external
AS (Keycloak, Okta, …), answering as RFC 7662 says one does."""

from __future__ import annotations

import base64
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import pytest
from django.contrib.auth.models import User
from django.core.cache import cache
from django.test import Client

from mappings import actions, caches
from mappings.models import AuditEvent, Facade
from tests.api.conftest import api  # noqa: F401 — the studio API's clients per role
from tests.legacy_http import free_port
from tests.security.conftest import served  # noqa: F401 — the clinic's mapping, source and binding

pytestmark = pytest.mark.django_db(transaction=True)  # deploys index on commit

CLIENT_ID, SECRET = "fhir-studio", "s3cret-for-the-as"
BASE = "http://testserver/fhir/ward"


class AuthorizationServer:
    """The stand-in AS: `tokens` maps a token to the answer for it (unknown tokens are inactive); `calls` lists the
    tokens it was asked about, with the credentials sent."""

    def __init__(self) -> None:
        self.tokens: dict[str, dict] = {}
        self.calls: list[dict] = []
        self.status, self.body, self.delay_s = 200, None, 0.0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                form = parse_qs(self.rfile.read(length).decode())
                token = form.get("token", [""])[0]
                basic = self.headers.get("Authorization", "").removeprefix("Basic ")
                server.calls.append({"token": token, "credentials": base64.b64decode(basic).decode()})
                time.sleep(server.delay_s)
                if base64.b64decode(basic).decode() != f"{CLIENT_ID}:{SECRET}":
                    body, status = b'{"error": "invalid_client"}', 401
                elif server.body is not None:
                    body, status = server.body, server.status
                else:
                    body, status = json.dumps(server.tokens.get(token, {"active": False})).encode(), server.status
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/introspect"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def grant(self, token: str, scope: str = "system/Patient.rs", **claims: object) -> str:
        self.tokens[token] = {
            "active": True,
            "scope": scope,
            "client_id": "lab-system",
            "exp": int(time.time()) + 300,
            "aud": BASE,
            **claims,
        }
        return token


@pytest.fixture
def auth_server(settings):
    server = AuthorizationServer()
    cache.clear()  # answers cached by an earlier run (the file cache under var/ outlives the test database)
    settings.FHIR_STUDIO = {**settings.FHIR_STUDIO, "INTROSPECTION_ALLOWED_HOSTS": [f"127.0.0.1:{server.port}"]}
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()


@pytest.fixture
def ward(served, auth_server) -> Facade:  # noqa: F811 — served is a fixture
    """A facade `ward` serving the clinic's Patient binding's mapping and source, behind the stand-in AS."""
    author = served["author"]
    facade = actions.do_create_facade(
        acting_user=author,
        slug="ward",
        title="Ward",
        auth_mode=Facade.AuthMode.INTROSPECTION,
        introspection={"url": auth_server.url, "client_id": CLIENT_ID, "client_secret": SECRET, "timeout_s": 2},
    )
    binding = actions.do_bind_resource(
        facade, acting_user=author, resource_type="Patient", mapping=served["mapping"], source=served["source"]
    )
    actions.do_deploy(binding, acting_user=author, version=served["v1"])
    caches.clear()
    return facade


def get(path: str, token: str | None = None):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token is not None else {}
    return Client().get(f"/fhir/ward/{path}", **headers)


def diagnostics(response) -> str:
    body = response.json()
    assert body["resourceType"] == "OperationOutcome", body
    return body["issue"][0]["diagnostics"]


def test_it_serves_a_token_the_server_says_is_active(ward, auth_server) -> None:
    token = auth_server.grant("tok-good")
    answer = get("Patient", token)
    assert answer.status_code == 200, answer.content
    assert answer.json()["total"] == 1  # two records of one patient
    assert auth_server.calls == [{"token": "tok-good", "credentials": f"{CLIENT_ID}:{SECRET}"}]


def test_it_asks_once_for_a_token_while_its_answer_is_cached(ward, auth_server) -> None:
    token = auth_server.grant("tok-cached")
    for _ in range(3):
        assert get("Patient", token).status_code == 200
    assert len(auth_server.calls) == 1
    # the answer is kept no longer than the token lives: past its exp, the token is refused
    # a few seconds of life, so a loaded machine still serves the first request in time
    expires = int(time.time()) + 4
    short = auth_server.grant("tok-short", exp=expires)
    assert get("Patient", short).status_code == 200
    time.sleep(max(0.0, expires - time.time()) + 0.1)
    assert get("Patient", short).status_code == 401


def test_it_asks_again_about_a_token_it_found_inactive(ward, auth_server) -> None:
    assert get("Patient", "tok-later").status_code == 401
    auth_server.grant("tok-later")
    assert get("Patient", "tok-later").status_code == 200  # an inactive answer was not cached


@pytest.mark.parametrize(
    "claims, says",
    [
        ({"active": False}, "not active"),
        ({"exp": int(time.time()) - 10}, "expired"),
        ({"aud": "https://other.example/fhir"}, "another audience"),
        ({"aud": ["https://other.example/fhir", "urn:x"]}, "another audience"),
    ],
    ids=["inactive", "expired", "other-aud", "other-aud-list"],
)
def test_it_refuses_an_unusable_token_with_401(ward, auth_server, claims, says) -> None:
    token = auth_server.grant("tok-bad", **claims)
    answer = get("Patient", token)
    assert answer.status_code == 401
    assert says in diagnostics(answer)
    assert 'error="invalid_token"' in answer["WWW-Authenticate"]


def test_it_accepts_an_audience_list_naming_the_facade_or_the_configured_audience(ward, auth_server) -> None:
    token = auth_server.grant("tok-list", aud=["urn:other", BASE + "/"])
    assert get("Patient", token).status_code == 200
    actions.do_update_facade(ward, acting_user=None, introspection={"audience": "urn:ward-api"})
    assert get("Patient", auth_server.grant("tok-configured", aud="urn:ward-api")).status_code == 200
    assert get("Patient", auth_server.grant("tok-base", aud=BASE)).status_code == 401


def test_it_asks_for_a_token_without_calling_the_server(ward, auth_server) -> None:
    for headers in ({}, {"HTTP_AUTHORIZATION": "Bearer "}, {"HTTP_AUTHORIZATION": "Basic abc"}):
        answer = Client().get("/fhir/ward/Patient", **headers)
        assert answer.status_code == 401
        assert answer["WWW-Authenticate"] == 'Bearer realm="ward"'
    assert auth_server.calls == []


def test_it_enforces_the_scopes_as_for_the_studios_own_tokens(ward, auth_server) -> None:
    # openid and a user/ scope grant nothing here; system/Observation.rs does not cover Patient
    token = auth_server.grant("tok-narrow", scope="openid user/Patient.read system/Observation.rs")
    answer = get("Patient", token)
    assert answer.status_code == 403
    assert "'s' on Patient" in diagnostics(answer)
    assert answer["WWW-Authenticate"] == 'Bearer error="insufficient_scope"'
    read_only = auth_server.grant("tok-read", scope="system/Patient.r")
    assert get("Patient", read_only).status_code == 403  # search needs `s`
    patient_id = get("Patient", auth_server.grant("tok-rs")).json()["entry"][0]["resource"]["id"]
    assert get(f"Patient/{patient_id}", read_only).status_code == 200


@pytest.mark.parametrize("fault", ["down", "slow", "error", "not-json", "wrong-secret"])
def test_it_answers_503_when_the_server_cannot_say(ward, auth_server, fault) -> None:
    token = auth_server.grant("tok-fault")
    if fault == "down":
        auth_server.httpd.shutdown()
        auth_server.httpd.server_close()
    elif fault == "slow":
        actions.do_update_facade(ward, acting_user=None, introspection={"timeout_s": 0.3})
        auth_server.delay_s = 1.0
    elif fault == "error":
        auth_server.status, auth_server.body = 500, b'{"error": "server_error"}'
    elif fault == "not-json":
        auth_server.body = b"<html>maintenance</html>"
    else:
        Facade.objects.filter(pk=ward.pk).update(introspection_client_secret="fernet:not-a-sealed-value")
    answer = get("Patient", token)
    assert answer.status_code == 503
    assert answer["Content-Type"].startswith("application/fhir+json")
    assert "server" in diagnostics(answer) or "key" in diagnostics(answer)


def test_the_capability_statement_names_oauth_and_the_token_endpoint_is_not_offered(ward) -> None:
    metadata = Client().get("/fhir/ward/metadata").json()
    service = metadata["rest"][0]["security"]["service"][0]
    assert service["coding"][0]["code"] == "OAuth"
    assert "extension" not in metadata["rest"][0]["security"]  # no oauth-uris: the studio issues no tokens here
    assert Client().get("/fhir/ward/.well-known/smart-configuration").status_code == 404
    assert Client().post("/fhir/ward/auth/token", {"grant_type": "client_credentials"}).status_code == 404


def test_the_api_stores_the_secret_sealed_and_never_shows_it(api, auth_server) -> None:  # noqa: F811
    settings_in = {"url": auth_server.url, "client_id": CLIENT_ID, "client_secret": SECRET}
    body = {"slug": "ext", "title": "External", "auth_mode": "introspection", "introspection": settings_in}
    created = api["author"].post("/api/facades/", body, format="json")
    assert created.status_code == 201, created.content
    shown = created.json()["introspection"]
    assert shown == {**settings_in, "client_secret": "***", "audience": "", "timeout_s": 5.0}
    stored = Facade.objects.get(slug="ext").introspection_client_secret
    assert stored.startswith("fernet:") and SECRET not in stored
    # sent back as shown, the secret is kept; a new one replaces it; neither reaches the audit trail
    patched = api["author"].patch("/api/facades/ext/", {"introspection": {**shown, "timeout_s": 3}}, format="json")
    assert patched.status_code == 200 and patched.json()["introspection"]["timeout_s"] == 3
    assert Facade.objects.get(slug="ext").introspection_client_secret == stored
    api["author"].patch("/api/facades/ext/", {"introspection": {"client_secret": "rotated"}}, format="json")
    assert Facade.objects.get(slug="ext").introspection_client_secret != stored
    trail = json.dumps([event.details for event in AuditEvent.objects.all()], default=str)
    assert SECRET not in trail and "rotated" not in trail and stored not in trail
    assert api["author"].get("/api/facades/ext/").json()["introspection"]["client_secret"] == "***"


@pytest.mark.parametrize(
    "settings_in, field",
    [
        ({"url": "http://10.1.2.3/introspect", "client_id": CLIENT_ID, "client_secret": SECRET}, "url"),
        ({"url": "http://169.254.169.254/latest", "client_id": CLIENT_ID, "client_secret": SECRET}, "url"),
        ({"client_id": CLIENT_ID, "client_secret": SECRET}, "url"),
        ({"url": "AS_URL", "client_secret": SECRET}, "client_id"),
        ({"url": "AS_URL", "client_id": CLIENT_ID}, "client_secret"),
    ],
    ids=["private-host", "metadata-address", "no-url", "no-client-id", "no-secret"],
)
def test_the_api_refuses_unusable_settings(api, auth_server, settings_in, field) -> None:  # noqa: F811
    settings_in = {key: auth_server.url if value == "AS_URL" else value for key, value in settings_in.items()}
    body = {"slug": "ext", "title": "External", "auth_mode": "introspection", "introspection": settings_in}
    refused = api["author"].post("/api/facades/", body, format="json")
    assert refused.status_code == 400, refused.content
    assert refused.json()["code"] == "invalid"
    assert field in refused.json()["details"]["introspection"]
    assert not Facade.objects.filter(slug="ext").exists()


def test_the_api_refuses_introspection_settings_for_another_auth_mode(api, auth_server) -> None:  # noqa: F811
    body = {"slug": "ext", "title": "External", "introspection": {"url": auth_server.url}}
    refused = api["author"].post("/api/facades/", body, format="json")
    assert refused.status_code == 400 and "auth_mode 'introspection'" in refused.json()["message"]


def test_the_admin_sets_the_settings_and_never_puts_the_secret_in_the_page(ward, auth_server) -> None:
    admin_client = Client()
    admin_client.force_login(User.objects.create_superuser("root", password="pw-root"))
    page = admin_client.get(f"/admin/mappings/facade/{ward.pk}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    assert auth_server.url in html and SECRET not in html and "fernet:" not in html
    form = {
        "title": "Ward",
        "status": "active",
        "convert_templates": "{}",
        "introspection_url": auth_server.url,
        "introspection_client_id": "other-client",
        "introspection_client_secret": "",  # empty: keep the stored secret
        "introspection_audience": "urn:ward",
        "introspection_timeout_s": "4",
        "bindings-TOTAL_FORMS": "0",
        "bindings-INITIAL_FORMS": "0",
    }
    saved = admin_client.post(f"/admin/mappings/facade/{ward.pk}/change/", form)
    assert saved.status_code == 302, saved.content.decode()[:2000]
    ward.refresh_from_db()
    assert (ward.introspection_client_id, ward.introspection_audience, ward.introspection_timeout_s) == (
        "other-client",
        "urn:ward",
        4.0,
    )
    assert ward.introspection_client_secret.startswith("fernet:")


def test_the_admin_creates_an_introspection_facade(auth_server) -> None:
    admin_client = Client()
    admin_client.force_login(User.objects.create_superuser("root", password="pw-root"))
    form = {
        "slug": "ext",
        "title": "External",
        "auth_mode": "introspection",
        "convert_templates": "{}",
        "introspection_url": auth_server.url,
        "introspection_client_id": CLIENT_ID,
        "introspection_client_secret": SECRET,
        "introspection_audience": "",
        "introspection_timeout_s": "",
        "bindings-TOTAL_FORMS": "0",
        "bindings-INITIAL_FORMS": "0",
    }
    saved = admin_client.post("/admin/mappings/facade/add/", form)
    assert saved.status_code == 302, saved.content.decode()[:2000]
    facade = Facade.objects.get(slug="ext")
    assert (facade.auth_mode, facade.introspection_url, facade.introspection_timeout_s) == (
        "introspection",
        auth_server.url,
        5.0,
    )
    assert facade.introspection_client_secret.startswith("fernet:")
    # without a secret it is refused with the action's message, and nothing is created
    refused = admin_client.post(
        "/admin/mappings/facade/add/", {**form, "slug": "ext2", "introspection_client_secret": ""}, follow=True
    )
    assert "The client secret for the introspection endpoint is required." in refused.content.decode()
    assert not Facade.objects.filter(slug="ext2").exists()
