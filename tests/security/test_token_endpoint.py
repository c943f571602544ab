"""The token endpoint of a protected facade: a private_key_jwt assertion (RS384 or ES384) for client_credentials
gets a short-lived bearer token; every faulty assertion is refused with RFC 6749's JSON error, and audited."""

from __future__ import annotations

import time

import pytest
from joserfc.jwk import ECKey

from mappings.models import AuditAction, AuditEvent
from mappings.security import actions as security_actions
from tests.security.conftest import assertion, register, token_request

pytestmark = pytest.mark.django_db(transaction=True)  # deploys index on commit


@pytest.mark.parametrize("algorithm", ["ES384", "RS384"])
def test_it_issues_a_short_lived_token_for_a_signed_assertion(protected, client, algorithm) -> None:
    app = register(["clinic"], ["system/*.rs"], algorithm=algorithm)
    answer = token_request(client, assertion(app), "system/Patient.read system/Patient.rs")
    assert answer.status_code == 200, answer.content
    body = answer.json()
    assert body["token_type"] == "bearer" and body["expires_in"] == 300
    assert body["scope"] == "system/Patient.read system/Patient.rs"
    assert answer["Cache-Control"] == "no-store"
    read = client.get(
        f"/fhir/clinic/Patient/{_patient_id(client, body['access_token'])}",
        HTTP_AUTHORIZATION=f"Bearer {body['access_token']}",
    )
    assert read.status_code == 200
    issued = AuditEvent.objects.filter(action=AuditAction.TOKEN_ISSUED).get()
    assert issued.details == {"facade": "clinic", "scope": "system/Patient.read system/Patient.rs"}
    assert body["access_token"] not in str(issued.details)


def _patient_id(client, token: str) -> str:
    bundle = client.get("/fhir/clinic/Patient", HTTP_AUTHORIZATION=f"Bearer {token}").json()
    return bundle["entry"][0]["resource"]["id"]


def test_it_grants_only_the_requested_scopes_the_client_may_have(protected, client) -> None:
    app = register(["clinic"], ["system/Patient.rs"])
    answer = token_request(client, assertion(app), "system/Patient.read system/Encounter.read")
    assert answer.status_code == 200 and answer.json()["scope"] == "system/Patient.read"


def refusal(answer) -> tuple[int, str]:
    body = answer.json()
    assert set(body) == {"error", "error_description"}, body
    return answer.status_code, body["error"]


def test_it_refuses_a_bad_signature(protected, client) -> None:
    app = register(["clinic"], ["system/*.rs"])
    signed = assertion(app, key=ECKey.generate_key("P-384"))  # another key, same kid
    assert refusal(token_request(client, signed)) == (401, "invalid_client")
    refused = AuditEvent.objects.filter(action=AuditAction.TOKEN_REFUSED).get()
    assert refused.details["error"] == "invalid_client" and "signature" in refused.details["reason"]


def test_it_refuses_a_tampered_assertion(protected, client) -> None:
    app = register(["clinic"], ["system/*.rs"])
    header, _, signature = assertion(app).split(".")
    other = assertion(app, claims={"sub": "someone-else"}).split(".")[1]
    assert refusal(token_request(client, f"{header}.{other}.{signature}")) == (401, "invalid_client")


@pytest.mark.parametrize(
    "claims, says",
    [
        ({"aud": "http://testserver/fhir/other/auth/token"}, "aud"),
        ({"exp": int(time.time()) - 5}, "expired"),
        ({"exp": int(time.time()) + 3600}, "five minutes"),
        ({"sub": "someone-else"}, "sub"),
        ({"jti": ""}, "jti"),
    ],
    ids=["wrong-aud", "expired", "exp-too-far", "sub-not-iss", "no-jti"],
)
def test_it_refuses_an_assertion_with_a_wrong_claim(protected, client, claims, says) -> None:
    app = register(["clinic"], ["system/*.rs"])
    answer = token_request(client, assertion(app, claims=claims))
    assert refusal(answer) == (401, "invalid_client")
    assert says in answer.json()["error_description"]


