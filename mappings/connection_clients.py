"""How the studio talks to a connection: `client_for(connection)` is a mappings.connectors.FhirClient with the
connection's timeout, retries and auth, and the host allow-list FHIR_STUDIO["CONNECTION_ALLOWED_HOSTS"]
(FHIR_STUDIO_CONNECTION_ALLOWED_HOSTS) applied with mappings/outbound.py's rules to every URL it calls. Secrets are
opened here, right before a request, and never kept.

Not an action (it writes nothing), so the facade's read path can open a connection too: a `fhir-server` data source
is read through it (mappings/facade/live.py), and the layers contract keeps the facade's views away from actions.

`shared_client(connection)` is the facade's: one client per connection per process, kept while the connection's
settings, sealed secrets, the host allow-list and the secrets keys are what it was built from, so a pull read reuses
the client's HTTP connections and its token (building one per request cost a new session, a TCP connect, opening the
secrets and, for token modes, a token request: bench/pull.py). It is keyed by that content, not by a timestamp, so a
change made any way (an action, the admin, another worker) is seen on the next request. `client_for` stays a fresh
client: "Test connection" must ask for a token again, not show a cached one still working."""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict

import orjson
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


MAX_SHARED = 64  # clients kept per process: one per connection in use; the least recently used is closed past it
_shared: OrderedDict[int, tuple[bytes, FhirClient]] = OrderedDict()
_shared_lock = threading.Lock()


def shared_client(connection: Connection) -> FhirClient:
    """The process's client of the connection, built again when what it was built from changed. Thread-safe: the
    client's session pools its sockets per thread-safe urllib3 pool, and its token cache holds a lock."""
    stamp = _stamp(connection)
    with _shared_lock:
        kept = _shared.get(connection.pk)
        if kept is not None and kept[0] == stamp:
            _shared.move_to_end(connection.pk)
            return kept[1]
    built = client_for(connection)  # outside the lock: opening secrets and loading a key takes milliseconds
    with _shared_lock:
        kept = _shared.get(connection.pk)
        if kept is not None and kept[0] == stamp:  # another thread built it meanwhile: use one, close the other
            built.transport.close()
            return kept[1]
        _shared[connection.pk] = (stamp, built)
        _shared.move_to_end(connection.pk)
        dropped = [kept[1]] if kept is not None else []
        while len(_shared) > MAX_SHARED:
            dropped.append(_shared.popitem(last=False)[1][1])
    for client in dropped:
        client.transport.close()  # in-flight requests finish: a closed pool only stops handing out its sockets
    return built


def forget_shared_clients() -> None:
    """Close and drop every kept client (tests, between databases whose ids repeat)."""
    with _shared_lock:
        dropped = [client for _, client in _shared.values()]
        _shared.clear()
    for client in dropped:
        client.transport.close()


def _stamp(connection: Connection) -> bytes:
    """A digest of everything a client is built from. The sealed secrets are hashed, never opened, here."""
    built_from = [
        connection.base_url,
        connection.timeout_seconds,
        connection.max_retries,
        connection.auth_mode,
        connection.auth,
        connection.secrets,
        allowed_hosts(),
        settings.FHIR_STUDIO["SECRETS_KEYS"],  # new keys may no longer open the secrets: that must show at once
    ]
    return hashlib.blake2b(orjson.dumps(built_from, option=orjson.OPT_SORT_KEYS), digest_size=16).digest()


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
