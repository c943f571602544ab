"""SMART Backend Services for facades: the studio is the authorization server of its protected facades. A client app
is registered with its public keys (a JWKS, or a JWKS URL on the allow-list) and the scopes it may be given; it signs
a JWT assertion with its private key to get a short-lived access token (mappings/security/)."""

from __future__ import annotations

from django.db import models


class ClientApp(models.Model):
    client_id = models.CharField(max_length=100, unique=True)
    name = models.CharField(max_length=200)
    # The app's public keys: an inline JWKS ({"keys": [...]}) or a URL the studio fetches them from (allow-listed
    # hosts only, FHIR_STUDIO["JWKS_ALLOWED_HOSTS"]). One of the two; private keys never reach the studio.
    jwks = models.JSONField(null=True, blank=True)
    jwks_url = models.URLField(max_length=500, blank=True)
    # The scopes a token may carry at most, SMART v1 or v2 (system/*.read, system/Patient.rs, ...).
    scopes = models.JSONField(default=list)
    facades = models.ManyToManyField("Facade", related_name="client_apps", blank=True)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["client_id"]

    def __str__(self) -> str:
        return self.client_id


class UsedAssertion(models.Model):
    """A client assertion's jti, kept until the assertion expires: one presented again is refused (replay)."""

    client_id = models.CharField(max_length=100)
    jti = models.CharField(max_length=200)
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["client_id", "jti"], name="one_use_per_assertion")]
