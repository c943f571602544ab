"""/api/lookup-tables/: code translation as data — CRUD with If-Match on every write over a revision (428 without,
412 when stale, `*` for whatever is current), history, and import from CSV or a FHIR ConceptMap (a new table, or the
next revision of one: then with If-Match too)."""

import pytest

from mappings import actions
from mappings.engine import LookupTable as EngineTable
from mappings.models import AuditEvent, LookupTable

pytestmark = pytest.mark.django_db

GENDER = {
    "target_system": "http://hl7.org/fhir/administrative-gender",
    "default": {"code": "unknown", "display": "Unknown"},
    "entries": [
        {"source": "M", "code": "male", "display": "Male"},
        {"source": "F", "code": "female", "display": "Female"},
    ],
}
CSV = "source_code,target_code,target_display\nM,male,Male\nF,female,Female\nU,unknown,Unknown\n"
CONCEPT_MAP = {
    "resourceType": "ConceptMap",
    "status": "active",
    "group": [
        {
            "source": "http://terminology.hl7.org/CodeSystem/v2-0001",
            "target": "http://hl7.org/fhir/administrative-gender",
            "element": [
                {"code": "M", "target": [{"code": "male", "display": "Male", "equivalence": "equivalent"}]},
                {"code": "F", "target": [{"code": "female", "display": "Female", "equivalence": "equivalent"}]},
                {"code": "X", "target": []},
            ],
            "unmapped": {"mode": "fixed", "code": "unknown", "display": "Unknown"},
        }
    ],
}
DETAIL = "/api/lookup-tables/gender"


@pytest.fixture
def table(users) -> LookupTable:
    return actions.do_create_lookup_table(acting_user=users["author"], name="gender", data=GENDER, description="sex")


def translate(name: str, code: str, source_system: str | None = None) -> dict | None:
    stored = LookupTable.objects.get(name=name)
    return EngineTable.from_dict(name, stored.data).translate(code, source_system)


def test_it_creates_a_table_and_reads_it_back(api) -> None:
    created = api["author"].post("/api/lookup-tables/", {"name": "gender", "data": GENDER}, format="json")
    assert created.status_code == 201, created.json()
    assert created["ETag"] == '"1"'
    body = api["viewer"].get(DETAIL).json()
    assert (body["name"], body["revision"], body["entry_count"], body["data"]) == ("gender", 1, 2, GENDER)
    assert body["updated_by"] == "author" and body["updated_at"]


def test_it_accepts_entries_as_a_plain_code_object(api) -> None:
    response = api["author"].post(
        "/api/lookup-tables/", {"name": "yn", "data": {"entries": {"Y": "yes", "N": "no"}}}, format="json"
    )
    assert response.status_code == 201
    assert response.json()["entry_count"] == 2


def test_it_refuses_a_table_name_that_is_taken_with_409(api, table) -> None:
    response = api["author"].post("/api/lookup-tables/", {"name": "gender", "data": GENDER}, format="json")
    assert response.status_code == 409
    assert response.json()["code"] == "conflict"


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"name": "gender"}, "data"),
        ({"name": "has space", "data": GENDER}, "name"),
        ({"name": "t", "data": []}, "data"),
        ({"name": "t", "data": {"entries": [{"code": "male"}]}}, "data"),
        ({"name": "t", "data": {"entries": [{"source": " ", "code": "male"}]}}, "data"),
        ({"name": "t", "data": {"entries": [{"source": "M", "source_system": ["a"]}]}}, "data"),
        ({"name": "t", "data": {"entries": [{"source": "M", "colour": "red"}]}}, "data"),
        ({"name": "t", "data": {"entries": 7}}, "data"),
        ({"name": "t", "data": {"entries": {"M": {"code": "male"}}}}, "data"),
        ({"name": "t", "data": {"default": 3}}, "data"),
        ({"name": "t", "data": {"case_sensitive": "yes"}}, "data"),
        ({"name": "t", "data": {"entries": [{"source": "M", "code": "ma\x00le"}]}}, "data"),
    ],
)
def test_it_rejects_table_data_the_engine_cannot_read_with_400(api, payload, field) -> None:
    response = api["author"].post("/api/lookup-tables/", payload, format="json")
    assert response.status_code == 400, response.json()
    assert response.json()["code"] == "invalid"
    assert field in response.json()["details"]
    assert not LookupTable.objects.exists()


