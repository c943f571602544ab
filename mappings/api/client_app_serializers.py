"""Request and response shapes of the client-app endpoints (views in mappings/api/client_apps.py)."""

from __future__ import annotations

from rest_framework import serializers

from mappings.api.mapping_serializers import StrictCharField, StrictSlugField
from mappings.models import ClientApp

SCOPES_HELP = "SMART system scopes a token may carry at most, v1 or v2: system/*.rs, system/Patient.read, …"
JWKS_HELP = 'The app\'s public keys as a JWK Set {"keys": [...]} (RSA for RS384, EC P-384 for ES384); no private keys'
JWKS_URL_HELP = "Or a URL the studio fetches the JWK Set from (its host must be in FHIR_STUDIO_JWKS_ALLOWED_HOSTS)"


class JWKSField(serializers.JSONField):
    def to_internal_value(self, data: object) -> dict:
        if not isinstance(data, dict):
            raise serializers.ValidationError('Must be a JWK Set: {"keys": [...]}.')
        return super().to_internal_value(data)


class ClientAppIn(serializers.Serializer):
    client_id = serializers.RegexField(
        r"^[A-Za-z0-9._-]{1,100}$", required=False, help_text="Default: a random id (letters, digits, . _ -)"
    )
    name = StrictCharField(max_length=200)
    jwks = JWKSField(required=False, allow_null=True, default=None, help_text=JWKS_HELP)
    jwks_url = serializers.URLField(
        required=False, allow_blank=True, default="", max_length=500, help_text=JWKS_URL_HELP
    )
    scopes = serializers.ListField(child=StrictCharField(max_length=200), min_length=1, help_text=SCOPES_HELP)
    facades = serializers.ListField(
        child=StrictSlugField(max_length=100), default=list, help_text="Slugs of the facades the app may use"
    )


class ClientAppPatch(serializers.Serializer):
    name = StrictCharField(max_length=200, required=False)
    jwks = JWKSField(required=False, allow_null=True, help_text=JWKS_HELP)
    jwks_url = serializers.URLField(required=False, allow_blank=True, max_length=500, help_text=JWKS_URL_HELP)
    scopes = serializers.ListField(
        child=StrictCharField(max_length=200), min_length=1, required=False, help_text=SCOPES_HELP
    )
    facades = serializers.ListField(child=StrictSlugField(max_length=100), required=False)
    active = serializers.BooleanField(required=False, help_text="Inactive: no new tokens (issued ones run out)")


class ClientAppOut(serializers.ModelSerializer):
    facades = serializers.SerializerMethodField()
    token_urls = serializers.SerializerMethodField(help_text="Each facade's token endpoint")

    class Meta:
        model = ClientApp
        fields = [
            "client_id",
            "name",
            "jwks",
            "jwks_url",
            "scopes",
            "facades",
            "token_urls",
            "active",
            "created_at",
            "updated_at",
        ]

    def get_facades(self, client: ClientApp) -> list[str]:
        return sorted(facade.slug for facade in client.facades.all())

    def get_token_urls(self, client: ClientApp) -> dict[str, str]:
        request = self.context.get("request")
        return {
            slug: request.build_absolute_uri(f"/fhir/{slug}/auth/token") if request else f"/fhir/{slug}/auth/token"
            for slug in self.get_facades(client)
        }
