"""Facades behind an external OAuth2 authorization server: bearer tokens checked by token introspection (RFC 7662).

A facade with auth_mode "introspection" names the server's introspection endpoint and the client id and secret the
studio authenticates with there (HTTP Basic, RFC 7662 §2.1); the secret is stored sealed (mappings/secrets.py) and
never shown back. The endpoint's host must be on FHIR_STUDIO["INTROSPECTION_ALLOWED_HOSTS"] and pass the studio's one
outbound check (mappings/outbound.py: the resolved address too, no redirects).

For each request the bearer token is POSTed there (`token`, `token_type_hint=access_token`) and the answer honoured:
`active` false, an `exp` in the past or an `aud` that does not name the facade (its base URL, or the audience
configured) → 401; `scope` → a Grant, enforced exactly as a studio-issued token's (mappings/security/enforcement.py,
scopes.py): SMART system scopes count, other scopes (openid, user/…, query-narrowed ones) grant nothing. An answer for
an active token is kept in the cache (by facade and SHA-256 of the token, never the token itself) for
min(its exp, 60 s): a client calling with one token is asked about once a minute. Inactive answers are not kept, so
a flood of made-up tokens cannot fill the cache that also holds the sign-in throttle's counts. The server down, slow
past the facade's timeout (5 s by default), or answering anything but a JSON object → 503, never a 500 or a hang."""

from __future__ import annotations

import hashlib
import logging
import math
import time

import requests
from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest

from mappings import secrets
from mappings.errors import FhirError, RequestCode, StudioError
from mappings.models import Facade
from mappings.outbound import OutboundRefusedError, check_outbound_url, pinned_session
from mappings.security.enforcement import CHALLENGE, GRANT
from mappings.security.scopes import Grant, ScopeError, parse_scope

logger = logging.getLogger(__name__)

CACHE_SECONDS = 60
DEFAULT_TIMEOUT_S = 5.0
MAX_TIMEOUT_S = 30.0
# What the API and the admin set, as the model's fields (the nested `introspection` object's keys without prefix)
FIELDS = ("url", "client_id", "client_secret", "audience", "timeout_s")
SECRET_FIELD = "introspection_client_secret"


# --- settings: checked and sealed by the facade actions -------------------------------------------------------------


def allowed_hosts() -> list[str]:
    return list(settings.FHIR_STUDIO.get("INTROSPECTION_ALLOWED_HOSTS", []))


def introspection_changes(auth_mode: str, given: dict | None, previous: Facade | None) -> dict[str, object]:
    """The Facade fields to save for the `introspection` settings a client sent (`given`; None: not sent), the secret
    sealed; or StudioError("invalid"). A secret sent as MASK ("***") or left out keeps the stored one."""
    if auth_mode != Facade.AuthMode.INTROSPECTION:
        if is_given(given):
            raise _invalid("url", f"Introspection settings apply to auth_mode 'introspection', not '{auth_mode}'.")
        return {}
    stored = {name: getattr(previous, f"introspection_{name}") for name in FIELDS} if previous else {}
    merged = {**stored, **{key: value for key, value in (given or {}).items() if value is not None}}
    url = str(merged.get("url") or "")
    if not url:
        raise _invalid("url", "A facade with auth_mode 'introspection' needs the introspection endpoint's URL.")
    try:
        check_outbound_url(url, allowed_hosts())
    except OutboundRefusedError as error:
        raise _invalid(
            "url", f"The introspection endpoint may not be called: {error} (FHIR_STUDIO_INTROSPECTION_ALLOWED_HOSTS)"
        ) from error
    if not merged.get("client_id"):
        raise _invalid("client_id", "The client id the studio authenticates with at the introspection endpoint.")
    secret = str(merged.get("client_secret") or "")
    if secret == secrets.MASK or not secret:
        secret = stored.get("client_secret", "")
        if not secret:
            raise _invalid("client_secret", "The client secret for the introspection endpoint is required.")
    elif not secrets.is_sealed(secret):
        secret = secrets.encrypt(secret)
    timeout = float(merged.get("timeout_s") or DEFAULT_TIMEOUT_S)
    if not 0 < timeout <= MAX_TIMEOUT_S:
        raise _invalid("timeout_s", f"The timeout is more than 0 and at most {MAX_TIMEOUT_S:g} seconds.")
    return {
        "introspection_url": url,
        "introspection_client_id": str(merged["client_id"]),
        SECRET_FIELD: secret,
        "introspection_audience": str(merged.get("audience") or ""),
        "introspection_timeout_s": timeout,
    }


