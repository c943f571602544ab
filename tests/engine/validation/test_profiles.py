"""Profiles: US Core Patient, blood pressure and smoking status (in the registry from the definitions' testing files),
asked for explicitly or named in meta.profile; slicing (value, pattern, type discriminators; extensions by url),
fixed and pattern values, extension definitions, and an unknown profile."""

import copy
import json
from pathlib import Path

import pytest

from mappings.engine.definitions import core
from mappings.engine.validation import validate_resource

US_CORE = "http://hl7.org/fhir/us/core/StructureDefinition/"
PATIENT_PROFILE = US_CORE + "us-core-patient"
BP_PROFILE = US_CORE + "us-core-blood-pressure"
SMOKING_PROFILE = US_CORE + "us-core-smokingstatus"
CORPUS = Path(__file__).resolve().parents[3].parent / "shared/corpus/more/fhir-r4/valid"
OMB = "urn:oid:2.16.840.1.113883.6.238"

US_CORE_PATIENT = {
    "resourceType": "Patient",
    "id": "us1",
    "extension": [
        {
            "url": US_CORE + "us-core-race",
            "extension": [
                {"url": "ombCategory", "valueCoding": {"system": OMB, "code": "2106-3", "display": "White"}},
                {"url": "text", "valueString": "White"},
            ],
        },
        {"url": US_CORE + "us-core-birthsex", "valueCode": "F"},
    ],
    "identifier": [{"system": "http://hospital.example.org/mrn", "value": "12345"}],
    "name": [{"family": "Shaw", "given": ["Amy"]}],
    "gender": "female",
    "birthDate": "1987-02-20",
}

SMOKING = {
    "resourceType": "Observation",
    "id": "smoke",
    "status": "final",
    "category": [
        {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "social-history"}]}
    ],
    "code": {"coding": [{"system": "http://loinc.org", "code": "72166-2"}]},
    "subject": {"reference": "Patient/us1"},
    "effectiveDateTime": "2024-01-02",
    "valueCodeableConcept": {"coding": [{"system": "http://snomed.info/sct", "code": "266919005"}]},
}


def corpus(name: str) -> dict:
    resource = json.loads((CORPUS / name).read_text())
    resource.pop("meta", None)  # they name US Core 9.0.0; the registry has 5.0.1 (7.0.0 for smoking status)
    return resource


def blood_pressure() -> dict:
    return corpus("uscore-observation-blood-pressure.json")


def errors(resource: dict, profile: str) -> list[tuple[str, str]]:
    found = validate_resource(resource, profiles=[profile])
    return [(issue.code, issue.expression[0]) for issue in found if issue.severity == "error"]


def test_the_us_core_profiles_are_in_the_registry() -> None:
    registry = core()
    for url in (PATIENT_PROFILE, BP_PROFILE, SMOKING_PROFILE):
        assert registry.structure(url)["derivation"] == "constraint"


@pytest.mark.parametrize(
    ("resource", "profile"),
    [
        pytest.param(US_CORE_PATIENT, PATIENT_PROFILE, id="us-core-patient"),
        pytest.param(
            corpus("uscore-patient-example.json") | {"gender": "female"}, PATIENT_PROFILE, id="uscore-example"
        ),
        pytest.param(blood_pressure(), BP_PROFILE, id="blood-pressure"),
        pytest.param(SMOKING, SMOKING_PROFILE, id="smoking-status"),
    ],
)
def test_it_accepts_resources_that_meet_their_profile(resource, profile) -> None:
    assert errors(resource, profile) == []


def _without(resource: dict, key: str) -> dict:
    changed = copy.deepcopy(resource)
    changed.pop(key)
    return changed


def _replace(node: dict, key: str, new_key: str, value: object = "White") -> None:
    node.pop(key)
    node[new_key] = value


def _changed(resource: dict, change) -> dict:
    changed = copy.deepcopy(resource)
    change(changed)
    return changed


PATIENT_CASES = [
    ("identifier-required", _without(US_CORE_PATIENT, "identifier"), "FS-VAL-006", "Patient.identifier"),
    ("name-required", _without(US_CORE_PATIENT, "name"), "FS-VAL-006", "Patient.name"),
    ("gender-required", _without(US_CORE_PATIENT, "gender"), "FS-VAL-006", "Patient.gender"),
    (
        "identifier-system-required",
        _changed(US_CORE_PATIENT, lambda r: r["identifier"][0].pop("system")),
        "FS-VAL-006",
        "Patient.identifier[0].system",
    ),
    (
        "telecom-system-required",
        _changed(US_CORE_PATIENT, lambda r: r.update(telecom=[{"value": "555", "use": "home"}])),
        "FS-VAL-006",
        "Patient.telecom[0].system",
    ),
    (
        "race-slice-at-most-once",
        _changed(US_CORE_PATIENT, lambda r: r["extension"].append(copy.deepcopy(r["extension"][0]))),
        "FS-VAL-010",
        "Patient.extension",
    ),
    (
        "name-needs-family-or-given",
        _changed(US_CORE_PATIENT, lambda r: r.update(name=[{"text": "Amy Shaw"}])),
        "FS-VAL-008",
        "Patient",  # us-core-6 is on the resource: (name.family or name.given) xor a data-absent-reason
    ),
]

