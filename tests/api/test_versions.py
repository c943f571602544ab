"""/api/mappings/{slug}/versions/…: publish the draft as an immutable version with its test run, read, diff against
another version or the draft, and restore into the draft."""

import pytest

from mappings import actions
from mappings.models import Draft, MappingVersion, TestRun

pytestmark = pytest.mark.django_db

VERSIONS = "/api/mappings/json-patient/versions/"


def publish(client, message: str = "first"):
    return client.post(VERSIONS, {"message": message}, format="json")


def save_draft(mapping, user, template: str) -> None:
    draft = Draft.objects.get(mapping=mapping)
    actions.do_save_draft(mapping, acting_user=user, template=template, expected_revision=draft.revision)


def test_it_publishes_the_draft_and_records_its_test_run(api, json_patient) -> None:
    response = publish(api["author"], "first cut")
    assert response.status_code == 201
    body = response.json()
    assert (body["number"], body["message"], body["author"]) == (1, "first cut", "author")
    assert body["template"] == json_patient.draft.template
    assert list(body["snippets"]) == ["snippets/common/datatypes.j2"]
    assert list(body["lookup_tables"]) == ["administrative-gender"]
    assert body["engine_settings"]["source_format"] == "json"
    assert len(body["content_hash"]) == 64
    run = TestRun.objects.get()
    assert (run.trigger, run.version.number) == ("publish", 1)
    assert body["test_run"]["id"] == run.id
    assert (body["test_run"]["passed"], body["test_run"]["failed"], body["test_run"]["trigger"]) == (1, 0, "publish")
    assert body["test_run"]["results"][0]["case"] == "example-patient"
    assert body["test_run"]["results"][0]["passed"] is True

    second = publish(api["author"], "again").json()
    assert second["number"] == 2


def test_it_refuses_to_publish_a_draft_that_does_not_compile_and_says_where(api, json_patient, users) -> None:
    save_draft(json_patient, users["author"], '{\n"a": 1,\n{% for x in %}\n}')
    response = publish(api["author"])
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "draft_does_not_compile"
    error = body["details"]["errors"][0]
    assert (error["code"], error["stage"], error["template"], error["line"]) == (
        "FS-TPL-001",
        "template",
        "template.j2",
        3,
    )
    assert not MappingVersion.objects.exists()


