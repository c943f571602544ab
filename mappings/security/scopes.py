"""SMART scopes, v1 and v2, for system (backend) clients: `system/<Type|*>.<permissions>`.

v1 permissions are `read`, `write` and `*`; v2 ones are letters from `cruds` in that order (`rs`, `r`, `cruds`).
v1 `read` grants what v2 `rs` grants (read and search), `*` all five. The facade is read-only, so only `r` (read)
and `s` (search) are ever needed; `c`, `u`, `d` are accepted and grant nothing here. v2 scopes narrowed by a query
(`system/Observation.rs?category=laboratory`) cannot be enforced by a type check, so they are refused, not widened."""

from __future__ import annotations

import re
from dataclasses import dataclass

from mappings.fhir_types import is_r4_resource_type

SCOPE = re.compile(r"^system/(?P<type>\*|[A-Z][A-Za-z]+)\.(?P<perms>read|write|\*|c?r?u?d?s?)$")
V1 = {"read": "rs", "write": "cud", "*": "cruds"}


class ScopeError(ValueError):
    """A scope this studio cannot grant or enforce; the message says which and why."""


@dataclass(frozen=True)
class Scope:
    resource_type: str  # a type, or "*"
    letters: frozenset[str]  # what it grants, as v2 letters
    text: str

    def covers(self, other: Scope) -> bool:
        return self.resource_type in ("*", other.resource_type) and other.letters <= self.letters


def parse_scope(text: str) -> Scope:
    match = SCOPE.match(text)
    if match is None or not match["perms"]:
        raise ScopeError(
            f"'{text}' is not a SMART system scope this studio grants: system/<Type or *>.<read, or letters of cruds>"
            " (e.g. system/*.rs, system/Patient.read); queries after '?' are not supported."
        )
    resource_type = match["type"]
    if resource_type != "*" and not is_r4_resource_type(resource_type):
        raise ScopeError(f"'{text}': {resource_type} is not a FHIR R4 resource type.")
    letters = V1.get(match["perms"], match["perms"])
    return Scope(resource_type, frozenset(letters), text)


def parse_scopes(text: str) -> list[Scope]:
    """Space-separated scopes, as OAuth sends them; other (non-system) scopes are errors too."""
    return [parse_scope(part) for part in text.split()]


def granted(requested: list[Scope], allowed: list[Scope]) -> list[Scope]:
    """The requested scopes the allowed ones cover, each whole: SMART lets a server grant fewer scopes than asked
    (the token response says which), so a client asking for more still gets a token for what it may have."""
    return [scope for scope in requested if any(grant.covers(scope) for grant in allowed)]


@dataclass(frozen=True)
class Grant:
    """What an access token lets its client do: `permits(type, letter)` per resource type."""

    client_id: str
    scopes: tuple[Scope, ...]

    def permits(self, resource_type: str, letter: str) -> bool:
        return any(scope.resource_type in ("*", resource_type) and letter in scope.letters for scope in self.scopes)

    def permits_all_types(self, letter: str) -> bool:
        return any(scope.resource_type == "*" and letter in scope.letters for scope in self.scopes)
