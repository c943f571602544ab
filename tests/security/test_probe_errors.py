"""Issue 15, "found when the running studio was probed from outside": every error, in debug as well as not, answers
in the shape of the studio's part it was sent to — an OperationOutcome under /fhir/, {code, message, details} under
/api/, a plain page elsewhere — never a debug page with a traceback, the settings or the URL map (mappings.guard)."""

from __future__ import annotations

import pytest
from django.test import Client

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.security.probe_urls")]

FHIR_JSON = "application/fhir+json"
DEBUG_MARKS = ("Traceback", "DEBUG = True", "URLconf", "SECRET_KEY", "technical", "wsgi.")


@pytest.fixture(params=[False, True], ids=["debug-off", "debug-on"])
def debug(request, settings) -> bool:
    settings.DEBUG = request.param
    return request.param


@pytest.fixture
def client() -> Client:
    return Client(raise_request_exception=False)


def assert_shaped(response, path: str, status: int, code: str | None = None) -> None:
    """The response has `status` and the shape of `path`'s part of the studio, and shows nothing of the server."""
    assert response.status_code == status, response.content[:300]
    text = response.content.decode()
    assert not [mark for mark in DEBUG_MARKS if mark in text], text[:500]
    if path.startswith("/fhir/"):
        assert response["Content-Type"].startswith(FHIR_JSON)
        outcome = response.json()
        assert outcome["resourceType"] == "OperationOutcome"
        assert outcome["issue"][0]["details"]["coding"][0]["code"].startswith("FS-REQ-")
    elif path.startswith("/api/"):
        assert response["Content-Type"].startswith("application/json")
        body = response.json()
        assert set(body) == {"code", "message", "details"}
        if code:
            assert body["code"] == code
    else:
        assert response["Content-Type"].startswith("text/html")
        assert f"<h1>{status} " in text


PARTS = ["/fhir/demo/Patient", "/api/mappings/", "/mappings/"]


@pytest.mark.parametrize("path", PARTS)
def test_a_foreign_host_gets_a_400_in_the_shape_of_its_part(client, debug, path) -> None:
    response = client.get(path, HTTP_HOST="evil.example")
    assert_shaped(response, path, 400, "invalid_host")
    assert len(response.content) < 2000


def test_the_hosts_default_to_host_and_loopback(settings) -> None:
    for host in ("127.0.0.1", "localhost"):
        assert host in settings.ALLOWED_HOSTS


@pytest.mark.parametrize("path", ["/fhir/", "/fhir/demo/no/such/thing/here", "/api/nothing-here", "/nothing-here"])
def test_an_unmatched_url_gets_a_404_without_the_url_map(client, settings, path) -> None:
    settings.DEBUG = False
    assert_shaped(client.get(path), path, 404)


@pytest.mark.parametrize("path", ["/fhir/", "/api/nothing-here"])
def test_an_unmatched_url_under_fhir_and_api_gets_no_debug_page_in_debug_either(client, settings, path) -> None:
    settings.DEBUG = True
    assert_shaped(client.get(path), path, 404)


@pytest.mark.parametrize("path", ["/probe/api/fail", "/api/probe-fail", "/fhir/probe-fail", "/probe-fail"])
def test_a_server_error_gets_a_500_in_shape(client, debug, path) -> None:
    if debug and not path.startswith(("/api/", "/fhir/")):
        pytest.skip("a page with DEBUG on shows Django's debug page: the developer asked for it")
    assert_shaped(client.get(path), path, 500, "internal_error")


@pytest.mark.parametrize("path", ["/api/probe-denied", "/fhir/probe-denied", "/probe-denied"])
def test_permission_denied_gets_a_403_in_shape(client, debug, path) -> None:
    assert_shaped(client.get(path), path, 403, "permission_denied")


@pytest.mark.parametrize("path", ["/api/probe-bad", "/fhir/probe-bad", "/probe-bad"])
def test_a_suspicious_request_gets_a_400_in_shape(client, debug, path) -> None:
    assert_shaped(client.get(path), path, 400, "bad_request")


@pytest.mark.parametrize("path", ["/api/probe-get-only", "/probe-get-only"])
def test_a_method_not_allowed_gets_a_405_in_shape_with_allow(client, debug, path) -> None:
    response = client.put(path)
    assert_shaped(response, path, 405, "method_not_allowed")
    assert "GET" in response["Allow"]


@pytest.mark.parametrize("path", [*PARTS, "/login/"])
def test_more_than_1000_query_parameters_get_a_400_before_login(client, debug, path) -> None:
    query = "&".join(f"p{n}=1" for n in range(1001))
    assert_shaped(client.get(f"{path}?{query}"), path, 400, "too_many_parameters")
    # the limit itself is fine: no 400 for 1,000 (the page may ask for a login or say it has no such parameter)
    at_limit = client.get(f"{path}?" + "&".join(f"p{n}=1" for n in range(1000)))
    assert at_limit.status_code != 400 or b"parameters" not in at_limit.content


@pytest.mark.parametrize("path", PARTS)
def test_an_over_long_url_gets_a_414_in_shape(client, settings, path) -> None:
    settings.MAX_URL_BYTES = 3000
    response = client.get(f"{path}?q=" + "x" * 3000)
    assert_shaped(response, path, 414, "uri_too_long")
    assert "3000" in response.content.decode()


@pytest.mark.parametrize("operation", ["$validate", "Patient/$validate", "$convert-data", "Patient/_search"])
def test_a_facade_body_over_the_limit_gets_a_413_naming_it(client, debug, settings, operation) -> None:
    path = f"/fhir/demo/{operation}"
    response = client.post(path, data=b"{" + b" " * 2_700_000 + b"}", content_type=FHIR_JSON)
    assert_shaped(response, path, 413)
    assert "2621440 bytes" in response.json()["issue"][0]["diagnostics"]
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000  # FHIR_STUDIO_MAX_BODY_BYTES
    response = client.post(path, data=b"{" + b" " * 2000 + b"}", content_type=FHIR_JSON)
    assert_shaped(response, path, 413)
    assert "1000 bytes" in response.json()["issue"][0]["diagnostics"]
