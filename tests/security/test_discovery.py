"""How a SMART client finds its way: smart-configuration at the facade base and the CapabilityStatement's
rest.security (SMART-on-FHIR with the oauth-uris extension), both open on a protected facade; open facades say
nothing of OAuth. Keys may also come from an allow-listed JWKS URL, fetched with a timeout and cached."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import orjson
import pytest
from joserfc.jwk import ECKey

from mappings import actions
from mappings.errors import StudioError
from mappings.models import AuditEvent, Facade
from mappings.security.actions import do_register_client_app
from mappings.security.assertions import forget_fetched_jwks
from tests.security.conftest import assertion, token_request

pytestmark = pytest.mark.django_db(transaction=True)  # deploys index on commit
OAUTH_URIS = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"


def test_smart_configuration_says_how_to_get_a_token(protected, client) -> None:
    answer = client.get("/fhir/clinic/.well-known/smart-configuration")
    assert answer.status_code == 200 and answer["Content-Type"] == "application/json"
    config = answer.json()
    assert config["token_endpoint"] == "http://testserver/fhir/clinic/auth/token"
    assert config["token_endpoint_auth_methods_supported"] == ["private_key_jwt"]
    assert config["token_endpoint_auth_signing_alg_values_supported"] == ["RS384", "ES384"]
    assert config["grant_types_supported"] == ["client_credentials"]
    assert {"system/*.rs", "system/*.read", "system/Patient.rs", "system/Patient.read"} <= set(
        config["scopes_supported"]
    )
    assert "client-confidential-asymmetric" in config["capabilities"]
    assert client.post("/fhir/clinic/.well-known/smart-configuration").status_code == 405


def test_metadata_of_a_protected_facade_is_open_and_names_the_token_endpoint(protected, client) -> None:
    answer = client.get("/fhir/clinic/metadata")
    assert answer.status_code == 200
    security = answer.json()["rest"][0]["security"]
    assert security["service"][0]["coding"][0] == {
        "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
        "code": "SMART-on-FHIR",
    }
    uris = next(extension for extension in security["extension"] if extension["url"] == OAUTH_URIS)
    assert uris["extension"] == [{"url": "token", "valueUri": "http://testserver/fhir/clinic/auth/token"}]


def test_an_open_facade_says_nothing_of_oauth(served, client) -> None:
    actions.do_deploy(served["binding"], acting_user=served["author"], version=served["v1"])
    assert "security" not in client.get("/fhir/clinic/metadata").json()["rest"][0]
    assert client.get("/fhir/clinic/.well-known/smart-configuration").status_code == 404


class JWKSServer:
    """A JWKS host on 127.0.0.1 that counts its requests (or redirects, to check redirects are not followed)."""

    def __init__(self, document: dict, status: int = 200) -> None:
        hits = self.hits = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                hits.append(self.path)
                body = orjson.dumps(document)
                self.send_response(status)
                if status in (301, 302):
                    self.send_header("Location", "http://169.254.169.254/latest/meta-data/")
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/jwks.json"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> JWKSServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def allow(settings, url: str) -> None:
    host = url.split("/")[2]
    settings.FHIR_STUDIO = {**settings.FHIR_STUDIO, "JWKS_ALLOWED_HOSTS": [host]}
    forget_fetched_jwks()


def url_client(url: str) -> dict:
    key = ECKey.generate_key("P-384")
    app = do_register_client_app(
        acting_user=None,
        name="by url",
        jwks_url=url,
        scopes=["system/*.rs"],
        facades=list(Facade.objects.filter(slug="clinic")),
    )
    return {"client": app, "key": key, "kid": "k1", "algorithm": "ES384"}


def test_keys_from_an_allow_listed_jwks_url_are_fetched_once_and_cached(protected, client, settings) -> None:
    key = ECKey.generate_key("P-384")
    document = {"keys": [key.as_dict(private=False, kid="k1", alg="ES384")]}
    with JWKSServer(document) as host:
        allow(settings, host.url)
        app = url_client(host.url) | {"key": key}
        assert token_request(client, assertion(app)).status_code == 200
        assert token_request(client, assertion(app)).status_code == 200
        assert host.hits == ["/jwks.json"]  # the second token used the cached keys


def test_a_jwks_url_off_the_allow_list_or_redirecting_is_refused(protected, client, settings) -> None:
    with pytest.raises(StudioError, match="allow-list"):
        url_client("http://127.0.0.1:9/jwks.json")
    with JWKSServer({"keys": []}, status=302) as host:
        allow(settings, host.url)
        app = url_client(host.url)
        answer = token_request(client, assertion(app))
        assert answer.status_code == 401 and answer.json()["error"] == "invalid_client"
        assert "302" in answer.json()["error_description"]
    # The allow-list changed since registration: the URL is not fetched at all.
    settings.FHIR_STUDIO = {**settings.FHIR_STUDIO, "JWKS_ALLOWED_HOSTS": []}
    refused = token_request(client, assertion(app))
    assert refused.status_code == 401 and "allow-list" in refused.json()["error_description"]
    assert AuditEvent.objects.filter(action="smart.token_refused", details__client=app["client"].client_id).count() == 2


def test_a_jwks_host_that_does_not_answer_is_a_refusal_not_an_error(protected, client, settings) -> None:
    with JWKSServer({}) as host:
        url = host.url
    allow(settings, url)  # the server is gone: connection refused
    app = url_client(url)
    answer = token_request(client, assertion(app))
    assert answer.status_code == 401 and "did not answer" in answer.json()["error_description"]
