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


# --- what schemathesis found (issue 15): the schema and the code agree -----------------------------------------------


def schema(client) -> dict:
    return client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()


@pytest.mark.parametrize("slug", [0, 12, True, None, ["x"]])
def test_a_slug_must_be_a_string(api, slug) -> None:
    response = api["author"].post("/api/facades/", {"slug": slug, "title": "0"}, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid"
    assert "slug" in response.json()["details"]


def test_an_upload_of_no_records_is_accepted_and_changes_nothing(api, users) -> None:
    from mappings import actions
    from mappings.models import AuditEvent

    actions.do_create_data_source(acting_user=users["author"], name="empty", source_format="json")
    audited = AuditEvent.objects.count()
    response = api["author"].post("/api/sources/empty/records", {"records": []}, format="json")
    assert response.status_code == 200
    assert response.json() == {"created": 0, "replaced": 0, "reindexed": []}
    assert AuditEvent.objects.count() == audited


@pytest.mark.parametrize("query", ["page=", "page=0", "page=x", "page_size=false", "page_size=0", "page_size=501"])
def test_page_and_page_size_out_of_their_schema_are_400s(api, query) -> None:
    response = api["author"].get(f"/api/mappings/?{query}")
    assert response.status_code == 400
    name = query.split("=")[0]
    assert response.json()["code"] == "invalid" and name in response.json()["details"]
    assert api["author"].get("/api/mappings/?page=1&page_size=500").status_code == 200


def test_every_operation_documents_the_statuses_any_request_can_get(client) -> None:
    """mappings.guard can refuse any request (400 too_many_parameters or invalid_host, 414), and every view
    authenticates (401) and checks a role (403)."""
    missing = [
        f"{method.upper()} {path}: {status}"
        for path, operations in schema(client)["paths"].items()
        for method, operation in operations.items()
        for status in ("400", "401", "403", "414")
        if status not in operation["responses"] and path.startswith("/api/") and not path.startswith("/api/schema")
    ]
    assert not missing, missing


def test_deleting_a_deployed_mapping_is_a_documented_409(client) -> None:
    assert "409" in schema(client)["paths"]["/api/mappings/{slug}/"]["delete"]["responses"]


def test_a_test_run_row_has_results_only_when_asked(client) -> None:
    components = schema(client)["components"]["schemas"]
    assert "results" in components["TestRunRowOut"]["properties"]
    assert "results" not in components["TestRunRowOut"].get("required", [])
    listed = components["PaginatedTestRunRowOutList"]["properties"]["results"]["items"]["$ref"]
    assert listed.endswith("/TestRunRowOut")
