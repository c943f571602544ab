"""/api/connections/: admins add, change, remove and test connections; every role reads them; secrets go in and never
come out (not in answers, not in audit rows, not in the database in plain text)."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

import pytest
from joserfc.jwk import ECKey, RSAKey

from mappings.actions.connections import do_create_connection
from mappings.models import AuditAction, AuditEvent, Connection, Facade
from mappings.secrets import decrypt, is_sealed
from mappings.security.clients import create_smart_client
from tests.api.conftest import client_for, make_user
from tests.connectors.conftest import Answer

pytestmark = pytest.mark.timeout(120)
TOKEN = "bearer-secret-4711"


def bearer(**extra) -> dict:
    return {
        "name": "hub",
        "base_url": "https://fhir.example.org/r4/",
        "auth_mode": "bearer",
        "secrets": {"token": TOKEN},
        **extra,
    }


def allow(settings, *hosts: str) -> None:
    settings.FHIR_STUDIO = {**settings.FHIR_STUDIO, "CONNECTION_ALLOWED_HOSTS": list(hosts)}


def loopback(base: str) -> tuple[str, str]:
    """The live server's base on 127.0.0.1 (what the allow-list names) and its host:port."""
    base = base.replace("://localhost:", "://127.0.0.1:")
    return base, urlsplit(base).netloc


def everything_said() -> str:
    rows = AuditEvent.objects.values("before", "after", "details")
    return json.dumps(list(rows))


def test_it_adds_a_connection_and_never_gives_its_secret_back(api) -> None:
    created = api["admin"].post("/api/connections/", bearer(), format="json")
    assert created.status_code == 201, created.content
    answer = created.json()
    assert answer["secrets_set"] == ["token"] and "secrets" not in answer
    assert answer["base_url"] == "https://fhir.example.org/r4" and answer["check"] is None
    assert TOKEN not in created.content.decode()
    for reader in ("viewer", "author", "admin"):
        read = api[reader].get("/api/connections/hub/")
        assert read.status_code == 200 and TOKEN not in read.content.decode()
        listed = api[reader].get("/api/connections/")
        assert listed.json()["results"][0]["name"] == "hub" and TOKEN not in listed.content.decode()
    stored = Connection.objects.get(name="hub").secrets["token"]
    assert is_sealed(stored) and decrypt(stored) == TOKEN
    assert AuditEvent.objects.filter(action=AuditAction.CONNECTION_CREATED).count() == 1
    assert TOKEN not in everything_said()


@pytest.mark.parametrize("role", ["viewer", "author", "norole", "anonymous"])
def test_it_lets_only_admins_write_and_test(api, role) -> None:
    do_create_connection(acting_user=None, name="hub", base_url="https://fhir.example.org/r4")
    expected = 401 if role == "anonymous" else 403
    assert api[role].post("/api/connections/", bearer(name="other"), format="json").status_code == expected
    assert api[role].patch("/api/connections/hub/", {"max_retries": 1}, format="json").status_code == expected
    assert api[role].delete("/api/connections/hub/").status_code == expected
    assert api[role].post("/api/connections/hub/test").status_code == expected
    if role in ("norole", "anonymous"):
        assert api[role].get("/api/connections/").status_code == expected
    assert Connection.objects.get(name="hub").max_retries == 3


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"auth_mode": "bearer", "secrets": {}}, "secrets"),
        ({"auth_mode": "basic", "secrets": {"password": "pw"}}, "auth"),
        ({"auth_mode": "none", "auth": {"username": "u"}}, "auth"),
        ({"auth_mode": "none", "secrets": {"token": "t"}}, "secrets"),
        (
            {"auth_mode": "smart-backend", "auth": {"client_id": "c"}, "secrets": {"private_key": "not a pem"}},
            "secrets",
        ),
        ({"auth_mode": "smart-backend", "auth": {"client_id": "c", "algorithm": "HS256"}}, "auth"),
        ({"auth_mode": "kerberos"}, "auth_mode"),
        ({"base_url": "ftp://fhir.example.org"}, "base_url"),
        ({"base_url": "https://user:pw@fhir.example.org"}, "base_url"),
        ({"name": "Not A Slug"}, "name"),
        ({"timeout_seconds": 0}, "timeout_seconds"),
        ({"auth_mode": "basic", "auth": {"username": "u", "\x00": "x"}, "secrets": {"password": "pw"}}, "auth"),
        ({"auth_mode": "bearer", "secrets": {"token": "t", "\x00": "x"}}, "secrets"),
    ],
)
def test_it_refuses_a_connection_that_cannot_work(api, body, field) -> None:
    sent = {"name": "hub", "base_url": "https://fhir.example.org/r4", **body}
    refused = api["admin"].post("/api/connections/", sent, format="json")
    assert refused.status_code == 400, refused.content
    assert refused.json()["code"] == "invalid"
    assert field in json.dumps(refused.json()), refused.json()
    assert not Connection.objects.exists()


