"""HTTP source credentials encrypted at rest (issue 15): the database row holds no plain token, password or secret
header; the API, the admin and the audit rows never show them; the facade still authenticates against a real legacy
API on 127.0.0.1 with bearer, basic and an API-key header; an update that does not resend a secret keeps it; the
migration encrypts rows stored before (and decrypts them back); a key that cannot decrypt them is a clear 503."""

from __future__ import annotations

import base64
import importlib
import json
import logging

import pytest
from django.apps import apps as django_apps
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client

from mappings import caches, secrets
from mappings.models import AuditEvent, DataSource
from tests.api.conftest import client_for
from tests.facade.test_live_sources import facade_over, http_config
from tests.legacy_http import JsonHandler, allowed_server

pytestmark = pytest.mark.django_db(transaction=True)
TOKEN = "tok-7d1f0c9a-plain"
PASSWORD = "pw-55e1b2-plain"
API_KEY = "key-90aa3c-plain"
SECRETS = (TOKEN, PASSWORD, API_KEY)
ROW = {"MRN": "M0001", "FirstName": "Ada", "LastName": "Lovelace", "Gender": "F", "DOB": "18151210", "PatientId": 1}


class Legacy(JsonHandler):
    """Answers only requests carrying the credentials the test expects (a 401 otherwise)."""

    expected: dict[str, str] = {}

    def do_GET(self) -> None:  # noqa: N802 — http.server names it
        ok = all(self.headers.get(name) == value for name, value in Legacy.expected.items())
        self.send_json(200 if ok else 401, {"items": [ROW]} if ok else {})


@pytest.fixture
def legacy(settings):
    with allowed_server(Legacy, settings) as base:
        caches.clear()
        yield base


AUTHS = {
    "bearer": ({"type": "bearer", "token": TOKEN}, {}, {"Authorization": f"Bearer {TOKEN}"}),
    "basic": (
        {"type": "basic", "username": "svc", "password": PASSWORD},
        {"X-Api-Key": API_KEY, "Accept": "application/json"},
        {"Authorization": "Basic " + base64.b64encode(f"svc:{PASSWORD}".encode()).decode(), "X-Api-Key": API_KEY},
    ),
}


def stored_text(name: str) -> str:
    with connection.cursor() as cursor:  # the row as the database holds it
        cursor.execute("SELECT config FROM mappings_datasource WHERE name = %s", [name])
        value = cursor.fetchone()[0]
    return value if isinstance(value, str) else json.dumps(value)


def search(client) -> object:
    return client.get("/fhir/legacy-http/Patient?family=love")


@pytest.mark.parametrize("kind", sorted(AUTHS))
def test_the_row_holds_no_secret_and_the_source_still_authenticates(
    kind, client, users, json_patient, legacy, caplog
) -> None:
    caplog.set_level(logging.DEBUG)  # everything logged on the way (requests, urllib3, the facade) is checked
    auth, headers, Legacy.expected = AUTHS[kind]
    facade_over(users, json_patient, "http", http_config(legacy, auth=auth, headers=headers))
    text = stored_text("legacy-http")
    assert not any(secret in text for secret in SECRETS), text
    assert secrets.PREFIX in text
    found = search(client)
    assert found.status_code == 200 and found.json()["total"] == 1, found.content
    Legacy.expected = {**Legacy.expected, "Authorization": "something else"}
    assert search(client).status_code == 502  # the legacy API's 401: the check above was real
    assert caplog.records and not any(secret in caplog.text for secret in SECRETS)