def test_it_lists_tables_with_their_entry_counts(api, table, users) -> None:
    actions.do_create_lookup_table(acting_user=users["author"], name="abc", data={"entries": {"a": "b"}})
    body = api["viewer"].get("/api/lookup-tables/").json()
    assert body["count"] == 2
    assert [(row["name"], row["entry_count"], row["revision"]) for row in body["results"]] == [
        ("abc", 1, 1),
        ("gender", 2, 1),
    ]
    assert set(body["results"][0]) == {"name", "description", "revision", "entry_count", "updated_at", "updated_by"}
    assert [row["name"] for row in api["viewer"].get("/api/lookup-tables/", {"search": "SEX"}).json()["results"]] == [
        "gender"
    ]


def test_it_saves_new_data_as_the_next_revision_and_keeps_the_history(api, table) -> None:
    changed = {**GENDER, "entries": [*GENDER["entries"], {"source": "O", "code": "other"}]}
    response = api["author"].patch(DETAIL, {"data": changed}, format="json", HTTP_IF_MATCH='"1"')
    assert response.status_code == 200, response.json()
    assert (response.json()["revision"], response.json()["entry_count"]) == (2, 3)
    assert response["ETag"] == '"2"'
    history = api["viewer"].get(DETAIL + "/versions/").json()
    assert [(row["revision"], len(row["data"]["entries"]), row["author"]) for row in history["results"]] == [
        (2, 3, "author"),
        (1, 2, "author"),
    ]


def test_it_refuses_a_stale_if_match_with_412(api, table, users) -> None:
    actions.do_update_lookup_table(table, acting_user=users["admin"], data={"entries": {"M": "male"}})
    response = api["author"].patch(DETAIL, {"data": GENDER}, format="json", HTTP_IF_MATCH='W/"1"')
    assert response.status_code == 412
    assert (response.json()["code"], response.json()["details"]["current_revision"]) == ("stale_revision", 2)


def test_it_refuses_a_change_without_if_match_with_428_and_the_current_etag(api, table) -> None:
    response = api["author"].patch(DETAIL, {"data": {"entries": {"M": "male"}}}, format="json")
    assert (response.status_code, response.json()["code"]) == (428, "precondition_required")
    assert response.json()["details"]["etag"] == '"1"'
    assert LookupTable.objects.get().data == GENDER


def test_it_takes_a_star_if_match_as_whatever_is_current(api, table, users) -> None:
    actions.do_update_lookup_table(table, acting_user=users["admin"], data={"entries": {"M": "male"}})
    response = api["author"].patch(DETAIL, {"data": GENDER}, format="json", HTTP_IF_MATCH="*")
    assert (response.status_code, response.json()["revision"]) == (200, 3)


def test_it_refuses_to_delete_a_table_a_draft_uses(api, json_patient) -> None:
    response = api["author"].delete("/api/lookup-tables/administrative-gender", HTTP_IF_MATCH='"1"')
    assert response.status_code == 409
    assert response.json()["code"] == "in_use"


def test_it_deletes_an_unused_table(api, table) -> None:
    assert api["author"].delete(DETAIL, HTTP_IF_MATCH='"1"').status_code == 204
    assert api["viewer"].get(DETAIL).status_code == 404
    assert AuditEvent.objects.filter(action="lookup_table.deleted").count() == 1


def test_it_deletes_only_the_revision_it_was_shown(api, table, users) -> None:
    missing = api["author"].delete(DETAIL)
    assert (missing.status_code, missing.json()["details"]["etag"]) == (428, '"1"')
    actions.do_update_lookup_table(table, acting_user=users["admin"], data={"entries": {"M": "male"}})
    stale = api["author"].delete(DETAIL, HTTP_IF_MATCH='"1"')
    assert (stale.status_code, stale.json()["code"]) == (412, "stale_revision")
    assert LookupTable.objects.exists()


