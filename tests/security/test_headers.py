"""Browser security headers (issue 15): every HTML answer carries the Content-Security-Policy (pages, the admin,
error pages), JSON and FHIR answers do not need it; frames are refused, types not sniffed, referrers kept to the
site; cookies are Secure and HSTS is sent when the studio is served over HTTPS (SITE_ROOT), not otherwise; and the
API's session authentication enforces CSRF like the pages."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client

ROOT = Path(__file__).resolve().parents[2]

SHOW = (
    "import json; from django.conf import settings as s; print(json.dumps([s.SESSION_COOKIE_SECURE, "
    "s.CSRF_COOKIE_SECURE, s.SECURE_HSTS_SECONDS, s.CONTENT_SECURITY_POLICY, s.X_FRAME_OPTIONS]))"
)


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/login/", "/admin/login/", "/no-such-page/"])
def test_every_html_answer_carries_the_policy_and_the_headers(path) -> None:
    answer = Client().get(path)
    assert answer["Content-Type"].startswith("text/html")
    policy = answer["Content-Security-Policy"]
    assert "script-src 'self';" in policy and "'unsafe-inline'" not in policy.split("script-src")[1].split(";")[0]
    assert "frame-ancestors 'none'" in policy and "object-src 'none'" in policy
    assert answer["X-Frame-Options"] == "DENY"
    assert answer["X-Content-Type-Options"] == "nosniff"
    assert answer["Referrer-Policy"] == "same-origin"


@pytest.mark.django_db
def test_a_refused_request_gets_the_policy_too() -> None:
    answer = Client().get("/login/", HTTP_HOST="evil.example")  # answered by the guard before any view
    assert answer.status_code == 400 and "Content-Security-Policy" in answer


@pytest.mark.django_db
def test_json_answers_go_without_the_policy() -> None:
    assert "Content-Security-Policy" not in Client().get("/api/mappings/")
    assert "Content-Security-Policy" not in Client().get("/fhir/nothing/metadata")


@pytest.mark.django_db
def test_hsts_is_sent_on_https_when_set(settings) -> None:
    settings.SECURE_HSTS_SECONDS = 31536000
    assert Client().get("/login/", secure=True)["Strict-Transport-Security"] == "max-age=31536000"
    assert "Strict-Transport-Security" not in Client().get("/login/")


def _show(var_dir: Path, **env: str) -> list:
    """The settings a fresh process started with only `env` reads."""
    clean = {"PATH": os.environ["PATH"], "DJANGO_SETTINGS_MODULE": "fhirstudio.settings"}
    clean |= {"FHIR_STUDIO_VAR_DIR": str(var_dir), **env}
    code = f"import django; django.setup(); {SHOW}"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=clean, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_https_site_root_turns_on_secure_cookies_and_hsts(tmp_path) -> None:
    secure, csrf_secure, hsts, policy, frames = _show(tmp_path, SITE_ROOT="https://studio.example.org")
    assert (secure, csrf_secure, hsts, frames) == (True, True, 31536000, "DENY")
    assert "script-src 'self'" in policy
    assert _show(tmp_path, SITE_ROOT="http://localhost:8000")[:3] == [False, False, 0]
    debug = _show(tmp_path, SITE_ROOT="https://studio.example.org", DEBUG="true")
    assert debug[2:4] == [0, ""]  # no HSTS and no policy while debugging (Django's debug pages run inline scripts)
    chosen = _show(
        tmp_path, SITE_ROOT="https://a.org", FHIR_STUDIO_SECURE_COOKIES="false", FHIR_STUDIO_HSTS_SECONDS="60"
    )
    assert chosen[:3] == [False, False, 60]


@pytest.mark.django_db
def test_the_api_checks_csrf_on_session_requests(users) -> None:
    """A page's session may call the API, so a request another site makes the browser send must be refused: session
    writes need the CSRF token (tokens in an Authorization header need none: a browser never adds them)."""
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(users["author"])
    body = {"slug": "csrf-probe", "title": "Probe", "source_format": "json"}
    refused = browser.post("/api/mappings/", body, content_type="application/json")
    assert refused.status_code == 403 and refused.json()["code"] == "permission_denied", refused.content
    assert "CSRF" in refused.json()["message"]
    browser.get("/")  # sets the CSRF cookie, as every page with a form does
    token = browser.cookies["csrftoken"].value
    allowed = browser.post("/api/mappings/", body, content_type="application/json", HTTP_X_CSRFTOKEN=token)
    assert allowed.status_code == 201, allowed.content


@pytest.mark.django_db
def test_the_api_docs_page_has_no_inline_script(users) -> None:
    """Swagger UI starts from static/api_docs.js, reading what the page used to write into a script from data
    attributes: the schema URL and the CSRF token its Try it out sends with writes."""
    browser = Client()
    browser.force_login(users["author"])
    page = browser.get("/api/docs/").content.decode()
    scripts = re.findall(r"<script([^>]*)>", page)
    run = [attributes for attributes in scripts if "application/json" not in attributes]  # data, not code
    assert run and all("src=" in attributes for attributes in run), scripts
    assert any("api_docs.js" in attributes for attributes in scripts)
    assert re.search(r'data-schema-url="/api/[^"]+"', page)
    assert re.search(r'data-csrf-header="X-CSRFTOKEN" data-csrf-token="\w{32,}"', page)
