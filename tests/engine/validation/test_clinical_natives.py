"""ait-1/2 and con-3/4/5 (natives.py) give the verdicts of the fastpath closures they replaced, on seeded random
AllergyIntolerance and Condition shapes: valid and broken codings, JSON nulls, lists where objects belong, numbers
where text belongs (where fastpath hands the expression to fhirpathpy, the native does too), abatement[x] keys."""

import random

from mappings.engine.validation.fastpath import FallbackError
from mappings.engine.validation.invariants import _compiled, fhirpath_holds
from mappings.engine.validation.natives import NATIVES

AIT = "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification"
CON = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
KEYS = {"AllergyIntolerance": ("ait-1", "ait-2"), "Condition": ("con-3", "con-4", "con-5")}


def _coding(rng: random.Random) -> dict:
    coding = {}
    if rng.random() < 0.85:
        coding["system"] = rng.choice([AIT, CON, CLINICAL, "urn:x", [AIT], [CON], [CLINICAL], 3, None])
    if rng.random() < 0.85:
        codes = ["entered-in-error", "confirmed", "resolved", "remission", "inactive", "active", ["resolved", "x"]]
        coding["code"] = rng.choice([*codes, ["entered-in-error"], 5, True, None, "", []])
    return coding


def _concept(rng: random.Random) -> object:
    roll = rng.random()
    if roll < 0.12:
        return rng.choice([None, [], "active", [None]])
    codings = [_coding(rng) for _ in range(rng.randrange(3))]
    concept = {"coding": codings if rng.random() < 0.8 else (codings[0] if codings else {})}
    return concept if rng.random() < 0.85 else [concept, _concept(rng)]


def _resource(rng: random.Random, kind: str) -> dict:
    resource = {"resourceType": kind}
    for key in ("verificationStatus", "clinicalStatus"):
        if rng.random() < 0.7:
            resource[key] = _concept(rng)
    if kind == "Condition" and rng.random() < 0.5:
        resource["category"] = rng.choice([[_concept(rng)], [], None, _concept(rng), ["problem-list-item"], [7]])
    if kind == "Condition" and rng.random() < 0.5:
        key = rng.choice(["abatementDateTime", "abatementString", "abatementAge", "_abatementDateTime", "abatementX"])
        resource[key] = rng.choice(["2020", None, {"value": 1}, [], [None], "x"])
    return resource


def _verdict(function, expression: str, kind: str, resource: dict) -> bool:
    try:
        return function(resource, resource)
    except FallbackError:  # as Invariant.holds does
        return fhirpath_holds(expression, kind, resource, resource)


def test_the_clinical_natives_agree_with_the_closures_they_replaced() -> None:
    rng = random.Random(14)
    outcomes: dict[str, set] = {}
    for _ in range(1500):
        kind = rng.choice(list(KEYS))
        resource = _resource(rng, kind)
        for key in KEYS[kind]:
            expression, native = NATIVES[key]
            verdict = _verdict(native, expression, kind, resource)
            assert verdict == _verdict(_compiled(expression), expression, kind, resource), (key, resource)
            outcomes.setdefault(key, set()).add(verdict)
    assert all(seen == {True, False} for seen in outcomes.values()), outcomes