@pytest.mark.parametrize("body", [{}, {"message": ""}, {"message": "   "}, {"message": 5}, {"message": None}, []])
def test_it_needs_a_message_to_publish(api, json_patient, body) -> None:
    response = api["author"].post(VERSIONS, body, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid"
    assert not MappingVersion.objects.exists()


def test_it_lists_versions_newest_first_without_their_text(api, json_patient) -> None:
    publish(api["author"], "one")
    publish(api["author"], "two")
    response = api["viewer"].get(VERSIONS)
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 2
    assert [row["number"] for row in body["results"]] == [2, 1]
    row = body["results"][0]
    assert set(row) == {"number", "message", "author", "created_at", "content_hash", "test_run", "last_test_run"}
    assert (row["message"], row["author"]) == ("two", "author")
    assert set(row["test_run"]) == {"id", "passed", "failed", "created_at"}


@pytest.mark.parametrize("rows", [1, 20])
def test_it_lists_versions_in_the_same_number_of_queries_for_1_or_20(
    api, json_patient, users, django_assert_num_queries, rows
) -> None:
    for number in range(1, rows + 1):
        actions.do_publish_version(json_patient, acting_user=users["author"], message=f"v{number}")
    # token, role, mapping, count, page
    with django_assert_num_queries(5):
        response = api["viewer"].get(VERSIONS)
    assert response.json()["count"] == rows


def test_it_shows_one_version_with_everything_frozen_into_it(api, json_patient) -> None:
    publish(api["author"])
    response = api["viewer"].get(VERSIONS + "1")
    assert response.status_code == 200
    body = response.json()
    assert body["number"] == 1
    assert "family" in body["snippets"]["snippets/common/datatypes.j2"]
    assert body["lookup_tables"]["administrative-gender"]["entries"]
    assert body["test_run"]["results"][0]["problems"] == []


def test_it_answers_not_found_for_a_missing_version_or_mapping(api, json_patient) -> None:
    publish(api["author"])
    for url in (
        VERSIONS + "2",
        VERSIONS + "99999999999",
        "/api/mappings/nope/versions/1",
        "/api/mappings/nope/versions/",
    ):
        response = api["viewer"].get(url)
        assert response.status_code == 404, url
        assert response.json()["code"] == "not_found"
    assert api["author"].post(VERSIONS + "2/restore").status_code == 404
    assert api["viewer"].get(VERSIONS + "2/diff").status_code == 404


# --- diff -------------------------------------------------------------------------------------------------------------


@pytest.fixture
def two_versions(api, json_patient, users):
    """v1 as the example, v2 with the patient inactive, and the draft with a new comment line."""
    author = users["author"]
    template = json_patient.draft.template
    first = actions.do_publish_version(json_patient, acting_user=author, message="first")
    save_draft(json_patient, author, template.replace('"active": true', '"active": false'))
    second = actions.do_publish_version(json_patient, acting_user=author, message="inactive")
    save_draft(json_patient, author, "{# draft #}\n" + second.template)
    return first, second


def test_it_diffs_a_version_against_the_previous_one_by_default(api, two_versions) -> None:
    response = api["viewer"].get(VERSIONS + "2/diff")
    assert response.status_code == 200
    body = response.json()
    assert (body["from"], body["to"]) == ("v1", "v2")
    assert '-  "active": true,' in body["template"]
    assert '+  "active": false,' in body["template"]
    assert body["snippets"] == {}
    assert body["lookup_tables"] == {}


def test_it_diffs_the_first_version_against_the_draft_by_default(api, two_versions) -> None:
    body = api["viewer"].get(VERSIONS + "1/diff").json()
    assert (body["from"], body["to"]) == ("draft", "v1")
    assert "-{# draft #}" in body["template"]


@pytest.mark.parametrize(("against", "label"), [("1", "v1"), ("2", "v2"), ("draft", "draft")])
def test_it_diffs_against_the_version_or_draft_asked_for(api, two_versions, against, label) -> None:
    body = api["viewer"].get(VERSIONS + "2/diff", {"against": against}).json()
    assert body["from"] == label
    assert (body["template"] == "") is (against == "2")


def test_it_diffs_lookup_tables_and_snippets_frozen_into_each_version(api, json_patient, users) -> None:
    from mappings.models import LookupTable

    author = users["author"]
    actions.do_publish_version(json_patient, acting_user=author, message="first")
    table = LookupTable.objects.get()
    actions.do_update_lookup_table(table, acting_user=author, data={**table.data, "default": "unknown"})
    actions.do_publish_version(json_patient, acting_user=author, message="table changed")
    body = api["viewer"].get(VERSIONS + "2/diff").json()
    assert body["template"] == ""
    assert '+  "default": "unknown"' in body["lookup_tables"]["administrative-gender"]


def test_it_answers_not_found_for_a_missing_version_to_diff_against(api, two_versions) -> None:
    response = api["viewer"].get(VERSIONS + "2/diff", {"against": "7"})
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


@pytest.mark.parametrize("against", ["x", "0", "-1", "1.5", "v1", "DRAFT", "99999999999999999999"])
def test_it_refuses_a_malformed_version_to_diff_against(api, two_versions, against) -> None:
    response = api["viewer"].get(VERSIONS + "2/diff", {"against": against})
    assert response.status_code == 400
    assert response.json()["code"] == "invalid"
    assert "against" in response.json()["details"]


# --- restore ----------------------------------------------------------------------------------------------------------


def test_it_restores_a_version_into_the_draft_with_a_new_etag(api, two_versions, json_patient) -> None:
    first, second = two_versions
    response = api["author"].post(VERSIONS + "1/restore")
    assert response.status_code == 200
    body = response.json()
    assert (body["template"], body["revision"]) == (first.template, 4)
    assert response["ETag"] == f'"{json_patient.id}-4"' == body["etag"]
    assert MappingVersion.objects.get(pk=second.pk).template == second.template  # versions never change
    assert MappingVersion.objects.count() == 2


def test_it_round_trips_publish_diff_restore_through_the_api(api, json_patient) -> None:
    author = api["author"]
    original = author.get("/api/mappings/json-patient/draft")
    assert publish(author, "original").status_code == 201

    changed = original.json()["template"].replace('"active": true', '"active": false')
    saved = author.put(
        "/api/mappings/json-patient/draft", {"template": changed}, format="json", HTTP_IF_MATCH=original["ETag"]
    )
    assert saved.status_code == 200
    assert publish(author, "inactive").status_code == 201

    diff = author.get(VERSIONS + "2/diff", {"against": "1"}).json()
    assert '+  "active": false,' in diff["template"]

    restored = author.post(VERSIONS + "1/restore")
    assert restored.json()["template"] == original.json()["template"]
    assert author.get(VERSIONS + "1/diff", {"against": "draft"}).json()["template"] == ""

    # the restored draft saves with the ETag the restore answered, and publishes as v3 equal to v1
    resaved = author.put(
        "/api/mappings/json-patient/draft",
        {"template": restored.json()["template"]},
        format="json",
        HTTP_IF_MATCH=restored["ETag"],
    )
    assert resaved.status_code == 200
    third = publish(author, "back to active").json()
    assert third["number"] == 3
    assert third["content_hash"] == author.get(VERSIONS + "1").json()["content_hash"]


# --- roles --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "method", "path", "status"),
    [
        (role, method, path, status)
        for path, method, writes in [
            ("", "get", False),
            ("", "post", True),
            ("1", "get", False),
            ("1/diff", "get", False),
            ("1/restore", "post", True),
        ]
        for role, status in [
            ("anonymous", 401),
            ("norole", 403),
            ("viewer", 403 if writes else 200),
            ("author", 201 if (writes and path == "") else 200),
            ("admin", 201 if (writes and path == "") else 200),
        ]
    ],
)
def test_it_lets_each_role_do_what_it_may(api, json_patient, users, role, method, path, status) -> None:
    actions.do_publish_version(json_patient, acting_user=users["author"], message="first")
    client = api[role]
    url = VERSIONS + path
    response = client.post(url, {"message": "m"}, format="json") if method == "post" else client.get(url)
    assert response.status_code == status
    if status in (401, 403):
        assert response.json()["code"] in ("not_authenticated", "permission_denied")


def test_each_version_shows_its_newest_test_run_beside_the_one_at_publish(api, users, json_patient) -> None:
    author = users["author"]
    version = actions.do_publish_version(json_patient, acting_user=author, message="v1")
    sample = json_patient.samples.get()
    actions.do_update_sample(sample, acting_user=author, assertions=["Patient.active = false"])
    actions.do_run_tests(json_patient, acting_user=author, version=version)
    listed = api["viewer"].get("/api/mappings/json-patient/versions/").json()["results"][0]
    assert (listed["test_run"]["failed"], listed["last_test_run"]["failed"]) == (0, 1)
    assert listed["last_test_run"]["trigger"] == "manual"
    detail = api["viewer"].get("/api/mappings/json-patient/versions/1").json()
    assert detail["last_test_run"]["id"] == listed["last_test_run"]["id"]
