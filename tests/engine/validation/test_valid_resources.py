"""Valid resources are accepted with zero errors: the FHIR R4 outputs of the shared corpus (Microsoft FHIR-Converter's
expected outputs, US Core examples), every example mapping's samples rendered by the engine, and resources written
here for the R4-only types and shapes the others lack (fixtures/handwritten).

Some corpus outputs are not valid R4 (their converters' mistakes): they are listed in CORPUS_INVALID with the first
error they have, so they are checked too, as invalid.
"""

import json
from functools import cache
from pathlib import Path

import pytest

from mappings.engine import run_mapping
from mappings.engine.validation import validate_resource
from mappings.examples import list_examples

ROOT = Path(__file__).resolve().parents[3]
CORPUS = ROOT.parent / "shared/corpus"
HANDWRITTEN = Path(__file__).parent / "fixtures/handwritten"
CORPUS_GLOBS = ("fhir-converter/expected/**/*.json", "more/fhir-r4/valid/*.json", "fhir-converter/fhir/*.json")

# corpus file → (code, expression) of its first error: what the converter that wrote it got wrong.
CORPUS_INVALID = {
    "fhir-converter/expected/ccda/C-CDA_R2-1_CCD.xml-expected.json": (
        "FS-VAL-006",
        "Bundle.entry[5].resource.reaction[0].manifestation",
    ),
    "fhir-converter/expected/ccda/CCD-expected.json": ("FS-VAL-006", "Bundle.entry[8].resource.status"),
    "fhir-converter/expected/ccda/Diagnostic_Imaging_Report-expected.json": (
        "FS-VAL-006",
        "Bundle.entry[2].resource.class",
    ),
    "fhir-converter/expected/ccda/Operative_Note-expected.json": (
        "FS-VAL-005",
        "Bundle.entry[10].resource.clinicalStatus",
    ),
    "fhir-converter/expected/ccda/Patient-and-Provider-Organization-Direct-Address-C-CDAR2.1-expected.json": (
        "FS-VAL-006",
        "Bundle.entry[0].resource.author",
    ),
    "fhir-converter/expected/ccda/Transfer_Summary-expected.json": (
        "FS-VAL-006",
        "Bundle.entry[10].resource.reaction[1].manifestation",
    ),
    "fhir-converter/expected/hl7v2/ADT-A41-02-expected.json": ("FS-VAL-008", "Bundle.entry[12].resource"),
    "fhir-converter/expected/hl7v2/ADT01-23-expected.json": ("FS-VAL-008", "Bundle.entry[3].resource.telecom[0]"),
    "fhir-converter/expected/hl7v2/ADT01-28-expected.json": ("FS-VAL-008", "Bundle.entry[3].resource.telecom[0]"),
    "fhir-converter/expected/hl7v2/ADT04-23-expected.json": ("FS-VAL-005", "Bundle.entry[4].resource.telecom[0].use"),
    "fhir-converter/expected/hl7v2/ADT04-28-expected.json": ("FS-VAL-008", "Bundle.entry[3].resource.telecom[0]"),
    "fhir-converter/expected/hl7v2/LAB-ORU-1-expected.json": ("FS-VAL-006", "Bundle.entry[1].resource.agent[0].who"),
    "fhir-converter/expected/hl7v2/LAB-ORU-2-expected.json": ("FS-VAL-006", "Bundle.entry[1].resource.agent[0].who"),
    "fhir-converter/expected/hl7v2/ORU-R01-RMGEAD-expected.json": (
        "FS-VAL-008",
        "Bundle.entry[4].resource.telecom[0]",
    ),
    "fhir-converter/expected/hl7v2/OUL-R24-01-expected.json": ("FS-VAL-006", "Bundle.entry[100].resource.status"),
    "fhir-converter/expected/hl7v2/VXU-V04-01-expected.json": ("FS-VAL-006", "Bundle.entry[88].resource.status"),
    "fhir-converter/expected/stu3/AllergyIntolerance.json": ("FS-VAL-001", "AllergyIntolerance.clinicalStatus.coding"),
    "fhir-converter/expected/stu3/Appointment.json": ("FS-VAL-004", "Appointment.basedOn[0].reference"),
    "fhir-converter/expected/stu3/Condition.json": ("FS-VAL-001", "Condition.clinicalStatus.coding"),
    "fhir-converter/expected/stu3/DocumentReference.json": (
        "FS-VAL-001",
        "DocumentReference.extension[0].valuedateTime",
    ),
    "fhir-converter/expected/stu3/ImagingStudy.json": ("FS-VAL-004", "ImagingStudy.basedOn[0].reference"),
    "fhir-converter/expected/stu3/Medication.json": ("FS-VAL-001", "Medication.extension[0].valueBoolean"),
    "fhir-converter/expected/stu3/MedicationStatement.json": (
        "FS-VAL-012",
        "MedicationStatement.medicationReference.reference",
    ),
    "fhir-converter/expected/stu3/Observation.json": (
        "FS-VAL-004",
        "Observation.extension[1].valueReference.reference",
    ),
    "fhir-converter/expected/stu3/OperationDefinition.json": (
        "FS-VAL-006",
        "OperationDefinition.parameter[0].binding.strength",
    ),
    "fhir-converter/expected/stu3/Parameters.json": ("FS-VAL-001", "Parameters.parameter[2].valueMoney.value"),
    "fhir-converter/expected/stu3/Provenance.json": ("FS-VAL-001", "Provenance.reason[0]"),
    "fhir-converter/expected/stu3/Questionnaire.json": (
        "FS-VAL-001",
        "Questionnaire.item[1].item[0].item[3].initial[0].valueBoolean",
    ),
    "fhir-converter/expected/stu3/QuestionnaireResponse.json": (
        "FS-VAL-012",
        "QuestionnaireResponse.basedOn[0].reference",
    ),
    "fhir-converter/expected/stu3/StructureDefinition.json": ("FS-VAL-008", "StructureDefinition.snapshot"),
    "fhir-converter/expected/stu3/ValueSet.json": ("FS-VAL-001", "ValueSet.extension[0].valueBoolean"),
    "fhir-converter/fhir/ExamplePatient.json": ("FS-VAL-002", "Resource"),  # not FHIR: a plain JSON record
    "fhir-converter/fhir/ObservationBundle.json": ("FS-VAL-001", "Bundle.entry[1].resourceType"),
}