BP_CASES = [
    (
        "code-pattern",
        _changed(blood_pressure(), lambda r: r["code"]["coding"][0].update(code="55284-4")),
        "FS-VAL-009",
        "Observation.code",
    ),
    (
        "systolic-slice-required",
        _changed(blood_pressure(), lambda r: r["component"].pop(0)),
        "FS-VAL-010",
        "Observation.component",
    ),
    (
        "vital-signs-category-slice-required",
        _changed(blood_pressure(), lambda r: r["category"][0]["coding"][0].update(code="laboratory")),
        "FS-VAL-010",
        "Observation.category",
    ),
    (
        "systolic-unit-fixed",
        _changed(blood_pressure(), lambda r: r["component"][0]["valueQuantity"].update(code="mmHg")),
        "FS-VAL-009",
        "Observation.component[0].valueQuantity.code",
    ),
    (
        "systolic-value-type-restricted",
        _changed(
            blood_pressure(),
            lambda r: _replace(r["component"][0], "valueQuantity", "valueString", "109/44"),
        ),
        "FS-VAL-001",
        "Observation.component[0].valueString",
    ),
    ("subject-required", _without(blood_pressure(), "subject"), "FS-VAL-006", "Observation.subject"),
]

SMOKING_CASES = [
    (
        "social-history-category-required",
        _changed(SMOKING, lambda r: r["category"][0]["coding"][0].update(code="exam")),
        "FS-VAL-010",
        "Observation.category",
    ),
    ("effective-required", _without(SMOKING, "effectiveDateTime"), "FS-VAL-006", "Observation.effective"),
    ("value-required", _without(SMOKING, "valueCodeableConcept"), "FS-VAL-006", "Observation.value"),
]


@pytest.mark.parametrize(
    ("resource", "profile", "code", "expression"),
    [pytest.param(r, PATIENT_PROFILE, c, e, id=f"patient-{n}") for n, r, c, e in PATIENT_CASES]
    + [pytest.param(r, BP_PROFILE, c, e, id=f"bp-{n}") for n, r, c, e in BP_CASES]
    + [pytest.param(r, SMOKING_PROFILE, c, e, id=f"smoking-{n}") for n, r, c, e in SMOKING_CASES],
)
def test_it_names_what_breaks_a_profile(resource, profile, code, expression) -> None:
    found = errors(resource, profile)
    assert (code, expression) in found, found
    base_only = [(issue.code, issue.expression[0]) for issue in validate_resource(resource)]
    assert (code, expression) not in base_only, "the profile, not the base definition, is what this breaks"


def test_it_checks_an_extension_against_its_definition_with_or_without_a_profile() -> None:
    changed = _changed(
        US_CORE_PATIENT, lambda r: _replace(r["extension"][0]["extension"][0], "valueCoding", "valueString")
    )
    expected = ("FS-VAL-001", "Patient.extension[0].extension[0].valueString")
    assert expected in errors(changed, PATIENT_PROFILE)
    assert expected in [(issue.code, issue.expression[0]) for issue in validate_resource(changed)]
    unknown = _changed(
        US_CORE_PATIENT, lambda r: r["extension"].append({"url": "http://example.org/x", "valueInteger": 1})
    )
    assert validate_resource(unknown) == []


def test_it_validates_against_the_profiles_in_meta_profile() -> None:
    resource = _without(US_CORE_PATIENT, "gender") | {"meta": {"profile": [PATIENT_PROFILE]}}
    assert [(i.code, i.expression) for i in validate_resource(resource)] == [("FS-VAL-006", ["Patient.gender"])]
    resource["meta"]["profile"] = [PATIENT_PROFILE + "|5.0.1"]
    assert [(i.code, i.expression) for i in validate_resource(resource)] == [("FS-VAL-006", ["Patient.gender"])]


def test_it_warns_about_a_profile_it_does_not_have_or_another_version_of_it() -> None:
    resource = US_CORE_PATIENT | {"meta": {"profile": ["http://example.org/StructureDefinition/mine"]}}
    assert [(i.code, i.severity, i.expression) for i in validate_resource(resource)] == [
        ("FS-VAL-011", "warning", ["Patient.meta.profile[0]"])
    ]
    resource["meta"]["profile"] = [PATIENT_PROFILE + "|9.0.0"]
    (issue,) = validate_resource(resource)
    assert (issue.code, issue.severity) == ("FS-VAL-011", "warning") and "5.0.1" in issue.message
    (asked,) = validate_resource(US_CORE_PATIENT, profiles=["http://example.org/StructureDefinition/mine"])
    assert (asked.code, asked.severity) == ("FS-VAL-011", "error")


