"""How the studio talks to a connection: `client_for(connection)` is a mappings.connectors.FhirClient with the
connection's timeout, retries and auth, and the host allow-list FHIR_STUDIO["CONNECTION_ALLOWED_HOSTS"]
(FHIR_STUDIO_CONNECTION_ALLOWED_HOSTS) applied with mappings/outbound.py's rules to every URL it calls. Secrets are
opened here, right before a request, and never kept.

Not an action (it writes nothing), so the facade's read path can open a connection too: a `fhir-server` data source
is read through it (mappings/facade/live.py), and the layers contract keeps the facade's views away from actions."""

from __future__ import annotations

from django.conf import settings

from mappings import secrets
from mappings.connectors import (
    Auth,
    BasicAuth,
    BearerAuth,
    ClientCredentialsAuth,
    FhirClient,
    RetryPolicy,
    SmartBackendAuth,
    Transport,
)
from mappings.models import AuthMode, Connection


def allowed_hosts() -> tuple[str, ...]:
    return tuple(settings.FHIR_STUDIO["CONNECTION_ALLOWED_HOSTS"])


def client_for(connection: Connection) -> FhirClient:
    """The client of one connection, its secrets opened for this call only."""
    transport = Transport(
        timeout_seconds=connection.timeout_seconds,
        retry=RetryPolicy(max_retries=connection.max_retries),
        allowed_hosts=allowed_hosts(),
    )
    return FhirClient(connection.base_url, auth=_auth(connection), transport=transport)


def _auth(connection: Connection) -> Auth:
    opened = {key: secrets.decrypt(value) for key, value in connection.secrets.items() if value}
    given = connection.auth
    mode = connection.auth_mode
    if mode == AuthMode.BASIC:
        return BasicAuth(given.get("username", ""), opened.get("password", ""))
    if mode == AuthMode.BEARER:
        return BearerAuth(opened.get("token", ""))
    common = {
        "client_id": given.get("client_id", ""),
        "scope": given.get("scope", ""),
        "token_url": given.get("token_url", ""),
    }
    if mode == AuthMode.CLIENT_CREDENTIALS:
        return ClientCredentialsAuth(**common, client_secret=opened.get("client_secret", ""))
    if mode == AuthMode.SMART_BACKEND:
        return SmartBackendAuth(
            **common,
            private_key=opened.get("private_key", ""),
            key_id=given.get("key_id", ""),
            algorithm=given.get("algorithm", "RS384"),
        )
    return Auth()
