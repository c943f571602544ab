"""Fixtures for the studio API: a user per role with a token client, and demo data built through actions."""

import json
from pathlib import Path

import pytest
from django.contrib.auth.models import Group, User
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from mappings import actions, caches

ROOT = Path(__file__).resolve().parents[2]
ROLES = ("viewer", "author", "admin")


def make_user(username: str, role: str | None) -> User:
    user = User.objects.create_user(username=username, password="pw-" + username)
    if role:
        user.groups.add(Group.objects.get_or_create(name=role)[0])  # a transactional test flushed the migrated ones
    return user


def client_for(user: User | None) -> APIClient:
    client = APIClient()
    if user is not None:
        token, _ = Token.objects.get_or_create(user=user)
        client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


@pytest.fixture(autouse=True)
def _fresh_compile_cache():
    caches.clear()  # compiled mappings must not leak between tests' databases
    yield


@pytest.fixture
def users(db) -> dict[str, User]:
    found = {role: make_user(role, role) for role in ROLES}
    found["norole"] = make_user("norole", None)
    return found


@pytest.fixture
def api(users) -> dict[str, APIClient]:
    """api["author"].get(...): a token-authenticated client per role; api["anonymous"] has no credentials."""
    clients = {name: client_for(user) for name, user in users.items()}
    clients["anonymous"] = client_for(None)
    return clients


@pytest.fixture
def json_patient(users):
    """The json-patient demo mapping stored in the studio, with its snippet, lookup table and one sample."""
    author = users["author"]
    actions.do_create_lookup_table(
        acting_user=author,
        name="administrative-gender",
        data=json.loads((ROOT / "examples/lookup/administrative-gender.json").read_text()),
    )
    actions.do_create_snippet(
        acting_user=author,
        name="snippets/common/datatypes.j2",
        text=(ROOT / "examples/snippets/common/datatypes.j2").read_text(),
    )
    mapping = actions.do_create_mapping(
        acting_user=author,
        slug="json-patient",
        title="JSON patient → Patient",
        source_format="json",
        template=(ROOT / "examples/json-patient/template.j2").read_text(),
    )
    actions.do_create_sample(
        mapping,
        acting_user=author,
        name="example-patient",
        payload=(ROOT / "examples/json-patient/samples/example-patient.json").read_text(),
        assertions=["Patient.gender = 'male'", "Patient.name.family = 'Smith'"],
    )
    return mapping
