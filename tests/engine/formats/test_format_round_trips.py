"""JSON → XML → JSON and JSON → Turtle → JSON give back the same resource, decimals' digits included, for a generated
instance of every R4 resource type (every element of its definition, choice types rotated, primitive extensions),
every Extension.value[x] type, the FHIR resources of the shared corpus and every example mapping's output."""

from functools import cache
from pathlib import Path

import orjson
import pytest
from django.conf import settings

from mappings.engine import run_mapping
from mappings.engine.formats import decimal_default, parse, serialize
from mappings.engine.formats.model import model_for
from mappings.examples import list_examples
from tests.engine.formats.instances import every_extension_value, instances

MODEL = model_for()
CORPUS = Path(settings.FHIR_STUDIO["CORPUS_DIR"])
# R4 resources of the shared corpus: FHIR-Converter's expected outputs and US Core examples (STU3 ones left out).
CORPUS_GLOBS = ("fhir-converter/expected/hl7v2/*.json", "fhir-converter/expected/ccda/*.json", "more/fhir-r4/**/*.json")


def canonical(resource: dict) -> bytes:
    """Sorted keys, decimals as written: equal bytes mean the same resource with the same digits."""
    return orjson.dumps(resource, default=decimal_default, option=orjson.OPT_SORT_KEYS)


def assert_round_trips(resource: dict) -> None:
    for fmt in ("xml", "ttl"):
        text = serialize(resource, fmt)
        assert canonical(parse(text, fmt)) == canonical(resource), f"{fmt} lost or changed something"


@pytest.mark.parametrize("resource_type", sorted(MODEL.registry.resource_types()))
def test_it_round_trips_every_element_of_every_r4_resource_type(resource_type: str) -> None:
    for resource in instances(MODEL, resource_type):
        assert_round_trips(resource)


def test_it_generates_instances_that_fill_the_definitions() -> None:
    observation = instances(MODEL, "Observation")
    full = observation[0]
    assert {"status", "code", "component", "referenceRange", "contained", "text", "extension"} <= full.keys()
    assert any(key.startswith("_") for key in full)  # primitive extensions are exercised
    value_types = {key for variant in observation for key in variant if key.startswith("value")}
    assert len(value_types) == 11  # Observation.value[x] takes each of its eleven types once


def test_it_round_trips_every_extension_value_type() -> None:
    basic = every_extension_value(MODEL)
    assert len(basic["extension"]) == 50
    assert_round_trips(basic)


def corpus_files() -> list:
    files = sorted({path for pattern in CORPUS_GLOBS for path in CORPUS.glob(pattern)})
    return [pytest.param(path, id=str(path.relative_to(CORPUS))) for path in files]


def test_it_finds_the_corpus_fhir_files() -> None:
    assert len(corpus_files()) >= 140


@pytest.mark.parametrize("path", corpus_files())
def test_it_round_trips_every_fhir_resource_of_the_corpus(path: Path) -> None:
    assert_round_trips(parse(path.read_bytes(), "json"))


@cache
def example_outputs() -> list:
    outputs = []
    for example in list_examples(settings.FHIR_STUDIO["EXAMPLES_DIR"]):
        compiled = example.compile()
        for case in example.cases:
            result = run_mapping(compiled, case.payload(), validate=False)
            outputs.append(pytest.param(result.output, id=f"{example.name}/{case.name}"))
    return outputs


@pytest.mark.parametrize("output", example_outputs())
def test_it_round_trips_every_example_mappings_output(output: dict) -> None:
    assert output is not None
    assert_round_trips(output)