def test_it_answers_404_for_a_table_that_does_not_exist(api) -> None:
    for path in ("/api/lookup-tables/none", "/api/lookup-tables/none/versions/", "/api/lookup-tables/a%00b"):
        response = api["viewer"].get(path)
        assert response.status_code == 404, path
        assert response.json()["code"] == "not_found"


# --- import -----------------------------------------------------------------------------------------------------


def test_it_imports_csv_as_a_new_table(api) -> None:
    response = api["author"].post(
        "/api/lookup-tables/sex/import",
        {"format": "csv", "content": CSV, "target_system": "http://hl7.org/fhir/administrative-gender"},
        format="json",
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["name"], body["revision"], body["entry_count"]) == ("sex", 1, 3)
    assert body["data"]["target_system"] == "http://hl7.org/fhir/administrative-gender"
    assert translate("sex", "F") == {
        "system": "http://hl7.org/fhir/administrative-gender",
        "code": "female",
        "display": "Female",
    }
    assert AuditEvent.objects.get(action="lookup_table.created").details == {"imported": "csv"}


def test_it_imports_into_an_existing_table_as_its_next_revision(api, table) -> None:
    response = api["author"].post(
        DETAIL + "/import", {"format": "csv", "content": CSV}, format="json", HTTP_IF_MATCH='"1"'
    )
    assert response.status_code == 200, response.json()
    assert (response.json()["revision"], response.json()["entry_count"]) == (2, 3)
    assert response["ETag"] == '"2"'
    assert translate("gender", "u")["code"] == "unknown"
    again = api["author"].post(
        DETAIL + "/import", {"format": "csv", "content": CSV}, format="json", HTTP_IF_MATCH='"2"'
    )
    assert (again.status_code, again.json()["revision"]) == (200, 2)  # nothing changed: no new revision


def test_it_refuses_an_import_into_an_existing_table_without_if_match_with_428(api, table) -> None:
    response = api["author"].post(DETAIL + "/import", {"format": "csv", "content": CSV}, format="json")
    assert (response.status_code, response.json()["code"]) == (428, "precondition_required")
    assert response.json()["details"]["etag"] == '"1"'
    assert LookupTable.objects.get().revision == 1


def test_it_refuses_an_import_over_a_stale_revision_with_412_and_takes_a_star(api, table, users) -> None:
    actions.do_update_lookup_table(table, acting_user=users["admin"], data={"entries": {"M": "male"}})
    stale = api["author"].post(
        DETAIL + "/import", {"format": "csv", "content": CSV}, format="json", HTTP_IF_MATCH='"1"'
    )
    assert (stale.status_code, stale.json()["code"], stale.json()["details"]["current_revision"]) == (
        412,
        "stale_revision",
        2,
    )
    assert LookupTable.objects.get().data == {"entries": {"M": "male"}}
    star = api["author"].post(DETAIL + "/import", {"format": "csv", "content": CSV}, format="json", HTTP_IF_MATCH="*")
    assert (star.status_code, star.json()["revision"]) == (200, 3)