def load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8-sig"))


def corpus_files() -> list[str]:
    return sorted({str(p.relative_to(CORPUS)) for pattern in CORPUS_GLOBS for p in CORPUS.glob(pattern)})


@cache
def example_outputs() -> list[tuple[str, dict]]:
    outputs = []
    for example in list_examples(ROOT / "examples"):
        compiled = example.compile()
        for case in example.cases:
            result = run_mapping(compiled, case.payload(), validate=False)
            outputs.append((f"{example.name}/{case.name}", result.output))
    return outputs


def errors(resource: dict) -> list[str]:
    return [issue.message for issue in validate_resource(resource) if issue.severity == "error"]


def resources_in(resource: dict) -> int:
    entries = resource.get("entry") if resource.get("resourceType") == "Bundle" else None
    return 1 + sum(resources_in(entry["resource"]) for entry in entries or () if "resource" in entry)


@pytest.mark.parametrize("name", [name for name in corpus_files() if name not in CORPUS_INVALID])
def test_it_accepts_every_valid_corpus_output(name: str) -> None:
    assert errors(load(CORPUS / name)) == []


@pytest.mark.parametrize(("name", "first"), sorted(CORPUS_INVALID.items()))
def test_it_finds_what_the_invalid_corpus_outputs_get_wrong(name: str, first: tuple[str, str]) -> None:
    found = [(i.code, i.expression[0]) for i in validate_resource(load(CORPUS / name)) if i.severity == "error"]
    assert found[0] == first


@pytest.mark.parametrize("index", range(len(example_outputs())), ids=[name for name, _ in example_outputs()])
def test_it_accepts_every_example_mappings_rendered_output(index: int) -> None:
    name, output = example_outputs()[index]
    assert output is not None, name
    assert errors(output) == []


@pytest.mark.parametrize("path", sorted(HANDWRITTEN.glob("*.json")), ids=lambda path: path.stem)
def test_it_accepts_handwritten_resources_of_r4_only_types_and_rarer_shapes(path: Path) -> None:
    assert errors(load(path)) == []


def test_the_valid_set_holds_at_least_a_hundred_resources() -> None:
    valid_files = [load(CORPUS / name) for name in corpus_files() if name not in CORPUS_INVALID]
    outputs = [output for _, output in example_outputs()]
    handwritten = [load(path) for path in HANDWRITTEN.glob("*.json")]
    total = sum(resources_in(resource) for resource in valid_files + outputs + handwritten)
    assert len(valid_files) >= 100 and total >= 1000
    assert len(CORPUS_INVALID) < len(valid_files) / 4
