"""The client against a stub server, for failures a real server will not produce on demand: each ends in one
FhirError with a stable code (and the server's OperationOutcome when it sent one), or in a retry that succeeds."""

from __future__ import annotations

import time

import pytest

from mappings.connectors import BearerAuth, FhirClient, FhirError, RetryPolicy, Transport, diagnose
from tests.connectors.conftest import R4_METADATA, Answer

PATIENT = {"resourceType": "Patient", "id": "p1"}
OUTCOME = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "x", "diagnostics": "down"}]}


def client_of(stub, *, sleeps: list | None = None, retries: int = 3, timeout: float = 5.0, **kwargs) -> FhirClient:
    sleep = sleeps.append if sleeps is not None else time.sleep
    transport = Transport(
        timeout_seconds=timeout,
        retry=RetryPolicy(max_retries=retries, backoff_seconds=0.2, max_wait_seconds=10),
        sleep=sleep,
        allowed_hosts=kwargs.pop("allowed_hosts", None),
    )
    return FhirClient(stub.base, transport=transport, **kwargs)


def test_it_waits_what_retry_after_says_on_429_then_succeeds(stub) -> None:
    stub.on("/fhir/Patient/p1", Answer(429, OUTCOME, {"Retry-After": "7"}), Answer(body=PATIENT))
    sleeps: list[float] = []
    assert client_of(stub, sleeps=sleeps).read("Patient", "p1") == PATIENT
    assert sleeps == [7.0]
    assert len(stub.requests_to("/fhir/Patient/p1")) == 2


def test_it_bounds_a_long_retry_after_and_gives_up_after_its_retries(stub) -> None:
    stub.on("/fhir/Patient/p1", Answer(429, OUTCOME, {"Retry-After": "3600"}))
    sleeps: list[float] = []
    with pytest.raises(FhirError) as raised:
        client_of(stub, sleeps=sleeps, retries=2).read("Patient", "p1")
    assert sleeps == [10, 10]  # max_wait_seconds, not an hour
    assert raised.value.code == "too_many_requests" and raised.value.status == 429
    assert raised.value.outcome == OUTCOME
    assert len(stub.requests_to("/fhir/Patient/p1")) == 3


def test_it_really_sleeps_for_retry_after(stub) -> None:
    stub.on("/fhir/Patient/p1", Answer(429, OUTCOME, {"Retry-After": "1"}), Answer(body=PATIENT))
    client_of(stub).read("Patient", "p1")
    first, second = stub.requests_to("/fhir/Patient/p1")
    assert second.at - first.at >= 0.95


def test_it_backs_off_with_growing_jittered_waits_on_5xx_then_succeeds(stub) -> None:
    stub.on("/fhir/Patient/p1", Answer(503, OUTCOME), Answer(502, "bad gateway"), Answer(500), Answer(body=PATIENT))
    sleeps: list[float] = []
    assert client_of(stub, sleeps=sleeps).read("Patient", "p1") == PATIENT
    assert len(sleeps) == 3
    for attempt, wait in enumerate(sleeps):
        assert 0.1 * 2**attempt <= wait <= 0.2 * 2**attempt  # half to all of the doubled wait


def test_it_does_not_retry_a_plain_create_on_5xx_but_does_a_conditional_one(stub) -> None:
    stub.on("/fhir/Patient", Answer(503, OUTCOME))
    with pytest.raises(FhirError) as raised:
        client_of(stub, sleeps=[]).create({"resourceType": "Patient"})
    assert raised.value.code == "server_error" and raised.value.outcome == OUTCOME
    assert len(stub.requests_to("/fhir/Patient")) == 1  # the server may have created it: not sent twice
    stub.on("/fhir/Patient", Answer(503, OUTCOME), Answer(201, PATIENT, {"Location": "{base}/Patient/p1/_history/1"}))
    created = client_of(stub, sleeps=[]).create({"resourceType": "Patient"}, if_none_exist={"identifier": "x|1"})
    assert created.status == 201 and created.id == "p1" and created.version_id == "1"
    assert stub.requests_to("/fhir/Patient")[-1].headers["If-None-Exist"] == "identifier=x%7C1"


