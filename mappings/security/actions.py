"""Writes of SMART Backend Services, each with its audit row: client apps registered, changed and removed, tokens
issued and refused. Secrets never reach the audit trail: a client app's public keys are not secret but are left out
too (their key ids are kept), and tokens are recorded by their client and scopes only."""

from __future__ import annotations

import re
import uuid

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from mappings.access import ServedFacade
from mappings.actions.common import audit
from mappings.errors import StudioError
from mappings.models import AuditAction, ClientApp, Facade
from mappings.security.assertions import jwks_url_allowed
from mappings.security.scopes import Scope, ScopeError, parse_scope
from mappings.security.tokens import issue_token

CLIENT_ID = re.compile(r"^[A-Za-z0-9._-]{1,100}$")


def checked_scopes(scopes: list[str]) -> list[str]:
    if not isinstance(scopes, list) or not scopes:
        raise StudioError("invalid", "A client app needs at least one allowed scope (e.g. system/*.rs).")
    problems = {}
    for text in scopes:
        try:
            parse_scope(str(text))
        except ScopeError as error:
            problems[str(text)] = str(error)
    if problems:
        raise StudioError("invalid", "Some scopes cannot be granted.", details={"scopes": list(problems.values())})
    return list(dict.fromkeys(str(text) for text in scopes))


def checked_jwks(jwks: dict | None, jwks_url: str) -> tuple[dict | None, str]:
    """Exactly one of an inline JWKS of public RSA or EC keys, or an allow-listed JWKS URL."""
    if bool(jwks) == bool(jwks_url):
        raise StudioError("invalid", "Give the client app's public keys as a JWKS or a JWKS URL (one of the two).")
    if jwks_url:
        if not jwks_url_allowed(jwks_url):
            raise StudioError(
                "invalid",
                f"{jwks_url} is not on the JWKS allow-list (FHIR_STUDIO_JWKS_ALLOWED_HOSTS).",
                details={"jwks_url": ["Host not allowed."]},
            )
        return None, jwks_url
    keys = jwks.get("keys") if isinstance(jwks, dict) else None
    if not isinstance(keys, list) or not keys:
        raise StudioError("invalid", 'jwks must be a JWK Set: {"keys": [...]}.', details={"jwks": ["No keys."]})
    if any(isinstance(key, dict) and "d" in key for key in keys):
        raise StudioError("invalid", "jwks holds a private key: register only the public keys.", details={"jwks": []})
    try:
        imported = KeySet.import_key_set(jwks).keys
    except (JoseError, ValueError, TypeError, KeyError) as exc:
        raise StudioError("invalid", f"jwks is not a readable JWK Set: {exc}", details={"jwks": [str(exc)]}) from exc
    if not any(key.key_type in ("RSA", "EC") for key in imported):
        raise StudioError("invalid", "jwks has no RSA or EC key (RS384 and ES384 assertions are checked).")
    return jwks, ""


def _key_ids(jwks: dict | None) -> list[str]:
    return [str(key.get("kid", "")) for key in (jwks or {}).get("keys", []) if isinstance(key, dict)]


@transaction.atomic(durable=True)
def do_register_client_app(
    *,
    acting_user: AbstractBaseUser | None,
    name: str,
    scopes: list[str],
    facades: list[Facade],
    jwks: dict | None = None,
    jwks_url: str = "",
    client_id: str = "",
) -> ClientApp:
    client_id = client_id or uuid.uuid4().hex
    if not CLIENT_ID.match(client_id):
        raise StudioError("invalid", "client_id: letters, digits, '.', '_' or '-', at most 100.")
    if ClientApp.objects.filter(client_id=client_id).exists():
        raise StudioError("conflict", f"A client app '{client_id}' already exists.")
    jwks, jwks_url = checked_jwks(jwks, jwks_url)
    client = ClientApp.objects.create(
        client_id=client_id, name=name, jwks=jwks, jwks_url=jwks_url, scopes=checked_scopes(scopes)
    )
    client.facades.set(facades)
    audit(acting_user, AuditAction.CLIENT_APP_REGISTERED, client, after=_state(client))
    return client


@transaction.atomic(durable=True)
def do_update_client_app(
    client: ClientApp,
    *,
    acting_user: AbstractBaseUser | None,
    name: str | None = None,
    scopes: list[str] | None = None,
    facades: list[Facade] | None = None,
    jwks: dict | None = None,
    jwks_url: str | None = None,
    active: bool | None = None,
) -> ClientApp:
    before = _state(client)
    changed = []
    if name is not None:
        client.name = name
        changed.append("name")
    if scopes is not None:
        client.scopes = checked_scopes(scopes)
        changed.append("scopes")
    if jwks is not None or jwks_url is not None:
        client.jwks, client.jwks_url = checked_jwks(jwks, jwks_url or "")
        changed += ["jwks", "jwks_url"]
    if active is not None:
        client.active = active
        changed.append("active")
    client.save(update_fields=[*changed, "updated_at"])
    if facades is not None:
        client.facades.set(facades)
    audit(acting_user, AuditAction.CLIENT_APP_UPDATED, client, before=before, after=_state(client))
    return client


@transaction.atomic(durable=True)
def do_delete_client_app(client: ClientApp, *, acting_user: AbstractBaseUser | None) -> None:
    before = _state(client)
    audit(acting_user, AuditAction.CLIENT_APP_DELETED, client, before=before)
    client.delete()


def _state(client: ClientApp) -> dict:
    return {
        "client_id": client.client_id,
        "name": client.name,
        "scopes": client.scopes,
        "facades": sorted(client.facades.values_list("slug", flat=True)) if client.pk else [],
        "key_ids": _key_ids(client.jwks),
        "jwks_url": client.jwks_url,
        "active": client.active,
    }


@transaction.atomic(durable=True)
def do_issue_token(facade: ServedFacade, client: ClientApp, scopes: list[Scope]) -> str:
    access_token = issue_token(facade.slug, client.client_id, scopes)
    audit(None, AuditAction.TOKEN_ISSUED, client, facade=facade.slug, scope=" ".join(scope.text for scope in scopes))
    return access_token


@transaction.atomic(durable=True)
def do_record_token_refused(facade: ServedFacade, *, client_hint: str, error: str, reason: str) -> None:
    audit(
        None,
        AuditAction.TOKEN_REFUSED,
        facade,
        facade=facade.slug,
        client=client_hint,
        error=error,
        reason=reason[:300],
    )