def is_given(given: dict | None) -> bool:
    """Whether settings were sent at all: a form's untouched timeout (its default) alone is not."""
    return bool(given) and any(given.get(name) for name in FIELDS if name != "timeout_s")


def without_secret(values: dict[str, object]) -> dict[str, object]:
    """`values` for an audit row: the sealed secret only said to be set (or changed), never stored there."""
    return {key: (secrets.MASK if key == SECRET_FIELD and value else value) for key, value in values.items()}


def shown(facade: Facade) -> dict[str, object] | None:
    """A facade's introspection settings as the API shows them (the secret masked); None for other auth modes."""
    if facade.auth_mode != Facade.AuthMode.INTROSPECTION:
        return None
    return {
        "url": facade.introspection_url,
        "client_id": facade.introspection_client_id,
        "client_secret": secrets.MASK if facade.introspection_client_secret else "",
        "audience": facade.introspection_audience,
        "timeout_s": facade.introspection_timeout_s,
    }


def _invalid(field: str, message: str) -> StudioError:
    return StudioError("invalid", message, details={"introspection": {field: [message]}})


# --- requests: the gate's check ------------------------------------------------------------------------------------


def authorize_introspected(request: HttpRequest | None, slug: str, facade_id: int, generation: int) -> None:
    """enforcement.authorize's work for a facade whose tokens an external server issues: the request's grant from
    the introspection answer, or 401 (no, inactive, expired or another audience's token) or 503 (server unusable).
    Answers are cached under the facade's generation, which a change of its settings grows: they apply at once."""
    if request is None:
        raise FhirError(401, RequestCode.UNAUTHORIZED, f"The facade '{slug}' requires an access token.")
    kind, _, value = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    token = value.strip()
    if kind.lower() != "bearer" or not token:
        raise _unauthorized(request, slug, f"The facade '{slug}' requires an access token: send Authorization: Bearer.")
    answer = _answer(facade_id, generation, token)
    if answer.get("active") is not True:
        raise _unauthorized(
            request, slug, "The access token is not active (unknown, revoked or expired).", invalid=True
        )
    expires = answer.get("exp")
    if isinstance(expires, (int, float)) and expires <= time.time():
        raise _unauthorized(request, slug, "The access token has expired.", invalid=True)
    audiences = answer.get("aud")
    if audiences is not None and not _names_facade(audiences, _audience(request, slug, answer)):
        raise _unauthorized(
            request, slug, f"The access token was issued for another audience, not '{slug}'.", invalid=True
        )
    client_id = str(answer.get("client_id") or answer.get("sub") or "")
    request.META[GRANT] = Grant(client_id, tuple(_system_scopes(str(answer.get("scope") or ""))))


def _unauthorized(request: HttpRequest, slug: str, message: str, *, invalid: bool = False) -> FhirError:
    challenge = f'Bearer realm="{slug}"'
    request.META[CHALLENGE] = f'{challenge}, error="invalid_token"' if invalid else challenge
    return FhirError(401, RequestCode.UNAUTHORIZED, message)


def _audience(request: HttpRequest, slug: str, answer: dict) -> str:
    return answer["_expected_audience"] or request.build_absolute_uri(f"/fhir/{slug}")


def _names_facade(audiences: object, expected: str) -> bool:
    names = audiences if isinstance(audiences, list) else [audiences]
    return any(isinstance(name, str) and name.rstrip("/") == expected.rstrip("/") for name in names)


