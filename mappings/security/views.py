"""SMART Backend Services endpoints of a protected facade: `/.well-known/smart-configuration` (open: how to get a
token) and the token endpoint `auth/token` (RFC 6749 client credentials with a private_key_jwt assertion, RFC 7523;
errors as RFC 6749's JSON: invalid_request, invalid_client, invalid_scope, unsupported_grant_type).

The token endpoint is rate limited per client id (as the assertion or the form claims it) and per remote address,
each TOKEN_REQUESTS_PER_MINUTE (20 by default; 0: no limit) per facade: past it, 429 with Retry-After and the error
`slow_down`, before the assertion is checked (a flood costs no signature check and no database write but one audit
row per window)."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from mappings import rate_limits
from mappings.access import access_facade_discovery, live_deployments
from mappings.errors import FhirError, RequestCode
from mappings.facade.http import smart_endpoint
from mappings.security import actions
from mappings.security.assertions import ALGORITHMS, OAuthError, claimed_client_id, verified_client
from mappings.security.discovery import token_url
from mappings.security.introspection import is_introspected
from mappings.security.scopes import ScopeError, granted, parse_scopes
from mappings.security.tokens import ACCESS_TOKEN_SECONDS

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
FORM = "application/x-www-form-urlencoded"
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
TOKEN_REQUESTS_PER_MINUTE = 20  # when settings.FHIR_STUDIO does not say


def _protected_facade(slug: str):
    facade, protected = access_facade_discovery(slug)
    if not protected:
        raise FhirError(404, RequestCode.NOT_FOUND, f"The facade '{slug}' is open: it has no authorization endpoints.")
    if is_introspected(slug):
        raise FhirError(
            404,
            RequestCode.NOT_FOUND,
            f"The facade '{slug}' takes tokens of an external authorization server: ask that server for one.",
        )
    return facade


@csrf_exempt
@smart_endpoint
def smart_configuration(request: HttpRequest, slug: str) -> HttpResponse:
    if request.method != "GET":
        raise FhirError(405, RequestCode.METHOD, "smart-configuration is read with GET.")
    facade = _protected_facade(slug)
    types = sorted(live_deployments(facade))
    scopes = ["system/*.read", "system/*.rs"] + [f"system/{name}.{p}" for name in types for p in ("read", "rs")]
    return JsonResponse(
        {
            "token_endpoint": token_url(request, slug),
            "token_endpoint_auth_methods_supported": ["private_key_jwt"],
            "token_endpoint_auth_signing_alg_values_supported": list(ALGORITHMS),
            "grant_types_supported": ["client_credentials"],
            "scopes_supported": scopes,
            "response_types_supported": ["token"],
            "capabilities": ["client-confidential-asymmetric", "permission-v1", "permission-v2"],
        }
    )


def _oauth_error(error: str, description: str, status: int = 400) -> JsonResponse:
    response = JsonResponse({"error": error, "error_description": description}, status=status, headers=NO_STORE)
    if status == 401:
        response["WWW-Authenticate"] = f'Bearer error="{error}"'
    return response


@csrf_exempt
@smart_endpoint
def token(request: HttpRequest, slug: str) -> HttpResponse:
    """An access token for a client app holding a registered key (RFC 6749 §4.4 with RFC 7523 client auth)."""
    facade = _protected_facade(slug)
    if request.method != "POST":
        return _oauth_error("invalid_request", "The token endpoint takes a POSTed form.", 405)
    if request.content_type != FORM:
        return _oauth_error("invalid_request", f"Send the token request as {FORM}.")
    form = request.POST
    claimed = claimed_client_id(form.get("client_assertion", "")) or str(form.get("client_id", ""))[:100]
    limited = _rate_limited(facade, request, claimed)
    if limited is not None:
        return limited
    try:
        if form.get("grant_type") != "client_credentials":
            raise OAuthError("unsupported_grant_type", "grant_type must be client_credentials.")
        if form.get("client_assertion_type") != JWT_BEARER:
            raise OAuthError("invalid_client", f"client_assertion_type must be {JWT_BEARER}.", 401)
        assertion = form.get("client_assertion", "")
        if not assertion:
            raise OAuthError("invalid_request", "client_assertion (a signed JWT) is required.")
        try:
            requested = parse_scopes(form.get("scope", ""))
        except ScopeError as error:
            raise OAuthError("invalid_scope", str(error)) from error
        if not requested:
            raise OAuthError("invalid_scope", "scope is required (e.g. system/*.rs).")
        client = verified_client(assertion, token_url(request, slug), facade.id)
        given = granted(requested, [parse_scopes(text)[0] for text in client.scopes])
        if not given:
            raise OAuthError(
                "invalid_scope",
                f"No requested scope is allowed to '{client.client_id}' (allowed: {' '.join(client.scopes)}).",
            )
    except OAuthError as error:
        actions.do_record_token_refused(facade, client_hint=claimed, error=error.error, reason=error.message)
        return _oauth_error(error.error, error.message, error.status)
    access_token = actions.do_issue_token(facade, client, given)
    body = {
        "access_token": access_token,
        "token_type": "bearer",
        "expires_in": ACCESS_TOKEN_SECONDS,
        "scope": " ".join(scope.text for scope in given),
    }
    return JsonResponse(body, headers=NO_STORE)


def _rate_limited(facade, request: HttpRequest, claimed: str) -> HttpResponse | None:
    """429 once this address, or the client id claimed, has asked more than the limit this minute; else None."""
    limit = settings.FHIR_STUDIO.get("TOKEN_REQUESTS_PER_MINUTE", TOKEN_REQUESTS_PER_MINUTE)
    address = request.META.get("REMOTE_ADDR", "")
    verdicts = [rate_limits.take(rate_limits.counter_key("token-address", facade.slug, address), limit, 60)]
    if claimed:  # a request naming no client is counted by its address only
        verdicts.append(rate_limits.take(rate_limits.counter_key("token-client", facade.slug, claimed), limit, 60))
    refused = [verdict for verdict in verdicts if verdict.retry_after]
    if not refused:
        return None
    wait = max(verdict.retry_after for verdict in refused)
    reason = f"More than {limit} token requests a minute from this client or address: try again in {wait} s."
    if any(verdict.first_refusal for verdict in refused):
        actions.do_record_token_refused(facade, client_hint=claimed, error="slow_down", reason=reason)
    response = _oauth_error("slow_down", reason, 429)
    response["Retry-After"] = str(wait)
    return response
