"""The native invariants (natives.py) mean what their FHIRPath says: on every element of the test resources where a
native one runs, fhirpathpy evaluating the definition's expression gives the same verdict. And the invariants without a
native run through fhirpathpy, each expression parsed once."""

import json

import pytest
from test_invalid_resources import CASES
from test_profiles import BP_CASES, PATIENT_CASES, SMOKING_CASES
from test_valid_resources import CORPUS, HANDWRITTEN, corpus_files, load

from mappings.engine.validation import invariants, validate_resource
from mappings.engine.validation.invariants import Invariant, fhirpath_holds, fhirpath_verdict

# fhirpathpy cannot evaluate these (htmlChecks() and hasValue() are not implemented; dom-3's as() on a collection
# raises): for them the native is all there is, and the test checks that fhirpathpy indeed cannot.
NO_FHIRPATH = {"txt-1", "txt-2", "per-1", "bdl-10", "dom-3", "rng-2"}  # rng-2: fhirpathpy cannot compare quantities


# Valid resources where invariants that are skipped without their member run and hold.
HOLDING = [
    {"resourceType": "Observation", "status": "final", "code": {"text": "x"}, "dataAbsentReason": {"text": "asked"}},
    {"resourceType": "Bundle", "type": "searchset", "total": 0},
]


def resources_to_check() -> list[dict]:
    resources = [load(CORPUS / name) for name in corpus_files()]
    resources += [load(path) for path in HANDWRITTEN.glob("*.json")]
    resources += [row[1] for row in CASES if len(json.dumps(row[1])) < 100_000]
    resources += [row[1] for row in PATIENT_CASES + BP_CASES + SMOKING_CASES] + HOLDING
    return resources


@pytest.fixture(scope="module")
def verdicts() -> dict[str, list[tuple[bool, bool, object]]]:
    """Every native evaluation of the test set, with fhirpathpy's verdict beside it."""
    found: dict[str, list] = {}
    native_holds = Invariant.holds

    def both(self, node, resource):
        verdict = native_holds(self, node, resource)
        if self.native is not None:
            reference = fhirpath_verdict(self.expression, self.context, node, resource)
            found.setdefault(self.key, []).append((verdict, reference, node))
        return verdict

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Invariant, "holds", both)
        for resource in resources_to_check():
            if isinstance(resource, dict) and resource.get("resourceType"):
                validate_resource(resource)
    return found


def test_every_native_agrees_with_fhirpathpy_on_the_test_set(verdicts) -> None:
    disagreements = {
        key: [node for native, reference, node in runs if reference is not None and native != reference][:2]
        for key, runs in verdicts.items()
        if any(reference is not None and native != reference for native, reference, _ in runs)
    }
    assert disagreements == {}
    compared = {key for key, runs in verdicts.items() if any(reference is not None for _, reference, _ in runs)}
    assert compared & NO_FHIRPATH == set(), "fhirpathpy evaluates one of NO_FHIRPATH now: compare it"
    assert len(compared) >= 60, f"only {len(compared)} invariants compared with fhirpathpy"


def test_the_test_set_exercises_the_natives_both_ways(verdicts) -> None:
    broken_by_a_row = {"ext-1", "dom-2", "dom-3", "dom-4", "dom-5", "att-1", "cpt-2", "qty-3", "per-1", "obs-3"}
    broken_by_a_row |= {"obs-6", "obs-7", "pat-1", "bdl-1", "bdl-3", "bdl-5", "bdl-7", "bdl-8", "bdl-11", "bdl-12"}
    for key in broken_by_a_row:
        outcomes = {native for native, _, _ in verdicts.get(key, ())}
        assert outcomes == {True, False}, f"{key} was not seen both holding and broken"
        if key not in NO_FHIRPATH:
            assert {reference for _, reference, _ in verdicts[key]} >= {True, False}, f"{key}: fhirpathpy saw one side"


def test_an_expression_fhirpathpy_cannot_run_is_skipped_not_reported() -> None:
    invariant = Invariant("x-1", "error", "never", "noSuchFunction()", "Patient", None)
    assert invariant.holds({"resourceType": "Patient"}, {"resourceType": "Patient"})
    assert "noSuchFunction()" in invariants._failed


def test_it_parses_each_fhirpath_expression_once() -> None:
    expression = "name.exists() or id.exists()"
    assert fhirpath_holds(expression, "Patient", {"id": "a"}, {})
    parsed = invariants._parsed[expression]
    assert not fhirpath_holds(expression, "Patient", {"gender": "male"}, {})
    assert invariants._parsed[expression] is parsed
