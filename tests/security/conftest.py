"""A protected facade (the json-patient `clinic` of tests/facade, marked smart-backend) and client apps with fresh key
pairs, plus helpers that sign client assertions as a SMART backend client would."""

from __future__ import annotations

import time
import uuid
from urllib.parse import urlencode

import pytest
from django.core.cache import cache
from django.test import Client
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

from mappings import actions, caches
from mappings.models import Facade
from mappings.security.actions import do_register_client_app
from tests.api.conftest import json_patient, users  # noqa: F401
from tests.facade.conftest import served  # noqa: F401 — the facade tests' fixtures, shared

TOKEN_URL = "http://testserver/fhir/clinic/auth/token"
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@pytest.fixture
def protected(served) -> dict:  # noqa: F811
    actions.do_deploy(served["binding"], acting_user=served["author"], version=served["v1"])
    Facade.objects.filter(slug="clinic").update(auth_mode=Facade.AuthMode.SMART_BACKEND)
    caches.clear()
    cache.clear()  # the token endpoint's rate-limit counts (mappings/rate_limits.py) of earlier tests
    return served


def register(facade_slugs: list[str], scopes: list[str], *, algorithm: str = "ES384", client_id: str = "") -> dict:
    """A client app with a fresh key pair: {client, key (private), algorithm}."""
    key = ECKey.generate_key("P-384") if algorithm == "ES384" else RSAKey.generate_key(2048)
    public = key.as_dict(private=False, kid=f"k-{uuid.uuid4().hex[:8]}", alg=algorithm, use="sig")
    client = do_register_client_app(
        acting_user=None,
        name="test app",
        client_id=client_id,
        scopes=scopes,
        facades=list(Facade.objects.filter(slug__in=facade_slugs)),
        jwks={"keys": [public]},
    )
    return {"client": client, "key": key, "kid": public["kid"], "algorithm": algorithm}


def assertion(app: dict, **overrides) -> str:
    client_id = app["client"].client_id
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": TOKEN_URL,
        "exp": int(time.time()) + 240,
        "jti": uuid.uuid4().hex,
    }
    claims.update(overrides.pop("claims", {}))
    header = {"alg": overrides.pop("alg", app["algorithm"]), "kid": app["kid"]}
    key = overrides.pop("key", app["key"])
    return jwt.encode(header, claims, key, algorithms=[header["alg"]])


def token_request(client: Client, signed: str, scope: str = "system/*.rs", **form) -> object:
    data = {
        "grant_type": "client_credentials",
        "client_assertion_type": JWT_BEARER,
        "client_assertion": signed,
        "scope": scope,
        **form,
    }
    return client.post("/fhir/clinic/auth/token", urlencode(data), content_type="application/x-www-form-urlencoded")


def access_token(client: Client, app: dict, scope: str = "system/*.rs") -> str:
    answer = token_request(client, assertion(app), scope)
    assert answer.status_code == 200, answer.content
    return answer.json()["access_token"]