def test_it_refuses_a_second_connection_of_the_same_name(api) -> None:
    assert api["admin"].post("/api/connections/", bearer(), format="json").status_code == 201
    again = api["admin"].post("/api/connections/", bearer(), format="json")
    assert again.status_code == 409 and again.json()["code"] == "conflict"


def test_it_keeps_a_secret_not_sent_again_and_drops_those_a_new_mode_does_not_use(api) -> None:
    api["admin"].post("/api/connections/", bearer(), format="json")
    sealed = Connection.objects.get(name="hub").secrets["token"]
    kept = api["admin"].patch("/api/connections/hub/", {"timeout_seconds": 5}, format="json")
    assert kept.status_code == 200 and kept.json()["timeout_seconds"] == 5
    masked = api["admin"].patch("/api/connections/hub/", {"secrets": {"token": "***"}}, format="json")
    assert masked.status_code == 200 and Connection.objects.get(name="hub").secrets["token"] == sealed
    switched = api["admin"].patch(
        "/api/connections/hub/",
        {"auth_mode": "basic", "auth": {"username": "studio"}, "secrets": {"password": "pw-9"}},
        format="json",
    )
    assert switched.status_code == 200 and switched.json()["secrets_set"] == ["password"]
    assert set(Connection.objects.get(name="hub").secrets) == {"password"}
    needs_one = api["admin"].patch("/api/connections/hub/", {"auth_mode": "bearer"}, format="json")
    assert needs_one.status_code == 400 and needs_one.json()["code"] == "invalid"
    assert "pw-9" not in everything_said() and TOKEN not in everything_said()


def test_it_removes_a_connection_with_an_audit_row(api) -> None:
    api["admin"].post("/api/connections/", bearer(), format="json")
    assert api["admin"].delete("/api/connections/hub/").status_code == 204
    assert api["admin"].get("/api/connections/hub/").status_code == 404
    assert AuditEvent.objects.filter(action=AuditAction.CONNECTION_DELETED).count() == 1


def test_it_lists_connections_in_queries_that_do_not_grow_with_the_rows(api, django_assert_max_num_queries) -> None:
    do_create_connection(acting_user=None, name="c-0", base_url="https://fhir.example.org/r4")
    with django_assert_max_num_queries(4) as one:
        assert api["viewer"].get("/api/connections/").json()["count"] == 1
    for number in range(1, 20):
        do_create_connection(acting_user=None, name=f"c-{number}", base_url="https://fhir.example.org/r4")
    with django_assert_max_num_queries(len(one.captured_queries)):
        assert api["viewer"].get("/api/connections/?page_size=50").json()["count"] == 20


def test_it_tests_a_connection_to_the_demo_facade_and_keeps_what_it_found(demo, settings) -> None:
    base, host = loopback(demo["base"])
    allow(settings, host)
    api = {"admin": client_for(demo["admin"]), "viewer": client_for(make_user("reader", "viewer"))}
    api["admin"].post("/api/connections/", {"name": "demo", "base_url": base}, format="json")
    tested = api["admin"].post("/api/connections/demo/test")
    assert tested.status_code == 200, tested.content
    found = tested.json()
    assert found["code"] == "ok" and found["fhir_version"] == "4.0.1", found
    assert "Patient" in found["resource_types"] and "read" in found["interactions"]["Patient"]
    assert api["viewer"].get("/api/connections/demo/").json()["check"]["code"] == "ok"
    row = AuditEvent.objects.get(action=AuditAction.CONNECTION_TESTED)
    assert row.after == {"code": "ok"}


