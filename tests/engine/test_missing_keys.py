"""A column or key the source does not have warns at the template line (FS-RND-007) instead of printing nothing."""

import pytest
from jinja2.sandbox import SandboxedEnvironment

from mappings.engine import Limits, compile_mapping, run_mapping
from mappings.engine.environment import build_environment
from mappings.engine.filters import FILTERS, GLOBALS

CSV = "mrn,family,birth_date,sex\n1,Lee,19800101,F\n2,Kim,19900202,M\n3,Roe,20000303,F\n"
JSON = (
    '{"patient": {"id": "p1", "birthDate": "1980-01-01", "name": [{"family": "Lee"}],'
    ' "address": {"country": "US", "line1": "1 Main St"}},'
    ' "entries": [{"code": "a"}, {"code": "b", "birthDate": "2000-01-01"}]}'
)
XML = (
    '<ClinicalDocument xmlns="urn:hl7-org:v3" xmlns:sdtc="urn:hl7-org:sdtc"><patient classCode="PSN">'
    '<birthTime value="19800101"/><code codeSystem="2.16.840.1.113883.5.1" code="F"/>'
    "<addr><country>US</country></addr></patient></ClinicalDocument>"
)
FHIR = '{"resourceType": "Patient", "id": "p", "birthDate": "1980-01-01", "name": [{"family": "Lee"}]}'
NDJSON = '{"id": "a", "birthDate": "1980-01-01"}\n{"id": "b"}\n'
PAYLOADS = {"csv": CSV, "json": JSON, "xml": XML, "fhir": FHIR, "ndjson": NDJSON}


def template_with(body: str, source_format: str) -> str:
    """`body` on line 3 of a Basic resource (inside a loop over the rows for CSV and NDJSON)."""
    if source_format in ("csv", "ndjson"):
        body = "{% for row in msg %}" + body + "{% endfor %}"
    return '{"resourceType": "Basic",\n"id": "b",\n"code": {"text": "t' + body + '"}}'


def run(body: str, source_format: str, **options):
    template = template_with(body, source_format)
    return run_mapping(compile_mapping(template, **options), PAYLOADS[source_format], source_format=source_format)


def missing_key_warnings(body: str, source_format: str, **options) -> list[tuple[int | None, str]]:
    result = run(body, source_format, **options)
    assert result.ok, [error.as_dict() for error in result.errors]
    return [(error.line, error.message) for error in result.errors if error.code == "FS-RND-007"]


WARNS = [
    pytest.param(
        "csv",
        '{{ row["birth date"] }}',
        "The CSV has no column 'birth date'; did you mean 'birth_date'? (columns: mrn, family, birth_date, sex).",
        id="csv-column-with-a-space",
    ),
    pytest.param("csv", "{{ row.birthdate | fhir_date }}", "did you mean 'birth_date'?", id="csv-into-a-filter"),
    pytest.param(
        "csv", "{{ row.dob }}", "The CSV has no column 'dob' (columns: mrn, family, birth_date, sex)", id="csv-unlike"
    ),
    pytest.param("csv", "{% set d = row.dob %}{{ d }}", "no column 'dob'", id="csv-set"),
    pytest.param("csv", "{{ dt(row.dob) }}", "no column 'dob'", id="csv-macro-argument"),
    pytest.param("csv", "{% if row.birthdate %}x{% endif %}", "did you mean 'birth_date'?", id="csv-tested-typo"),
    pytest.param("csv", "{% if row.dob == '1' %}x{% endif %}", "no column 'dob'", id="csv-compared"),
    pytest.param("csv", "{% for x in row.dobs %}{% endfor %}", "no column 'dobs'", id="csv-looped-over"),
    pytest.param(
        "csv",
        "{{ msg.mrn }}",
        "msg is the list of the CSV's 3 rows, not one row, so it has no column 'mrn': loop over it",
        id="csv-the-list-of-rows",
    ),
    pytest.param(
        "json",
        "{{ msg.patient.birthdate }}",
        "msg.patient has no key 'birthdate'; did you mean 'birthDate'? (keys: id, birthDate, name, address).",
        id="json-case",
    ),
    pytest.param("json", "{{ msg.patient['birth date'] }}", "did you mean 'birthDate'?", id="json-separators"),
    pytest.param("json", "{{ msg.patient.brithDate }}", "did you mean 'birthDate'?", id="json-swapped-letters"),
    pytest.param("json", "{{ msg.patient.address.Country }}", "msg.patient.address has no key 'Country'", id="nested"),
    pytest.param("json", "{{ msg.entries[1].birthdate }}", "msg.entries[1] has no key 'birthdate'", id="json-in-list"),
    pytest.param(
        "json",
        "{{ msg.patient.name.family }}",
        "msg.patient.name is a list of 1 items, not an object, so it has no key 'family': pick one "
        "(msg.patient.name[0].family) or loop over it.",
        id="json-key-of-a-list",
    ),
    pytest.param(
        "json", "{% if msg.patient.name.family %}x{% endif %}", "msg.patient.name is a list", id="json-tested-list"
    ),
    pytest.param("fhir", "{{ msg.birthdate }}", "msg has no key 'birthdate'; did you mean 'birthDate'?", id="fhir"),
    pytest.param("fhir", "{{ msg.name.family }}", "msg.name is a list of 1 items", id="fhir-key-of-a-list"),
    pytest.param("ndjson", "{{ row.birthdate }}", "msg[0] has no key 'birthdate'", id="ndjson"),
    pytest.param(
        "xml",
        "{{ msg.patient.birthtime.value }}",
        "<patient> has no element or attribute 'birthtime'; did you mean 'birthTime'? (elements: birthTime, code, "
        "addr; attributes: classCode).",
        id="xml-element",
    ),
    pytest.param("xml", "{{ msg.patient.code.codesystem }}", "did you mean 'codeSystem'?", id="xml-attribute"),
    pytest.param("xml", "{% if msg.patient.birthtime %}x{% endif %}", "did you mean 'birthTime'?", id="xml-tested"),
]


