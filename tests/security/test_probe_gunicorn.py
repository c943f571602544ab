"""The probes of issue 15 against gunicorn as the run command starts it (its config file, fhirstudio/gunicorn_conf.py),
with DEBUG on: a foreign Host, an over-long URL and too many parameters each get a clean 4xx in the shape of their part
of the studio — gunicorn's default request-line limit (4,094) used to answer the long URL with its own plain 400."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.conftest import ROOT

pytestmark = pytest.mark.timeout(120)
GUNICORN = [str(Path(sys.executable).with_name("gunicorn")), "fhirstudio.wsgi", "-c", "fhirstudio/gunicorn_conf.py"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


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
