"""Sign-in modes a studio server does not offer, against the stub: HTTP basic, OAuth2 client credentials with a client
secret (token fetched once, kept until shortly before it expires, fetched again after a 401 or when it runs out), and
credentials kept to the connection's own host. Plus the Bulk Data client's polling and $everything's paging, and
nothing secret in the logs."""

from __future__ import annotations

import base64
import logging

import pytest

from mappings.connectors import BasicAuth, BulkClient, ClientCredentialsAuth, FhirClient, FhirError, Transport
from mappings.connectors import auth as auth_module
from tests.connectors.conftest import Answer

PATIENT = {"resourceType": "Patient", "id": "p1"}


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_it_signs_in_with_basic_auth(stub) -> None:
    stub.on("/fhir/Patient/p1", Answer(body=PATIENT))
    FhirClient(stub.base, auth=BasicAuth("studio", "pw-basic")).read("Patient", "p1")
    assert stub.requests_to("/fhir/Patient/p1")[0].headers["Authorization"] == basic("studio", "pw-basic")


def test_it_gets_a_client_credentials_token_once_and_again_after_a_401(stub) -> None:
    stub.on("/token", Answer(body={"access_token": "t-1", "expires_in": 300}), Answer(body={"access_token": "t-2"}))
    stub.on("/fhir/Patient/p1", Answer(body=PATIENT), Answer(body=PATIENT), Answer(401), Answer(body=PATIENT))
    auth = ClientCredentialsAuth(client_id="app", client_secret="s3cret", scope="system/*.rs", token_url="")
    auth.token_url = stub.base.replace("/fhir", "/token")
    client = FhirClient(stub.base, auth=auth)
    client.read("Patient", "p1")
    client.read("Patient", "p1")
    client.read("Patient", "p1")  # 401 → token dropped, a new one, the request again
    sent = [seen.headers["Authorization"] for seen in stub.requests_to("/fhir/Patient/p1")]
    assert sent == ["Bearer t-1", "Bearer t-1", "Bearer t-1", "Bearer t-2"]
    token_requests = stub.requests_to("/token")
    assert len(token_requests) == 2 and auth.tokens_fetched == 2
    assert token_requests[0].headers["Authorization"] == basic("app", "s3cret")


def test_it_discovers_the_token_endpoint_and_renews_a_token_about_to_expire(stub, monkeypatch) -> None:
    stub.on("/fhir/.well-known/smart-configuration", Answer(body={"token_endpoint": stub.base + "/auth/token"}))
    stub.on("/fhir/auth/token", Answer(body={"access_token": "t-1", "expires_in": 60}))
    stub.on("/fhir/Patient/p1", Answer(body=PATIENT))
    auth = ClientCredentialsAuth(client_id="app", client_secret="s3cret")
    client = FhirClient(stub.base, auth=auth)
    now = [1_000_000.0]
    monkeypatch.setattr(auth_module.time, "time", lambda: now[0])
    client.read("Patient", "p1")
    now[0] += 20  # 40 s left: more than the 30 s margin, kept
    client.read("Patient", "p1")
    now[0] += 15  # 25 s left: renewed before use
    client.read("Patient", "p1")
    assert auth.tokens_fetched == 2 and len(stub.requests_to("/fhir/.well-known/smart-configuration")) == 1


def test_it_says_unauthorized_when_the_token_endpoint_refuses(stub) -> None:
    stub.on("/token", Answer(401, {"error": "invalid_client", "error_description": "bad secret"}))
    auth = ClientCredentialsAuth(client_id="app", client_secret="wrong", token_url=stub.base.replace("/fhir", "/token"))
    with pytest.raises(FhirError) as refused:
        FhirClient(stub.base, auth=auth).read("Patient", "p1")
    assert refused.value.code == "unauthorized" and "bad secret" in refused.value.message
    assert "wrong" not in refused.value.message
    assert stub.requests_to("/fhir/Patient/p1") == []