def test_it_tests_a_smart_backend_connection_against_the_studio_token_endpoint(demo, settings, tmp_path) -> None:
    base, host = loopback(demo["base"].replace("/fhir/demo", "/fhir/demo-smart"))
    allow(settings, host)
    api = {"admin": client_for(demo["admin"])}
    keys = create_smart_client(Facade.objects.get(slug="demo-smart"), scopes=["system/*.rs"], out_dir=tmp_path)
    pem = keys.private_key.read_text()
    body = {
        "name": "smart",
        "base_url": base,
        "auth_mode": "smart-backend",
        "auth": {"client_id": keys.client.client_id, "algorithm": "ES384", "scope": "system/*.rs"},
        "secrets": {"private_key": pem},
    }
    assert api["admin"].post("/api/connections/", body, format="json").status_code == 201
    assert api["admin"].post("/api/connections/smart/test").json()["code"] == "ok"
    other = ECKey.generate_key("P-384").as_pem(private=True).decode()
    api["admin"].patch("/api/connections/smart/", {"secrets": {"private_key": other}}, format="json")
    refused = api["admin"].post("/api/connections/smart/test").json()
    assert refused["code"] == "unauthorized", refused
    assert "PRIVATE KEY" not in everything_said()


def test_it_diagnoses_a_host_off_the_allow_list_without_calling_it(api, settings, stub) -> None:
    allow(settings)
    api["admin"].post("/api/connections/", {"name": "stub", "base_url": stub.base}, format="json")
    found = api["admin"].post("/api/connections/stub/test").json()
    assert found["code"] == "host_refused" and stub.seen == []


def test_it_diagnoses_refused_unauthorized_and_not_r4(api, settings, stub, free_port) -> None:
    allow(settings, stub.host, f"127.0.0.1:{free_port}")
    api["admin"].post(
        "/api/connections/",
        {"name": "closed", "base_url": f"http://127.0.0.1:{free_port}/fhir", "max_retries": 0},
        format="json",
    )
    assert api["admin"].post("/api/connections/closed/test").json()["code"] == "refused"
    api["admin"].post("/api/connections/", bearer(name="stub", base_url=stub.base), format="json")
    stub.on("/fhir/metadata", Answer(401, {"resourceType": "OperationOutcome", "issue": []}))
    assert api["admin"].post("/api/connections/stub/test").json()["code"] == "unauthorized"
    assert stub.requests_to("/fhir/metadata")[0].headers["Authorization"] == f"Bearer {TOKEN}"
    stub.on("/fhir/metadata", Answer(200, {"resourceType": "CapabilityStatement", "fhirVersion": "5.0.0"}))
    assert api["admin"].post("/api/connections/stub/test").json()["code"] == "not_r4"


def test_it_says_invalid_auth_for_an_rsa_key_given_for_es384(api) -> None:
    rsa = RSAKey.generate_key(2048).as_pem(private=True).decode()
    body = {
        "name": "smart",
        "base_url": "https://fhir.example.org/r4",
        "auth_mode": "smart-backend",
        "auth": {"client_id": "c", "algorithm": "ES384"},
        "secrets": {"private_key": rsa},
    }
    refused = api["admin"].post("/api/connections/", body, format="json")
    assert refused.status_code == 400 and "ES384" in refused.json()["message"]


def test_it_describes_the_connection_endpoints_in_the_schema_without_secrets_in_answers(client) -> None:
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    paths = schema["paths"]
    for path in ("/api/connections/", "/api/connections/{name}/", "/api/connections/{name}/test"):
        assert path in paths, sorted(paths)
    assert "post" in paths["/api/connections/{name}/push"]
    answer = schema["components"]["schemas"]["ConnectionOut"]["properties"]
    assert "secrets" not in answer and "secrets_set" in answer
    assert "secrets" in schema["components"]["schemas"]["ConnectionInRequest"]["properties"]
