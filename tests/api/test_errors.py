"""The one error shape: {code, message, details} with a stable code, never a 500 for bad input."""

import pytest


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ("[" * 100_000 + "]" * 100_000, "parse_error"),
        ('{"slug": ', "parse_error"),
        ('{"slug": "x"}', "invalid"),
    ],
)
def test_it_answers_bad_bodies_with_a_400_and_a_stable_code(api, body: str, code: str) -> None:
    response = api["author"].post("/api/mappings/", data=body, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["code"] == code
    assert set(response.json()) == {"code", "message", "details"}


def test_it_answers_unauthenticated_requests_with_401_in_the_same_shape(api) -> None:
    response = api["anonymous"].get("/api/mappings/")
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"


def test_it_answers_unknown_media_types_with_415(api) -> None:
    response = api["author"].post("/api/mappings/", data="slug=x", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415
    assert response.json()["code"] == "unsupported_media_type"
