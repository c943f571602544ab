"""Golden tests for the demo mappings: every sample gives its expected output (volatile fields masked) and passes
its FHIRPath assertions; every matching file of the shared corpus (other people's messages) renders and validates
with zero errors."""

from functools import cache
from pathlib import Path

import pytest
from django.conf import settings

from mappings.engine import CompiledMapping
from mappings.examples import Example, list_examples
from mappings.samples import run_case

EXAMPLES = list_examples(settings.FHIR_STUDIO["EXAMPLES_DIR"])
CORPUS = settings.FHIR_STUDIO["CORPUS_DIR"]


@cache
def compiled(name: str) -> CompiledMapping:
    return next(example for example in EXAMPLES if example.name == name).compile()


def sample_cases() -> list:
    return [
        pytest.param(example, case, id=f"{example.name}/{case.name}") for example in EXAMPLES for case in example.cases
    ]


def corpus_cases() -> list:
    return [
        pytest.param(example, path, id=f"{example.name}/{path.name}")
        for example in EXAMPLES
        for path in example.corpus_files(CORPUS)
    ]


def test_it_has_the_demo_mappings_the_studio_ships() -> None:
    names = {example.name for example in EXAMPLES}
    assert {"json-patient", "csv-patients"} <= names


@pytest.mark.parametrize(("example", "case"), sample_cases())
def test_it_renders_each_example_sample_as_expected(example: Example, case) -> None:
    assert case.expected_path is not None, f"{case.name} has no expected/{case.name}.json"
    outcome = run_case(
        compiled(example.name), case.name, case.payload(), expected=case.expected(), assertions=case.assertions
    )
    assert outcome.problems == []
    assert outcome.result.ok


@pytest.mark.parametrize(("example", "path"), corpus_cases())
def test_it_turns_every_matching_corpus_file_into_valid_fhir(example: Example, path: Path) -> None:
    outcome = run_case(compiled(example.name), path.name, path.read_bytes())
    assert outcome.problems == []
    assert outcome.result.output["resourceType"]


def test_it_checks_the_corpus_for_every_example_that_names_one() -> None:
    for example in EXAMPLES:
        if example.corpus:
            assert example.corpus_files(CORPUS), f"{example.name}: its corpus globs match no file under {CORPUS}"


def _systems(node: object) -> list[str]:
    if isinstance(node, dict):
        found = [node["system"]] if isinstance(node.get("system"), str) else []
        return found + [system for value in node.values() for system in _systems(value)]
    if isinstance(node, list):
        return [system for item in node for system in _systems(item)]
    return []


def test_it_writes_only_uris_as_coding_systems_for_free_text_cwe_3() -> None:
    """OBX-3 `1554-5^GLUCOSE^POST 12H CFST:MCNC:PT:SER/PLAS:QN`: CWE-3 is text, not an HL7 table 0396 name, so the
    Coding has no system rather than one with spaces (an R4 uri has none)."""
    path = next(Path(CORPUS).rglob("ORU-R01-RMGEAD.hl7"))
    output = run_case(compiled("hl7v2-oru-r01"), path.name, path.read_bytes()).result.output
    systems = _systems(output)
    assert systems and not [system for system in systems if " " in system]
    glucose = [
        coding
        for entry in output["entry"]
        for coding in entry["resource"].get("code", {}).get("coding", [])
        if coding.get("code") == "1554-5"
    ]
    assert glucose and all("system" not in coding for coding in glucose)
