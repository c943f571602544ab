"""Connections to other FHIR servers (issue 16): where a server is, how to sign in to it, and what its last check
found. The client itself is mappings/connectors/ (no models); writes are mappings/actions/connections.py."""

from __future__ import annotations

from django.db import models


class AuthMode(models.TextChoices):
    NONE = "none"
    BASIC = "basic"
    BEARER = "bearer"
    CLIENT_CREDENTIALS = "client-credentials"
    SMART_BACKEND = "smart-backend"


# The secrets each mode needs, stored sealed in Connection.secrets (mappings/secrets.py) and never shown.
SECRETS_OF_MODE = {
    AuthMode.NONE: (),
    AuthMode.BASIC: ("password",),
    AuthMode.BEARER: ("token",),
    AuthMode.CLIENT_CREDENTIALS: ("client_secret",),
    AuthMode.SMART_BACKEND: ("private_key",),
}


class Connection(models.Model):
    name = models.SlugField(max_length=100, unique=True)
    base_url = models.URLField(max_length=500)
    timeout_seconds = models.FloatField(default=30.0)
    max_retries = models.PositiveSmallIntegerField(default=3)
    auth_mode = models.CharField(max_length=30, choices=AuthMode.choices, default=AuthMode.NONE)
    # Settings that are not secret: username, client_id, scope, token_url (discovered when empty), key_id, algorithm.
    auth = models.JSONField(default=dict, blank=True)
    # {"password" | "token" | "client_secret" | "private_key": "fernet:..."}: sealed, write-only.
    secrets = models.JSONField(default=dict, blank=True)
    # The last check (POST /api/connections/{name}/test): a stable code and what the server's metadata said.
    check_code = models.CharField(max_length=30, blank=True)
    check_message = models.TextField(blank=True)
    software = models.CharField(max_length=200, blank=True)
    fhir_version = models.CharField(max_length=20, blank=True)
    resource_types = models.JSONField(default=list, blank=True)
    interactions = models.JSONField(default=dict, blank=True)  # {resource type: [interaction codes]}
    checked_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def secrets_set(self) -> list[str]:
        """The names of the secrets that are stored (what the API may say about them)."""
        return sorted(key for key, value in self.secrets.items() if value)