def test_it_refuses_a_profile_of_another_resource_type() -> None:
    (issue,) = validate_resource(US_CORE_PATIENT, profiles=[BP_PROFILE])
    assert issue.code == "FS-VAL-001" and "is for Observation" in issue.message


def test_it_reports_a_closed_slicing_and_an_uploaded_profile_through_a_layered_registry() -> None:
    profile = {
        "resourceType": "StructureDefinition",
        "url": "http://example.org/StructureDefinition/one-name",
        "name": "OneName",
        "status": "active",
        "kind": "resource",
        "abstract": False,
        "type": "Patient",
        "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Patient",
        "derivation": "constraint",
        "snapshot": {"element": copy.deepcopy(core().structure("Patient")["snapshot"]["element"])},
    }
    for element in profile["snapshot"]["element"]:
        if element["id"] == "Patient.identifier":
            element["slicing"] = {"discriminator": [{"type": "value", "path": "system"}], "rules": "closed"}
            index = profile["snapshot"]["element"].index(element)
    mrn = {
        "id": "Patient.identifier:mrn",
        "path": "Patient.identifier",
        "sliceName": "mrn",
        "min": 1,
        "max": "1",
        "base": {"path": "Patient.identifier", "min": 0, "max": "*"},
        "type": [{"code": "Identifier"}],
    }
    system = {
        "id": "Patient.identifier:mrn.system",
        "path": "Patient.identifier.system",
        "min": 1,
        "max": "1",
        "base": {"path": "Identifier.system", "min": 0, "max": "1"},
        "type": [{"code": "uri"}],
        "fixedUri": "http://hospital.example.org/mrn",
    }
    profile["snapshot"]["element"][index + 1 : index + 1] = [mrn, system]
    registry = core().layered([profile])
    url = profile["url"]
    assert validate_resource(US_CORE_PATIENT, profiles=[url], registry=registry) == []
    other = _changed(US_CORE_PATIENT, lambda r: r["identifier"].append({"system": "http://x.org", "value": "1"}))
    found = [(i.code, i.expression) for i in validate_resource(other, profiles=[url], registry=registry)]
    assert found == [("FS-VAL-010", ["Patient.identifier[1]"])]
    none = _changed(US_CORE_PATIENT, lambda r: r["identifier"][0].update(system="http://x.org"))
    found = [(i.code, i.expression) for i in validate_resource(none, profiles=[url], registry=registry)]
    assert ("FS-VAL-010", ["Patient.identifier"]) in found


def test_it_refuses_an_element_a_profile_sets_to_zero() -> None:
    profile = {
        "resourceType": "StructureDefinition",
        "url": "http://example.org/StructureDefinition/no-birth-date",
        "kind": "resource",
        "type": "Patient",
        "derivation": "constraint",
        "snapshot": {"element": copy.deepcopy(core().structure("Patient")["snapshot"]["element"])},
    }
    for element in profile["snapshot"]["element"]:
        if element["id"] in ("Patient.birthDate", "Patient.photo"):
            element["max"] = "0"
    registry = core().layered([profile])
    resource = US_CORE_PATIENT | {"photo": [{"contentType": "image/png", "data": "AAAA"}]}
    found = [(i.code, i.expression) for i in validate_resource(resource, profiles=[profile["url"]], registry=registry)]
    assert found == [("FS-VAL-006", ["Patient.birthDate"]), ("FS-VAL-006", ["Patient.photo"])]


def _component_profile(rules: str, ordered: bool) -> dict:
    """Observation.component sliced by the type of value[x]: a numeric slice, then a text slice."""
    elements = copy.deepcopy(core().structure("Observation")["snapshot"]["element"])
    index = next(i for i, element in enumerate(elements) if element["id"] == "Observation.component")
    elements[index]["slicing"] = {
        "discriminator": [{"type": "type", "path": "value"}],
        "rules": rules,
        "ordered": ordered,
    }
    added = []
    for name, type_code in (("numeric", "Quantity"), ("text", "string")):
        base = {"path": "Observation.component", "min": 0, "max": "*"}
        added.append(
            {
                "id": f"Observation.component:{name}",
                "path": "Observation.component",
                "sliceName": name,
                "min": 1,
                "max": "1",
                "base": base,
                "type": [{"code": "BackboneElement"}],
            }
        )
        added.append(
            {
                "id": f"Observation.component:{name}.code",
                "path": "Observation.component.code",
                "min": 1,
                "max": "1",
                "base": {"path": "Observation.component.code", "min": 1, "max": "1"},
                "type": [{"code": "CodeableConcept"}],
            }
        )
        added.append(
            {
                "id": f"Observation.component:{name}.value[x]",
                "path": "Observation.component.value[x]",
                "min": 1,
                "max": "1",
                "base": {"path": "Observation.component.value[x]", "min": 0, "max": "1"},
                "type": [{"code": type_code}],
            }
        )
    elements.extend(added)  # component is Observation's last element: its slices come after its children
    return {
        "resourceType": "StructureDefinition",
        "url": f"http://example.org/StructureDefinition/components-{rules}-{ordered}",
        "kind": "resource",
        "type": "Observation",
        "derivation": "constraint",
        "snapshot": {"element": elements},
    }


