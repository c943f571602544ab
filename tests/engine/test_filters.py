"""The FHIR filter library, table by table, exercised through real templates."""

import pytest

from mappings.engine import compile_mapping, run_mapping


def render_value(expression: str, *, timezone: str = "UTC", tables: dict | None = None) -> object:
    template = (
        '{"resourceType": "Basic", "code": {"text": "t"}, "extension": [{"url": "urn:x", "valueString": '
        + "{{ ("
        + expression
        + ") | tojson }}}]}"
    )
    result = run_mapping(compile_mapping(template, timezone=timezone, lookup_tables=tables), "{}", validate=False)
    assert result.output is not None, result.errors
    extension = result.output.get("extension")
    return extension[0].get("valueString") if extension else None


DATETIMES = [
    ("'198908181126+0215'", "1989-08-18T11:26:00+02:15"),
    ("'20210817151943.4+0200'", "2021-08-17T15:19:43.4+02:00"),
    ("'20290801070624-0500'", "2029-08-01T07:06:24-05:00"),
    ("'2020'", "2020"),
    ("'202003'", "2020-03"),
    ("'20200315'", "2020-03-15"),
    ("'2020031514'", "2020-03-15T14:00:00+00:00"),
    ("'2020-03-15T14:30'", "2020-03-15T14:30:00+00:00"),
    ("'2020-03-15T14:30:00Z'", "2020-03-15T14:30:00Z"),
    ("'2020-03-15T14:30:05.123-04:00'", "2020-03-15T14:30:05.123-04:00"),
    ("'20200230'", None),
    ("'20201301'", None),
    ("'2020031525'", None),
    ("'not a date'", None),
    ("''", None),
]


@pytest.mark.parametrize(("value", "expected"), DATETIMES)
def test_it_converts_hl7_and_iso_timestamps_to_fhir_datetime(value: str, expected: str | None) -> None:
    assert render_value(f"{value} | fhir_datetime") == expected


def test_it_uses_the_mapping_time_zone_when_the_source_has_no_offset() -> None:
    assert render_value("'202001151030' | fhir_datetime", timezone="America/New_York") == "2020-01-15T10:30:00-05:00"
    assert render_value("'202007151030' | fhir_datetime", timezone="America/New_York") == "2020-07-15T10:30:00-04:00"
    assert render_value("'202007151030' | fhir_datetime('Asia/Kolkata')") == "2020-07-15T10:30:00+05:30"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("'20010110'", "2001-01-10"),
        ("'200101'", "2001-01"),
        ("'198908181126+0215'", "1989-08-18"),
        ("'2001-02-29'", None),
        ("'0000'", None),
    ],
)
def test_it_converts_to_fhir_date(value: str, expected: str | None) -> None:
    assert render_value(f"{value} | fhir_date") == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [("'20200101120000+0100'", "2020-01-01T12:00:00+01:00"), ("'20200101'", None)],
)
def test_it_converts_to_fhir_instant_only_with_a_full_time(value: str, expected: str | None) -> None:
    assert render_value(f"{value} | fhir_instant") == expected


def test_it_warns_at_the_template_line_when_it_drops_an_impossible_date() -> None:
    template = '{"resourceType": "Patient",\n"birthDate": {{ msg.dob | fhir_date | tojson }}}'
    result = run_mapping(compile_mapping(template), '{"dob": "20200230"}')
    assert result.ok
    [warning] = result.errors
    assert (warning.code, warning.severity, warning.line) == ("FS-RND-002", "warning", 2)


NUMBERS = [
    ("' 7.50' | decimal", 7.5),
    ("'12' | decimal", 12),
    ("'1e3' | decimal", 1000.0),
    ("'abc' | decimal", None),
    ("'.5' | decimal", None),
    ("'42' | integer", 42),
    ("'4.2' | integer", None),
    ("'Y' | boolean", True),
    ("'no' | boolean", False),
    ("'maybe' | boolean", None),
]


@pytest.mark.parametrize(("expression", "expected"), NUMBERS)
def test_it_converts_text_to_fhir_numbers_and_booleans(expression: str, expected: object) -> None:
    assert render_value(expression) == expected


DATATYPES = [
    ("coding('M', 'http://x', 'Male')", {"system": "http://x", "code": "M", "display": "Male"}),
    ("coding('')", None),
    (
        "codeable_concept('1', 'http://x', 'One')",
        {"coding": [{"system": "http://x", "code": "1", "display": "One"}], "text": "One"},
    ),
    (
        "identifier('123', 'urn:mrn', 'MR')",
        {
            "value": "123",
            "system": "urn:mrn",
            "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]},
        },
    ),
    ("quantity('5.5', 'mg')", {"value": 5.5, "unit": "mg", "system": "http://unitsofmeasure.org", "code": "mg"}),
    ("quantity('n/a', 'mg')", None),
    ("reference('Patient', 'abc', 'Pat')", {"reference": "Patient/abc", "display": "Pat"}),
    ("reference('Patient', '')", None),
    ("extension('http://x/ext', 'code', 'F')", {"url": "http://x/ext", "valueCode": "F"}),
    ("'abc' | urn_uuid", "urn:uuid:abc"),
    ("'0001' | v2_table", "http://terminology.hl7.org/CodeSystem/v2-0001"),
    ("'LN' | v2_system", "http://loinc.org"),
    ("'HL70078' | v2_system", "http://terminology.hl7.org/CodeSystem/v2-0078"),
    ("'LOCAL' | v2_system", "urn:id:LOCAL"),
    ("'2.16.840.1.113883.6.96' | v2_system", "http://snomed.info/sct"),
    ("'1.2.3' | v2_system", "urn:oid:1.2.3"),
    ("extension('http://x/ext', 'String', '  ')", None),
    ("'2.16.840.1.113883.6.96' | oid_uri", "http://snomed.info/sct"),
    ("'1.2.3' | oid_uri", "urn:oid:1.2.3"),
    ("'2.16.840.1.113883.6.59' | oid_uri", "http://hl7.org/fhir/sid/cvx"),
    ("'Hello ü' | base64", "SGVsbG8gw7w="),
    ("'' | base64", None),
]


@pytest.mark.parametrize(("expression", "expected"), DATATYPES)
def test_it_builds_fhir_data_types(expression: str, expected: object) -> None:
    assert render_value(expression) == expected


def test_it_makes_deterministic_uuid_shaped_ids() -> None:
    first = render_value("fhir_id('Patient', 'urn:mrn', '123')")
    assert first == render_value("fhir_id('Patient', 'urn:mrn', '123')")
    assert first != render_value("fhir_id('Patient', 'urn:mrn', '124')")
    assert len(first) == 36 and first.count("-") == 4


GENDER = {
    "target_system": "http://hl7.org/fhir/administrative-gender",
    "default": {"code": "unknown"},
    "entries": [
        {"source": "M", "code": "male", "display": "Male"},
        {"source": "X", "source_system": "urn:local", "code": "other"},
    ],
}


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("'M' | translate_code('gender')", "male"),
        ("'m' | translate_code('gender')", "male"),
        ("'Q' | translate_code('gender')", "unknown"),
        ("'' | translate_code('gender')", None),
        ("'X' | translate_code('gender', 'urn:local')", "other"),
        (
            "'M' | translate('gender')",
            {"system": "http://hl7.org/fhir/administrative-gender", "code": "male", "display": "Male"},
        ),
    ],
)
def test_it_translates_codes_through_lookup_tables(expression: str, expected: object) -> None:
    assert render_value(expression, tables={"gender": GENDER}) == expected