def test_the_api_the_admin_and_the_audit_never_show_a_secret(users, json_patient, legacy) -> None:
    author = client_for(users["author"])
    auth, headers, _ = AUTHS["basic"]
    created = author.post(
        "/api/sources/",
        {
            "name": "vault",
            "source_format": "json",
            "kind": "http",
            "config": http_config(legacy, auth=auth, headers=headers),
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    shown = author.get("/api/sources/vault/").json()["config"]
    assert shown["auth"] == {"type": "basic", "username": "svc", "password": secrets.MASK}
    assert shown["headers"] == {"X-Api-Key": secrets.MASK, "Accept": "application/json"}
    changed = author.patch("/api/sources/vault/", {"config": {**shown, "timeout_s": 3}}, format="json")
    assert changed.status_code == 200, changed.content
    answers = [created, changed, author.get("/api/sources/"), author.get("/api/sources/vault/")]
    admin = User.objects.create_superuser("root", password="pw-root")
    pages = Client()
    pages.force_login(admin)
    source = DataSource.objects.get(name="vault")
    answers += [pages.get("/admin/mappings/datasource/"), pages.get(f"/admin/mappings/datasource/{source.pk}/change/")]
    change_page = answers[-1].content.decode()
    assert secrets.PREFIX not in change_page and secrets.MASK in change_page  # masked, not even the ciphertext
    answers += [client_for(users["admin"]).get("/api/audit/")]
    for answer in answers:
        assert answer.status_code == 200 or answer.status_code == 201, answer
        assert not any(secret in answer.content.decode() for secret in SECRETS), answer.content[:400]
    rows = json.dumps(list(AuditEvent.objects.values("before", "after", "details")))
    assert AuditEvent.objects.filter(action="source.updated", object_id=str(source.pk)).exists()
    assert not any(secret in rows for secret in SECRETS) and secrets.PREFIX not in rows


def test_an_update_keeps_secrets_it_does_not_resend(client, users, json_patient, legacy) -> None:
    auth, headers, Legacy.expected = AUTHS["basic"]
    facade_over(users, json_patient, "http", http_config(legacy, auth=auth, headers=headers))
    author = client_for(users["author"])
    assert search(client).status_code == 200
    # the description alone; then the settings as read (masked), without the password, with a new timeout
    assert author.patch("/api/sources/legacy-http/", {"description": "core"}, format="json").status_code == 200
    shown = author.get("/api/sources/legacy-http/").json()["config"]
    resent = {**shown, "auth": {"type": "basic", "username": "svc"}, "timeout_s": 4}
    assert author.patch("/api/sources/legacy-http/", {"config": resent}, format="json").status_code == 200
    assert search(client).status_code == 200  # the stored password and API key are still sent
    assert PASSWORD not in stored_text("legacy-http")
    # a new password replaces it, at once on the live facade
    changed = {**shown, "auth": {"type": "basic", "username": "svc", "password": "a-new-one"}}
    assert author.patch("/api/sources/legacy-http/", {"config": changed}, format="json").status_code == 200
    assert search(client).status_code == 502
    # "***" where nothing is stored is refused
    bad = {**shown, "headers": {"X-Token": secrets.MASK}}
    refused = author.patch("/api/sources/legacy-http/", {"config": bad}, format="json")
    assert refused.status_code == 400 and refused.json()["code"] == "invalid", refused.content


def test_a_key_that_cannot_decrypt_is_a_clear_error_and_an_old_key_still_decrypts(
    client, users, json_patient, legacy, settings
) -> None:
    auth, headers, Legacy.expected = AUTHS["bearer"]
    facade_over(users, json_patient, "http", http_config(legacy, auth=auth, headers=headers))
    old = settings.FHIR_STUDIO["SECRETS_KEYS"]
    settings.FHIR_STUDIO = {**settings.FHIR_STUDIO, "SECRETS_KEYS": ["a-different-key-of-32-characters!!"]}
    wrong = search(client)
    assert wrong.status_code == 503
    assert "FHIR_STUDIO_SECRETS_KEY" in wrong.json()["issue"][0]["diagnostics"]
    settings.FHIR_STUDIO = {**settings.FHIR_STUDIO, "SECRETS_KEYS": ["a-different-key-of-32-characters!!", *old]}
    assert search(client).status_code == 200  # rotated: the new key first, the old one still decrypts


def test_the_migration_encrypts_plain_rows_and_reverses(users) -> None:
    migration = importlib.import_module("mappings.migrations.0020_encrypt_source_secrets")
    plain = {
        "base_url": "http://127.0.0.1",
        "auth": {"type": "bearer", "token": TOKEN},
        "headers": {"Authorization": f"Token {API_KEY}", "Accept": "text/plain"},
    }
    DataSource.objects.create(name="old", kind="http", source_format="json", config=plain)  # as stored before
    migration.encrypt(django_apps, None)
    text = stored_text("old")
    assert not any(secret in text for secret in SECRETS) and "text/plain" in text
    sealed = DataSource.objects.get(name="old").config
    migration.encrypt(django_apps, None)  # again: rows already encrypted are left alone
    assert DataSource.objects.get(name="old").config == sealed
    assert secrets.opened(sealed) == plain
    migration.decrypt(django_apps, None)
    assert DataSource.objects.get(name="old").config == plain
