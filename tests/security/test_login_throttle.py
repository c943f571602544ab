"""Sign-in rate limiting (issue 15): after FHIR_STUDIO["LOGIN_FAILURES"] failed sign-ins for one username from one
address within the window, the login page answers 429 without checking the password (the right password is refused
too), other usernames and addresses are not affected, a success clears the count, refusals are audited, and the admin's
login form is refused the same way."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from django.contrib.auth.models import User
from django.core.cache import cache
from django.test import Client

from mappings.models import AuditEvent

FAILURES = 3


@pytest.fixture(autouse=True)
def _limits(settings, db):
    settings.FHIR_STUDIO = {**settings.FHIR_STUDIO, "LOGIN_FAILURES": FAILURES, "LOGIN_WINDOW_SECONDS": 600}
    cache.clear()
    User.objects.create_user(username="lena", password="right-pw", is_staff=True, is_superuser=True)
    yield
    cache.clear()


def login(password: str, *, username: str = "lena", address: str = "10.0.0.1", path: str = "/login/"):
    client = Client(REMOTE_ADDR=address)
    return client.post(path, {"username": username, "password": password})


def test_it_refuses_a_username_after_repeated_failures_without_checking_the_password() -> None:
    for _ in range(FAILURES):
        assert login("wrong").status_code == 200  # the form again, with its error
    refused = login("right-pw")
    assert refused.status_code == 429
    assert 0 < int(refused["Retry-After"]) <= 600
    assert "Too many failed sign-ins" in refused.content.decode()
    assert "_auth_user_id" not in refused.client.session
    assert AuditEvent.objects.filter(action="auth.login_refused", object_id="lena").count() == 1
    # another address, or another username from this one, still signs in
    assert login("right-pw", address="10.0.0.2").status_code == 302
    assert login("whatever", username="someone-else").status_code == 200


def test_a_success_clears_the_failures() -> None:
    for _ in range(FAILURES - 1):
        login("wrong")
    assert login("right-pw").status_code == 302
    for _ in range(FAILURES - 1):
        assert login("wrong").status_code == 200
    assert login("right-pw").status_code == 302  # not refused: the count started again


def test_the_refusal_ends_with_the_window(settings) -> None:
    settings.FHIR_STUDIO = {**settings.FHIR_STUDIO, "LOGIN_WINDOW_SECONDS": 1}
    for _ in range(FAILURES):
        login("wrong")
    assert login("right-pw").status_code == 429

    time.sleep(1.2)
    assert login("right-pw").status_code == 302


def test_the_admin_login_is_refused_too() -> None:
    for _ in range(FAILURES):
        login("wrong", path="/admin/login/")
    refused = login("right-pw", path="/admin/login/")
    assert refused.status_code == 200 and "_auth_user_id" not in refused.client.session  # the form, not signed in
    assert AuditEvent.objects.filter(action="auth.login_refused", object_id="lena").exists()
    assert login("right-pw").status_code == 429  # the studio's page shares the count


def test_failures_counted_by_another_process_refuse_here_too(tmp_path) -> None:
    """The default cache is files under ./var: every worker of one machine shares the count."""
    code = (
        "import django; django.setup(); from django.test import RequestFactory; "
        "from mappings.login_throttle import record_failure; "
        "request = RequestFactory().post('/login/', REMOTE_ADDR='10.9.9.9'); "
        f"[record_failure(request, 'lena') for _ in range({FAILURES})]"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "fhirstudio.settings", "FHIR_STUDIO_LOGIN_FAILURES": str(FAILURES)}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert login("right-pw", address="10.9.9.9").status_code == 429
    assert login("right-pw", address="10.9.9.10").status_code == 302


def test_a_redis_cache_shares_the_count_across_machines(settings) -> None:
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://127.0.0.1:6379/6"}
    }
    cache.clear()
    for _ in range(FAILURES):
        login("wrong")
    assert login("right-pw").status_code == 429
    assert any(key.startswith(b":1:login-failures:") for key in cache._cache.get_client().keys("*"))
    cache.clear()


def test_zero_failures_turns_the_throttle_off(settings) -> None:
    settings.FHIR_STUDIO = {**settings.FHIR_STUDIO, "LOGIN_FAILURES": 0}
    for _ in range(FAILURES + 2):
        assert login("wrong").status_code == 200
    assert login("right-pw").status_code == 302