def _system_scopes(text: str) -> list:
    scopes = []
    for part in text.split():
        try:
            scopes.append(parse_scope(part))
        except ScopeError:
            continue  # openid, user/…, patient/… or a query-narrowed scope: grants nothing here
    return scopes


def _cache_key(facade_id: int, generation: int, token: str) -> str:
    return f"introspection:{facade_id}:{generation}:{hashlib.sha256(token.encode()).hexdigest()}"


def _answer(facade_id: int, generation: int, token: str) -> dict:
    """The introspection answer for `token` (cached while active), with the facade's expected audience added."""
    key = _cache_key(facade_id, generation, token)
    answer = cache.get(key)
    if answer is not None:
        return answer
    fields = ("introspection_url", "introspection_client_id", SECRET_FIELD, "introspection_audience")
    config = Facade.objects.filter(pk=facade_id).values(*fields, "introspection_timeout_s").get()
    answer = {**_introspect(config, token), "_expected_audience": config["introspection_audience"]}
    if answer.get("active") is True:
        expires = answer.get("exp")
        seconds = CACHE_SECONDS
        if isinstance(expires, (int, float)):
            seconds = min(seconds, math.floor(expires - time.time()))
        if seconds > 0:
            cache.set(key, answer, timeout=seconds)
    return answer


def _introspect(config: dict, token: str) -> dict:
    url, timeout = config["introspection_url"], config["introspection_timeout_s"]
    if not url:
        raise _unavailable("The facade's introspection endpoint is not configured.")
    try:
        address = check_outbound_url(url, allowed_hosts())  # checked again: DNS and the allow-list may have changed
        secret = secrets.decrypt(config[SECRET_FIELD])
    except OutboundRefusedError as error:
        raise _unavailable(f"The introspection endpoint may not be called: {error}") from error
    except secrets.SecretsKeyError as error:
        raise _unavailable(str(error)) from error
    started = time.monotonic()
    try:
        with pinned_session(address) as session:
            response = session.post(
                url,
                data={"token": token, "token_type_hint": "access_token"},
                auth=(config["introspection_client_id"], secret),
                headers={"Accept": "application/json"},
                timeout=timeout,
                allow_redirects=False,
            )
    except requests.Timeout as error:
        raise _unavailable(f"The authorization server did not answer within {timeout:g} s.") from error
    except requests.RequestException as error:
        raise _unavailable(f"The authorization server could not be reached ({type(error).__name__}).") from error
    logger.info(
        "introspection: %s answered %s in %.1f ms", url, response.status_code, 1000 * (time.monotonic() - started)
    )
    if response.status_code != 200:
        raise _unavailable(f"The authorization server's introspection endpoint answered {response.status_code}.")
    try:
        answer = response.json()
    except ValueError as error:
        raise _unavailable("The authorization server's introspection answer is not JSON.") from error
    if not isinstance(answer, dict):
        raise _unavailable("The authorization server's introspection answer is not a JSON object.")
    return answer


def _unavailable(message: str) -> FhirError:
    # A 503: the client did nothing wrong and may retry; the studio cannot tell whether its token is good.
    logger.warning("introspection unavailable: %s", message)
    return FhirError(503, RequestCode.SOURCE_UNAVAILABLE, message)


# --- discovery ------------------------------------------------------------------------------------------------------


def is_introspected(slug: str) -> bool:
    return Facade.objects.filter(slug=slug, auth_mode=Facade.AuthMode.INTROSPECTION).exists()


def introspection_statement(slug: str, service_system: str) -> dict | None:
    """CapabilityStatement.rest.security of a facade whose tokens an external server issues (None for the others):
    service OAuth of `service_system` (restful-security-service, as security/discovery.py names it)."""
    if not is_introspected(slug):
        return None
    return {
        "service": [
            {
                "coding": [{"system": service_system, "code": "OAuth"}],
                "text": "OAuth2 bearer tokens of an external authorization server",
            }
        ],
        "description": "Send Authorization: Bearer <token> from the authorization server the facade's administrator "
        "configured; the studio checks it by token introspection (RFC 7662) and enforces its SMART system scopes.",
    }
