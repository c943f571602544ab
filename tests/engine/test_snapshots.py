"""Snapshot generation from a differential: checked against the snapshots the R4 publisher wrote for the core's
profiles and extensions (they ship with both), and on profiles of our own for each rule and each refusal."""

from __future__ import annotations

import re

import pytest

from mappings.engine.definitions import core
from mappings.engine.snapshots import SnapshotError, generate_snapshot

OBSERVATION = "http://hl7.org/fhir/StructureDefinition/Observation"
PATIENT = "http://hl7.org/fhir/StructureDefinition/Patient"
# The publisher accepted these, but the spec refuses them: a slice of an element that has no slicing
# (familymemberhistory-genetic, catalog) and narrowing markdown to string (picoelement).
REFUSED_CORE = {
    "http://hl7.org/fhir/StructureDefinition/familymemberhistory-genetic": "is not sliced",
    "http://hl7.org/fhir/StructureDefinition/catalog": "is not sliced",
    "http://hl7.org/fhir/StructureDefinition/picoelement": "type string is not allowed by the base (markdown)",
}
# The publisher also unfolded this one's extension slice (url, value[x] …) though nothing constrains them.
UNFOLDED_EXTRA = {"http://hl7.org/fhir/StructureDefinition/elementdefinition-de"}


def facts(element: dict) -> tuple:
    types = tuple(sorted(kind.get("code", "") for kind in element.get("type", [])))
    fixed = tuple(sorted((k, str(v)) for k, v in element.items() if k.startswith(("fixed", "pattern"))))
    return element.get("min"), element.get("max"), types, fixed, element.get("sliceName")


def published(sd: dict) -> dict[str, dict]:
    """The publisher's snapshot by id, its renamed choices (`value[x]:valueQuantity`, a type slice it made for a
    differential that said `valueQuantity`) folded back onto the choice, which is how we write a renaming."""
    declared = {element.get("id") for element in sd["differential"]["element"]}
    out: dict[str, dict] = {}
    for element in sd["snapshot"]["element"]:
        element_id = element["id"]
        renamed = re.search(r"\[x\]:[^.]+", element_id)
        if renamed and element_id[: renamed.end()] not in declared:
            element_id = element_id[: renamed.start()] + "[x]" + element_id[renamed.end() :]
            if element.get("sliceName"):
                kept = {k: v for k, v in element.items() if k in ("min", "max", "type") or k.startswith("fixed")}
                element = {key: value for key, value in {**out[element_id], **kept}.items() if key != "sliceName"}
        out[element_id] = element
    return out


def core_profiles() -> list[str]:
    return sorted(
        url
        for url, sd in core().structures.items()
        if sd.get("derivation") == "constraint" and sd.get("differential") and sd.get("snapshot")
    )


def test_it_generates_the_publishers_snapshot_for_every_core_profile_and_extension() -> None:
    registry = core()
    checked = 0
    for url in core_profiles():
        sd = registry.structure(url)
        if url in REFUSED_CORE:
            with pytest.raises(SnapshotError, match=re.escape(REFUSED_CORE[url])):
                generate_snapshot(sd, registry)
            continue
        mine = {element["id"]: element for element in generate_snapshot(sd, registry)}
        theirs = published(sd)
        missing = [element_id for element_id in theirs if element_id not in mine]
        if url in UNFOLDED_EXTRA:
            missing = [element_id for element_id in missing if ".extension:" not in element_id]
        assert missing == [], url
        assert [element_id for element_id in mine if element_id not in theirs] == [], url
        assert {i: facts(mine[i]) for i in theirs if i in mine} == {i: facts(theirs[i]) for i in theirs if i in mine}
        checked += 1
    assert checked >= 400  # 44 profiles of profiles-others, ~390 extensions, US Core smoking status


def test_it_builds_blood_pressure_on_vital_signs_with_slices_fixed_values_and_unfolded_types() -> None:
    registry = core()
    elements = {
        e["id"]: e
        for e in generate_snapshot(registry.structure("http://hl7.org/fhir/StructureDefinition/bp"), registry)
    }
    assert elements["Observation.component"]["min"] == 2
    assert elements["Observation.component"]["slicing"]["discriminator"][0]["path"] == "code.coding.code"
    systolic = elements["Observation.component:SystolicBP"]
    assert (systolic["sliceName"], systolic["min"], systolic["max"]) == ("SystolicBP", 1, "1")
    code = elements["Observation.component:SystolicBP.code.coding:SBPCode.code"]
    assert code["fixedCode"] == "8480-6"
    assert code["path"] == "Observation.component.code.coding.code"  # the type's children, unfolded under the slice
    value = elements["Observation.component:SystolicBP.value[x]"]
    assert [kind["code"] for kind in value["type"]] == ["Quantity"]  # valueQuantity: the choice narrowed
    assert elements["Observation.component:SystolicBP.value[x].code"]["fixedCode"] == "mm[Hg]"
    assert elements["Observation.value[x]"]["max"] == "0"  # bp forbids Observation.valueQuantity


def derived(*elements: dict, base: str = PATIENT, kind: str = "Patient", url: str = "urn:test:profile") -> dict:
    return {
        "resourceType": "StructureDefinition",
        "url": url,
        "type": kind,
        "kind": "resource",
        "derivation": "constraint",
        "baseDefinition": base,
        "differential": {"element": [{"id": kind, "path": kind}, *elements]},
    }


def snapshot_by_id(sd: dict) -> dict[str, dict]:
    return {element["id"]: element for element in generate_snapshot(sd, core())}


