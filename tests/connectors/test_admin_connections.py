"""The admin console's connection pages write through the connection actions: added with a write-only secret (never
put back in the page), refused with the action's message, changed keeping the secret, tested, removed."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

import mappings.admin_connections  # noqa: F401 — registers the pages (mappings/admin.py imports it too)
from mappings.models import AuditEvent, Connection
from mappings.secrets import decrypt
from tests.connectors.conftest import Answer

pytestmark = pytest.mark.django_db
FORM = {
    "name": "hub",
    "base_url": "https://fhir.example.org/r4",
    "auth_mode": "bearer",
    "auth": "{}",
    "timeout_seconds": "10",
    "max_retries": "2",
}


@pytest.fixture
def console() -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser("root", password="pw-root"))
    return client


def test_an_admin_adds_changes_and_removes_a_connection_without_seeing_its_secret(console) -> None:
    answer = console.post(reverse("admin:mappings_connection_add"), {**FORM, "token": "tok-123"})
    assert answer.status_code == 302, answer.content[-2000:]
    connection = Connection.objects.get(name="hub")
    assert decrypt(connection.secrets["token"]) == "tok-123"
    assert AuditEvent.objects.get(action="connection.created").actor.username == "root"

    change = reverse("admin:mappings_connection_change", args=[connection.pk])
    page = console.get(change).content.decode()
    assert "tok-123" not in page and connection.secrets["token"] not in page and "token" in page
    kept = console.post(change, {**FORM, "timeout_seconds": "20", "token": ""})
    assert kept.status_code == 302, kept.content[-2000:]
    connection.refresh_from_db()
    assert connection.timeout_seconds == 20 and decrypt(connection.secrets["token"]) == "tok-123"
    assert console.post(change, {**FORM, "token": "tok-456"}).status_code == 302
    connection.refresh_from_db()
    assert decrypt(connection.secrets["token"]) == "tok-456"

    listed = console.get(reverse("admin:mappings_connection_changelist")).content.decode()
    assert "fhir.example.org" in listed and "tok-" not in listed
    removed = console.post(reverse("admin:mappings_connection_delete", args=[connection.pk]), {"post": "yes"})
    assert removed.status_code == 302 and not Connection.objects.exists()


def test_the_admin_refuses_a_mode_without_its_secret_with_the_actions_message(console) -> None:
    refused = console.post(reverse("admin:mappings_connection_add"), FORM, follow=True)
    assert "needs token in secrets" in refused.content.decode()
    assert not Connection.objects.exists()


def test_an_admin_tests_connections_from_the_list(console, settings, stub) -> None:
    settings.FHIR_STUDIO = {**settings.FHIR_STUDIO, "CONNECTION_ALLOWED_HOSTS": [stub.host]}
    added = console.post(reverse("admin:mappings_connection_add"), {**FORM, "base_url": stub.base, "token": "tok-1"})
    assert added.status_code == 302, added.content[-3000:]
    stub.on("/fhir/metadata", Answer(401, {"resourceType": "OperationOutcome", "issue": []}))
    changelist = reverse("admin:mappings_connection_changelist")
    pk = Connection.objects.get().pk
    answer = console.post(changelist, {"action": "test_connections", "_selected_action": [pk]}, follow=True)
    assert Connection.objects.get().check_code == "unauthorized"
    assert "hub: unauthorized: metadata: 401" in answer.content.decode().lower()  # the page capitalises it
