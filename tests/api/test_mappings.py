"""/api/mappings/ and /api/mappings/{slug}/: list (filter, search, pages), create, read, change and delete mappings;
and the OpenAPI schema that describes every mapping endpoint."""

import pytest
from openapi_spec_validator import validate

from mappings import actions
from mappings.models import AuditEvent, Draft, Mapping

pytestmark = pytest.mark.django_db

LIST = "/api/mappings/"
ONE = "/api/mappings/json-patient/"
FIELDS = {
    "slug",
    "title",
    "description",
    "source_format",
    "source_options",
    "output_kind",
    "timezone",
    "strict",
    "owner",
    "created_at",
    "updated_at",
    "draft_revision",
    "latest_version",
    "last_test_run",
    "draft_changed",
    "deployed_version",
}


def create(user, slug: str, source_format: str = "json", **fields) -> Mapping:
    return actions.do_create_mapping(
        acting_user=user, slug=slug, title=fields.pop("title", slug.title()), source_format=source_format, **fields
    )


def test_it_lists_mappings_with_their_draft_version_and_last_test_run(api, json_patient, users) -> None:
    actions.do_publish_version(json_patient, acting_user=users["author"], message="first")
    run = actions.do_run_tests(json_patient, acting_user=users["author"])
    create(users["author"], "adt-a01", "hl7v2")

    response = api["viewer"].get(LIST)
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 2
    first, second = body["results"]
    assert [first["slug"], second["slug"]] == ["adt-a01", "json-patient"]
    assert set(second) == FIELDS
    assert (second["owner"], second["draft_revision"], second["latest_version"]) == ("author", 1, 1)
    assert second["last_test_run"]["id"] == run.id
    assert (second["last_test_run"]["passed"], second["last_test_run"]["failed"]) == (1, 0)
    assert (first["latest_version"], first["last_test_run"]) == (None, None)


@pytest.mark.parametrize("rows", [1, 20])
def test_it_lists_mappings_in_the_same_number_of_queries_for_1_or_20(
    api, users, django_assert_num_queries, rows
) -> None:
    for number in range(rows):
        mapping = create(users["author"], f"mapping-{number:02}", template='{"resourceType": "Patient"}')
        actions.do_create_sample(mapping, acting_user=users["author"], name="case", payload="{}")
        actions.do_publish_version(mapping, acting_user=users["author"], message="first")
        actions.do_run_tests(mapping, acting_user=users["author"])
    # token, role, count, page (owner, draft, latest version and last run are joined or subqueries)
    with django_assert_num_queries(4):
        response = api["viewer"].get(LIST)
    assert len(response.json()["results"]) == rows
    assert all(row["last_test_run"]["passed"] == 1 for row in response.json()["results"])


def test_it_filters_by_source_format_and_searches_slug_title_and_description(api, users) -> None:
    create(users["author"], "adt-a01", "hl7v2", title="ADT admit")
    create(users["author"], "oru-r01", "hl7v2", title="Lab results", description="ORU observations")
    create(users["author"], "ccda", "xml", title="C-CDA document")

    def slugs(**query) -> list[str]:
        response = api["viewer"].get(LIST, query)
        assert response.status_code == 200
        return [row["slug"] for row in response.json()["results"]]

    assert slugs(source_format="hl7v2") == ["adt-a01", "oru-r01"]
    assert slugs(search="admit") == ["adt-a01"]
    assert slugs(search="OBSERVATIONS") == ["oru-r01"]
    assert slugs(search="ccd") == ["ccda"]
    assert slugs(search="r01", source_format="xml") == []
    assert slugs(search="") == ["adt-a01", "ccda", "oru-r01"]

    actions.do_publish_version(Mapping.objects.get(slug="ccda"), acting_user=users["author"], message="first")
    assert slugs(has_version="true") == ["ccda"]  # what a batch or a binding can run
    assert slugs(has_version="false", source_format="hl7v2") == ["adt-a01", "oru-r01"]
    assert slugs(has_version="true", search="admit") == []
    refused = api["viewer"].get(LIST, {"has_version": "maybe"})
    assert (refused.status_code, refused.json()["code"]) == (400, "invalid")


def test_it_pages_mappings(api, users) -> None:
    for number in range(5):
        create(users["author"], f"m-{number}")
    body = api["viewer"].get(LIST, {"page_size": 2, "page": 3}).json()
    assert body["count"] == 5
    assert [row["slug"] for row in body["results"]] == ["m-4"]
    assert body["next"] is None and body["previous"]
    missing = api["viewer"].get(LIST, {"page": 7})
    assert (missing.status_code, missing.json()["code"]) == (404, "not_found")


