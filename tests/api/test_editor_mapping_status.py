"""The mapping list's editor columns: `draft_changed` on every mapping, and the `status` and `last_test` filters."""

import pytest

from mappings import actions

pytestmark = pytest.mark.django_db

LIST = "/api/mappings/"


def slugs(client, query: str) -> list[str]:
    response = client.get(f"{LIST}?{query}")
    assert response.status_code == 200, response.json()
    return [row["slug"] for row in response.json()["results"]]


def save_draft(mapping, user, template: str) -> None:
    mapping.refresh_from_db()
    actions.do_save_draft(mapping, acting_user=user, template=template, expected_revision=mapping.draft.revision)


def test_it_says_whether_the_draft_changed_since_the_latest_version(api, users, json_patient) -> None:
    detail = f"{LIST}json-patient/"
    assert api["viewer"].get(detail).json()["draft_changed"] is True  # nothing published yet
    version = actions.do_publish_version(json_patient, acting_user=users["author"], message="v1")
    assert api["viewer"].get(detail).json()["draft_changed"] is False
    save_draft(json_patient, users["author"], json_patient.draft.template + " ")
    assert api["viewer"].get(detail).json()["draft_changed"] is True
    assert api["viewer"].get(LIST).json()["results"][0]["draft_changed"] is True
    actions.do_restore_version(version, acting_user=users["author"])
    assert api["viewer"].get(detail).json()["draft_changed"] is False
    assert api["viewer"].get(LIST).json()["results"][0]["draft_changed"] is False
    assert api["viewer"].get(detail).json()["deployed_version"] is None  # no facade serves it


def test_it_filters_mappings_by_draft_status(api, users, json_patient) -> None:
    actions.do_create_mapping(acting_user=users["author"], slug="fresh", title="Fresh", source_format="json")
    assert slugs(api["viewer"], "status=never_published") == ["fresh", "json-patient"]
    assert slugs(api["viewer"], "status=published") == []
    actions.do_publish_version(json_patient, acting_user=users["author"], message="v1")
    assert slugs(api["viewer"], "status=published") == ["json-patient"]
    assert slugs(api["viewer"], "status=changed") == []
    save_draft(json_patient, users["author"], json_patient.draft.template + " ")
    assert slugs(api["viewer"], "status=changed") == ["json-patient"]
    assert slugs(api["viewer"], "status=never_published") == ["fresh"]
    assert slugs(api["viewer"], "status=changed&source_format=hl7v2") == []


def test_it_filters_mappings_by_their_last_test_run(api, users, json_patient) -> None:
    failing = actions.do_create_mapping(
        acting_user=users["author"], slug="failing", title="Failing", source_format="json", template="{{ broken"
    )
    actions.do_create_sample(failing, acting_user=users["author"], name="case", payload="{}")
    actions.do_create_mapping(acting_user=users["author"], slug="untested", title="Untested", source_format="json")
    actions.do_run_tests(json_patient, acting_user=users["author"])
    actions.do_run_tests(failing, acting_user=users["author"])
    assert slugs(api["viewer"], "last_test=passed") == ["json-patient"]
    assert slugs(api["viewer"], "last_test=failed") == ["failing"]
    assert slugs(api["viewer"], "last_test=none") == ["untested"]


@pytest.mark.parametrize("query", ["status=bogus", "last_test=maybe", "status=Changed"])
def test_it_refuses_an_unknown_filter_value(api, users, query) -> None:
    response = api["viewer"].get(f"{LIST}?{query}")
    assert (response.status_code, response.json()["code"]) == (400, "invalid")
    assert set(response.json()["details"]) <= {"status", "last_test"}


@pytest.mark.parametrize("rows", [1, 20])
def test_it_filters_in_the_same_number_of_queries_for_1_or_20(api, users, django_assert_num_queries, rows) -> None:
    for number in range(rows):
        mapping = actions.do_create_mapping(
            acting_user=users["author"], slug=f"m-{number:02}", title="M", source_format="json", template="{}"
        )
        actions.do_publish_version(mapping, acting_user=users["author"], message="v1")
        save_draft(mapping, users["author"], '{"resourceType": "Patient"}')
    # token, role, count, page: draft_changed and the last run are computed in the same SELECT
    with django_assert_num_queries(4):
        response = api["viewer"].get(f"{LIST}?status=changed&last_test=passed")
    assert len(response.json()["results"]) == rows
    assert all(row["draft_changed"] for row in response.json()["results"])