def test_it_times_out_on_a_slow_server(stub) -> None:
    stub.on("/fhir/Patient/p1", Answer(body=PATIENT, delay_seconds=2))
    with pytest.raises(FhirError) as raised:
        client_of(stub, sleeps=[], retries=1, timeout=0.3).read("Patient", "p1")
    assert raised.value.code == "timeout"
    assert len(stub.requests_to("/fhir/Patient/p1")) == 2  # a GET is retried after a read timeout


def test_it_says_not_json_for_broken_json(stub) -> None:
    stub.on("/fhir/Patient/p1", Answer(body='{"resourceType": "Patient", '))
    with pytest.raises(FhirError) as raised:
        client_of(stub).read("Patient", "p1")
    assert raised.value.code == "not_json"


def test_it_refuses_to_follow_a_redirect_to_a_host_off_the_allow_list(stub) -> None:
    stub.on("/fhir/Patient/p1", Answer(302, headers={"Location": "http://evil.example/steal"}))
    client = client_of(stub, allowed_hosts=[stub.host], auth=BearerAuth("secret-token"))
    with pytest.raises(FhirError) as raised:
        client.read("Patient", "p1")
    assert raised.value.code == "redirect_refused"
    assert "evil.example" in raised.value.message and "secret-token" not in raised.value.message


def test_it_follows_a_redirect_on_an_allowed_host(stub) -> None:
    stub.on("/fhir/Patient/old", Answer(301, headers={"Location": "{base}/Patient/p1"}))
    stub.on("/fhir/Patient/p1", Answer(body=PATIENT))
    assert client_of(stub, allowed_hosts=[stub.host]).read("Patient", "old") == PATIENT


def test_it_refuses_a_base_url_off_the_allow_list_before_any_request(stub) -> None:
    with pytest.raises(FhirError) as raised:
        client_of(stub, allowed_hosts=["127.0.0.1:1"]).read("Patient", "p1")
    assert raised.value.code == "host_refused"
    assert stub.seen == []


