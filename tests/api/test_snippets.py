"""/api/snippets/: the shared Jinja2 macro library — list, create, read by a slashed name, edit and delete with the
If-Match it read (428 without, 412 when stale, `*` for whatever is current), delete unless a draft uses it, and the
history of every saved text."""

import pytest

from mappings import actions
from mappings.models import AuditEvent, Snippet

pytestmark = pytest.mark.django_db

MACRO = '{%- macro greeting(name) -%}{{ ("Hello " ~ name) | tojson }}{%- endmacro -%}\n'
OTHER_MACRO = '{%- macro farewell(name) -%}{{ ("Bye " ~ name) | tojson }}{%- endmacro -%}\n'
DETAIL = "/api/snippets/snippets/hl7v2/datatypes.j2"


@pytest.fixture
def snippet(users) -> Snippet:
    return actions.do_create_snippet(
        acting_user=users["author"], name="snippets/hl7v2/datatypes.j2", text=MACRO, description="HL7 v2 types"
    )


def test_it_creates_a_snippet_and_reads_it_back_by_its_slashed_name(api) -> None:
    created = api["author"].post(
        "/api/snippets/", {"name": "snippets/hl7v2/datatypes.j2", "text": MACRO, "description": "types"}, format="json"
    )
    assert created.status_code == 201, created.json()
    assert created["ETag"] == '"1"'

    read = api["viewer"].get("/api/snippets/snippets/hl7v2/datatypes.j2")
    assert read.status_code == 200
    body = read.json()
    assert (body["name"], body["text"], body["revision"], body["updated_by"]) == (
        "snippets/hl7v2/datatypes.j2",
        MACRO,
        1,
        "author",
    )
    assert body["updated_at"] and body["description"] == "types"
    assert read["ETag"] == '"1"'


def test_it_reads_a_snippet_whose_slashes_are_percent_encoded(api, snippet) -> None:
    response = api["viewer"].get("/api/snippets/snippets%2Fhl7v2%2Fdatatypes.j2")
    assert response.status_code == 200
    assert response.json()["name"] == "snippets/hl7v2/datatypes.j2"


def test_it_refuses_a_snippet_name_that_is_taken_with_409(api, snippet) -> None:
    response = api["author"].post(
        "/api/snippets/", {"name": "snippets/hl7v2/datatypes.j2", "text": MACRO}, format="json"
    )
    assert response.status_code == 409
    assert response.json()["code"] == "conflict"


