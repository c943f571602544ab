"""Invalid resources, one rule broken each: the validator names the rule's code at the element that breaks it.

Each row: the rule (test id), the resource, the FS code and the FHIRPath expression expected (and the severity when
it is not an error). The resources are otherwise valid, so a row also fails if the validator reports something else
as an error.
"""

import copy

import pytest

from mappings.engine.validation import validate_resource

PATIENT = {"resourceType": "Patient", "id": "p1"}
OBSERVATION = {"resourceType": "Observation", "status": "final", "code": {"text": "glucose"}}
LOINC = {"system": "http://loinc.org", "code": "2345-7"}


def patient(**members) -> dict:
    return {**copy.deepcopy(PATIENT), **members}


def observation(**members) -> dict:
    return {**copy.deepcopy(OBSERVATION), **members}


def bundle(kind: str, *entries: dict, **members) -> dict:
    return {"resourceType": "Bundle", "type": kind, "entry": list(entries), **members}


def contained_patient(extra: dict) -> dict:
    inner = {"resourceType": "Organization", "id": "o1", "name": "Clinic", **extra}
    return patient(contained=[inner], managingOrganization={"reference": "#o1"})


CASES = [
    # structure and JSON types
    ("unknown-element", patient(name=[{"famly": "Lee"}]), "FS-VAL-001", "Patient.name[0].famly"),
    ("unknown-top-level-element", patient(colour="blue"), "FS-VAL-001", "Patient.colour"),
    ("string-for-boolean", patient(active="true"), "FS-VAL-001", "Patient.active"),
    ("string-for-integer", patient(multipleBirthInteger="2"), "FS-VAL-001", "Patient.multipleBirthInteger"),
    ("boolean-for-integer", patient(multipleBirthInteger=True), "FS-VAL-001", "Patient.multipleBirthInteger"),
    ("decimal-for-integer", patient(multipleBirthInteger=1.5), "FS-VAL-001", "Patient.multipleBirthInteger"),
    (
        "string-for-decimal",
        observation(valueQuantity={"value": "1.5"}),
        "FS-VAL-001",
        "Observation.valueQuantity.value",
    ),
    ("object-for-array", patient(name={"family": "Lee"}), "FS-VAL-001", "Patient.name"),
    ("array-for-object", patient(maritalStatus=[{"text": "x"}]), "FS-VAL-001", "Patient.maritalStatus"),
    ("array-for-primitive", observation(status=["final"]), "FS-VAL-001", "Observation.status"),
    ("number-in-string-array", patient(name=[{"given": ["Ann", 5]}]), "FS-VAL-001", "Patient.name[0].given[1]"),
    ("two-choice-values", observation(valueString="a", valueBoolean=True), "FS-VAL-001", "Observation.valueBoolean"),
    ("unknown-choice-suffix", observation(valueFoo="a"), "FS-VAL-001", "Observation.valueFoo"),
    ("choice-type-not-allowed", patient(deceasedString="yes"), "FS-VAL-001", "Patient.deceasedString"),
    ("empty-object", patient(maritalStatus={}), "FS-VAL-001", "Patient.maritalStatus"),
    ("empty-array", patient(name=[]), "FS-VAL-001", "Patient.name"),
    ("empty-string", patient(name=[{"family": ""}]), "FS-VAL-001", "Patient.name[0].family"),
    ("object-with-only-an-id", patient(maritalStatus={"id": "a"}), "FS-VAL-001", "Patient.maritalStatus"),
    ("null-value", patient(gender=None), "FS-VAL-001", "Patient.gender"),
    (
        "resource-type-in-a-datatype",
        patient(name=[{"resourceType": "HumanName"}]),
        "FS-VAL-001",
        "Patient.name[0].resourceType",
    ),
    # primitive extensions (_element)
    (
        "misaligned-primitive-extensions",
        patient(name=[{"given": ["a", "b"], "_given": [None]}]),
        "FS-VAL-001",
        "Patient.name[0].given",
    ),
    (
        "primitive-extension-not-an-object",
        patient(birthDate="2000-01-01", _birthDate="x"),
        "FS-VAL-001",
        "Patient.birthDate",
    ),
    (
        "unknown-element-in-primitive-extension",
        patient(birthDate="2000-01-01", _birthDate={"colour": 1}),
        "FS-VAL-001",
        "Patient.birthDate.colour",
    ),
    ("shadow-of-a-complex-element", patient(_name={"id": "x"}), "FS-VAL-001", "Patient._name"),
    # cardinality
    (
        "missing-required-element",
        {"resourceType": "Observation", "code": {"text": "x"}},
        "FS-VAL-006",
        "Observation.status",
    ),
    ("missing-required-in-backbone", patient(link=[{"type": "seealso"}]), "FS-VAL-006", "Patient.link[0].other"),
    (
        "missing-required-choice",
        {
            "resourceType": "MedicationRequest",
            "status": "active",
            "intent": "order",
            "subject": {"reference": "Patient/1"},
        },
        "FS-VAL-006",
        "MedicationRequest.medication",
    ),
    # primitive formats
    (
        "uri-with-whitespace",
        observation(code={"coding": [{"system": "POST 12H CFST:MCNC:PT:SER/PLAS:QN", "code": "1554-5"}]}),
        "FS-VAL-007",
        "Observation.code.coding[0].system",
    ),
    ("id-with-a-space", patient(id="a b"), "FS-VAL-007", "Patient.id"),
    ("id-too-long", patient(id="x" * 65), "FS-VAL-007", "Patient.id"),
    (
        "code-with-leading-space",
        observation(code={"coding": [{"system": "http://loinc.org", "code": " 2345-7"}]}),
        "FS-VAL-007",
        "Observation.code.coding[0].code",
    ),
    ("date-with-slashes", patient(birthDate="2020/01/01"), "FS-VAL-007", "Patient.birthDate"),
    ("date-not-in-the-calendar", patient(birthDate="2023-02-30"), "FS-VAL-003", "Patient.birthDate"),
    (
        "date-time-not-in-the-calendar",
        observation(effectiveDateTime="2021-04-31T10:00:00Z"),
        "FS-VAL-003",
        "Observation.effectiveDateTime",
    ),
    (
        "date-time-without-zone",
        observation(effectiveDateTime="2020-01-01T10:00:00"),
        "FS-VAL-007",
        "Observation.effectiveDateTime",
    ),
    ("instant-without-time", observation(issued="2020-01-01"), "FS-VAL-007", "Observation.issued"),
    ("time-out-of-range", observation(valueTime="25:00:00"), "FS-VAL-007", "Observation.valueTime"),
    (
        "positive-int-zero",
        patient(telecom=[{"system": "phone", "value": "1", "rank": 0}]),
        "FS-VAL-007",
        "Patient.telecom[0].rank",
    ),
    ("integer-out-of-range", patient(multipleBirthInteger=2**31), "FS-VAL-007", "Patient.multipleBirthInteger"),
    (
        "oid-without-prefix",
        patient(extension=[{"url": "http://example.org/oid", "valueOid": "1.2.3"}]),
        "FS-VAL-007",
        "Patient.extension[0].valueOid",
    ),
    (
        "uuid-upper-case-letters",
        patient(extension=[{"url": "http://example.org/u", "valueUuid": "urn:uuid:ZZZ"}]),
        "FS-VAL-007",
        "Patient.extension[0].valueUuid",
    ),
    (
        "base64-with-bad-characters",
        patient(photo=[{"contentType": "image/png", "data": "not base64!"}]),
        "FS-VAL-007",
        "Patient.photo[0].data",
    ),
    (
        "canonical-with-whitespace",
        {"resourceType": "Questionnaire", "status": "draft", "derivedFrom": ["http://a b"]},
        "FS-VAL-007",
        "Questionnaire.derivedFrom[0]",
    ),
    (
        "string-over-one-megabyte",
        patient(name=[{"text": "x" * (1024 * 1024 + 1)}]),
        "FS-VAL-007",
        "Patient.name[0].text",
    ),
    ("narrative-not-a-div", patient(text={"status": "generated", "div": "<p>x</p>"}), "FS-VAL-007", "Patient.text.div"),
    # bindings
    ("code-outside-required-value-set", patient(gender="M"), "FS-VAL-005", "Patient.gender"),
    (
        "narrative-status-code",
        patient(text={"status": "made-up", "div": "<div>x</div>"}),
        "FS-VAL-005",
        "Patient.text.status",
    ),
    (
        "codeable-concept-outside-required-value-set",
        {
            "resourceType": "AllergyIntolerance",
            "patient": {"reference": "Patient/p1"},
            "clinicalStatus": {
                "coding": [
                    {"system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "code": "bogus"}
                ]
            },
        },
        "FS-VAL-005",
        "AllergyIntolerance.clinicalStatus",
    ),
    (
        "timing-unit-outside-required-value-set",
        {
            "resourceType": "MedicationRequest",
            "status": "active",
            "intent": "order",
            "medicationCodeableConcept": {"text": "x"},
            "subject": {"reference": "Patient/p1"},
            "dosageInstruction": [{"timing": {"repeat": {"period": 8, "periodUnit": "hours"}}}],
        },
        "FS-VAL-005",
        "MedicationRequest.dosageInstruction[0].timing.repeat.periodUnit",
    ),
    # invariants
    (
        "ext-1-value-and-extensions",
        patient(
            extension=[
                {"url": "http://example.org/x", "valueString": "a", "extension": [{"url": "y", "valueString": "b"}]}
            ]
        ),
        "FS-VAL-008",
        "Patient.extension[0]",
    ),
    (
        "obs-6-value-and-absent-reason",
        observation(valueString="x", dataAbsentReason={"text": "asked"}),
        "FS-VAL-008",
        "Observation",
    ),
    (
        "obs-7-component-repeats-the-code",
        observation(
            code={"coding": [LOINC]}, valueString="x", component=[{"code": {"coding": [LOINC]}, "valueString": "y"}]
        ),
        "FS-VAL-008",
        "Observation",
    ),
    (
        "obs-3-empty-reference-range",
        observation(referenceRange=[{"appliesTo": [{"text": "adults"}]}]),
        "FS-VAL-008",
        "Observation.referenceRange[0]",
    ),
    ("pat-1-contact-without-details", patient(contact=[{"gender": "male"}]), "FS-VAL-008", "Patient.contact[0]"),
    (
        "per-1-period-ends-before-it-starts",
        patient(name=[{"family": "Lee", "period": {"start": "2020-01-02", "end": "2020-01-01"}}]),
        "FS-VAL-008",
        "Patient.name[0].period",
    ),
    (
        "rng-2-range-low-above-high",
        observation(valueRange={"low": {"value": 5, "unit": "mg"}, "high": {"value": 1, "unit": "mg"}}),
        "FS-VAL-008",
        "Observation.valueRange",
    ),
    ("cpt-2-value-without-system", patient(telecom=[{"value": "555"}]), "FS-VAL-008", "Patient.telecom[0]"),
    (
        "qty-3-code-without-system",
        observation(valueQuantity={"value": 1, "code": "mg"}),
        "FS-VAL-008",
        "Observation.valueQuantity",
    ),
    ("att-1-data-without-content-type", patient(photo=[{"data": "AAAA"}]), "FS-VAL-008", "Patient.photo[0]"),
    (
        "dom-2-contained-contains",
        contained_patient({"contained": [{"resourceType": "Organization", "id": "o2", "name": "x"}]}),
        "FS-VAL-008",
        "Patient",
    ),
    (
        "dom-3-contained-never-referenced",
        patient(contained=[{"resourceType": "Organization", "id": "o1", "name": "Clinic"}]),
        "FS-VAL-008",
        "Patient",
    ),
    ("dom-4-contained-with-version", contained_patient({"meta": {"versionId": "1"}}), "FS-VAL-008", "Patient"),
    (
        "dom-5-contained-with-security",
        contained_patient({"meta": {"security": [{"system": "http://example.org", "code": "R"}]}}),
        "FS-VAL-008",
        "Patient",
    ),
    ("bdl-1-total-outside-search", bundle("collection", {"resource": PATIENT}, total=1), "FS-VAL-008", "Bundle"),
    ("bdl-3-transaction-entry-without-request", bundle("transaction", {"resource": PATIENT}), "FS-VAL-008", "Bundle"),
    (
        "bdl-7-duplicate-full-urls",
        bundle(
            "collection",
            {"fullUrl": "http://x/Patient/1", "resource": PATIENT},
            {"fullUrl": "http://x/Patient/1", "resource": PATIENT},
        ),
        "FS-VAL-008",
        "Bundle",
    ),
    (
        "bdl-11-document-without-composition",
        bundle(
            "document",
            {"resource": PATIENT},
            identifier={"system": "urn:ietf:rfc:3986", "value": "urn:uuid:1"},
            timestamp="2020-01-01T00:00:00Z",
        ),
        "FS-VAL-008",
        "Bundle",
    ),
    ("bdl-12-message-without-header", bundle("message", {"resource": PATIENT}), "FS-VAL-008", "Bundle"),
    ("bdl-5-empty-entry", bundle("collection", {"fullUrl": "http://x/Patient/1"}), "FS-VAL-008", "Bundle.entry[0]"),
    (
        "bdl-8-full-url-with-history",
        bundle("collection", {"fullUrl": "http://x/Patient/1/_history/2", "resource": PATIENT}),
        "FS-VAL-008",
        "Bundle.entry[0]",
    ),
    (
        "org-1-organization-without-name-or-identifier",
        {"resourceType": "Organization", "active": True},
        "FS-VAL-008",
        "Organization",
    ),
    (
        "con-4-abated-but-active",
        {
            "resourceType": "Condition",
            "subject": {"reference": "Patient/p1"},
            "abatementString": "gone",
            "clinicalStatus": {
                "coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]
            },
        },
        "FS-VAL-008",
        "Condition",
    ),
    # references
    (
        "reference-with-a-space",
        patient(managingOrganization={"reference": "Organization/a b"}),
        "FS-VAL-004",
        "Patient.managingOrganization.reference",
    ),
    (
        "reference-to-a-type-not-allowed",
        observation(subject={"reference": "Practitioner/1"}),
        "FS-VAL-004",
        "Observation.subject.reference",
    ),
    (
        "reference-to-no-resource-type",
        observation(subject={"reference": "Spaceship/1"}),
        "FS-VAL-004",
        "Observation.subject.reference",
    ),
    (
        "malformed-urn-uuid",
        observation(subject={"reference": "urn:uuid:12"}),
        "FS-VAL-004",
        "Observation.subject.reference",
    ),
    (
        "contained-reference-unresolved",
        observation(subject={"reference": "#nobody"}),
        "FS-VAL-012",
        "Observation.subject.reference",
    ),
    # resource types and nested resources
    ("unknown-resource-type", {"resourceType": "Spaceship"}, "FS-VAL-002", "Spaceship"),
    (
        "unknown-resource-in-bundle",
        bundle("collection", {"resource": {"resourceType": "Foo"}}),
        "FS-VAL-002",
        "Bundle.entry[0].resource",
    ),
    (
        "contained-validated-by-its-type",
        patient(
            contained=[{"resourceType": "Observation", "id": "o", "code": {"text": "x"}}],
            generalPractitioner=[{"reference": "#o"}],
        ),
        "FS-VAL-006",
        "Patient.contained[0].status",
    ),
    (
        "parameters-resource-validated-by-its-type",
        {
            "resourceType": "Parameters",
            "parameter": [{"name": "p", "resource": {"resourceType": "Patient", "gender": "M"}}],
        },
        "FS-VAL-005",
        "Parameters.parameter[0].resource.gender",
    ),
    (
        "content-reference-questionnaire-item",
        {
            "resourceType": "Questionnaire",
            "status": "draft",
            "item": [{"linkId": "1", "type": "group", "item": [{"type": "string"}]}],
        },
        "FS-VAL-006",
        "Questionnaire.item[0].item[0].linkId",
    ),
    (
        "r4-only-resource-validated-as-r4",
        {
            "resourceType": "EffectEvidenceSynthesis",
            "population": {"reference": "EvidenceVariable/1"},
            "exposure": {"reference": "EvidenceVariable/2"},
            "exposureAlternative": {"reference": "EvidenceVariable/3"},
            "outcome": {"reference": "EvidenceVariable/4"},
        },
        "FS-VAL-006",
        "EffectEvidenceSynthesis.status",
    ),
    # extension definitions
    (
        "known-extension-with-wrong-value-type",
        patient(
            extension=[{"url": "http://hl7.org/fhir/StructureDefinition/patient-birthPlace", "valueString": "Paris"}]
        ),
        "FS-VAL-001",
        "Patient.extension[0].valueString",
    ),
]


# Rows whose one mistake is, rightly, also found at a second place.
ALSO = {
    "dom-2-contained-contains": {"Patient.contained[0]"},  # the nested contained resource is referenced by nobody
    "known-extension-with-wrong-value-type": {"Patient.extension[0].value"},  # so the Address it needs is missing
}


@pytest.mark.parametrize(("rule", "resource", "code", "expression"), [pytest.param(*row, id=row[0]) for row in CASES])
def test_it_names_the_rule_and_the_element_an_invalid_resource_breaks(rule, resource, code, expression) -> None:
    issues = validate_resource(resource)
    found = [(issue.code, issue.expression[0]) for issue in issues]
    assert (code, expression) in found, f"expected {code} at {expression}, got {[i.message for i in issues]}"
    allowed = {expression} | ALSO.get(rule, set())
    others = [issue.message for issue in issues if issue.severity == "error" and issue.expression[0] not in allowed]
    assert others == [], "the resource breaks only the rule of its row"


def test_the_table_covers_at_least_sixty_rules() -> None:
    assert len(CASES) >= 60
    assert len({row[0] for row in CASES}) == len(CASES)


def test_it_warns_for_a_code_of_an_extensible_value_set_system_that_is_not_in_it() -> None:
    marital = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus", "code": "ZZ"}]}
    issues = validate_resource(patient(maritalStatus=marital))
    assert [(i.code, i.severity, i.expression) for i in issues] == [
        ("FS-VAL-005", "warning", ["Patient.maritalStatus"])
    ]
    other_system = {"coding": [{"system": "http://example.org/local", "code": "ZZ"}]}
    assert validate_resource(patient(maritalStatus=other_system)) == []


def test_it_warns_for_a_bundle_reference_no_entry_resolves() -> None:
    entry = {
        "fullUrl": "urn:uuid:7d1b2bd4-1b52-4c1b-b4d6-3b1f3b8f0a11",
        "resource": observation(subject={"reference": "urn:uuid:0a0a0a0a-1b52-4c1b-b4d6-3b1f3b8f0a11"}),
    }
    issues = validate_resource(bundle("collection", entry))
    assert [(i.code, i.severity, i.expression) for i in issues] == [
        ("FS-VAL-012", "warning", ["Bundle.entry[0].resource.subject.reference"])
    ]
    other = {"fullUrl": "urn:uuid:0a0a0a0a-1b52-4c1b-b4d6-3b1f3b8f0a11", "resource": PATIENT}
    entry["resource"]["subject"]["reference"] = other["fullUrl"]
    assert validate_resource(bundle("collection", entry, other)) == []


def test_it_accepts_a_local_reference_to_a_contained_resource_and_to_the_container() -> None:
    resource = contained_patient({})
    assert validate_resource(resource) == []
    resource["contained"][0]["partOf"] = {"reference": "#"}
    assert validate_resource(resource) == []


def test_it_suggests_the_allowed_types_of_a_choice_element() -> None:
    (issue,) = validate_resource(patient(deceasedString="yes"))
    assert "deceasedBoolean" in issue.message and "deceasedDateTime" in issue.message


def test_it_validates_decimals_kept_as_a_float_subclass_and_refuses_booleans_as_numbers() -> None:
    class KeptDecimal(float):
        pass

    assert validate_resource(observation(valueQuantity={"value": KeptDecimal(0.70)})) == []
    assert validate_resource(observation(valueQuantity={"value": 5})) == []
    (issue,) = validate_resource(observation(valueQuantity={"value": True}))
    assert issue.expression == ["Observation.valueQuantity.value"]


def test_it_reads_the_spec_regexes_with_xml_schema_whitespace() -> None:
    # In the spec's regex language \s is space, tab, CR and LF only: a no-break space is text, not whitespace.
    assert validate_resource(patient(name=[{"family": "Lee\u00a0Kim", "text": "line one\nline two"}])) == []
    (issue,) = validate_resource(observation(code={"coding": [{"system": "http://loinc.org\t", "code": "1"}]}))
    assert (issue.code, issue.expression) == ("FS-VAL-007", ["Observation.code.coding[0].system"])


def test_it_reports_a_repeated_data_type_value_each_time_it_is_wrong() -> None:
    # Valid data type values are remembered (by their text) so they are not walked twice; wrong ones never are,
    # not even when a profile's second walk finds the same issue again and it is reported once.
    profile = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient"
    wrong = {"coding": [{"system": "not a uri", "code": "M"}]}
    expected = ("FS-VAL-007", ["Patient.maritalStatus.coding[0].system"])
    for profiles in ([profile], (), ()):
        found = [(i.code, i.expression) for i in validate_resource(patient(maritalStatus=wrong), profiles=profiles)]
        assert expected in found
    right = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus", "code": "M"}]}
    assert validate_resource(patient(maritalStatus=right)) == validate_resource(patient(maritalStatus=right)) == []


def test_it_knows_every_r4_resource_type_and_validates_a_bare_one_without_crashing() -> None:
    from mappings.engine.definitions import core

    types = core().resource_types()
    assert len(types) == 147 and {"EffectEvidenceSynthesis", "MedicinalProductIngredient"} <= types
    for resource_type in sorted(types):
        codes = {issue.code for issue in validate_resource({"resourceType": resource_type, "id": "x"})}
        assert codes <= {"FS-VAL-006", "FS-VAL-008"}, (resource_type, codes)  # required members, invariants


def test_it_gives_the_same_verdicts_from_threads_compiling_the_same_definitions_at_once() -> None:
    from concurrent.futures import ThreadPoolExecutor

    from mappings.engine.definitions import core

    resources = [row[1] for row in CASES if len(str(row[1])) < 10_000]

    def verdicts(resource: dict, registry) -> list:
        return [(issue.code, issue.expression[0]) for issue in validate_resource(resource, registry=registry)]

    fresh = core().layered([])
    expected = [verdicts(resource, fresh) for resource in resources]
    shared = core().layered([])  # a new registry: its compiler starts empty, so the threads compile concurrently
    with ThreadPoolExecutor(8) as pool:
        found = list(pool.map(lambda resource: verdicts(resource, shared), resources * 3))
    assert found == expected * 3


ODD_VALUES = [
    None,
    True,
    0,
    -1,
    1.5,
    "",
    " ",
    "x y",
    [],
    {},
    [None],
    [{}],
    {"": 1},
    {"resourceType": "Foo"},
    "#",
    2**70,
    [[1]],
    {"_x": None},
    {"url": 5},
    {"reference": ["a"]},
    {"coding": {"code": 1}},
]


def test_it_reports_never_raises_on_values_of_the_wrong_shape_anywhere() -> None:
    # A seeded fuzz: odd values put at random places of real resources (ids, urls, codes as objects or lists, nulls);
    # every one must come back as issues, never as an exception (which would be a 500 in the studio).
    import random

    from test_valid_resources import CORPUS, load

    rng = random.Random(13)
    bundle = load(CORPUS / "fhir-converter/expected/hl7v2/ADT-A01-01-expected.json")
    resources = [entry["resource"] for entry in bundle["entry"]] + [row[1] for row in CASES[:40]]

    def mutate(node: object) -> None:
        if isinstance(node, dict) and node:
            key = rng.choice(list(node))
            if rng.random() < 0.3:
                node[key] = copy.deepcopy(rng.choice(ODD_VALUES))
            else:
                mutate(node[key])
        elif isinstance(node, list) and node:
            index = rng.randrange(len(node))
            if rng.random() < 0.3:
                node[index] = copy.deepcopy(rng.choice(ODD_VALUES))
            else:
                mutate(node[index])

    for resource in resources * 8:
        changed = copy.deepcopy(resource)
        for _ in range(3):
            mutate(changed)
        assert isinstance(validate_resource(changed), list)


HOSTILE = [
    patient(
        contained=[{"resourceType": "Organization", "id": ["x"], "name": "a"}], managingOrganization={"reference": "#x"}
    ),
    bundle("collection", {"fullUrl": {"a": 1}, "resource": PATIENT}, {"fullUrl": ["b"], "resource": PATIENT}),
    observation(code={"coding": [{"system": ["x"], "code": {"a": 1}}]}),
    patient(
        maritalStatus={"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus", "code": ["M"]}]}
    ),
    patient(gender=["male"], extension=[{"url": {"a": 1}, "valueString": "x"}]),
]


@pytest.mark.parametrize("resource", HOSTILE)
def test_it_answers_hostile_shapes_with_issues(resource) -> None:
    profile = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient"
    profiles = [profile] if resource["resourceType"] == "Patient" else []
    issues = validate_resource(resource, profiles=profiles)
    assert any(issue.code == "FS-VAL-001" for issue in issues)