@pytest.mark.parametrize("query", [{"source_format": "pdf"}, {"search": "x" * 201}])
def test_it_refuses_a_malformed_filter(api, users, query) -> None:
    response = api["viewer"].get(LIST, query)
    assert response.status_code == 400
    assert response.json()["code"] == "invalid"


def test_it_creates_a_mapping_with_its_first_draft(api, json_patient) -> None:
    response = api["author"].post(
        LIST,
        {
            "slug": "csv-lab",
            "title": "CSV lab results",
            "source_format": "csv",
            "description": "One row per result",
            "source_options": {"delimiter": ";"},
            "output_kind": "Observation",
            "timezone": "Europe/Berlin",
            "strict": True,
            "template": '{%- import "snippets/common/datatypes.j2" as dt -%}\n{"resourceType": "Observation"}',
        },
        format="json",
    )
    assert response.status_code == 201
    body = response.json()
    assert set(body) == FIELDS
    assert (body["slug"], body["owner"], body["draft_revision"], body["latest_version"]) == (
        "csv-lab",
        "author",
        1,
        None,
    )
    assert (body["source_options"], body["timezone"], body["strict"]) == ({"delimiter": ";"}, "Europe/Berlin", True)
    assert body["last_test_run"] is None
    draft = Draft.objects.get(mapping__slug="csv-lab")
    assert draft.snippet_names == ["snippets/common/datatypes.j2"]
    assert AuditEvent.objects.filter(action="mapping.created", mapping_slug="csv-lab").exists()


def test_it_creates_a_mapping_from_the_required_fields_only(api, users) -> None:
    response = api["author"].post(LIST, {"slug": "bare", "title": "Bare", "source_format": "json"}, format="json")
    assert response.status_code == 201
    body = response.json()
    assert (body["output_kind"], body["timezone"], body["strict"], body["description"]) == ("Bundle", "UTC", False, "")
    assert Draft.objects.get(mapping__slug="bare").template == ""