def test_it_sends_credentials_only_to_the_connections_own_host(stub) -> None:
    other_host = stub.base.replace("127.0.0.1", "localhost")  # the same server under another name
    page = {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": PATIENT}]}
    page["link"] = [{"relation": "next", "url": f"{other_host}/Patient?page=2"}]
    stub.on("/fhir/Patient", Answer(body=page), Answer(body={"resourceType": "Bundle", "type": "searchset"}))
    list(FhirClient(stub.base, auth=BasicAuth("studio", "pw-basic")).search("Patient"))
    first, second = stub.requests_to("/fhir/Patient")
    assert "Authorization" in first.headers and "Authorization" not in second.headers


def test_it_polls_a_bulk_export_as_retry_after_says_and_streams_the_files(stub) -> None:
    status = stub.base + "/bulk/1"
    stub.on("/fhir/Patient/$export", Answer(202, headers={"Content-Location": status}))
    manifest = {
        "transactionTime": "2026-12-06T00:00:00Z",
        "output": [{"type": "Patient", "url": stub.base + "/files/1"}],
    }
    stub.on(
        "/fhir/bulk/1",
        Answer(202, headers={"Retry-After": "3", "X-Progress": "planning"}),
        Answer(202, headers={"Retry-After": "1", "X-Progress": "50%"}),
        Answer(200, manifest),
    )
    stub.on(
        "/fhir/files/1", Answer(body='{"resourceType":"Patient","id":"a"}\n\n{"resourceType":"Patient","id":"b"}\n')
    )
    sleeps: list[float] = []
    progress: list[str] = []
    bulk = BulkClient(FhirClient(stub.base, transport=Transport(sleep=sleeps.append)))
    found = bulk.export("Patient", {"_type": "Patient"}, on_progress=progress.append)
    assert found == manifest and sleeps == [3.0, 1.0] and progress == ["planning", "50%"]
    assert stub.requests_to("/fhir/Patient/$export")[0].headers["Prefer"] == "respond-async"
    assert [resource["id"] for resource in bulk.stream(found["output"][0])] == ["a", "b"]


def test_it_says_which_line_of_a_bulk_file_is_broken(stub) -> None:
    stub.on("/fhir/files/1", Answer(body='{"resourceType":"Patient","id":"a"}\n{"resourceType":'))
    with pytest.raises(FhirError) as broken:
        list(BulkClient(FhirClient(stub.base)).stream(stub.base + "/files/1"))
    assert broken.value.code == "not_json" and "Line 2" in broken.value.message


def test_it_pages_through_everything(stub) -> None:
    first = {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": PATIENT}]}
    first["link"] = [{"relation": "next", "url": stub.base + "/Patient/p1/$everything?page=2"}]
    second = {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": {"resourceType": "Encounter"}}]}
    stub.on("/fhir/Patient/p1/$everything", Answer(body=first), Answer(body=second))
    kinds = [resource["resourceType"] for resource in FhirClient(stub.base).everything("p1")]
    assert kinds == ["Patient", "Encounter"]


def test_it_logs_no_secret_even_at_debug(stub, caplog) -> None:
    stub.on("/token", Answer(body={"access_token": "tok-live-123", "expires_in": 300}))
    stub.on("/fhir/Patient", Answer(503), Answer(body={"resourceType": "Bundle", "type": "searchset"}))
    auth = ClientCredentialsAuth(
        client_id="app", client_secret="s3cret-xyz", token_url=stub.base.replace("/fhir", "/token")
    )
    with caplog.at_level(logging.DEBUG):
        list(
            FhirClient(stub.base, auth=auth, transport=Transport(sleep=lambda s: None)).search(
                "Patient", {"name": "Ana"}
            )
        )
    logged = "\n".join(record.getMessage() for record in caplog.records)  # urllib3's and requests' too
    ours = "\n".join(record.getMessage() for record in caplog.records if record.name.startswith("mappings."))
    assert "fhir client retry" in ours
    assert "tok-live-123" not in logged and "s3cret-xyz" not in logged
    assert "Ana" not in ours  # no search values (PHI); urllib3's own DEBUG lines carry the URL, off in production
