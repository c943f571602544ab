"""Generated walkers (checkers.py) against the generic walk they stand for: the same findings (code, severity,
expression, message) in the same order, with the caches empty and full, on every resource the other validation tests
use, on their broken rows and profiles, and on a seeded fuzz of broken variants of real resources. Also the pieces
the walkers lean on: the base64 check without its regex, the remembered Type/id references, which definitions may be
memoised.
"""

import copy
import random
import re

import pytest
from test_invalid_resources import CASES, HOSTILE, ODD_VALUES
from test_profiles import BP_CASES, BP_PROFILE, PATIENT_CASES, PATIENT_PROFILE, SMOKING_CASES, SMOKING_PROFILE
from test_valid_resources import CORPUS, HANDWRITTEN, corpus_files, example_outputs, load

from mappings.engine.definitions import core
from mappings.engine.validation import Run, validate_resource
from mappings.engine.validation.compile import MEMO_TYPES, Compiler, compiler_for, content_only
from mappings.engine.validation.primitives import BASE64_REGEX, base64_match, schema_regex
from mappings.engine.validation.walk import check_resource

US_CORE_PATIENT = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient"
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"  # identifier types, some outside R4's extensible value set


def findings(resource: object, compiler: Compiler, profiles=()) -> list[tuple]:
    """validate_resource with a compiler of our choosing."""
    run = Run(compiler.registry)
    run.compiler = compiler
    resource_type = resource.get("resourceType") if isinstance(resource, dict) else None
    check_resource(resource, resource_type if isinstance(resource_type, str) else "Resource", run, profiles=profiles)
    return [(issue.code, issue.severity, issue.expression, issue.message) for issue in run.issues]


def assert_same_findings(items: list[tuple[object, tuple]]) -> int:
    """Each (resource, profiles) validated by generated walkers and by the generic walk, twice (caches cold, then
    warm); returns how many findings were compared."""
    generated, plain = Compiler(core()), Compiler(core())
    plain.generate = False
    compared = 0
    for _ in ("cold", "warm"):
        for resource, profiles in items:
            expected = findings(resource, plain, profiles)
            assert findings(resource, generated, profiles) == expected, resource
            compared += len(expected)
    return compared


def with_profiles(resource: object) -> list[tuple[object, tuple]]:
    is_patient = isinstance(resource, dict) and resource.get("resourceType") == "Patient"
    return [(resource, ())] + ([(resource, (US_CORE_PATIENT,))] if is_patient else [])


def entries(resource: dict) -> list[dict]:
    """The resource and, for a Bundle, each entry's resource too (as a pipeline validates them one by one)."""
    inner = resource.get("entry") if resource.get("resourceType") == "Bundle" else None
    found = [resource]
    for entry in inner if isinstance(inner, list) else ():
        if isinstance(entry, dict) and isinstance(entry.get("resource"), dict):
            found += entries(entry["resource"])
    return found


def test_generated_walkers_find_what_the_generic_walk_finds_on_the_corpus_and_examples() -> None:
    resources = [item for name in corpus_files() for item in entries(load(CORPUS / name))]
    resources += [output for _, output in example_outputs() if output is not None]
    resources += [load(path) for path in sorted(HANDWRITTEN.glob("*.json"))]
    assert len(resources) > 1000
    assert assert_same_findings([pair for resource in resources for pair in with_profiles(resource)]) > 100


def test_generated_walkers_find_what_the_generic_walk_finds_on_every_broken_row() -> None:
    items = [(resource, ()) for _, resource, _, _ in CASES] + [(resource, ()) for resource in HOSTILE]
    items += [(resource, (PATIENT_PROFILE,)) for _, resource, _, _ in PATIENT_CASES]
    items += [(resource, (BP_PROFILE,)) for _, resource, _, _ in BP_CASES]
    items += [(resource, (SMOKING_PROFILE,)) for _, resource, _, _ in SMOKING_CASES]
    assert assert_same_findings(items) >= len(items)