@pytest.mark.parametrize(("source_format", "body", "message"), WARNS)
def test_a_missing_column_or_misspelt_key_warns_at_the_template_line(source_format, body, message) -> None:
    body = "{% macro dt(v) %}{{ v }}{% endmacro %}" + body if "dt(" in body else body
    [(line, text)] = missing_key_warnings(body, source_format)
    assert line == 3
    assert message in text


QUIET = [
    pytest.param("csv", "{{ row.birth_date }}", id="csv-found"),
    pytest.param("csv", "{% if row.middle %}{{ row.middle }}{% endif %}", id="csv-if"),
    pytest.param("csv", "{% if not row.middle %}x{% endif %}", id="csv-if-not"),
    pytest.param("csv", "{% if row.mrn and row.middle or row.suffix %}x{% endif %}", id="csv-if-and-or"),
    pytest.param("csv", "{% if row.mrn %}{% elif row.middle %}x{% endif %}", id="csv-elif"),
    pytest.param("csv", "{{ 'x' if row.middle else 'y' }}", id="csv-inline-if"),
    pytest.param("csv", "{{ row.middle is defined }}{{ row['middle name'] is undefined }}", id="csv-is-defined"),
    pytest.param("csv", "{{ row.middle | default('') }}{{ row.middle | d('-') }}", id="csv-default"),
    pytest.param("csv", "{{ row.middle or '' }}{{ row.middle and row.middle.x }}", id="csv-or-and"),
    pytest.param("csv", "{{ row.get('middle') }}{{ row.items() | list | length }}", id="csv-get-and-methods"),
    pytest.param("csv", "{{ row[0] }}{{ msg[10].mrn }}", id="csv-indices"),
    pytest.param("json", "{{ msg.patient.deceased }}{{ msg.nothing.at.all }}", id="json-optional-key"),
    pytest.param("json", "{{ msg.patient.address.county }}", id="json-one-letter-less-is-another-name"),
    pytest.param("json", "{{ msg.patient.address.line2 }}", id="json-numbered"),
    pytest.param("json", "{{ msg.patient._birthDate }}", id="json-fhir-primitive-extension"),
    pytest.param("json", "{{ msg.entries[0].birthDate }}", id="json-absent-from-this-record"),
    pytest.param("json", "{{ {'M': 'male'}['m'] }}{{ vars.mrnsystem }}{{ [1, 2].x }}", id="the-templates-own-values"),
    pytest.param("fhir", "{{ msg.deceasedBoolean }}{{ msg.name[0].given }}", id="fhir-optional"),
    pytest.param("ndjson", "{{ row.birthDate }}", id="ndjson-absent-from-one-record"),
    pytest.param("xml", "{{ msg.patient.deceasedInd }}{{ msg.patient.addr.county }}", id="xml-optional"),
    pytest.param("xml", "{{ msg.patient['sdtc:birthtime'] }}{{ msg.patient.birthTime.value }}", id="xml-namespace"),
]


@pytest.mark.parametrize(("source_format", "body"), QUIET)
def test_a_key_the_template_tests_for_or_that_is_optional_is_quiet(source_format, body) -> None:
    assert missing_key_warnings(body, source_format) == []


def test_it_warns_once_per_template_line_and_key_not_once_per_row() -> None:
    template = (
        '{"resourceType": "Bundle", "type": "collection", "entry": [{% for row in msg %}\n'
        '{"resource": {"resourceType": "Patient", "birthDate": "{{ row["birth date"] }}", "x": "{{ row.dob }}"}},\n'
        '{"resource": {"resourceType": "Patient", "birthDate": "{{ row["birth date"] }}"}},\n'
        "{% endfor %}]}"
    )
    result = run_mapping(compile_mapping(template), CSV, source_format="csv", validate=False)
    found = [(error.line, error.message.split(";")[0].split(" (")[0]) for error in result.errors]
    assert found == [
        (2, "The CSV has no column 'birth date'"),
        (2, "The CSV has no column 'dob'"),
        (3, "The CSV has no column 'birth date'"),
    ]
    assert all(error.severity == "warning" and error.stage.value == "render" for error in result.errors)
    assert result.ok and len(result.output["entry"]) == 6


