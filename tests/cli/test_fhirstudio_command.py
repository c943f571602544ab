"""`manage.py fhirstudio render|test`, as people and scripts use it: FHIR JSON and exit 0, or an OperationOutcome
and exit 2, and never a traceback."""

import json
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

ROOT = Path(__file__).resolve().parents[2]
JSON_SAMPLE = ROOT / "examples/json-patient/samples/example-patient.json"

# The command looks a name up among stored mappings first (tests/cli/test_stored_mappings.py); here the database is
# empty, so these tests exercise the examples folder.
pytestmark = pytest.mark.django_db


def fhirstudio(*args: str) -> tuple[int, str, str]:
    out, err = StringIO(), StringIO()
    try:
        call_command("fhirstudio", *args, stdout=out, stderr=err)
        code = 0
    except SystemExit as exit_:
        code = exit_.code
    return code, out.getvalue(), err.getvalue()


def test_it_prints_fhir_json_and_exits_0() -> None:
    code, out, _ = fhirstudio("render", "json-patient", str(JSON_SAMPLE))
    assert code == 0
    patient = json.loads(out)
    assert patient["resourceType"] == "Patient"
    assert patient["name"][0]["family"] == "Smith"


def test_it_prints_an_operation_outcome_and_exits_2_on_bad_input(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_bytes(b'{"MRN": ')
    code, out, _ = fhirstudio("render", "json-patient", str(bad))
    assert code == 2
    outcome = json.loads(out)
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["details"]["coding"][0]["code"] == "FS-SRC-020"


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["render", "no-such-mapping", str(JSON_SAMPLE)], "FS-REQ-001"),
        (["render", "json-patient", "/no/such/file.json"], "FS-SRC-001"),
        (["render", "json-patient", str(JSON_SAMPLE), "--source-format", "hl7v2"], "FS-SRC-010"),
    ],
)
def test_it_reports_unusable_arguments_as_operation_outcomes(args: list[str], code: str) -> None:
    exit_code, out, _ = fhirstudio(*args)
    assert exit_code == 2
    assert json.loads(out)["issue"][0]["details"]["coding"][0]["code"] == code


def test_it_skips_validation_when_asked(tmp_path: Path) -> None:
    source = tmp_path / "p.json"
    source.write_text('{"MRN": "1", "LastName": "X"}')
    code, out, _ = fhirstudio("render", "json-patient", str(source), "--no-validate", "--compact")
    assert code == 0
    assert "\n" not in out.strip()


def test_it_runs_sample_cases_and_prints_the_tally() -> None:
    code, out, _ = fhirstudio("test", "json-patient")
    assert code == 0
    assert out.strip().splitlines()[-1] == "2 passed, 0 failed"


def test_it_fails_the_test_command_when_a_sample_breaks(tmp_path: Path) -> None:
    example = tmp_path / "broken"
    (example / "samples").mkdir(parents=True)
    (example / "mapping.json").write_text('{"source_format": "json"}')
    (example / "template.j2").write_text('{"resourceType": "Patient", "gender": "{{ msg.g }}"}')
    (example / "samples" / "one.json").write_text('{"g": "robot"}')
    code, out, _ = fhirstudio("test", str(example))
    assert code == 1
    assert "FS-VAL-005" in out  # a gender code outside its required value set
    assert out.strip().splitlines()[-1] == "0 passed, 1 failed"


@pytest.mark.parametrize("payload", [b"", bytes(range(256)), b"\xff\xfe\xfa not utf-8", b"[" * 10_000])
def test_it_never_prints_a_traceback_from_the_real_command_line(tmp_path: Path, payload: bytes) -> None:
    source = tmp_path / "input"
    source.write_bytes(payload)
    done = subprocess.run(
        [sys.executable, "manage.py", "fhirstudio", "render", "json-patient", str(source)],
        cwd=ROOT,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2
    assert b"Traceback" not in done.stdout + done.stderr
    assert json.loads(done.stdout)["resourceType"] == "OperationOutcome"