BROKEN_VALUES = [
    *ODD_VALUES,
    "not a code ",
    "2023-02-30",
    "1999-13",
    "#nowhere",
    "urn:uuid:0c8a5c77-2f5e-4e8b-9f27-7e1f3cc2a1a9",
    "urn:uuid:nope",
    "Patient/1",
    "Observation/2/_history/3",
    "patient/1",
    "http://example.org/fhir/Patient/7",
    "x" * 70,
    {"reference": "#nowhere"},
    {"reference": "Patient/1", "display": "A"},
    {"coding": [{"system": "http://loinc.org", "code": "2345-7"}]},
    {"system": "http://unitsofmeasure.org", "code": "mg"},
    {"url": "http://example.org/x", "valueString": "a", "valueBoolean": True},
    {"url": "http://example.org/x"},
    {"id": "only-an-id"},
    [{"id": "only-an-id"}],
    [None, "a"],
    [""],
    -(2**40),
    float("nan"),
]


def _break(node: object, rng: random.Random) -> None:
    """One change somewhere below node: a value swapped for a broken one, a member dropped, an unknown one added, a
    second value of a choice, a `_shadow` member, a value put in an array or taken out of one."""
    if isinstance(node, list) and node:
        index = rng.randrange(len(node))
        if rng.random() < 0.25 or not isinstance(node[index], dict | list):
            node[index] = copy.deepcopy(rng.choice(BROKEN_VALUES))
        else:
            _break(node[index], rng)
        return
    if not isinstance(node, dict) or not node:
        return
    key = rng.choice(list(node))
    roll = rng.random()
    if roll < 0.35 and isinstance(node[key], dict | list):
        _break(node[key], rng)
    elif roll < 0.55:
        node[key] = copy.deepcopy(rng.choice(BROKEN_VALUES))
    elif roll < 0.63:
        del node[key]
    elif roll < 0.7:
        node["colour"] = "blue"
    elif roll < 0.77:
        node["valueString" if key != "valueString" else "valueBoolean"] = "x"
    elif roll < 0.84:
        node["_" + key] = copy.deepcopy(rng.choice([{"extension": [{"url": "u", "valueCode": "x"}]}, [None], {}, 1]))
    elif roll < 0.92:
        node[key] = [node[key]]
    elif isinstance(node[key], list) and node[key]:
        node[key] = node[key][0]


def test_generated_walkers_find_what_the_generic_walk_finds_on_a_fuzz_of_broken_resources() -> None:
    rng = random.Random(2026)
    names = [name for name in corpus_files() if "hl7v2" in name or "fhir-r4" in name]
    originals = [item for name in names[::3] for item in entries(load(CORPUS / name))[:12]]
    items = []
    for resource in originals:
        for _ in range(2):
            changed = copy.deepcopy(resource)
            for _ in range(rng.randint(1, 4)):
                _break(changed, rng)
            items += with_profiles(changed)
    assert len(items) > 1000
    assert assert_same_findings(items) > 1000  # the fuzz breaks things: most variants have findings


def test_validate_resource_runs_generated_walkers() -> None:
    resource = load(CORPUS / "fhir-converter/expected/hl7v2/ADT-A01-01-expected.json")
    validate_resource(resource)
    compiler = compiler_for(core())
    assert compiler.generate and "def walker" in compiler.types["Patient"].gen.source


def test_the_base64_check_agrees_with_the_spec_regex() -> None:
    regex = re.compile(schema_regex(BASE64_REGEX)).fullmatch
    rng = random.Random(64)
    alphabet = "QUJD+/=0a \n\t\r\u00a0é-"
    samples = ["", " ", "QUJD", "QUJD ", " QUJD\nRUZH", "QUJ", "QU JD", "QUJDRUZH\r\n", "\u00a0QUJD", "QUJD\u2003"]
    samples += ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 14))) for _ in range(3000)]
    samples += ["QUJD" * rng.randint(1, 5) + rng.choice(["", " ", "\n", "Q"]) for _ in range(200)]
    for text in samples:
        assert (base64_match(text) is not None) == (regex(text) is not None), repr(text)


