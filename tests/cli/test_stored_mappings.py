"""`manage.py fhirstudio` on mappings stored in the studio: render picks the latest published version (or the draft,
or a named version), test runs the stored samples and records the run, and token prints a script's API token."""

import json
from io import StringIO
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from rest_framework.authtoken.models import Token

from mappings import actions, models
from tests.api.conftest import _fresh_compile_cache  # noqa: F401 — shared fixture

pytestmark = pytest.mark.django_db

TEMPLATE = '{"resourceType": "Patient", "id": "p1", "name": [{"family": "{{ msg.LastName }}"}]}'
SHOUTING = '{"resourceType": "Patient", "id": "p1", "name": [{"family": "{{ msg.LastName | upper }}"}]}'


def fhirstudio(*args: str) -> tuple[int, str, str]:
    out, err = StringIO(), StringIO()
    try:
        call_command("fhirstudio", *args, stdout=out, stderr=err)
        code = 0
    except SystemExit as exit_:
        code = exit_.code
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def author() -> User:
    return User.objects.create_user("author", password="pw-author")


@pytest.fixture
def payload(tmp_path: Path) -> Path:
    path = tmp_path / "patient.json"
    path.write_text('{"LastName": "Ng"}')
    return path


@pytest.fixture
def stored(author) -> models.Mapping:
    """`json-patient` stored in the studio, shadowing the example folder of that name: v1 keeps the family name as
    written, the draft (revision 2) shouts it."""
    mapping = actions.do_create_mapping(
        acting_user=author, slug="json-patient", title="Stored", source_format="json", template=TEMPLATE
    )
    actions.do_create_sample(
        mapping, acting_user=author, name="ng", payload='{"LastName": "Ng"}', assertions=["Patient.name.family = 'Ng'"]
    )
    actions.do_publish_version(mapping, acting_user=author, message="v1")
    actions.do_save_draft(mapping, acting_user=author, template=SHOUTING, expected_revision=1)
    return mapping


def family(out: str) -> str:
    return json.loads(out)["name"][0]["family"]


def coding(out: str) -> str:
    return json.loads(out)["issue"][0]["details"]["coding"][0]["code"]


def test_it_renders_the_latest_published_version_of_a_stored_mapping(stored, payload) -> None:
    code, out, _ = fhirstudio("render", "json-patient", str(payload))
    assert code == 0
    assert family(out) == "Ng"  # v1, not the draft, and not the example folder's template either
    assert json.loads(out)["id"] == "p1"


@pytest.mark.parametrize(("args", "expected"), [(["--draft"], "NG"), (["--version", "1"], "Ng")])
def test_it_renders_the_draft_or_a_named_version_when_asked(stored, payload, args, expected) -> None:
    code, out, _ = fhirstudio("render", "json-patient", str(payload), *args)
    assert code == 0
    assert family(out) == expected


def test_it_renders_the_draft_of_a_mapping_never_published(author, payload) -> None:
    actions.do_create_mapping(
        acting_user=author, slug="unpublished", title="Draft only", source_format="json", template=SHOUTING
    )
    code, out, _ = fhirstudio("render", "unpublished", str(payload), "--compact")
    assert code == 0
    assert family(out) == "NG"


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["render", "json-patient", "PAYLOAD", "--version", "9"], "FS-REQ-001"),  # no such version
        (["render", "csv-patients", "PAYLOAD", "--version", "1"], "FS-REQ-001"),  # an example folder has none
        (["render", "broken", "PAYLOAD"], "FS-TPL-001"),  # the draft does not compile
        (["render", "json-patient", "/no/such/file.json"], "FS-SRC-001"),
    ],
)
def test_it_answers_unusable_arguments_with_an_operation_outcome(stored, author, payload, args, code) -> None:
    actions.do_create_mapping(acting_user=author, slug="broken", title="B", source_format="json", template="{% if %}")
    exit_code, out, _ = fhirstudio(*[str(payload) if arg == "PAYLOAD" else arg for arg in args])
    assert exit_code == 2
    assert coding(out) == code


def test_it_falls_back_to_the_example_folder_when_no_mapping_is_stored(payload) -> None:
    code, out, _ = fhirstudio("render", "json-patient", str(payload))
    assert code == 0
    assert family(out) == "Ng"
    assert json.loads(out)["id"] != "p1"  # the example's template makes a deterministic id


def test_it_runs_the_stored_samples_and_records_the_run(stored) -> None:
    code, out, _ = fhirstudio("test", "json-patient")
    lines = out.strip().splitlines()
    assert code == 1  # the shouting draft breaks the assertion
    assert lines[0] == "FAIL json-patient draft r2 ng"
    assert "assertion \"Patient.name.family = 'Ng'\"" in lines[1]
    assert lines[-1] == "0 passed, 1 failed"
    run = models.TestRun.objects.get(mapping=stored, trigger="manual")
    assert (run.version, run.draft_revision, run.created_by, run.failed) == (None, 2, None, 1)
    assert models.AuditEvent.objects.filter(action="tests.run", actor=None, mapping_slug="json-patient").exists()


def test_it_tests_a_published_version_when_asked(stored) -> None:
    code, out, _ = fhirstudio("test", "json-patient", "--version", "1")
    assert code == 0
    assert out.strip().splitlines()[0].startswith("ok   json-patient v1 ng (")
    assert out.strip().splitlines()[-1] == "1 passed, 0 failed"
    assert models.TestRun.objects.filter(trigger="manual", version__number=1).count() == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["test", "json-patient", "--version", "7"], "Mapping 'json-patient' has no version 7."),
        (["test", "csv-patients", "--version", "1"], "No stored mapping 'csv-patients': --version needs one."),
    ],
)
def test_it_refuses_a_version_that_does_not_exist(stored, args, message) -> None:
    code, out, _ = fhirstudio(*args)
    assert (code, out.strip()) == (2, message)
    assert not models.TestRun.objects.filter(trigger="manual").exists()


def test_it_prints_a_token_for_scripts_and_the_same_one_again(author) -> None:
    code, out, _ = fhirstudio("token", "author")
    assert code == 0
    assert out.strip() == Token.objects.get(user=author).key
    assert fhirstudio("token", "author")[1] == out


def test_it_refuses_a_token_for_an_unknown_user() -> None:
    code, out, _ = fhirstudio("token", "nobody")
    assert (code, out.strip()) == (2, "No user 'nobody'.")
    assert not Token.objects.exists()
