"""The client assertion of a token request (SMART Backend Services, RFC 7523 private_key_jwt): a JWT the client
signed with its private key, RS384 or ES384, checked against the public keys it registered (an inline JWKS, or a JWKS
URL on the allow-list, fetched with a timeout and cached).

Checked: the algorithm, the signature, iss = sub = the client's id, aud = this token endpoint's URL, exp present and
at most five minutes ahead, and a jti never seen before (kept in UsedAssertion until the assertion expires)."""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime
from urllib.parse import urlsplit

import orjson
import requests
from django.conf import settings
from django.db import IntegrityError, transaction
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from mappings.models import ClientApp, UsedAssertion
from mappings.outbound import OutboundRefusedError, check_outbound_url, pinned_session

logger = logging.getLogger(__name__)

ALGORITHMS = ("RS384", "ES384")
KEY_TYPES = {"RS384": "RSA", "ES384": "EC"}
MAX_LIFETIME_SECONDS = 300
CLOCK_SKEW_SECONDS = 60  # a client's clock may run a little ahead of ours
JWKS_TIMEOUT_SECONDS = 5
JWKS_CACHE_SECONDS = 300
JWKS_MAX_BYTES = 100_000

_fetched: dict[str, tuple[float, dict]] = {}
_fetched_lock = threading.Lock()


