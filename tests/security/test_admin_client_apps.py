"""The admin console's client-app pages write through the security actions: registered with a public JWKS and audited,
a private key refused with the action's message, deactivated and removed."""

from __future__ import annotations

import orjson
import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from joserfc.jwk import ECKey

import mappings.admin_security  # noqa: F401 — registers the pages (mappings/admin.py imports it too)
from mappings import actions
from mappings.models import AuditEvent, ClientApp

pytestmark = pytest.mark.django_db


@pytest.fixture
def console() -> Client:
    superuser = User.objects.create_superuser("root", password="pw-root")
    client = Client()
    client.force_login(superuser)
    return client


def jwks(private: bool = False) -> str:
    return orjson.dumps({"keys": [ECKey.generate_key("P-384").as_dict(private=private, kid="a1")]}).decode()


def test_an_admin_registers_deactivates_and_removes_a_client_app(console) -> None:
    facade = actions.do_create_facade(acting_user=None, slug="ward", title="Ward", auth_mode="smart-backend")
    add = reverse("admin:mappings_clientapp_add")
    form = {"client_id": "lab", "name": "Lab", "facades": [facade.pk], "scopes": '["system/*.rs"]', "jwks": jwks()}
    answer = console.post(add, {**form, "jwks_url": ""})
    assert answer.status_code == 302, answer.content[-2000:]
    client_app = ClientApp.objects.get(client_id="lab")
    assert list(client_app.facades.all()) == [facade]
    assert AuditEvent.objects.get(action="client_app.registered").actor.username == "root"
    listed = console.get(reverse("admin:mappings_clientapp_changelist")).content.decode()
    assert "system/*.rs" in listed and "ward" in listed

    refused = console.post(add, {**form, "client_id": "other", "jwks": jwks(private=True), "jwks_url": ""}, follow=True)
    assert "private key" in refused.content.decode() and not ClientApp.objects.filter(client_id="other").exists()

    change = reverse("admin:mappings_clientapp_change", args=[client_app.pk])
    changed = console.post(
        change, {**form, "active": "", "jwks": orjson.dumps(client_app.jwks).decode(), "jwks_url": ""}
    )
    assert changed.status_code == 302 and not ClientApp.objects.get(client_id="lab").active
    deleted = console.post(reverse("admin:mappings_clientapp_delete", args=[client_app.pk]), {"post": "yes"})
    assert deleted.status_code == 302 and not ClientApp.objects.exists()
    assert AuditEvent.objects.filter(action="client_app.deleted").count() == 1