def test_remembered_references_are_checked_against_each_element_and_forgotten_with_the_values() -> None:
    compiler = compiler_for(core())
    observation = {"resourceType": "Observation", "status": "final", "code": {"text": "x"}, "subject": {}}
    observation["subject"] = {"reference": "Practitioner/1"}  # Observation.subject allows no Practitioner
    first = [(i.code, i.expression) for i in validate_resource(observation)]
    assert first == [("FS-VAL-004", ["Observation.subject.reference"])]
    assert compiler.relative_references["Practitioner/1"] == "Practitioner"
    performer = {**observation, "subject": {"reference": "Patient/1"}, "performer": [{"reference": "Practitioner/1"}]}
    assert validate_resource(performer) == []  # the same reference where a Practitioner is allowed
    assert [(i.code, i.expression) for i in validate_resource(observation)] == first
    compiler.forget_values()
    assert not compiler.relative_references


def test_only_definitions_whose_values_stand_alone_are_memoised() -> None:
    compiler = compiler_for(core())
    assert all(content_only(compiler.type_spec(name), compiler) for name in MEMO_TYPES)
    assert not content_only(compiler.type_spec("Patient"), compiler)  # contained resources, %resource invariants
    race = compiler.profile_spec("http://hl7.org/fhir/us/core/StructureDefinition/us-core-race")
    assert race is not None and race.memo is not None


@pytest.mark.parametrize("expression", ["%resource.id.exists()", "reference.resolve().exists()"])
def test_an_extension_whose_invariant_reads_the_resource_is_not_memoised(expression: str) -> None:
    url = "http://example.org/fhir/StructureDefinition/needs-the-resource"
    definition = copy.deepcopy(core().structure("Extension"))
    root = definition["snapshot"]["element"][0]
    root["constraint"] = [*root.get("constraint", ()), {"key": "x-1", "severity": "error", "expression": expression}]
    definition.update(resourceType="StructureDefinition", url=url, derivation="constraint", type="Extension")
    compiler = compiler_for(core().layered([definition]))
    spec = compiler.profile_spec(url)
    assert spec is not None and spec.memo is None
    assert compiler.profile_spec("http://hl7.org/fhir/us/core/StructureDefinition/us-core-race").memo is not None


def test_a_memoised_value_gives_its_findings_again_but_an_invariants_finding_is_found_again() -> None:
    compiler = Compiler(core())
    identifier = {"system": "urn:x", "value": "1", "type": {"coding": [{"system": V2_0203, "code": "VN"}]}}
    period = {"start": "2020-02-01", "end": "2020-01-01"}  # per-1 broken
    first = {"resourceType": "Practitioner", "identifier": [identifier], "name": [{"family": "A", "period": period}]}
    second = {"resourceType": "Patient", "identifier": [{"use": "usual"}, identifier]}
    found = [findings(resource, compiler) for resource in (first, second, first)]
    assert [(code, at) for code, _, (at,), _ in found[0]] == [
        ("FS-VAL-005", "Practitioner.identifier[0].type"),
        ("FS-VAL-008", "Practitioner.name[0].period"),
    ]
    assert [at for _, _, (at,), _ in found[1]] == ["Patient.identifier[1].type"]  # at the second value's path
    assert found[2] == found[0]
    remembered = [value for key, value in compiler.type_spec("Identifier").memo.items() if b'"VN"' in key]
    assert [[(at, severity) for _, at, _, severity in value] for value in remembered] == [[(".type", "warning")]]
    assert not any(b"2020-02-01" in key for key in compiler.type_spec("Period").memo)  # per-1: walked each time