def test_it_refuses_a_snippet_that_does_not_compile_with_400(api) -> None:
    response = api["author"].post(
        "/api/snippets/", {"name": "snippets/json/ids.j2", "text": "{% macro broken( %}"}, format="json"
    )
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid"
    assert "does not compile" in body["message"]
    assert body["details"]["errors"][0]["code"].startswith("FS-TPL-")
    assert not Snippet.objects.exists()


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"name": "datatypes.j2", "text": MACRO}, "name"),
        ({"name": "snippets/HL7/Types.j2", "text": MACRO}, "name"),
        ({"name": "snippets/hl7v2/types.txt", "text": MACRO}, "name"),
        ({"name": "snippets/hl7v2/types.j2"}, "text"),
        ({"name": "snippets/hl7v2/types.j2", "text": "a\x00b"}, "text"),
        ({"text": MACRO}, "name"),
    ],
)
def test_it_rejects_bad_snippet_input_with_400_and_the_field(api, payload, field) -> None:
    response = api["author"].post("/api/snippets/", payload, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid"
    assert field in response.json()["details"]


def test_it_answers_404_for_a_snippet_that_does_not_exist(api) -> None:
    for path in ("/api/snippets/snippets/none.j2", "/api/snippets/snippets/none.j2/versions/", "/api/snippets/a%00b"):
        response = api["viewer"].get(path)
        assert response.status_code == 404, path
        assert response.json()["code"] == "not_found"


def test_it_lists_snippets_paginated_and_searchable(api, users) -> None:
    for name in ("snippets/hl7v2/ids.j2", "snippets/hl7v2/datatypes.j2", "snippets/csv/resources.j2"):
        actions.do_create_snippet(acting_user=users["author"], name=name, text=MACRO, description=f"about {name}")

    everything = api["viewer"].get("/api/snippets/").json()
    assert everything["count"] == 3
    assert [row["name"] for row in everything["results"]] == [
        "snippets/csv/resources.j2",
        "snippets/hl7v2/datatypes.j2",
        "snippets/hl7v2/ids.j2",
    ]
    assert set(everything["results"][0]) == {"name", "description", "revision", "updated_at", "updated_by"}

    found = api["viewer"].get("/api/snippets/", {"search": "HL7V2"}).json()
    assert [row["name"] for row in found["results"]] == ["snippets/hl7v2/datatypes.j2", "snippets/hl7v2/ids.j2"]

    page = api["viewer"].get("/api/snippets/", {"page_size": 2, "page": 2}).json()
    assert (page["count"], len(page["results"]), page["next"]) == (3, 1, None)
    assert api["viewer"].get("/api/snippets/", {"page": 9}).status_code == 404


def test_it_saves_a_new_text_as_the_next_revision_and_keeps_the_history(api, snippet) -> None:
    response = api["author"].patch(
        "/api/snippets/snippets/hl7v2/datatypes.j2", {"text": OTHER_MACRO}, format="json", HTTP_IF_MATCH='"1"'
    )
    assert response.status_code == 200, response.json()
    assert (response.json()["revision"], response.json()["text"]) == (2, OTHER_MACRO)
    assert response["ETag"] == '"2"'

    history = api["viewer"].get("/api/snippets/snippets/hl7v2/datatypes.j2/versions/").json()
    assert [(row["revision"], row["text"], row["author"]) for row in history["results"]] == [
        (2, OTHER_MACRO, "author"),
        (1, MACRO, "author"),
    ]
    assert history["results"][0]["created_at"]


def test_it_changes_only_the_description_without_a_new_revision(api, snippet) -> None:
    response = api["author"].patch(
        "/api/snippets/snippets/hl7v2/datatypes.j2", {"description": "renamed"}, format="json", HTTP_IF_MATCH='"1"'
    )
    assert response.status_code == 200
    assert (response.json()["revision"], response.json()["description"]) == (1, "renamed")


def test_it_refuses_a_stale_if_match_with_412_and_the_current_revision(api, snippet, users) -> None:
    actions.do_update_snippet(snippet, acting_user=users["admin"], text=OTHER_MACRO)
    response = api["author"].patch(
        "/api/snippets/snippets/hl7v2/datatypes.j2", {"text": MACRO}, format="json", HTTP_IF_MATCH='"1"'
    )
    assert response.status_code == 412
    assert response.json()["code"] == "stale_revision"
    assert response.json()["details"]["current_revision"] == 2
    assert Snippet.objects.get().text == OTHER_MACRO


@pytest.mark.parametrize("sent", ["yesterday", '"2"', '"0"', '"1-1"', '""'])
def test_it_refuses_an_if_match_that_is_not_the_etag_it_answered_with_412(api, snippet, sent) -> None:
    response = api["author"].patch(DETAIL, {"text": OTHER_MACRO}, format="json", HTTP_IF_MATCH=sent)
    assert response.status_code == 412
    assert (response.json()["code"], response.json()["details"]["current_revision"]) == ("stale_revision", 1)
    assert Snippet.objects.get().text == MACRO


def test_it_refuses_a_change_without_if_match_with_428_and_the_current_etag(api, snippet, users) -> None:
    actions.do_update_snippet(snippet, acting_user=users["admin"], text=OTHER_MACRO)
    response = api["author"].patch(DETAIL, {"description": "mine"}, format="json")
    assert response.status_code == 428
    assert response.json()["code"] == "precondition_required"
    assert response.json()["details"]["etag"] == '"2"'
    assert Snippet.objects.get().description == "HL7 v2 types"


@pytest.mark.parametrize("sent", ['"1"', 'W/"1"', "1", '"7", "1"'])
def test_it_accepts_the_etag_it_answered_strong_weak_bare_or_in_a_list(api, snippet, sent) -> None:
    response = api["author"].patch(DETAIL, {"text": OTHER_MACRO}, format="json", HTTP_IF_MATCH=sent)
    assert response.status_code == 200, response.json()
    assert response["ETag"] == '"2"'


def test_it_takes_a_star_if_match_as_whatever_is_current(api, snippet, users) -> None:
    actions.do_update_snippet(snippet, acting_user=users["admin"], text=OTHER_MACRO)
    response = api["author"].patch(DETAIL, {"text": MACRO}, format="json", HTTP_IF_MATCH="*")
    assert response.status_code == 200, response.json()
    assert (response.json()["revision"], Snippet.objects.get().text) == (3, MACRO)


def test_it_refuses_an_edit_that_does_not_compile(api, snippet) -> None:
    response = api["author"].patch(DETAIL, {"text": "{% endmacro %}"}, format="json", HTTP_IF_MATCH='"1"')
    assert response.status_code == 400
    assert Snippet.objects.get().revision == 1


def test_it_refuses_to_delete_a_snippet_a_draft_uses(api, json_patient) -> None:
    response = api["author"].delete("/api/snippets/snippets/common/datatypes.j2", HTTP_IF_MATCH='"1"')
    assert response.status_code == 409
    assert response.json()["code"] == "in_use"
    assert response.json()["details"]["mappings"] == ["json-patient"]


def test_it_deletes_an_unused_snippet_and_audits_it(api, snippet) -> None:
    assert api["author"].delete(DETAIL, HTTP_IF_MATCH='"1"').status_code == 204
    assert api["viewer"].get(DETAIL).status_code == 404
    assert AuditEvent.objects.filter(action="snippet.deleted").count() == 1


def test_it_deletes_only_the_revision_it_was_shown(api, snippet, users) -> None:
    missing = api["author"].delete(DETAIL)
    assert (missing.status_code, missing.json()["code"], missing.json()["details"]["etag"]) == (
        428,
        "precondition_required",
        '"1"',
    )
    actions.do_update_snippet(snippet, acting_user=users["admin"], text=OTHER_MACRO)
    stale = api["author"].delete(DETAIL, HTTP_IF_MATCH='"1"')
    assert (stale.status_code, stale.json()["code"]) == (412, "stale_revision")
    assert Snippet.objects.exists()
    assert api["author"].delete(DETAIL, HTTP_IF_MATCH="*").status_code == 204
    assert not Snippet.objects.exists()


ROLE_MATRIX = [
    # (method, path, body, {role: status})
    ("get", "/api/snippets/", None, {"viewer": 200, "author": 200, "admin": 200, "norole": 403, "anonymous": 401}),
    (
        "post",
        "/api/snippets/",
        {"name": "snippets/json/new.j2", "text": MACRO},
        {"viewer": 403, "author": 201, "admin": 201, "norole": 403, "anonymous": 401},
    ),
    ("get", DETAIL, None, {"viewer": 200, "author": 200, "admin": 200, "norole": 403, "anonymous": 401}),
    (
        "patch",
        DETAIL,
        {"description": "x"},
        {"viewer": 403, "author": 200, "admin": 200, "norole": 403, "anonymous": 401},
    ),
    ("delete", DETAIL, None, {"viewer": 403, "author": 204, "admin": 204, "norole": 403, "anonymous": 401}),
    (
        "get",
        DETAIL + "/versions/",
        None,
        {"viewer": 200, "author": 200, "admin": 200, "norole": 403, "anonymous": 401},
    ),
]


@pytest.mark.parametrize("role", ["viewer", "author", "admin", "norole", "anonymous"])
@pytest.mark.parametrize(
    ("method", "path", "body", "expected"), ROLE_MATRIX, ids=lambda v: v if isinstance(v, str) else ""
)
def test_it_enforces_roles(api, snippet, role, method, path, body, expected) -> None:
    response = getattr(api[role], method)(path, body, format="json", HTTP_IF_MATCH='"1"')
    assert response.status_code == expected[role], response.content
    if expected[role] in (401, 403):
        assert response.json()["code"] in ("not_authenticated", "permission_denied")


@pytest.mark.parametrize("rows", [1, 20])
def test_it_lists_snippets_in_constant_queries(api, users, rows, django_assert_num_queries) -> None:
    for number in range(rows):
        actions.do_create_snippet(acting_user=users["author"], name=f"snippets/json/s{number}.j2", text=MACRO)
    # token + user, role groups, count, page (updated_by joined)
    with django_assert_num_queries(4):
        response = api["viewer"].get("/api/snippets/")
    assert response.json()["count"] == rows


@pytest.mark.parametrize("rows", [1, 20])
def test_it_lists_snippet_history_in_constant_queries(api, snippet, users, rows, django_assert_num_queries) -> None:
    for number in range(1, rows):
        actions.do_update_snippet(snippet, acting_user=users["author"], text=MACRO + f"{{# {number} #}}")
    # token + user, role groups, the snippet, count, page (author joined)
    with django_assert_num_queries(5):
        response = api["viewer"].get(DETAIL + "/versions/")
    assert response.json()["count"] == rows