def test_it_refuses_a_second_mapping_with_the_same_slug(api, json_patient) -> None:
    response = api["author"].post(
        LIST, {"slug": "json-patient", "title": "Again", "source_format": "json"}, format="json"
    )
    assert response.status_code == 409
    assert response.json()["code"] == "conflict"
    assert Mapping.objects.get().title == "JSON patient → Patient"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"title": "T", "source_format": "json"}, "slug"),
        ({"slug": "has space", "title": "T", "source_format": "json"}, "slug"),
        ({"slug": "x" * 101, "title": "T", "source_format": "json"}, "slug"),
        ({"slug": "a", "source_format": "json"}, "title"),
        ({"slug": "a", "title": "", "source_format": "json"}, "title"),
        ({"slug": "a", "title": 5, "source_format": "json"}, "title"),
        ({"slug": "a", "title": "T"}, "source_format"),
        ({"slug": "a", "title": "T", "source_format": "pdf"}, "source_format"),
        ({"slug": "a", "title": "T", "source_format": "json", "source_options": ";"}, "source_options"),
        ({"slug": "a", "title": "T", "source_format": "json", "source_options": {"x": "a\x00"}}, "source_options"),
        ({"slug": "a", "title": "T\x00", "source_format": "json"}, "title"),
        ({"slug": "a", "title": "T", "source_format": "json", "timezone": "Mars/Olympus"}, "timezone"),
        ({"slug": "a", "title": "T", "source_format": "json", "timezone": "../../etc/passwd"}, "timezone"),
        ({"slug": "a", "title": "T", "source_format": "json", "strict": "yes"}, "strict"),
        ({"slug": "a", "title": "T", "source_format": "json", "template": ["{}"]}, "template"),
        ({"slug": "a", "title": "T", "source_format": "json", "output_kind": "x" * 61}, "output_kind"),
    ],
)
def test_it_refuses_a_malformed_mapping(api, users, body, field) -> None:
    response = api["author"].post(LIST, body, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid"
    assert field in response.json()["details"]
    assert not Mapping.objects.exists()


def test_it_shows_one_mapping(api, json_patient, users) -> None:
    actions.do_publish_version(json_patient, acting_user=users["author"], message="first")
    response = api["viewer"].get(ONE)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == FIELDS
    assert (body["slug"], body["owner"], body["latest_version"]) == ("json-patient", "author", 1)
    assert body["last_test_run"]["passed"] == 1  # the run recorded with the version


def test_it_changes_a_mappings_metadata_but_never_its_slug(api, json_patient) -> None:
    response = api["author"].patch(
        ONE, {"title": "Patients", "strict": True, "timezone": "America/New_York", "slug": "renamed"}, format="json"
    )
    assert response.status_code == 200
    body = response.json()
    assert (body["slug"], body["title"], body["strict"], body["timezone"]) == (
        "json-patient",
        "Patients",
        True,
        "America/New_York",
    )
    mapping = Mapping.objects.get()
    assert (mapping.title, mapping.description) == ("Patients", "")
    assert AuditEvent.objects.filter(action="mapping.updated").get().before == {
        "title": "JSON patient → Patient",
        "strict": False,
        "timezone": "UTC",
    }


@pytest.mark.parametrize(
    "body", [{"title": ""}, {"source_format": "pdf"}, {"strict": "no"}, {"source_options": []}, {"timezone": "x"}, []]
)
def test_it_refuses_a_malformed_change(api, json_patient, body) -> None:
    response = api["author"].patch(ONE, body, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid"


def test_it_deletes_a_mapping_with_everything_it_owns(api, json_patient, users) -> None:
    actions.do_publish_version(json_patient, acting_user=users["author"], message="first")
    response = api["author"].delete(ONE)
    assert response.status_code == 204
    assert not Mapping.objects.exists()
    assert AuditEvent.objects.filter(action="mapping.deleted", mapping_slug="json-patient").exists()
    assert api["viewer"].get(ONE).status_code == 404


def test_it_answers_not_found_for_a_missing_mapping(api, json_patient) -> None:
    for response in (
        api["viewer"].get("/api/mappings/nope/"),
        api["author"].patch("/api/mappings/nope/", {"title": "x"}, format="json"),
        api["author"].delete("/api/mappings/nope/"),
    ):
        assert response.status_code == 404
        assert response.json()["code"] == "not_found"


@pytest.mark.parametrize(
    ("role", "method", "url", "status"),
    [
        (role, method, url, status)
        for method, url, ok, writes in [
            ("get", LIST, 200, False),
            ("post", LIST, 201, True),
            ("get", ONE, 200, False),
            ("patch", ONE, 200, True),
            ("delete", ONE, 204, True),
        ]
        for role, status in [
            ("anonymous", 401),
            ("norole", 403),
            ("viewer", 403 if writes else ok),
            ("author", ok),
            ("admin", ok),
        ]
    ],
)
def test_it_lets_each_role_do_what_it_may(api, json_patient, role, method, url, status) -> None:
    client = api[role]
    body = {"slug": "new", "title": "New", "source_format": "json"} if method == "post" else {"title": "Changed"}
    response = client.get(url) if method == "get" else getattr(client, method)(url, body, format="json")
    assert response.status_code == status
    if status == 401:
        assert response.json()["code"] == "not_authenticated"
    if status == 403:
        assert response.json()["code"] == "permission_denied"


# --- the schema ---------------------------------------------------------------------------------------------------

MAPPING_OPERATIONS = {
    "/api/mappings/": {"get", "post"},
    "/api/mappings/{slug}/": {"get", "patch", "delete"},
    "/api/mappings/{slug}/draft": {"get", "put"},
    "/api/mappings/{slug}/versions/": {"get", "post"},
    "/api/mappings/{slug}/versions/{number}": {"get"},
    "/api/mappings/{slug}/versions/{number}/diff": {"get"},
    "/api/mappings/{slug}/versions/{number}/restore": {"post"},
    "/api/mappings/{slug}/render": {"post"},
    "/api/mappings/{slug}/samples/": {"get", "post"},
    "/api/mappings/{slug}/samples/{name}": {"get", "patch", "delete"},
    "/api/mappings/{slug}/test-runs/": {"get", "post"},
    "/api/mappings/{slug}/test-runs/{run_id}": {"get"},
}


def test_it_describes_every_mapping_endpoint_in_a_valid_openapi_schema(api) -> None:
    response = api["anonymous"].get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = response.json()
    validate(schema)
    for path, methods in MAPPING_OPERATIONS.items():
        operations = schema["paths"][path]
        assert methods <= set(operations), path
        for method in methods:
            operation = operations[method]
            assert operation["summary"], (path, method)
            assert {"401", "403", "404"} <= set(operation["responses"]), (path, method)
            success = min(code for code in operation["responses"] if code.startswith("2"))
            assert success == "204" or operation["responses"][success].get("content"), (path, method)
    draft_put = schema["paths"]["/api/mappings/{slug}/draft"]["put"]
    assert {"412", "428"} <= set(draft_put["responses"])
    assert any(parameter["name"] == "If-Match" for parameter in draft_put["parameters"])