def test_it_refuses_a_next_link_to_another_host(stub) -> None:
    page = {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": PATIENT}]}
    page["link"] = [{"relation": "next", "url": "http://elsewhere.example/fhir/Patient?page=2"}]
    stub.on("/fhir/Patient", Answer(body=page))
    found = client_of(stub, allowed_hosts=[stub.host]).search("Patient")
    assert next(found) == PATIENT
    with pytest.raises(FhirError) as raised:
        next(found)
    assert raised.value.code == "host_refused"


def test_it_says_unauthorized_for_401_with_the_outcome(stub) -> None:
    stub.on("/fhir/Patient/p1", Answer(401, OUTCOME, {"WWW-Authenticate": "Bearer"}))
    with pytest.raises(FhirError) as raised:
        client_of(stub, auth=BearerAuth("stale")).read("Patient", "p1")
    assert raised.value.code == "unauthorized" and raised.value.outcome == OUTCOME
    sent = stub.requests_to("/fhir/Patient/p1")
    assert [seen.headers["Authorization"] for seen in sent] == ["Bearer stale"]  # a static token is not sent again


@pytest.mark.parametrize(
    ("answer", "code"),
    [
        (Answer(401, OUTCOME), "unauthorized"),
        (Answer(403, OUTCOME), "unauthorized"),
        (Answer(200, "<html>hello</html>"), "not_fhir"),
        (Answer(404, "<html>no</html>"), "not_fhir"),
        (Answer(200, {"resourceType": "Patient"}), "not_fhir"),
        (Answer(200, {**R4_METADATA, "fhirVersion": "5.0.0"}), "not_r4"),
        (Answer(200, {**R4_METADATA, "fhirVersion": "3.0.2"}), "not_r4"),
        (Answer(200, R4_METADATA), "ok"),
    ],
)
def test_it_diagnoses_what_metadata_answers(stub, answer, code) -> None:
    stub.on("/fhir/metadata", answer)
    found = diagnose(client_of(stub, sleeps=[]))
    assert found.code == code, found.message
    if code == "ok":
        assert (found.software, found.fhir_version, found.resource_types) == ("Stub 1.0", "4.0.1", ["Patient"])
        assert found.interactions == {"Patient": ["read"]}


def test_it_diagnoses_a_timeout(stub) -> None:
    stub.on("/fhir/metadata", Answer(body=R4_METADATA, delay_seconds=2))
    assert diagnose(client_of(stub, sleeps=[], retries=0, timeout=0.3)).code == "timeout"


def test_it_diagnoses_a_refused_connection_and_a_name_that_does_not_resolve(free_port) -> None:
    quick = Transport(timeout_seconds=3, retry=RetryPolicy(max_retries=1), sleep=lambda seconds: None)
    refused = diagnose(FhirClient(f"http://127.0.0.1:{free_port}/fhir", transport=quick))
    assert refused.code == "refused", refused.message
    unknown = diagnose(FhirClient("http://no-such-server.invalid/fhir", transport=quick))
    assert unknown.code == "dns_failed", unknown.message


def test_it_diagnoses_tls_failure_against_a_plain_http_port(stub) -> None:
    https = stub.base.replace("http://", "https://")
    found = diagnose(FhirClient(https, transport=Transport(timeout_seconds=3, retry=RetryPolicy(max_retries=0))))
    assert found.code == "tls_failed", found.message


def test_it_refuses_a_listed_name_that_resolves_to_a_loopback_address(stub) -> None:
    port = stub.host.split(":")[1]
    with pytest.raises(FhirError) as raised:
        FhirClient(f"http://localhost:{port}/fhir", transport=Transport(allowed_hosts=(f"localhost:{port}",))).read(
            "Patient", "p1"
        )
    assert raised.value.code == "host_refused" and "loopback" in raised.value.message
    assert stub.seen == []


def test_it_says_dns_failed_for_a_listed_name_that_does_not_resolve() -> None:
    client = FhirClient("http://no-such-server.invalid/fhir", transport=Transport(allowed_hosts=("0.0.0.0/0",)))
    assert diagnose(client).code == "host_refused"  # unlisted name: refused before any lookup
    listed = Transport(allowed_hosts=("no-such-server.invalid",))
    assert diagnose(FhirClient("http://no-such-server.invalid/fhir", transport=listed)).code == "dns_failed"


def test_it_refuses_an_answer_larger_than_its_limit(stub) -> None:
    stub.on("/fhir/Patient/p1", Answer(body={**PATIENT, "text": {"div": "x" * 200_000}}))
    small = Transport(max_response_bytes=100_000)
    with pytest.raises(FhirError) as raised:
        FhirClient(stub.base, transport=small).read("Patient", "p1")
    assert raised.value.code == "too_large"
    assert FhirClient(stub.base).read("Patient", "p1")["id"] == "p1"  # the default limit is far above


def test_it_times_out_on_a_body_that_stops_coming(stub) -> None:
    stub.on("/fhir/Patient/p1", Answer(body=PATIENT, body_delay_seconds=2))
    with pytest.raises(FhirError) as raised:
        client_of(stub, sleeps=[], retries=0, timeout=0.3).read("Patient", "p1")
    assert raised.value.code == "timeout"


def test_it_says_unreachable_for_a_body_cut_short(stub) -> None:
    stub.on("/fhir/Patient/p1", Answer(body=PATIENT, cut_short=True))
    with pytest.raises(FhirError) as raised:
        client_of(stub, sleeps=[], retries=0).read("Patient", "p1")
    assert raised.value.code == "unreachable", raised.value.message
