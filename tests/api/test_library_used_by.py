"""A snippet's or lookup table's detail says which mappings use it (`used_by`): those whose draft names it (what
keeps it from being deleted) and those whose published versions froze a copy of it, in a fixed number of queries."""

import pytest

from mappings import actions
from mappings.models import Mapping

pytestmark = pytest.mark.django_db

SNIPPET = "/api/snippets/snippets/common/datatypes.j2"
TABLE = "/api/lookup-tables/administrative-gender"


def save_draft(mapping: Mapping, user, template: str) -> None:
    actions.do_save_draft(mapping, acting_user=user, template=template, expected_revision=None)


def test_it_lists_the_drafts_that_use_a_snippet_and_a_table(api, json_patient) -> None:
    for url in (SNIPPET, TABLE):
        body = api["viewer"].get(url).json()
        assert body["used_by"] == [
            {"slug": "json-patient", "title": "JSON patient → Patient", "draft": True, "versions": []}
        ]


def test_it_lists_the_versions_that_froze_a_copy_after_the_draft_stopped_using_it(api, json_patient, users) -> None:
    actions.do_publish_version(json_patient, acting_user=users["author"], message="v1")
    actions.do_publish_version(json_patient, acting_user=users["author"], message="v2")
    save_draft(json_patient, users["author"], '{"resourceType": "Patient"}')
    for url in (SNIPPET, TABLE):
        assert api["viewer"].get(url).json()["used_by"] == [
            {"slug": "json-patient", "title": "JSON patient → Patient", "draft": False, "versions": [1, 2]}
        ]


def test_it_says_nobody_uses_an_item_no_mapping_names(api, users) -> None:
    actions.do_create_snippet(acting_user=users["author"], name="snippets/json/spare.j2", text="{# spare #}")
    response = api["viewer"].get("/api/snippets/snippets/json/spare.j2")
    assert response.json()["used_by"] == []


def test_it_answers_used_by_on_a_save_too(api, json_patient) -> None:
    response = api["author"].patch(SNIPPET, {"description": "shared types"}, format="json", HTTP_IF_MATCH="*")
    assert response.status_code == 200
    assert [use["slug"] for use in response.json()["used_by"]] == ["json-patient"]


@pytest.mark.parametrize("mappings", [1, 20])
def test_it_finds_users_in_constant_queries(api, json_patient, users, mappings, django_assert_num_queries) -> None:
    template = json_patient.draft.template
    for number in range(1, mappings):
        copy = actions.do_create_mapping(
            acting_user=users["author"],
            slug=f"copy-{number}",
            title=f"Copy {number}",
            source_format="json",
            template=template,
        )
        actions.do_publish_version(copy, acting_user=users["author"], message="v1")
    # token + user, role groups, the snippet, the drafts' names, the versions that froze it, who saved it last
    with django_assert_num_queries(6):
        body = api["viewer"].get(SNIPPET).json()
    assert len(body["used_by"]) == mappings
    assert all(use["draft"] for use in body["used_by"])
