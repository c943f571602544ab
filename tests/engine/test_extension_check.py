"""extension() checks the value type against the extension's definition when its URL is known (the R4 core's, US
Core's, or the registry the environment carries): a warning at the template line, the output as written."""

from __future__ import annotations

import pytest

from mappings.engine import compile_mapping, run_mapping
from mappings.engine.definitions import core

BIRTH_PLACE = "http://hl7.org/fhir/StructureDefinition/patient-birthPlace"  # valueAddress
BIRTH_SEX = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-birthsex"  # valueCode
RACE = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-race"  # complex: sub-extensions


def warnings_of(call: str, compiled=None, registry=None) -> tuple[dict, list[tuple[str, int | None, str]]]:
    template = '{"resourceType": "Patient",\n"extension": [{{ ' + call + " | tojson }}]}"
    result = run_mapping(compiled or compile_mapping(template), "{}", validate=False, registry=registry)
    found = [(error.code, error.line, error.message) for error in result.errors if error.severity == "warning"]
    return result.output, found


@pytest.mark.parametrize(
    "call",
    [
        f"extension('{BIRTH_SEX}', 'code', 'F')",
        f"extension('{BIRTH_SEX}', 'Code', 'F')",
        f"extension('{BIRTH_PLACE}', 'Address', {{'city': 'Lyon'}})",
        "extension('http://example.org/unknown', 'Banana', 'x')",
    ],
)
def test_a_value_of_an_allowed_type_or_an_unknown_url_passes_quietly(call: str) -> None:
    output, warnings = warnings_of(call)
    assert warnings == [] and output["extension"][0]["url"]


def test_a_value_type_the_definition_does_not_allow_warns_at_its_line() -> None:
    output, warnings = warnings_of(f"extension('{BIRTH_SEX}', 'String', 'F')")
    assert warnings == [("FS-RND-002", 2, f"extension() {BIRTH_SEX} takes a value of type code, not 'String'.")]
    assert output["extension"] == [{"url": BIRTH_SEX, "valueString": "F"}]  # written as asked


def test_a_complex_extension_given_a_value_warns() -> None:
    _, warnings = warnings_of(f"extension('{RACE}', 'string', 'x')")
    assert [message for _, _, message in warnings] == [
        f"extension() {RACE} is a complex extension: it takes sub-extensions, not a 'string' value."
    ]


def test_it_checks_against_the_registry_the_environment_carries() -> None:
    uploaded = {
        "resourceType": "StructureDefinition",
        "url": "http://example.org/fhir/StructureDefinition/shoe-size",
        "type": "Extension",
        "derivation": "constraint",
        "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Extension",
        "snapshot": {
            "element": [
                {"id": "Extension", "path": "Extension"},
                {
                    "id": "Extension.value[x]",
                    "path": "Extension.value[x]",
                    "min": 1,
                    "max": "1",
                    "type": [{"code": "decimal"}],
                },
            ]
        },
    }
    template = (
        '{"resourceType": "Patient",\n"extension": [{{ extension("'
        + uploaded["url"]
        + '", "string", "42") | tojson }}]}'
    )
    compiled = compile_mapping(template)
    _, warnings = warnings_of("", compiled, registry=core().layered([uploaded]))  # as the studio runs it
    assert [message for _, _, message in warnings] == [
        f"extension() {uploaded['url']} takes a value of type decimal, not 'string'."
    ]
