"""The FHIR filter library, table by table, exercised through real templates."""

import pytest

from mappings.engine import compile_mapping, run_mapping
from mappings.engine.filters import documentation


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
    ("'LOCAL' | v2_system", None),
    ("'99USL' | v2_system", None),
    ("'POST 12H CFST:MCNC:PT:SER/PLAS:QN' | v2_system", None),
    ("'urn:oid:1.2.3' | v2_system", "urn:oid:1.2.3"),
    ("'I10P' | v2_system", "http://www.cms.gov/Medicare/Coding/ICD10"),
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


# The helpers take the code or value FIRST (FHIR writes system|code): keywords say which is which, in any order.
KEYWORD_CALLS = [
    ("coding('718-7', 'http://loinc.org', 'Hb')", "coding(system='http://loinc.org', display='Hb', code='718-7')"),
    ("coding('718-7', 'http://loinc.org')", "coding('718-7', system='http://loinc.org')"),
    ("coding('718-7')", "coding(code='718-7')"),
    ("coding('')", "coding(system='http://loinc.org', code='')"),
    (
        "codeable_concept('718-7', 'http://loinc.org', 'Hb', 'Haemoglobin')",
        "codeable_concept(text='Haemoglobin', system='http://loinc.org', code='718-7', display='Hb')",
    ),
    ("codeable_concept(None, None, None, 'free text')", "codeable_concept(text='free text')"),
    (
        "identifier('123', 'urn:mrn', 'MR', 'usual')",
        "identifier(system='urn:mrn', use='usual', value='123', type_code='MR')",
    ),
    ("identifier('123', 'urn:mrn')", "identifier(system='urn:mrn', value='123')"),
    (
        "quantity('5.5', 'mg', 'http://unitsofmeasure.org', 'mg')",
        "quantity(unit='mg', value='5.5', code='mg', system='http://unitsofmeasure.org')",
    ),
    ("quantity('5.5', 'mg')", "quantity(unit='mg', value='5.5')"),
    ("reference('Patient', 'abc', 'Pat')", "reference(resource_id='abc', display='Pat', resource_type='Patient')"),
    ("extension('http://x/ext', 'code', 'F')", "extension(value='F', url='http://x/ext', value_type='code')"),
]


@pytest.mark.parametrize(("positional", "keywords"), KEYWORD_CALLS)
def test_the_data_type_helpers_take_keyword_arguments_in_any_order(positional: str, keywords: str) -> None:
    assert render_value(keywords) == render_value(positional)


def warnings_of(template: str, payload: str = "{}", **options) -> list[tuple[str, int | None, str]]:
    result = run_mapping(compile_mapping(template, **options), payload, validate=False)
    assert result.output is not None, result.errors
    return [(error.code, error.line, error.message) for error in result.errors if error.severity == "warning"]


def in_basic(expression: str) -> str:
    return '{"resourceType": "Basic",\n"code": {"text": "t"},\n"extension": [{"url": "urn:x", "valueString": {{ (' + (
        expression + ") | tojson }}}]}"
    )


# FHIR's system|code order given to a helper that takes the code first: a warning at the line, output as written.
SWAPPED = [
    ("coding('http://loinc.org', '718-7')", "coding(system='http://loinc.org', code='718-7')"),
    ("coding('urn:oid:2.16.840.1.113883.6.1', '718-7', 'Hb')", "coding(system='urn:oid:2.16.840.1.113883.6.1'"),
    ("codeable_concept('http://snomed.info/sct', '22298006')", "codeable_concept(system='http://snomed.info/sct'"),
    ("identifier('urn:oid:1.2.3', '12345', 'MR')", "identifier(system='urn:oid:1.2.3', value='12345')"),
    ("identifier('https://example.org/mrn', 'A-7')", "identifier(system='https://example.org/mrn', value='A-7')"),
    ("reference('abc', 'Patient')", "reference('Patient', msg.id)"),
    ("quantity('mg', '5.5')", "quantity(value, unit, system, code)"),
]


@pytest.mark.parametrize(("expression", "advice"), SWAPPED)
def test_it_warns_when_a_helper_gets_fhirs_order(expression: str, advice: str) -> None:
    [(code, line, message)] = warnings_of(in_basic(expression))
    assert (code, line) == ("FS-RND-008", 3)
    assert advice in message


# The order the helpers document, and values that merely look alike, give no warning.
NOT_SWAPPED = [
    "coding('718-7', 'http://loinc.org')",
    "coding('http://loinc.org')",  # no system to compare with
    "coding('urn:uuid:1b6c', 'urn:ietf:rfc:3986')",  # a URI as the code of a URI system (C-CDA ids)
    "identifier('urn:uuid:1b6c', 'urn:ietf:rfc:3986')",
    "identifier('123', 'urn:oid:1.2.3', 'MR')",
    "codeable_concept('x', 'urn:local:codes')",
    "reference('Patient', 'Abc')",
    "reference('Patient', '')",
    "quantity('n/a', 'mg')",  # not a number: nothing, as before, and no order to blame
    "quantity('5', '10')",
]


@pytest.mark.parametrize("expression", NOT_SWAPPED)
def test_it_does_not_warn_about_the_documented_order(expression: str) -> None:
    assert warnings_of(in_basic(expression)) == []


def test_it_warns_about_swapped_arguments_once_per_line_not_per_row() -> None:
    template = (
        '{"resourceType": "Bundle", "type": "collection", "entry": [{% for row in msg %}\n'
        '{"resource": {"resourceType": "Basic", "code": {"coding": [{{ coding(row.system, row.code) }}]}}},\n'
        "{% endfor %}]}"
    )
    payload = "system,code\nhttp://loinc.org,718-7\nhttp://loinc.org,2345-7\nhttp://loinc.org,1-8\n"
    assert [(code, line) for code, line, _ in warnings_of(template, payload, source_format="csv")] == [
        ("FS-RND-008", 2)
    ]


@pytest.mark.parametrize(
    ("name", "order"),
    [
        ("coding", "coding(code, system, display)"),
        ("codeable_concept", "codeable_concept(code, system, display, text)"),
        ("identifier", "identifier(value, system, type_code, use)"),
        ("quantity", "quantity(value, unit, system, code)"),
        ("reference", "reference(resource_type, resource_id, display)"),
    ],
)
def test_the_first_paragraph_the_editor_shows_gives_the_order_and_a_keyword_call(name: str, order: str) -> None:
    [doc] = [row["doc"] for row in documentation() if row["name"] == name and row["kind"] == "function"]
    first = doc.split("\n\n")[0]
    assert order in first
    assert f"{name}(" in first.replace(order, "") and "=" in first  # a call with named arguments


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
