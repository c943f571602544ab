"""The studio's writes, through actions: each leaves an audit row, versions are immutable and frozen, drafts lock
optimistically, and the library can't be pulled from under a draft."""

import pytest

from mappings import actions
from mappings.compiling import compile_version
from mappings.diffs import version_diff
from mappings.errors import StudioError
from mappings.models import AuditEvent, Draft, MappingVersion, TestRun
from mappings.samples import PINNED_NOW

pytestmark = pytest.mark.django_db

PAYLOAD = '{"MRN": "X1", "LastName": "Lee", "FirstName": "Al", "Gender": "F", "DOB": "19700101"}'


def test_it_creates_a_mapping_with_a_draft_that_knows_its_snippets_and_tables(json_patient) -> None:
    draft = json_patient.draft
    assert draft.revision == 1
    assert draft.snippet_names == ["snippets/common/datatypes.j2"]
    assert draft.table_names == ["administrative-gender"]
    assert AuditEvent.objects.filter(action="mapping.created", mapping_slug="json-patient").count() == 1


def test_it_refuses_a_stale_draft_save_and_says_the_current_revision(json_patient, users) -> None:
    actions.do_save_draft(json_patient, acting_user=users["author"], template="{}", expected_revision=1)
    with pytest.raises(StudioError) as caught:
        actions.do_save_draft(json_patient, acting_user=users["author"], template="[]", expected_revision=1)
    assert (caught.value.code, caught.value.status_code) == ("stale_draft", 412)
    assert caught.value.details["current_revision"] == 2
    assert Draft.objects.get(mapping=json_patient).template == "{}"


def test_it_freezes_snippets_and_tables_into_a_published_version(json_patient, users) -> None:
    author = users["author"]
    version = actions.do_publish_version(json_patient, acting_user=author, message="first")
    from mappings.models import LookupTable, Snippet

    actions.do_update_snippet(
        Snippet.objects.get(), acting_user=author, text="{% macro human_name(f) %}{}{% endmacro %}"
    )
    actions.do_update_lookup_table(LookupTable.objects.get(), acting_user=author, data={"entries": {"F": "other"}})
    version.refresh_from_db()
    assert "family" in version.snippets["snippets/common/datatypes.j2"]
    from mappings.engine import run_mapping

    output = run_mapping(compile_version(version), PAYLOAD, now=PINNED_NOW).output
    assert output["gender"] == "female"  # the table as published, not as edited since
    assert output["name"][0]["family"] == "Lee"


def test_it_records_the_test_run_with_each_published_version(json_patient, users) -> None:
    version = actions.do_publish_version(json_patient, acting_user=users["author"], message="first")
    assert version.number == 1
    assert (version.test_run.passed, version.test_run.failed, version.test_run.trigger) == (1, 0, "publish")
    assert json_patient.__class__.objects.get(pk=json_patient.pk).latest_version == version


def test_it_refuses_to_publish_a_draft_that_does_not_compile(json_patient, users) -> None:
    actions.do_save_draft(json_patient, acting_user=users["author"], template="{\n{% for %}", expected_revision=1)
    with pytest.raises(StudioError) as caught:
        actions.do_publish_version(json_patient, acting_user=users["author"], message="broken")
    assert caught.value.code == "draft_does_not_compile"
    assert caught.value.details["errors"][0]["line"] == 2
    assert not MappingVersion.objects.exists()


def test_it_restores_an_old_version_into_the_draft_without_touching_versions(json_patient, users) -> None:
    author = users["author"]
    first = actions.do_publish_version(json_patient, acting_user=author, message="first")
    changed = first.template.replace('"active": true', '"active": false')
    actions.do_save_draft(json_patient, acting_user=author, template=changed, expected_revision=1)
    second = actions.do_publish_version(json_patient, acting_user=author, message="inactive")
    diff = version_diff(second, first)
    assert '-  "active": true,' in diff["template"] and '+  "active": false,' in diff["template"]
    draft = actions.do_restore_version(first, acting_user=author)
    assert (draft.template, draft.revision) == (first.template, 3)
    assert MappingVersion.objects.get(pk=second.pk).template == changed
    assert AuditEvent.objects.filter(action="version.restored").count() == 1


def test_it_runs_samples_against_the_draft_and_reports_failures(json_patient, users) -> None:
    sample = json_patient.samples.get()
    actions.do_update_sample(sample, acting_user=users["author"], assertions=["Patient.gender = 'female'"])
    run = actions.do_run_tests(json_patient, acting_user=users["author"])
    assert (run.passed, run.failed, run.draft_revision) == (0, 1, 1)
    assert "Patient.gender = 'female'" in run.results[0]["problems"][0]
    assert TestRun.objects.count() == 1


def test_it_refuses_to_delete_library_items_a_draft_uses(json_patient, users) -> None:
    from mappings.models import LookupTable, Snippet

    with pytest.raises(StudioError) as caught:
        actions.do_delete_snippet(Snippet.objects.get(), acting_user=users["author"])
    assert (caught.value.code, caught.value.details) == ("in_use", {"mappings": ["json-patient"]})
    with pytest.raises(StudioError):
        actions.do_delete_lookup_table(LookupTable.objects.get(), acting_user=users["author"])


def test_it_refuses_a_snippet_that_does_not_compile(users) -> None:
    with pytest.raises(StudioError) as caught:
        actions.do_create_snippet(acting_user=users["author"], name="snippets/x/bad.j2", text="{% macro %}")
    assert caught.value.code == "invalid"
    assert caught.value.details["errors"][0]["code"] == "FS-TPL-001"


def test_it_writes_one_audit_row_per_write(json_patient, users) -> None:
    before = AuditEvent.objects.count()
    author = users["author"]
    actions.do_update_mapping(json_patient, acting_user=author, title="New title")
    actions.do_save_draft(json_patient, acting_user=author, template="{}", expected_revision=1)
    actions.do_create_sample(json_patient, acting_user=author, name="two", payload="{}")
    assert AuditEvent.objects.count() == before + 3
    row = AuditEvent.objects.filter(action="mapping.updated").get()
    assert (row.before, row.after, row.actor) == ({"title": "JSON patient → Patient"}, {"title": "New title"}, author)


DYNAMIC = """{% set table = "administrative-gender" %}
{"resourceType": "Patient",
 "gender": {{ msg.Gender | translate(table) | tojson }}}"""


def test_it_refuses_to_publish_a_table_named_through_a_variable_until_it_is_listed(json_patient, users) -> None:
    author = users["author"]
    actions.do_save_draft(json_patient, acting_user=author, template=DYNAMIC, expected_revision=1)
    with pytest.raises(StudioError) as refused:
        actions.do_publish_version(json_patient, acting_user=author, message="dynamic")
    assert (refused.value.code, refused.value.details) == ("tables_not_listed", {"places": ["template.j2:3"]})
    assert not MappingVersion.objects.filter(mapping=json_patient).exists()

    actions.do_save_draft(
        json_patient,
        acting_user=author,
        template=DYNAMIC,
        expected_revision=2,
        extra_tables=["administrative-gender"],
    )
    version = actions.do_publish_version(json_patient, acting_user=author, message="listed")
    assert list(version.lookup_tables) == ["administrative-gender"]
    assert compile_version(version).lookup_tables  # the version runs with the table frozen into it


def test_a_live_source_needs_its_settings_whoever_creates_it(users) -> None:
    with pytest.raises(StudioError) as refused:
        actions.do_create_data_source(acting_user=users["author"], name="lis", source_format="json", kind="http")
    assert refused.value.details == {"config": ["A http source needs base_url, read_path, search_path."]}
