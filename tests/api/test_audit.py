"""/api/audit/: every write, newest first, for admins only; filterable by action, mapping, actor and time."""

from datetime import timedelta

import pytest
from django.utils import timezone

from mappings import actions
from mappings.models import AuditEvent

pytestmark = pytest.mark.django_db

MACRO = "{%- macro one() -%}1{%- endmacro -%}"


def test_it_lists_every_write_newest_first_with_its_details(api, json_patient, users) -> None:
    actions.do_save_draft(json_patient, acting_user=users["admin"], template="{}", expected_revision=1)
    body = api["admin"].get("/api/audit/").json()
    assert [row["action"] for row in body["results"]] == [
        "draft.saved",
        "sample.created",
        "mapping.created",
        "snippet.created",
        "lookup_table.created",
    ]
    newest = body["results"][0]
    assert set(newest) == {
        "id",
        "actor",
        "action",
        "object_type",
        "object_id",
        "mapping_slug",
        "before",
        "after",
        "details",
        "created_at",
    }
    assert (newest["actor"], newest["object_type"], newest["mapping_slug"]) == ("admin", "Draft", "json-patient")
    assert (newest["before"]["revision"], newest["after"]["revision"]) == (1, 2)
    assert newest["created_at"]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"action": "snippet.created"}, ["snippet.created"]),
        ({"mapping": "json-patient"}, ["sample.created", "mapping.created"]),
        ({"actor": "admin"}, ["snippet.updated"]),
        ({"actor": "nobody"}, []),
        ({"action": "", "mapping": ""}, ["snippet.updated", "sample.created", "mapping.created", "snippet.created"]),
    ],
)
def test_it_filters_by_action_mapping_and_actor(api, json_patient, users, query, expected) -> None:
    AuditEvent.objects.filter(action="lookup_table.created").delete()  # keep the expectations short
    from mappings.models import Snippet

    actions.do_update_snippet(Snippet.objects.get(), acting_user=users["admin"], description="d")
    body = api["admin"].get("/api/audit/", query).json()
    assert [row["action"] for row in body["results"]] == expected


def test_it_filters_by_time(api, users) -> None:
    actions.do_create_snippet(acting_user=users["author"], name="snippets/json/old.j2", text=MACRO)
    AuditEvent.objects.update(created_at=timezone.now() - timedelta(days=2))
    actions.do_create_snippet(acting_user=users["author"], name="snippets/json/new.j2", text=MACRO)
    since = (timezone.now() - timedelta(days=1)).isoformat()
    body = api["admin"].get("/api/audit/", {"since": since}).json()
    assert [row["after"]["name"] for row in body["results"]] == ["snippets/json/new.j2"]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"since": "last tuesday"}, "since"),
        ({"since": "2024-13-01T00:00:00Z"}, "since"),
        ({"action": "mapping.exploded"}, "action"),
        ({"actor": "a\x00b"}, "actor"),
    ],
)
def test_it_rejects_a_filter_it_cannot_read_with_400(api, query, field) -> None:
    response = api["admin"].get("/api/audit/", query)
    assert response.status_code == 400
    assert response.json()["code"] == "invalid"
    assert field in response.json()["details"]


def test_it_shows_a_deleted_actor_as_null(api, users) -> None:
    actions.do_create_snippet(acting_user=users["author"], name="snippets/json/x.j2", text=MACRO)
    users["author"].delete()
    assert api["admin"].get("/api/audit/").json()["results"][0]["actor"] is None


@pytest.mark.parametrize(
    ("role", "status"), [("viewer", 403), ("author", 403), ("admin", 200), ("norole", 403), ("anonymous", 401)]
)
def test_it_is_for_admins_only(api, role, status) -> None:
    response = api[role].get("/api/audit/")
    assert response.status_code == status
    if status == 403:
        assert response.json()["code"] == "permission_denied"


def test_it_has_no_way_to_write(api) -> None:
    for method in ("post", "put", "patch", "delete"):
        assert getattr(api["admin"], method)("/api/audit/", {}, format="json").status_code == 405


@pytest.mark.parametrize("rows", [1, 20])
def test_it_lists_in_constant_queries(api, users, rows, django_assert_num_queries) -> None:
    for number in range(rows):
        actions.do_create_snippet(acting_user=users["author"], name=f"snippets/json/s{number}.j2", text=MACRO)
    with django_assert_num_queries(4):  # token + user, role groups, count, page (actor joined)
        response = api["admin"].get("/api/audit/")
    assert response.json()["count"] == rows
