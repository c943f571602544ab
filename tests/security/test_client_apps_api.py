"""/api/client-apps/: admins register, change and remove SMART client apps; keys are checked on the way in (public
keys only, an allow-listed JWKS URL), every write is audited without key material, and the schema documents it."""

from __future__ import annotations

import pytest
from joserfc.jwk import ECKey, RSAKey

from mappings import actions
from mappings.models import AuditEvent, ClientApp
from tests.api.conftest import api, users  # noqa: F401

pytestmark = pytest.mark.django_db


def public_jwks(private: bool = False) -> dict:
    key = ECKey.generate_key("P-384")
    return {"keys": [key.as_dict(private=private, kid="k1", alg="ES384")]}


@pytest.fixture
def facade(users):  # noqa: F811
    return actions.do_create_facade(acting_user=users["admin"], slug="ward", title="Ward", auth_mode="smart-backend")


def test_an_admin_registers_lists_changes_and_removes_a_client_app(api, facade) -> None:  # noqa: F811
    created = api["admin"].post(
        "/api/client-apps/",
        {
            "client_id": "lab-sync",
            "name": "Lab sync",
            "jwks": public_jwks(),
            "scopes": ["system/*.rs"],
            "facades": ["ward"],
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["client_id"] == "lab-sync" and body["facades"] == ["ward"] and body["active"] is True
    assert body["token_urls"] == {"ward": "http://testserver/fhir/ward/auth/token"}
    assert "d" not in body["jwks"]["keys"][0]
    listed = api["admin"].get("/api/client-apps/").json()
    assert [row["client_id"] for row in listed["results"]] == ["lab-sync"]
    changed = api["admin"].patch(
        "/api/client-apps/lab-sync/", {"active": False, "scopes": ["system/Patient.read"]}, format="json"
    )
    assert changed.status_code == 200 and changed.json()["active"] is False
    assert changed.json()["scopes"] == ["system/Patient.read"]
    assert api["admin"].delete("/api/client-apps/lab-sync/").status_code == 204
    assert not ClientApp.objects.exists()
    assert api["admin"].get("/api/client-apps/lab-sync/").json()["code"] == "not_found"
    trail = list(AuditEvent.objects.filter(object_type="ClientApp").order_by("id").values_list("action", flat=True))
    assert trail == ["client_app.registered", "client_app.updated", "client_app.deleted"]
    registered = AuditEvent.objects.filter(action="client_app.registered").get()
    assert registered.after["key_ids"] == ["k1"] and "jwks" not in registered.after


def test_a_generated_client_id_and_an_rsa_key(api, facade) -> None:  # noqa: F811
    key = RSAKey.generate_key(2048).as_dict(private=False, kid="r1", alg="RS384")
    created = api["admin"].post(
        "/api/client-apps/",
        {"name": "Nightly", "jwks": {"keys": [key]}, "scopes": ["system/Patient.rs"], "facades": ["ward"]},
        format="json",
    )
    assert created.status_code == 201 and len(created.json()["client_id"]) == 32


@pytest.mark.parametrize(
    "change, field",
    [
        ({"jwks": {"keys": []}}, "jwks"),
        ({"jwks": "not a jwks"}, "jwks"),
        ({"jwks": None, "jwks_url": ""}, None),
        ({"jwks_url": "https://keys.example.org/jwks.json", "jwks": None}, "jwks_url"),
        ({"scopes": ["patient/*.read"]}, "scopes"),
        ({"scopes": ["system/Observation.rs?category=lab"]}, "scopes"),
        ({"scopes": ["system/NoSuchType.rs"]}, "scopes"),
        ({"scopes": []}, "scopes"),
        ({"facades": ["nowhere"]}, "facades"),
        ({"client_id": "has space"}, "client_id"),
        ({"name": 12}, "name"),
    ],
)
def test_it_refuses_what_it_cannot_use(api, facade, change, field) -> None:  # noqa: F811
    form = {"name": "App", "jwks": public_jwks(), "scopes": ["system/*.rs"], "facades": ["ward"], **change}
    answer = api["admin"].post("/api/client-apps/", form, format="json")
    assert answer.status_code == 400, answer.content
    assert answer.json()["code"] == "invalid"
    if field:
        assert field in str(answer.json()["details"]) or field in answer.json()["message"], answer.json()
    assert not ClientApp.objects.exists()


def test_it_refuses_a_private_key(api, facade) -> None:  # noqa: F811
    form = {"name": "App", "jwks": public_jwks(private=True), "scopes": ["system/*.rs"], "facades": ["ward"]}
    answer = api["admin"].post("/api/client-apps/", form, format="json")
    assert answer.status_code == 400 and "private key" in answer.json()["message"]


def test_a_taken_client_id_is_a_conflict(api, facade) -> None:  # noqa: F811
    form = {"client_id": "one", "name": "App", "jwks": public_jwks(), "scopes": ["system/*.rs"], "facades": []}
    assert api["admin"].post("/api/client-apps/", form, format="json").status_code == 201
    again = api["admin"].post("/api/client-apps/", form, format="json")
    assert again.status_code == 409 and again.json()["code"] == "conflict"


@pytest.mark.parametrize("role", ["anonymous", "norole", "viewer", "author"])
def test_only_admins_see_or_change_client_apps(api, facade, role) -> None:  # noqa: F811
    form = {"client_id": "one", "name": "App", "jwks": public_jwks(), "scopes": ["system/*.rs"], "facades": []}
    assert api["admin"].post("/api/client-apps/", form, format="json").status_code == 201
    assert api[role].get("/api/client-apps/").status_code in (401, 403)
    assert api[role].get("/api/client-apps/one/").status_code in (401, 403)
    assert api[role].patch("/api/client-apps/one/", {"active": False}, format="json").status_code in (401, 403)
    assert api[role].delete("/api/client-apps/one/").status_code in (401, 403)
    assert ClientApp.objects.get().active


def test_the_schema_documents_client_apps(api) -> None:  # noqa: F811
    schema = api["admin"].get("/api/schema/?format=json").json()
    assert {"get", "post"} <= set(schema["paths"]["/api/client-apps/"])
    assert {"get", "patch", "delete"} <= set(schema["paths"]["/api/client-apps/{client_id}/"])
    assert "409" in schema["paths"]["/api/client-apps/"]["post"]["responses"]
