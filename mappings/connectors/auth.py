"""How the client signs in: no auth, HTTP basic, a static bearer token, OAuth2 client credentials with a client
secret, and SMART Backend Services (RFC 7523 private_key_jwt, RS384 or ES384). Token-based modes fetch a token when
the first request needs one and keep it until shortly before it expires; a 401 drops it so the next try gets a new one.
The token endpoint, when not given, comes from {base}/.well-known/smart-configuration."""

from __future__ import annotations

import base64
import threading
import time
import uuid
from dataclasses import dataclass, field

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, RSAKey

from mappings.connectors.errors import FhirError, code_of_status
from mappings.connectors.transport import Transport

ALGORITHMS = ("RS384", "ES384")
ASSERTION_SECONDS = 240  # the studio's token endpoint (and most) accept at most five minutes
EXPIRY_MARGIN_SECONDS = 30  # a token that would run out mid-request is renewed first
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


class Auth:
    """No auth: the base every mode extends."""

    renewable = False  # a token the client can fetch again after a 401

    def headers(self, transport: Transport, base_url: str) -> dict[str, str]:
        return {}

    def forget(self) -> None:
        """A 401 said the credentials no longer work: drop anything cached."""


@dataclass
class BasicAuth(Auth):
    username: str
    password: str = field(repr=False)

    def headers(self, transport: Transport, base_url: str) -> dict[str, str]:
        pair = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        return {"Authorization": f"Basic {pair}"}


@dataclass
class BearerAuth(Auth):
    token: str = field(repr=False)

    def headers(self, transport: Transport, base_url: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class _TokenAuth(Auth):
    """A token from a token endpoint, cached until EXPIRY_MARGIN_SECONDS before it runs out."""

    client_id: str
    scope: str = ""
    token_url: str = ""  # empty: discovered from .well-known/smart-configuration
    _token: str = field(default="", repr=False, init=False)
    _expires_at: float = field(default=0.0, repr=False, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, init=False)
    tokens_fetched: int = field(default=0, init=False)
    renewable = True

    def headers(self, transport: Transport, base_url: str) -> dict[str, str]:
        with self._lock:
            if not self._token or time.time() >= self._expires_at - EXPIRY_MARGIN_SECONDS:
                self._fetch(transport, base_url)
            return {"Authorization": f"Bearer {self._token}"}

    def forget(self) -> None:
        with self._lock:
            self._token, self._expires_at = "", 0.0

    def endpoint(self, transport: Transport, base_url: str) -> str:
        if not self.token_url:
            self.token_url = discover_token_url(transport, base_url)
        return self.token_url

    def _fetch(self, transport: Transport, base_url: str) -> None:
        url = self.endpoint(transport, base_url)
        form, headers = self._request(url)
        if self.scope:
            form["scope"] = self.scope
        response = transport.request(
            "POST", url, data=form, headers={"Accept": "application/json", **headers}, retry_posts=True
        )
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.status_code != 200 or not isinstance(body, dict) or not body.get("access_token"):
            said = body.get("error_description") or body.get("error") if isinstance(body, dict) else ""
            code = "unauthorized" if response.status_code in (400, 401, 403) else code_of_status(response.status_code)
            raise FhirError(
                code,
                f"The token endpoint refused the client {self.client_id!r} ({response.status_code}): {said or '-'}",
                status=response.status_code,
            )
        self._token = str(body["access_token"])
        lifetime = body.get("expires_in")
        self._expires_at = time.time() + (float(lifetime) if isinstance(lifetime, int | float) else 300.0)
        self.tokens_fetched += 1

    def _request(self, token_url: str) -> tuple[dict, dict]:
        raise NotImplementedError


@dataclass
class ClientCredentialsAuth(_TokenAuth):
    """OAuth2 client credentials with a client secret, sent as HTTP basic (client_secret_basic, RFC 6749 §2.3.1)."""

    client_secret: str = field(default="", repr=False)

    def _request(self, token_url: str) -> tuple[dict, dict]:
        pair = base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
        return {"grant_type": "client_credentials"}, {"Authorization": f"Basic {pair}"}


@dataclass
class SmartBackendAuth(_TokenAuth):
    """SMART Backend Services: a JWT signed with the client's private key (PEM) asks for the token."""

    private_key: str = field(default="", repr=False)
    key_id: str = ""
    algorithm: str = "RS384"

    def __post_init__(self) -> None:
        if self.algorithm not in ALGORITHMS:
            raise FhirError("invalid_auth", f"SMART Backend Services signs with RS384 or ES384, not {self.algorithm}.")
        self._key = signing_key(self.private_key, self.algorithm)

    def assertion(self, token_url: str) -> str:
        now = int(time.time())
        claims = {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": token_url,
            "exp": now + ASSERTION_SECONDS,
            "iat": now,
            "jti": uuid.uuid4().hex,
        }
        header = {"alg": self.algorithm, "typ": "JWT"}
        if self.key_id:
            header["kid"] = self.key_id
        return jwt.encode(header, claims, self._key, algorithms=[self.algorithm])

    def _request(self, token_url: str) -> tuple[dict, dict]:
        form = {
            "grant_type": "client_credentials",
            "client_assertion_type": JWT_BEARER,
            "client_assertion": self.assertion(token_url),
        }
        return form, {}


def signing_key(pem: str, algorithm: str) -> RSAKey | ECKey:
    """The private key of a PEM, of the type the algorithm needs; FhirError('invalid_auth') otherwise."""
    kind = RSAKey if algorithm == "RS384" else ECKey
    try:
        key = kind.import_key(pem)
    except (JoseError, ValueError, TypeError) as exc:
        raise FhirError("invalid_auth", f"The private key is not a PEM {kind.key_type} key for {algorithm}.") from exc
    if not key.is_private:
        raise FhirError("invalid_auth", "The key is a public key: SMART Backend Services needs the private key.")
    if kind is ECKey and key.curve_name != "P-384":
        raise FhirError("invalid_auth", f"ES384 needs a P-384 key, not {key.curve_name}.")
    return key


def discover_token_url(transport: Transport, base_url: str) -> str:
    url = base_url.rstrip("/") + "/.well-known/smart-configuration"
    response = transport.request("GET", url, headers={"Accept": "application/json"})
    try:
        found = response.json().get("token_endpoint") if response.status_code == 200 else None
    except (ValueError, AttributeError):
        found = None
    if not isinstance(found, str) or not found:
        raise FhirError(
            "unauthorized",
            f"No token endpoint: {url} answered {response.status_code} without a token_endpoint; set the token URL.",
            status=response.status_code,
        )
    return found