def test_it_applies_cardinality_must_support_short_binding_and_invariants() -> None:
    snapshot = snapshot_by_id(
        derived(
            {"id": "Patient.name", "path": "Patient.name", "min": 1, "max": "1", "mustSupport": True, "short": "One"},
            {
                "id": "Patient.gender",
                "path": "Patient.gender",
                "binding": {"strength": "required", "valueSet": "urn:test:vs"},
                "constraint": [{"key": "t-1", "severity": "error", "human": "h", "expression": "true"}],
            },
        )
    )
    name = snapshot["Patient.name"]
    assert (name["min"], name["max"], name["mustSupport"], name["short"]) == (1, "1", True, "One")
    assert snapshot["Patient.gender"]["binding"] == {"strength": "required", "valueSet": "urn:test:vs"}
    keys = [constraint["key"] for constraint in snapshot["Patient.gender"]["constraint"]]
    assert keys[-1] == "t-1" and "ele-1" in keys  # added to the base's invariants, not replacing them
    assert len(snapshot) == len(core().structure("Patient")["snapshot"]["element"])


def test_it_finds_elements_of_a_differential_without_ids_under_their_slice() -> None:
    snapshot = snapshot_by_id(
        derived(
            {
                "path": "Patient.identifier",
                "slicing": {"discriminator": [{"type": "value", "path": "system"}], "rules": "open"},
            },
            {"path": "Patient.identifier", "sliceName": "mrn", "min": 1, "max": "1"},
            {"path": "Patient.identifier.system", "min": 1, "fixedUri": "urn:oid:1.2.3"},
        )
    )
    assert snapshot["Patient.identifier:mrn"]["min"] == 1
    assert snapshot["Patient.identifier:mrn.system"]["fixedUri"] == "urn:oid:1.2.3"
    assert "fixedUri" not in snapshot.get("Patient.identifier.system", {})  # the slice's, not the element's


def test_it_adds_an_extension_slice_with_its_profile() -> None:
    race = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-race"
    snapshot = snapshot_by_id(
        derived(
            {
                "id": "Patient.extension:race",
                "path": "Patient.extension",
                "sliceName": "race",
                "max": "1",
                "type": [{"code": "Extension", "profile": [race]}],
            }
        )
    )
    assert snapshot["Patient.extension"]["slicing"]["discriminator"] == [{"type": "value", "path": "url"}]
    assert snapshot["Patient.extension:race"]["type"] == [{"code": "Extension", "profile": [race]}]
    assert (snapshot["Patient.extension:race"]["min"], snapshot["Patient.extension:race"]["max"]) == (0, "1")


def test_it_narrows_a_renamed_choice_and_unfolds_its_type() -> None:
    snapshot = snapshot_by_id(
        derived(
            {"id": "Observation.valueQuantity", "path": "Observation.valueQuantity", "min": 1},
            {
                "id": "Observation.valueQuantity.system",
                "path": "Observation.valueQuantity.system",
                "fixedUri": "http://unitsofmeasure.org",
            },
            base=OBSERVATION,
            kind="Observation",
        )
    )
    value = snapshot["Observation.value[x]"]
    assert value["min"] == 1 and [kind["code"] for kind in value["type"]] == ["Quantity"]
    assert snapshot["Observation.value[x].system"]["fixedUri"] == "http://unitsofmeasure.org"
    assert snapshot["Observation.value[x].system"]["path"] == "Observation.value[x].system"


def test_it_builds_on_a_base_that_only_has_a_differential() -> None:
    parent = derived({"id": "Patient.birthDate", "path": "Patient.birthDate", "min": 1}, url="urn:test:parent")
    child = derived({"id": "Patient.gender", "path": "Patient.gender", "min": 1}, base="urn:test:parent")
    snapshot = {e["id"]: e for e in generate_snapshot(child, core().layered([parent]))}
    assert snapshot["Patient.birthDate"]["min"] == 1 and snapshot["Patient.gender"]["min"] == 1


REFUSALS = [
    ({"id": "Patient.nickname", "path": "Patient.nickname", "min": 1}, "no element 'nickname' under Patient"),
    ({"id": "Patient.gender", "path": "Patient.gender", "max": "*"}, "max * is wider than the base's 1"),
    ({"id": "Patient.name", "path": "Patient.name", "min": 2, "max": "1"}, "min 2 is above max 1"),
    ({"id": "Patient.active", "path": "Patient.active", "type": [{"code": "string"}]}, "type string is not allowed"),
    ({"id": "Patient.name:x", "path": "Patient.name", "sliceName": "x"}, "Patient.name is not sliced"),
    ({"id": "Patient.name:x.given", "path": "Patient.name.given"}, "slice Patient.name:x is not defined"),
    ({"id": "Patient.deceasedQuantity", "path": "Patient.deceasedQuantity"}, "does not allow the type Quantity"),
    (
        {
            "id": "Patient.extension:e",
            "path": "Patient.extension",
            "sliceName": "e",
            "type": [{"code": "Extension", "profile": ["urn:nowhere"]}],
        },
        "unknown extension definition urn:nowhere",
    ),
    ({"id": "Observation.status", "path": "Observation.status"}, "constrains Patient, not Observation"),
]


@pytest.mark.parametrize(("element", "message"), REFUSALS, ids=[message for _, message in REFUSALS])
def test_it_refuses_a_differential_the_base_does_not_allow(element: dict, message: str) -> None:
    with pytest.raises(SnapshotError, match=re.escape(message)):
        generate_snapshot(derived(element), core())


def test_it_names_an_unknown_base() -> None:
    with pytest.raises(SnapshotError, match="Unknown base definition urn:missing:base"):
        generate_snapshot(derived(base="urn:missing:base"), core())
