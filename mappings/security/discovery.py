"""What a protected facade tells clients about its security: CapabilityStatement.rest.security (SMART-on-FHIR and the
token endpoint). Apart from the token endpoint's views (security/views.py), which write audit rows, so the facade's
metadata view can import it without reaching the actions."""

from __future__ import annotations

from django.http import HttpRequest

from mappings.security.introspection import introspection_statement

SECURITY_SERVICE = "http://terminology.hl7.org/CodeSystem/restful-security-service"
OAUTH_URIS = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"


def token_url(request: HttpRequest, slug: str) -> str:
    return request.build_absolute_uri(f"/fhir/{slug}/auth/token")


def security_statement(request: HttpRequest, slug: str) -> dict:
    """CapabilityStatement.rest.security of a protected facade: SMART-on-FHIR and its token endpoint, or OAuth for a
    facade whose tokens an external server issues (checked by introspection)."""
    introspected = introspection_statement(slug, SECURITY_SERVICE)
    if introspected is not None:
        return introspected
    return {
        "extension": [{"url": OAUTH_URIS, "extension": [{"url": "token", "valueUri": token_url(request, slug)}]}],
        "service": [
            {"coding": [{"system": SECURITY_SERVICE, "code": "SMART-on-FHIR"}], "text": "SMART Backend Services"}
        ],
        "description": "SMART Backend Services: client_credentials with a private_key_jwt assertion (RS384, ES384).",
    }