def test_it_refuses_a_replayed_jti(protected, client) -> None:
    app = register(["clinic"], ["system/*.rs"])
    signed = assertion(app)
    assert token_request(client, signed).status_code == 200
    again = token_request(client, signed)
    assert refusal(again) == (401, "invalid_client") and "replayed" in again.json()["error_description"]


def test_it_refuses_an_unknown_an_inactive_and_another_facades_client_alike(protected, client) -> None:
    app = register(["clinic"], ["system/*.rs"])
    unknown = assertion(app, claims={"iss": "nobody", "sub": "nobody"})
    assert refusal(token_request(client, unknown)) == (401, "invalid_client")
    elsewhere = register([], ["system/*.rs"])  # registered, but for no facade
    assert refusal(token_request(client, assertion(elsewhere))) == (401, "invalid_client")
    security_actions.do_update_client_app(app["client"], acting_user=None, active=False)
    assert refusal(token_request(client, assertion(app))) == (401, "invalid_client")


def test_it_refuses_a_scope_not_allowed_and_a_scope_it_cannot_read(protected, client) -> None:
    app = register(["clinic"], ["system/Patient.rs"])
    assert refusal(token_request(client, assertion(app), "system/Encounter.rs")) == (400, "invalid_scope")
    assert refusal(token_request(client, assertion(app), "system/*.read")) == (400, "invalid_scope")
    assert refusal(token_request(client, assertion(app), "patient/*.read")) == (400, "invalid_scope")
    assert refusal(token_request(client, assertion(app), "system/Observation.rs?category=lab")) == (
        400,
        "invalid_scope",
    )
    assert refusal(token_request(client, assertion(app), "")) == (400, "invalid_scope")


@pytest.mark.parametrize("algorithm", ["HS256", "RS256", "ES256", "none"])
def test_it_refuses_an_algorithm_other_than_rs384_and_es384(protected, client, algorithm) -> None:
    app = register(["clinic"], ["system/*.rs"], algorithm="RS384")
    if algorithm == "none":
        _, payload, _ = assertion(app).split(".")
        import base64

        none = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
        signed = f"{none}.{payload}."
    elif algorithm == "HS256":
        from joserfc.jwk import OctKey

        signed = assertion(app, alg="HS256", key=OctKey.generate_key(256))
    elif algorithm == "ES256":
        signed = assertion(app, alg="ES256", key=ECKey.generate_key("P-256"))
    else:
        signed = assertion(app, alg="RS256")
    answer = token_request(client, signed)
    assert refusal(answer) == (401, "invalid_client")
    assert "RS384 or ES384" in answer.json()["error_description"]


def test_it_refuses_a_malformed_request(protected, client) -> None:
    app = register(["clinic"], ["system/*.rs"])
    assert refusal(token_request(client, assertion(app), grant_type="password")) == (400, "unsupported_grant_type")
    wrong_type = token_request(client, assertion(app), client_assertion_type="urn:other")
    assert refusal(wrong_type) == (401, "invalid_client")
    assert refusal(token_request(client, "not-a-jwt")) == (401, "invalid_client")
    assert refusal(token_request(client, "")) == (400, "invalid_request")
    as_json = client.post(
        "/fhir/clinic/auth/token", {"grant_type": "client_credentials"}, content_type="application/json"
    )
    assert refusal(as_json) == (400, "invalid_request")
    assert refusal(client.get("/fhir/clinic/auth/token")) == (405, "invalid_request")


def test_an_open_facade_has_no_token_endpoint(served, client) -> None:
    answer = client.post("/fhir/clinic/auth/token", {"grant_type": "client_credentials"})
    assert answer.status_code == 404 and answer.json()["resourceType"] == "OperationOutcome"
    assert client.get("/fhir/clinic/.well-known/smart-configuration").status_code == 404
