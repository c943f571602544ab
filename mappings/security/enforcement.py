"""The check a request to a protected facade passes, and the rule for each interaction (scopes.py for the syntax).

- metadata, /.well-known/smart-configuration and the token endpoint: open (a client discovers how to authorize).
- read: `r` on the type. search (GET, POST _search): `s` on the type; `_include`d resources of another type only
  where the token has `r` on that type (left out otherwise).
- $validate: `r` on the type validated. $convert-data: `r` on some type to run at all, and `r` on every resource
  type in the Bundle it answers (403 otherwise: a conversion shows what the facade's mappings make).
- $export kick-off (system, Patient, Group): `r` and `s` (v1 `read`) on every type exported. With `_type`, each type
  asked for; without it, the export is narrowed to the served types the token may read and search (403 if none).
  A Group served as a resource also needs `r` on Group. Status, file download and DELETE need a token of the client
  that kicked the export off (another client's export is a 404, as an unknown one), still holding `r` and `s` on the
  exported types (on the file's type for a download).

Missing, malformed, expired or another facade's token: 401 with `WWW-Authenticate: Bearer` (RFC 6750); a valid
token without the scope: 403 with `error="insufficient_scope"`. Both bodies are OperationOutcomes. Open facades never
look at Authorization, so an empty `Bearer ` header there is ignored."""

from __future__ import annotations

from django.http import HttpRequest

from mappings.errors import FhirError, RequestCode
from mappings.security.scopes import Grant
from mappings.security.tokens import InvalidTokenError, verify_token

CHALLENGE = "fhirstudio.smart_challenge"  # request.META key: the WWW-Authenticate value of a refusal
GRANT = "fhirstudio.smart_grant"  # request.META key: OPEN, or the Grant a protected facade's token carries
OPEN = "open"


def authorize(request: HttpRequest | None, slug: str, protected: bool) -> None:
    """Mark the request as to an open facade, or check its bearer token for a protected one (401 if unusable)."""
    if request is None:
        if protected:
            raise FhirError(401, RequestCode.UNAUTHORIZED, f"The facade '{slug}' requires an access token.")
        return
    if not protected:
        request.META[GRANT] = OPEN
        return
    kind, _, value = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    if kind.lower() != "bearer" or not value.strip():
        request.META[CHALLENGE] = f'Bearer realm="{slug}"'
        raise FhirError(
            401,
            RequestCode.UNAUTHORIZED,
            f"The facade '{slug}' requires SMART Backend Services authorization: send Authorization: Bearer <token>"
            f" (its token endpoint is in /fhir/{slug}/.well-known/smart-configuration).",
        )
    try:
        request.META[GRANT] = verify_token(value.strip(), slug)
    except InvalidTokenError as error:
        request.META[CHALLENGE] = f'Bearer realm="{slug}", error="invalid_token", error_description="{error}"'
        raise FhirError(401, RequestCode.UNAUTHORIZED, str(error)) from error


def grant_of(request: HttpRequest) -> Grant | None:
    """The request's grant; None for an open facade. A view that never passed authorize() fails here (closed)."""
    grant = request.META[GRANT]
    return None if grant == OPEN else grant


def require(request: HttpRequest, resource_type: str, letters: str, what: str) -> None:
    """403 unless the token grants each of `letters` on `resource_type`; nothing on an open facade."""
    grant = grant_of(request)
    if grant is None:
        return
    missing = [letter for letter in letters if not grant.permits(resource_type, letter)]
    if missing:
        raise forbidden(
            request,
            f"{what} needs a scope granting '{letters}' on {resource_type} (e.g. "
            f"system/{resource_type}.{letters}); this token has: {_scopes(grant)}.",
        )


def may(request: HttpRequest, resource_type: str, letters: str) -> bool:
    grant = grant_of(request)
    return grant is None or all(grant.permits(resource_type, letter) for letter in letters)


def forbidden(request: HttpRequest, message: str) -> FhirError:
    request.META[CHALLENGE] = 'Bearer error="insufficient_scope"'
    return FhirError(403, RequestCode.UNAUTHORIZED, message)


def _scopes(grant: Grant) -> str:
    return " ".join(scope.text for scope in grant.scopes) or "(none)"
