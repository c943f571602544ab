"""/client-apps/: admins see every SMART client app with its scopes, facades and token URLs (keys only counted);
other roles are refused, as in the API."""

from __future__ import annotations

import pytest
from django.test import Client
from joserfc.jwk import ECKey

from mappings import actions
from mappings.security.actions import do_register_client_app
from tests.api.conftest import users  # noqa: F401

pytestmark = pytest.mark.django_db


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_admins_see_client_apps_and_others_are_refused(users) -> None:  # noqa: F811
    ward = actions.do_create_facade(acting_user=None, slug="ward", title="Ward", auth_mode="smart-backend")
    key = ECKey.generate_key("P-384").as_dict(private=False, kid="k1")
    do_register_client_app(
        acting_user=None,
        client_id="lab-sync",
        name="Lab sync",
        jwks={"keys": [key]},
        scopes=["system/*.rs"],
        facades=[ward],
    )
    page = signed_in(users["admin"]).get("/client-apps/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'data-client-id="lab-sync"' in html and "system/*.rs" in html
    assert "http://testserver/fhir/ward/auth/token" in html and "1 public key" in html
    assert key["x"] not in html  # keys are counted, not shown
    for role in ("viewer", "author", "norole"):
        assert signed_in(users[role]).get("/client-apps/").status_code == 403, role
    assert Client().get("/client-apps/").status_code == 302  # to the login page
