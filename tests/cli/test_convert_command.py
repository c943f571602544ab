"""`manage.py fhirstudio convert <file> --to json|xml|ttl`: the resource in another format on stdout, exit 0; a file
that is not a FHIR R4 resource is a message on stderr and exit 1, never a traceback."""

import subprocess
import sys
from pathlib import Path

import pytest

from mappings.engine.formats import dumps, parse
from tests.cli.test_fhirstudio_command import fhirstudio

ROOT = Path(__file__).resolve().parents[2]
OBSERVATION = (
    b'{"resourceType": "Observation", "status": "final", "code": {"text": "K"}, "valueQuantity": {"value": 0.70}}'
)


@pytest.fixture
def observation_file(tmp_path: Path) -> Path:
    path = tmp_path / "observation.json"
    path.write_bytes(OBSERVATION)
    return path


@pytest.mark.parametrize("fmt", ["xml", "ttl", "json"])
def test_it_prints_the_resource_in_the_format_asked(observation_file: Path, fmt: str) -> None:
    code, out, err = fhirstudio("convert", str(observation_file), "--to", fmt)
    assert (code, err) == (0, "")
    assert dumps(parse(out, fmt)) == dumps(parse(OBSERVATION, "json"))  # 0.70 keeps its digits


def test_it_detects_the_input_format_and_takes_it_from_the_flag_too(observation_file: Path, tmp_path: Path) -> None:
    _, xml, _ = fhirstudio("convert", str(observation_file), "--to", "xml", "--compact")
    assert "\n" not in xml.strip()
    xml_file = tmp_path / "observation.xml"
    xml_file.write_text(xml)
    for extra in ([], ["--from", "xml"]):
        code, ttl, _ = fhirstudio("convert", str(xml_file), "--to", "ttl", "--base", "https://x.example/fhir", *extra)
        assert code == 0
        assert "a fhir:Observation" in ttl
        assert '"0.70"^^xsd:decimal' in ttl


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b'<!DOCTYPE P [<!ENTITY e "x">]><Patient xmlns="http://hl7.org/fhir"/>', "FS-SRC-031"),
        (b'{"resourceType": "Patient", "nickname": "Jim"}', "nickname"),
        (b"@prefix fhir: <http://hl7.org/fhir/> . [ a fhir:Patient", "FS-SRC-051"),
    ],
)
def test_it_exits_1_with_a_clear_message_on_bad_input(tmp_path: Path, content: bytes, fragment: str) -> None:
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    code, out, err = fhirstudio("convert", str(path), "--to", "xml")
    assert code == 1
    assert out == ""
    assert fragment in err
    assert "Traceback" not in err


def test_it_exits_1_for_a_file_it_cannot_read() -> None:
    code, _, err = fhirstudio("convert", "/no/such/file.json", "--to", "xml")
    assert code == 1
    assert "Cannot read /no/such/file.json" in err


def test_it_works_from_a_shell_reading_standard_input() -> None:
    finished = subprocess.run(
        [sys.executable, "manage.py", "fhirstudio", "convert", "-", "--to", "xml"],
        input=OBSERVATION,
        capture_output=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert finished.returncode == 0, finished.stderr
    assert b'<value value="0.70"/>' in finished.stdout
