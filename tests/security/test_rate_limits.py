"""Rate limits (mappings/rate_limits.py): the token endpoint of a protected facade refuses a client id, or an address,
past TOKEN_REQUESTS_PER_MINUTE with 429, Retry-After and RFC 6749's JSON (before the assertion is checked, one audit
row per window); the sign-in page refuses an address past LOGIN_ADDRESS_FAILURES failed sign-ins, whatever the
usernames tried, and a success does not clear that count."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.core.cache import cache
from django.test import Client

from mappings import rate_limits
from mappings.models import AuditAction, AuditEvent
from tests.security.conftest import assertion, register, token_request

LIMIT = 3


@pytest.fixture
def limited(settings, protected):
    settings.FHIR_STUDIO = {**settings.FHIR_STUDIO, "TOKEN_REQUESTS_PER_MINUTE": LIMIT}
    cache.clear()
    yield protected
    cache.clear()


def from_address(address: str) -> Client:
    return Client(REMOTE_ADDR=address)


@pytest.mark.django_db(transaction=True)
def test_it_refuses_a_client_past_the_limit_with_429_and_retry_after(limited) -> None:
    app = register(["clinic"], ["system/*.rs"])
    for n in range(LIMIT):  # each from its own address: the client id's count alone
        assert token_request(from_address(f"10.0.0.{n}"), assertion(app)).status_code == 200
    refused = token_request(from_address("10.0.0.99"), assertion(app))
    assert refused.status_code == 429
    assert refused.json()["error"] == "slow_down" and f"More than {LIMIT}" in refused.json()["error_description"]
    assert 0 < int(refused["Retry-After"]) <= 60
    assert refused["Cache-Control"] == "no-store"
    token_request(from_address("10.0.0.98"), assertion(app))  # refused again: no second audit row
    rows = AuditEvent.objects.filter(action=AuditAction.TOKEN_REFUSED, details__error="slow_down")
    assert [row.details["client"] for row in rows] == [app["client"].client_id]
    # another client is not affected
    other = register(["clinic"], ["system/*.rs"])
    assert token_request(from_address("10.0.0.97"), assertion(other)).status_code == 200


@pytest.mark.django_db(transaction=True)
def test_it_refuses_an_address_past_the_limit_whatever_the_client(limited) -> None:
    apps = [register(["clinic"], ["system/*.rs"]) for _ in range(LIMIT + 1)]
    address = from_address("10.1.1.1")
    for app in apps[:LIMIT]:
        assert token_request(address, assertion(app)).status_code == 200
    assert token_request(address, assertion(apps[LIMIT])).status_code == 429
    # a request naming no client at all is counted by its address too
    assert token_request(address, "not-a-jwt").status_code == 429
    assert token_request(from_address("10.1.1.2"), assertion(apps[LIMIT])).status_code == 200


@pytest.mark.django_db(transaction=True)
def test_a_limit_of_zero_turns_it_off(settings, limited) -> None:
    settings.FHIR_STUDIO = {**settings.FHIR_STUDIO, "TOKEN_REQUESTS_PER_MINUTE": 0}
    app = register(["clinic"], ["system/*.rs"])
    for _ in range(LIMIT + 2):
        assert token_request(from_address("10.2.2.2"), assertion(app)).status_code == 200


# --- sign-in: per address as well as per username and address -----------------------------------------------------


@pytest.fixture
def sign_in(settings, db):
    settings.FHIR_STUDIO = {
        **settings.FHIR_STUDIO,
        "LOGIN_FAILURES": 5,
        "LOGIN_ADDRESS_FAILURES": LIMIT,
        "LOGIN_WINDOW_SECONDS": 600,
    }
    cache.clear()
    User.objects.create_user(username="lena", password="right-pw")
    yield
    cache.clear()


def login(username: str, password: str, address: str):
    return Client(REMOTE_ADDR=address).post("/login/", {"username": username, "password": password})


def test_an_address_trying_many_usernames_is_refused(sign_in) -> None:
    for n in range(LIMIT):  # one failure per username: the per-username count never reaches its limit
        assert login(f"user{n}", "guess", "10.3.3.3").status_code == 200
    refused = login("lena", "right-pw", "10.3.3.3")
    assert refused.status_code == 429
    assert "from your address" in refused.content.decode() and "for this username" not in refused.content.decode()
    assert 0 < int(refused["Retry-After"]) <= 600
    assert AuditEvent.objects.filter(action=AuditAction.LOGIN_REFUSED, object_id="lena").exists()
    assert login("lena", "right-pw", "10.3.3.4").status_code == 302  # another address signs in


def test_a_success_does_not_clear_the_address_count(sign_in) -> None:
    for n in range(LIMIT - 1):
        login(f"user{n}", "guess", "10.4.4.4")
    assert login("lena", "right-pw", "10.4.4.4").status_code == 302
    login("someone", "guess", "10.4.4.4")
    assert login("lena", "right-pw", "10.4.4.4").status_code == 429


def test_the_counter_refuses_past_the_limit_and_counts_the_first_refusal_once(db) -> None:
    key = rate_limits.counter_key("test", "a")
    rate_limits.clear(key)
    verdicts = [rate_limits.take(key, 2, 60) for _ in range(4)]
    assert [verdict.retry_after > 0 for verdict in verdicts] == [False, False, True, True]
    assert [verdict.first_refusal for verdict in verdicts] == [False, False, True, False]
    assert 0 < rate_limits.retry_after(key, 2) <= 60
    assert len(key.removeprefix("test:")) == 64  # a SHA-256: no username, client id or address in the key
    rate_limits.clear(key)
    assert rate_limits.retry_after(key, 2) == 0
