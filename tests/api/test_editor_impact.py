"""POST /api/mappings/{slug}/impact: every stored sample run on two sides (a version or the draft), with a diff of
each output that changes. Writes nothing."""

import pytest

from mappings import actions
from mappings.models import AuditEvent, TestRun
from tests.api.conftest import ROOT

pytestmark = pytest.mark.django_db

URL = "/api/mappings/json-patient/impact"
MINIMAL = (ROOT / "examples/json-patient/samples/minimal.json").read_text()


def save_draft(mapping, user, template: str) -> None:
    mapping.refresh_from_db()
    actions.do_save_draft(mapping, acting_user=user, template=template, expected_revision=mapping.draft.revision)


@pytest.fixture
def published(json_patient, users):
    """json-patient with a second sample and version 1 published."""
    actions.do_create_sample(json_patient, acting_user=users["author"], name="minimal", payload=MINIMAL)
    actions.do_publish_version(json_patient, acting_user=users["author"], message="v1")
    json_patient.refresh_from_db()
    return json_patient


def test_it_finds_no_change_between_the_latest_version_and_an_unchanged_draft(api, published) -> None:
    body = api["viewer"].post(URL, {}, format="json").json()
    assert (body["from"], body["to"], body["changed"], body["unchanged"]) == ("v1", "draft", 0, 2)
    assert [case["case"] for case in body["cases"]] == ["example-patient", "minimal"]
    assert all(case["diff"] == "" and case["from_ok"] and case["to_ok"] for case in body["cases"])


def test_it_shows_the_diff_of_the_sample_a_draft_change_affects(api, users, published) -> None:
    # Only the example sample has a phone number: the telecom change touches one output of two.
    changed = published.draft.template.replace('dt.telecom(number, "phone")', 'dt.telecom(number, "phone", "home")')
    assert changed != published.draft.template
    save_draft(published, users["author"], changed)
    audit_rows, runs = AuditEvent.objects.count(), TestRun.objects.count()

    body = api["viewer"].post(URL, {"from": 1, "to": "draft"}, format="json").json()

    assert (body["changed"], body["unchanged"]) == (1, 1)
    case = next(case for case in body["cases"] if case["changed"])
    assert case["case"] == "example-patient"
    assert case["diff"].startswith("--- v1\n+++ draft\n")
    assert '+      "use": "home",' in case["diff"]
    assert (case["from_ok"], case["to_ok"], case["from_errors"], case["to_errors"]) == (True, True, [], [])
    assert next(case for case in body["cases"] if not case["changed"])["diff"] == ""
    assert (AuditEvent.objects.count(), TestRun.objects.count()) == (audit_rows, runs)  # wrote nothing


def test_it_compares_two_versions_and_masks_volatile_fields(api, users, published) -> None:
    save_draft(published, users["author"], published.draft.template.replace('"active": true', '"active": false'))
    actions.do_publish_version(published, acting_user=users["author"], message="v2")
    body = api["viewer"].post(URL, {"from": "1", "to": "latest"}, format="json").json()
    assert (body["from"], body["to"], body["changed"]) == ("v1", "v2", 2)
    assert '-  "active": true,' in body["cases"][0]["diff"]
    assert '+  "active": false,' in body["cases"][0]["diff"]
    back = api["viewer"].post(URL, {"from": 2, "to": 1}, format="json").json()
    assert (back["from"], back["to"], back["changed"]) == ("v2", "v1", 2)


def test_it_reports_a_draft_that_no_longer_compiles_as_a_change_on_every_sample(api, users, published) -> None:
    save_draft(published, users["author"], "{{ broken")
    body = api["viewer"].post(URL, {}, format="json").json()
    assert (body["changed"], body["unchanged"]) == (2, 0)
    case = body["cases"][0]
    assert (case["from_ok"], case["to_ok"]) == (True, False)
    assert case["to_errors"][0]["code"].startswith("FS-TPL-")
    assert case["diff"].startswith("--- v1\n+++ draft\n")


def test_it_refuses_an_impact_with_nothing_to_compare_or_a_bad_side(api, json_patient) -> None:
    nothing = api["viewer"].post(URL, {}, format="json")
    assert (nothing.status_code, nothing.json()["code"]) == (400, "invalid")
    missing = api["viewer"].post(URL, {"from": 7}, format="json")
    assert (missing.status_code, missing.json()["code"]) == (404, "not_found")
    for body in ({"from": "v1"}, {"to": 0}, {"from": True}, {"to": [1]}):
        bad = api["viewer"].post(URL, body, format="json")
        assert (bad.status_code, bad.json()["code"]) == (400, "invalid"), body
    both_drafts = api["viewer"].post(URL, {"from": "draft", "to": "draft"}, format="json").json()
    assert (both_drafts["from"], both_drafts["to"], both_drafts["changed"]) == ("draft", "draft", 0)


def test_it_refuses_the_impact_to_anonymous_and_roleless_users(api, published) -> None:
    assert api["anonymous"].post(URL, {}, format="json").status_code == 401
    assert api["norole"].post(URL, {}, format="json").status_code == 403
    assert api["viewer"].post("/api/mappings/nope/impact", {}, format="json").status_code == 404
