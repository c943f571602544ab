"""Credentials of HTTP data sources, encrypted at rest (issue 15).

A source's config holds its secrets in three kinds of places: `auth.token` (bearer), `auth.password` (basic) and the
values of headers whose name says they carry one (Authorization, X-Api-Key, Cookie, anything with "token", "secret",
"key", "password", "auth" or "session" in it). Those values are stored as "fernet:<token>" (Fernet: AES-128-CBC with
an HMAC-SHA256, from `cryptography`) under the keys of settings.FHIR_STUDIO["SECRETS_KEYS"] (FHIR_STUDIO_SECRETS_KEY,
or one generated into ./var): the first key encrypts, every listed key decrypts, so a key can be rotated.

They are write-only: the API and the admin show a stored secret as MASK, "***" (as the API always did): it is set;
an empty one stays "". A config sent back with MASK, or without a token/password for the same auth type, keeps the
stored value (`seal(config, previous)`), so a client can edit a source from what it read. Only
mappings/sources/http.py opens them, right before it calls the source (`opened`); a key that cannot open them is a
SecretsKeyError with a message an administrator can act on. This module imports no models: the migration that
encrypts existing rows uses it too."""

from __future__ import annotations

import base64
import binascii
import copy
import functools
import hashlib
import re
from collections.abc import Callable

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings

PREFIX = "fernet:"
MASK = "***"
AUTH_SECRETS = ("token", "password")
SECRET_HEADER = re.compile(r"auth|token|secret|key|password|cookie|session", re.IGNORECASE)


class SecretsKeyError(Exception):
    """A stored secret cannot be decrypted with the configured keys (FHIR_STUDIO_SECRETS_KEY changed or lost)."""


class MaskWithoutValue(ValueError):  # noqa: N818 - a bad config, told to the client as `invalid`
    """A config says MASK (keep the stored secret) where nothing is stored."""


def _fernet_key(key: str) -> bytes:
    """A Fernet key (URL-safe base64 of 32 bytes) is used as it is; any other string is hashed to one (SHA-256), so a
    random string of 32 or more characters will do."""
    try:
        if len(base64.urlsafe_b64decode(key.encode())) == 32:
            return key.encode()
    except (binascii.Error, ValueError):
        pass
    return base64.urlsafe_b64encode(hashlib.sha256(key.encode()).digest())


@functools.lru_cache(maxsize=4)
def _fernet_for(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(_fernet_key(key)) for key in keys])


def _fernet() -> MultiFernet:
    return _fernet_for(tuple(settings.FHIR_STUDIO["SECRETS_KEYS"]))


def is_sealed(value: object) -> bool:
    return isinstance(value, str) and value.startswith(PREFIX)


def encrypt(value: str) -> str:
    return PREFIX + _fernet().encrypt(value.encode()).decode()


def decrypt(value: str) -> str:
    """The plain text of a sealed value; anything else is returned as it is (a row the migration has not reached)."""
    if not is_sealed(value):
        return value
    try:
        return _fernet().decrypt(value.removeprefix(PREFIX).encode()).decode()
    except InvalidToken as exc:
        raise SecretsKeyError(
            "The source's stored credentials cannot be decrypted with FHIR_STUDIO_SECRETS_KEY: the key changed or "
            "was lost. Put the old key back (after the new one, comma-separated), or enter the credentials again."
        ) from exc


def _slots(config: dict) -> list[tuple[dict, str]]:
    """The (container, key) pairs of `config` that hold a secret."""
    slots = []
    auth = config.get("auth")
    if isinstance(auth, dict):
        slots += [(auth, key) for key in AUTH_SECRETS if isinstance(auth.get(key), str)]
    headers = config.get("headers")
    if isinstance(headers, dict):
        slots += [
            (headers, name)
            for name, value in headers.items()
            if isinstance(value, str) and SECRET_HEADER.search(str(name))
        ]
    return slots


def _convert(config: dict, change: Callable[[str], str]) -> dict:
    result = copy.deepcopy(config)
    for container, key in _slots(result):
        if isinstance(container[key], str) and container[key]:
            container[key] = change(container[key])
    return result


def masked(config: dict) -> dict:
    """The config to show: every secret that is set reads MASK."""
    return _convert(config, lambda value: MASK)


def opened(config: dict) -> dict:
    """The config to call the source with: secrets in plain text. Raises SecretsKeyError."""
    return _convert(config, decrypt)


def seal(config: dict, previous: dict | None = None) -> dict:
    """The config to store: plain secrets encrypted; MASK, or a token/password left out of an auth of the same type,
    keeps what `previous` (the stored config) holds. Raises MaskWithoutValue for MASK where nothing is stored."""
    previous = previous or {}
    result = copy.deepcopy(config)
    auth, old_auth = result.get("auth"), previous.get("auth")
    if isinstance(auth, dict) and isinstance(old_auth, dict) and auth.get("type") == old_auth.get("type"):
        for key in AUTH_SECRETS:
            if key not in auth and is_sealed(old_auth.get(key)):
                auth[key] = MASK  # not sent again: kept below
    for container, key in _slots(result):
        value = container[key]
        if value == MASK:
            kept = _stored(previous, container is result.get("auth"), key)
            if kept is None:
                raise MaskWithoutValue(f"{_where(container is result.get('auth'), key)} is {MASK} but none is stored.")
            container[key] = kept
        elif value:  # what the client sent is plain text, even if it looks sealed
            container[key] = encrypt(value)
    return result


def sealed_as_stored(config: dict) -> dict:
    """`config` with its plain secrets encrypted and sealed ones left alone (the migration, which may run on rows
    already done)."""
    return _convert(config, lambda value: value if is_sealed(value) else encrypt(value))


def _stored(previous: dict, in_auth: bool, key: str) -> str | None:
    container = previous.get("auth" if in_auth else "headers")
    value = container.get(key) if isinstance(container, dict) else None
    return value if is_sealed(value) else None


def _where(in_auth: bool, key: str) -> str:
    return f"auth.{key}" if in_auth else f"The header {key}"
