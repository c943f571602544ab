"""The probes of issue 15 against gunicorn as the run command starts it (its config file, fhirstudio/gunicorn_conf.py),
with DEBUG on: a foreign Host, an over-long URL and too many parameters each get a clean 4xx in the shape of their part
of the studio — gunicorn's default request-line limit (4,094) used to answer the long URL with its own plain 400."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.conftest import ROOT
from tests.legacy_http import free_port

pytestmark = pytest.mark.timeout(120)
GUNICORN = [str(Path(sys.executable).with_name("gunicorn")), "fhirstudio.wsgi", "-c", "fhirstudio/gunicorn_conf.py"]


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> str:
    var = tmp_path_factory.mktemp("var")
    port = free_port()
    env = {**os.environ, "DEBUG": "true", "FHIR_STUDIO_VAR_DIR": str(var), "DATABASE_URL": f"sqlite:///{var}/db"}
    process = subprocess.Popen(
        [*GUNICORN, "--bind", f"127.0.0.1:{port}", "--workers", "1", "--graceful-timeout", "5"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                requests.get(f"{base}/api/", timeout=2)
                break
            except (requests.ConnectionError, requests.Timeout):
                time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)


def outcome_diagnostics(response: requests.Response) -> str:
    assert response.headers["Content-Type"].startswith("application/fhir+json"), response.text[:300]
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    return body["issue"][0]["diagnostics"]


def test_a_url_longer_than_gunicorns_default_gets_the_studios_414(server) -> None:
    # 8,030 bytes: past the studio's 8,000, within gunicorn's 8,190 as the config file raises it
    response = requests.get(f"{server}/fhir/demo/Patient?name=" + "x" * 8000, timeout=10)
    assert response.status_code == 414
    assert "8000 bytes" in outcome_diagnostics(response)
    response = requests.get(f"{server}/api/mappings/?q=" + "x" * 8000, timeout=10)
    assert (response.status_code, response.json()["code"]) == (414, "uri_too_long")


def test_a_foreign_host_gets_a_clean_400_with_debug_on(server) -> None:
    response = requests.get(f"{server}/fhir/demo/Patient", headers={"Host": "evil.example"}, timeout=10)
    assert response.status_code == 400
    assert "host" in outcome_diagnostics(response)
    assert len(response.content) < 2000  # the debug page was 63 KB


def test_more_than_1000_parameters_get_a_400_before_login(server) -> None:
    query = "&".join(f"p{n}=1" for n in range(1001))  # 6,900 bytes: past gunicorn's default line limit too
    response = requests.get(f"{server}/fhir/demo/Patient?{query}", timeout=10)
    assert response.status_code == 400
    assert "1000 parameters" in outcome_diagnostics(response)
    response = requests.get(f"{server}/api/mappings/?{query}", timeout=10)
    assert (response.status_code, response.json()["code"]) == (400, "too_many_parameters")


def raw_request(base: str, head: str) -> tuple[int, dict[str, str], bytes]:
    """Send `head` (without its body: one refused unread need not be sent) and read the answer (HTTP/1.0: unchunked)."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(head.encode("latin-1"))
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    head_bytes, _, body = answer.partition(b"\r\n\r\n")
    lines = head_bytes.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split(" ")[1]), headers, body


def test_a_request_line_past_gunicorns_limit_gets_a_414_in_the_shape_of_its_part(server) -> None:
    # 9,000 bytes: past gunicorn's 8,190, so gunicorn refuses it before the studio sees it, in the studio's shapes
    response = requests.get(f"{server}/fhir/demo/Patient?name=" + "x" * 9000, timeout=10)
    assert response.status_code == 414
    assert "8190 bytes" in outcome_diagnostics(response)
    response = requests.get(f"{server}/api/mappings/?q=" + "x" * 9000, timeout=10)
    assert response.status_code == 414
    assert response.json() == {
        "code": "uri_too_long",
        "message": "The request line is longer than 8190 bytes.",
        "details": {},
    }
    response = requests.get(f"{server}/mappings/" + "x" * 9000, timeout=10)
    assert response.status_code == 414
    assert response.headers["Content-Type"].startswith("text/html")
    assert "<h1><p>" not in response.text  # not gunicorn's page


def test_a_header_past_gunicorns_limit_gets_a_431_in_the_shape_of_its_part(server) -> None:
    response = requests.get(f"{server}/fhir/demo/Patient", headers={"X-Big": "x" * 9000}, timeout=10)
    assert response.status_code == 431
    assert "header" in outcome_diagnostics(response)
    response = requests.get(f"{server}/api/mappings/", headers={"X-Big": "x" * 9000}, timeout=10)
    assert response.status_code == 431 and "header" in response.json()["message"]
    many = {f"X-H{n}": "1" for n in range(120)}  # past limit_request_fields (100)
    assert requests.get(f"{server}/fhir/demo/Patient", headers=many, timeout=10).status_code == 431


def test_an_unreadable_request_line_gets_a_400_in_the_shape_of_its_part(server) -> None:
    status, headers, body = raw_request(server, "GET /fhir/demo/Patient HTTP/9.9\r\nHost: 127.0.0.1\r\n\r\n")
    assert status == 400 and headers["Content-Type"].startswith("application/fhir+json")
    assert b'"OperationOutcome"' in body


def test_an_api_body_over_the_limit_gets_a_413_before_it_is_read(server) -> None:
    declared = 4 * 10_485_760 + 1  # past four times the largest mapping input (FHIR_STUDIO_MAX_INPUT_BYTES)
    head = (
        "POST /api/mappings/ HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {declared}\r\nConnection: close\r\n\r\n"
    )
    status, headers, body = raw_request(server, head)
    assert status == 413 and headers["Content-Type"] == "application/json"
    error = json.loads(body)
    assert error["code"] == "too_large" and error["details"] == {"max_bytes": declared - 1}
    # a facade body past DATA_UPLOAD_MAX_MEMORY_SIZE is refused as before, as an OperationOutcome
    head = head.replace("/api/mappings/", "/fhir/demo/$validate").replace(str(declared), str(3_000_000))
    status, headers, body = raw_request(server, head)
    assert status == 413 and b'"OperationOutcome"' in body