class OAuthError(Exception):
    """An OAuth error for the token response: `error` is RFC 6749's code, the message its description."""

    def __init__(self, error: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.error = error
        self.message = message
        self.status = status


def _invalid_client(message: str) -> OAuthError:
    return OAuthError("invalid_client", message, 401)


def unverified_parts(assertion: str) -> tuple[dict, dict]:
    """(header, claims) before any check: they say which client, and which of its keys, to check with."""
    try:
        found = jws.extract_compact(assertion.encode())
        payload = orjson.loads(found.payload)
    except (JoseError, ValueError) as exc:
        raise _invalid_client("client_assertion is not a JWT (header.payload.signature).") from exc
    if not isinstance(payload, dict):
        raise _invalid_client("client_assertion's payload is not a JSON object.")
    return dict(found.headers()), payload


def claimed_client_id(assertion: str) -> str:
    """Who the assertion says it is from, unchecked: for the audit row of a refused request only."""
    try:
        return str(unverified_parts(assertion)[1].get("iss", ""))[:100]
    except OAuthError:
        return ""


def verified_client(assertion: str, token_url: str, facade_id: int) -> ClientApp:
    """The active client app that signed `assertion` for this token endpoint, with its jti recorded; or the reason
    it is refused."""
    header, claims = unverified_parts(assertion)
    algorithm = header.get("alg")
    if algorithm not in ALGORITHMS:
        raise _invalid_client(f"client_assertion is signed with {algorithm!r}: this endpoint takes RS384 or ES384.")
    client_id = claims.get("iss")
    client = ClientApp.objects.filter(client_id=str(client_id), active=True, facades__id=facade_id).first()
    if not isinstance(client_id, str) or client is None:
        # Unknown, inactive, or not allowed this facade: the same answer, so client ids cannot be probed.
        raise _invalid_client(f"No active client app '{client_id}' may use this facade.")
    _check_signature(assertion, algorithm, header.get("kid"), client)
    _check_claims(claims, client_id, token_url)
    _record_jti(client_id, claims)
    return client


def _check_signature(assertion: str, algorithm: str, kid: object, client: ClientApp) -> None:
    keys = [
        key
        for key in _public_keys(client)
        if key.key_type == KEY_TYPES[algorithm] and (kid is None or key.kid == kid) and not key.is_private
    ]
    if not keys:
        raise _invalid_client(f"Client app '{client.client_id}' registered no {KEY_TYPES[algorithm]} key {kid or ''}.")
    for key in keys:
        try:
            jwt.decode(assertion, key, algorithms=[algorithm])
            return
        except (JoseError, ValueError):
            continue
    raise _invalid_client("client_assertion's signature does not verify with the client app's registered keys.")


def _check_claims(claims: dict, client_id: str, token_url: str) -> None:
    if claims.get("sub") != client_id:
        raise _invalid_client("client_assertion: sub must equal iss (the client id).")
    audience = claims.get("aud")
    if audience != token_url and not (isinstance(audience, list) and token_url in audience):
        raise _invalid_client(f"client_assertion: aud must be this token endpoint, {token_url}.")
    expires, now = claims.get("exp"), time.time()
    if not isinstance(expires, int | float) or isinstance(expires, bool):
        raise _invalid_client("client_assertion has no exp.")
    if expires <= now:
        raise _invalid_client("client_assertion has expired.")
    if expires > now + MAX_LIFETIME_SECONDS + CLOCK_SKEW_SECONDS:
        raise _invalid_client("client_assertion's exp is more than five minutes ahead.")
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti or len(jti) > 200:
        raise _invalid_client("client_assertion needs a jti (a unique id of up to 200 characters).")


def _record_jti(client_id: str, claims: dict) -> None:
    now = datetime.now(UTC)
    # Expired rows can never match a valid assertion again: drop them as new ones arrive (an indexed range delete).
    UsedAssertion.objects.filter(expires_at__lt=now).delete()
    try:
        with transaction.atomic():
            UsedAssertion.objects.create(
                client_id=client_id, jti=claims["jti"], expires_at=datetime.fromtimestamp(claims["exp"], UTC)
            )
    except IntegrityError as exc:
        raise _invalid_client("client_assertion was used before (its jti is replayed).") from exc


def _public_keys(client: ClientApp) -> list:
    document = client.jwks if client.jwks else _fetched_jwks(client.jwks_url)
    try:
        return list(KeySet.import_key_set(document).keys)
    except (JoseError, ValueError, TypeError, KeyError) as exc:
        raise _invalid_client(f"Client app '{client.client_id}' has no readable JWKS.") from exc


def jwks_url_allowed(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.username or parts.password:
        return False
    hosts = settings.FHIR_STUDIO.get("JWKS_ALLOWED_HOSTS") or ()
    host = parts.hostname.lower()
    return host in hosts or f"{host}:{parts.port}" in hosts


def _fetched_jwks(url: str) -> dict:
    if not url or not jwks_url_allowed(url):
        raise _invalid_client(f"The client app's JWKS URL {url!r} is not on the allow-list (JWKS_ALLOWED_HOSTS).")
    with _fetched_lock:
        cached = _fetched.get(url)
    if cached is not None and cached[0] > time.monotonic():
        return cached[1]
    try:
        # the allow-list again, and the address the name resolves to: a listed name cannot lead to a private address
        address = check_outbound_url(url, settings.FHIR_STUDIO.get("JWKS_ALLOWED_HOSTS") or ())
    except OutboundRefusedError as exc:
        raise _invalid_client(f"The client app's JWKS URL may not be fetched: {exc}") from exc
    try:
        with pinned_session(address) as session:
            response = session.get(url, timeout=JWKS_TIMEOUT_SECONDS, allow_redirects=False, stream=True)
            body = response.raw.read(JWKS_MAX_BYTES + 1, decode_content=True)
    except requests.RequestException as exc:
        logger.warning("JWKS fetch failed for %s: %s", url, type(exc).__name__)
        raise _invalid_client(f"The client app's JWKS URL {url} did not answer.") from exc
    if response.status_code != 200 or len(body) > JWKS_MAX_BYTES:
        raise _invalid_client(f"The client app's JWKS URL {url} answered {response.status_code}, not a JWKS.")
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise _invalid_client(f"The client app's JWKS URL {url} answered no JSON.") from exc
    with _fetched_lock:
        _fetched[url] = (time.monotonic() + JWKS_CACHE_SECONDS, document)
    return document


def forget_fetched_jwks() -> None:
    with _fetched_lock:
        _fetched.clear()