def test_it_points_a_lookup_in_a_snippet_at_the_snippets_line() -> None:
    snippet = (
        '{%- macro patient(row) -%}\n{"resourceType": "Patient",\n "birthDate": "{{ row.birthdate }}"}\n'
        "{%- endmacro -%}"
    )
    template = '{%- import "snippets/p.j2" as p -%}\n{{ p.patient(msg[0]) }}'
    compiled = compile_mapping(template, snippets={"snippets/p.j2": snippet})
    [warning] = run_mapping(compiled, CSV, source_format="csv").errors
    assert (warning.code, warning.template, warning.line) == ("FS-RND-007", "snippets/p.j2", 3)
    assert warning.as_issue()["severity"] == "warning"
    assert warning.as_issue()["code"] == "not-found"


def test_a_strict_mapping_still_fails_where_it_failed_and_warns_where_it_printed_nothing() -> None:
    failed = run('{{ row["birth date"] | fhir_date }}{{ row.dob.x }}', "csv", strict=True)
    assert [error.code for error in failed.errors] == ["FS-RND-007", "FS-RND-001"]
    printed = run('{{ row["birth date"] }}', "csv", strict=True)  # printing an undefined value gives nothing
    assert [(error.code, error.severity) for error in printed.errors] == [("FS-RND-007", "warning")]
    tested = run("{% if row.middle is defined %}x{% endif %}{{ row.middle | default('') }}", "csv", strict=True)
    assert tested.ok and tested.errors == []
    truth = run("{% if row.middle %}x{% endif %}", "csv", strict=True)
    assert [error.code for error in truth.errors] == ["FS-RND-001"]  # StrictUndefined refuses to be tested for truth


def test_tested_lookups_give_what_they_gave_before() -> None:
    body = (
        "{{ row.mrn if row.mrn else '-' }}|{{ row.middle | default('none') }}|{{ row.items is defined }}|"
        "{{ (row.middle or row.family) }}|{{ row['sex'] is defined }}|{{ row.middle.deeper is defined }}|"
        "{% if row.sex == 'F' and row.family %}f{% endif %}"
    )
    result = run(body, "csv")
    rows = ["1|none|true|Lee|true|false|f", "2|none|true|Kim|true|false|", "3|none|true|Roe|true|false|f"]
    assert result.output["code"]["text"] == "t" + "".join(rows)
    assert result.errors == []


def test_the_sandbox_still_refuses_internals_through_a_tested_lookup() -> None:
    result = run("{% if row.__class__ %}x{% endif %}{{ row['__class__'] | default('') }}", "csv")
    assert [error.code for error in result.errors] == ["FS-RND-003"]


def test_warnings_stay_capped_per_run() -> None:
    body = "".join(f"{{{{ row.col{number} }}}}" for number in range(150))
    result = run(body, "csv")
    assert len([error for error in result.errors if error.code == "FS-RND-007"]) == 100


def test_a_traced_run_does_not_warn_twice() -> None:
    template = '{"resourceType": "Patient",\n"birthDate": "{{ msg.birthdate }}",\n"gender": "M"}'
    result = run_mapping(compile_mapping(template), FHIR, source_format="json", locate_issues=True)
    assert [(error.code, error.line) for error in result.errors] == [("FS-RND-007", 2), ("FS-VAL-005", 3)]


def test_a_tight_loop_of_misses_stays_cheap() -> None:
    rows = "a\n" + "x\n" * 20_000
    template = '{"resourceType": "Basic", "code": {"text": "t"}, "id": "{% for row in msg %}{{ row.b }}{% endfor %}"}'
    result = run_mapping(compile_mapping(template), rows, source_format="csv", limits=Limits(max_loop_iterations=10**6))
    assert [error.code for error in result.errors] == ["FS-RND-007"]
    assert result.timings["render"] < 1_000


def test_quiet_lookups_add_no_filter_or_function_a_template_or_the_editor_could_see() -> None:
    env = build_environment({}, strict=False, max_value_bytes=1, lookup_tables={}, timezone="UTC")
    plain = SandboxedEnvironment()
    expected = set(plain.filters) - {"random", "shuffle"} | set(FILTERS) | {"loop_guard", "concat_guard"}
    assert set(env.filters) == expected
    assert set(env.globals) == (set(plain.globals) - {"lipsum"}) | set(GLOBALS)
    source = env.compile("{% if row.middle is defined %}{{ row.middle }}{% endif %}", raw=True)
    assert source.count("environment.quiet_attr(") == 1  # the test: quiet
    assert source.count("environment.getattr(") == 1  # the print: reported when missing