def test_it_imports_a_fhir_concept_map(api) -> None:
    response = api["author"].post(
        "/api/lookup-tables/v2-sex/import", {"format": "conceptmap", "content": CONCEPT_MAP}, format="json"
    )
    assert response.status_code == 201, response.json()
    assert response.json()["entry_count"] == 2  # X has no target
    assert translate("v2-sex", "M", "http://terminology.hl7.org/CodeSystem/v2-0001") == {
        "system": "http://hl7.org/fhir/administrative-gender",
        "code": "male",
        "display": "Male",
    }
    assert translate("v2-sex", "Z") == {"code": "unknown", "display": "Unknown"}  # unmapped: fixed


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"format": "csv", "content": "code,target\nM,male\n"}, "source_code and target_code"),
        ({"format": "conceptmap", "content": {"resourceType": "ValueSet"}}, "not a FHIR ConceptMap"),
        ({"format": "conceptmap", "content": {"resourceType": "ConceptMap", "group": "x"}}, "group must be a list"),
        (
            {"format": "conceptmap", "content": {"resourceType": "ConceptMap", "group": [{"element": [{"code": 1}]}]}},
            "code must be a string",
        ),
        ({"format": "csv", "content": "source_code,target_code\n" + "x" * 200_000 + ",y\n"}, "could not be read"),
    ],
)
def test_it_explains_an_import_it_cannot_read(api, payload, message) -> None:
    response = api["author"].post("/api/lookup-tables/t/import", payload, format="json")
    assert response.status_code == 400, response.json()
    assert response.json()["code"] == "invalid"
    assert message in response.json()["message"]
    assert not LookupTable.objects.exists()


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"format": "csv", "content": CONCEPT_MAP}, "content"),
        ({"format": "conceptmap", "content": CSV}, "content"),
        ({"format": "xlsx", "content": CSV}, "format"),
        ({"format": "csv"}, "content"),
        ({"format": "csv", "content": "source_code,target_code\nM,ma\x00le\n"}, "content"),
    ],
)
def test_it_rejects_an_import_request_of_the_wrong_shape(api, payload, field) -> None:
    response = api["author"].post("/api/lookup-tables/t/import", payload, format="json")
    assert response.status_code == 400
    assert field in response.json()["details"]


def test_it_rejects_an_import_under_a_name_that_is_not_a_slug(api) -> None:
    response = api["author"].post(
        "/api/lookup-tables/no%20spaces/import", {"format": "csv", "content": CSV}, format="json"
    )
    assert response.status_code == 400
    assert "name" in response.json()["details"]


# --- roles and query counts -------------------------------------------------------------------------------------

ROLE_MATRIX = [
    ("get", "/api/lookup-tables/", None, {"viewer": 200, "author": 200, "admin": 200}),
    ("post", "/api/lookup-tables/", {"name": "new", "data": GENDER}, {"viewer": 403, "author": 201, "admin": 201}),
    ("get", DETAIL, None, {"viewer": 200, "author": 200, "admin": 200}),
    ("patch", DETAIL, {"description": "x"}, {"viewer": 403, "author": 200, "admin": 200}),
    ("delete", DETAIL, None, {"viewer": 403, "author": 204, "admin": 204}),
    ("get", DETAIL + "/versions/", None, {"viewer": 200, "author": 200, "admin": 200}),
    ("post", DETAIL + "/import", {"format": "csv", "content": CSV}, {"viewer": 403, "author": 200, "admin": 200}),
]


@pytest.mark.parametrize("role", ["viewer", "author", "admin", "norole", "anonymous"])
@pytest.mark.parametrize(
    ("method", "path", "body", "expected"), ROLE_MATRIX, ids=lambda v: v if isinstance(v, str) else ""
)
def test_it_enforces_roles(api, table, role, method, path, body, expected) -> None:
    wanted = {**expected, "norole": 403, "anonymous": 401}[role]
    response = getattr(api[role], method)(path, body, format="json", HTTP_IF_MATCH='"1"')
    assert response.status_code == wanted, response.content


@pytest.mark.parametrize("rows", [1, 20])
def test_it_lists_tables_in_constant_queries(api, users, rows, django_assert_num_queries) -> None:
    for number in range(rows):
        actions.do_create_lookup_table(acting_user=users["author"], name=f"t{number}", data=GENDER)
    with django_assert_num_queries(4):  # token + user, role groups, count, page (updated_by joined)
        response = api["viewer"].get("/api/lookup-tables/")
    assert response.json()["count"] == rows


@pytest.mark.parametrize("rows", [1, 20])
def test_it_lists_table_history_in_constant_queries(api, table, users, rows, django_assert_num_queries) -> None:
    for number in range(1, rows):
        actions.do_update_lookup_table(table, acting_user=users["author"], data={"entries": {"M": f"m{number}"}})
    with django_assert_num_queries(5):  # token + user, role groups, the table, count, page (author joined)
        response = api["viewer"].get(DETAIL + "/versions/")
    assert response.json()["count"] == rows