def test_it_checks_type_discriminated_slices_their_order_and_a_closed_slicing() -> None:
    numeric = {"code": {"text": "n"}, "valueQuantity": {"value": 1}}
    text = {"code": {"text": "t"}, "valueString": "x"}
    flag = {"code": {"text": "f"}, "valueBoolean": True}
    observation = {"resourceType": "Observation", "status": "final", "code": {"text": "panel"}}

    def found(profile: dict, components: list) -> list:
        registry = core().layered([profile])
        issues = validate_resource(
            observation | {"component": components}, profiles=[profile["url"]], registry=registry
        )
        return [(issue.code, issue.expression[0]) for issue in issues]

    ordered = _component_profile("closed", True)
    assert found(ordered, [numeric, text]) == []
    assert found(ordered, [text, numeric]) == [("FS-VAL-010", "Observation.component[1]")]
    assert found(ordered, [numeric, text, flag]) == [("FS-VAL-010", "Observation.component[2]")]
    assert found(ordered, [numeric]) == [("FS-VAL-010", "Observation.component")]  # the text slice is required
    open_any_order = _component_profile("open", False)
    assert found(open_any_order, [text, flag, numeric]) == []


def _patient_profile(url: str, sliced: str, discriminator: dict, slices: list[dict]) -> dict:
    elements = copy.deepcopy(core().structure("Patient")["snapshot"]["element"])
    index = next(i for i, element in enumerate(elements) if element["id"] == sliced)
    elements[index]["slicing"] = {"discriminator": [discriminator], "rules": "open"}
    end = next(i for i, e in enumerate(elements) if i > index and not e["id"].startswith(sliced + "."))
    elements[end:end] = slices
    return {
        "resourceType": "StructureDefinition",
        "url": url,
        "kind": "resource",
        "type": "Patient",
        "derivation": "constraint",
        "snapshot": {"element": elements},
    }


def test_it_matches_slices_by_profile_and_by_exists() -> None:
    by_profile = _patient_profile(
        "http://example.org/StructureDefinition/with-birthsex",
        "Patient.extension",
        {"type": "profile", "path": "$this"},
        [
            {
                "id": "Patient.extension:sex",
                "path": "Patient.extension",
                "sliceName": "sex",
                "min": 1,
                "max": "1",
                "base": {"path": "Patient.extension", "min": 0, "max": "*"},
                "type": [{"code": "Extension", "profile": [US_CORE + "us-core-birthsex"]}],
            }
        ],
    )
    by_exists = _patient_profile(
        "http://example.org/StructureDefinition/dated-identifier",
        "Patient.identifier",
        {"type": "exists", "path": "period"},
        [
            {
                "id": "Patient.identifier:dated",
                "path": "Patient.identifier",
                "sliceName": "dated",
                "min": 1,
                "max": "1",
                "base": {"path": "Patient.identifier", "min": 0, "max": "*"},
                "type": [{"code": "Identifier"}],
            },
            {
                "id": "Patient.identifier:dated.period",
                "path": "Patient.identifier.period",
                "min": 1,
                "max": "1",
                "base": {"path": "Identifier.period", "min": 0, "max": "1"},
                "type": [{"code": "Period"}],
            },
        ],
    )
    registry = core().layered([by_profile, by_exists])

    def found(resource: dict, url: str) -> list:
        return [(i.code, i.expression[0]) for i in validate_resource(resource, profiles=[url], registry=registry)]

    assert found(US_CORE_PATIENT, by_profile["url"]) == []
    no_sex = _changed(US_CORE_PATIENT, lambda r: r["extension"].pop(1))
    assert found(no_sex, by_profile["url"]) == [("FS-VAL-010", "Patient.extension")]
    dated = _changed(US_CORE_PATIENT, lambda r: r["identifier"].append({"value": "2", "period": {"start": "2020"}}))
    assert found(dated, by_exists["url"]) == []
    assert found(US_CORE_PATIENT, by_exists["url"]) == [("FS-VAL-010", "Patient.identifier")]
