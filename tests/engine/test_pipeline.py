"""The pipeline as a caller sees it: outputs, OperationOutcomes, timings, and errors that point at template lines."""

import json
from datetime import UTC, datetime

import pytest

from mappings.engine import MappingError, compile_mapping, run_mapping

PATIENT = """{
  "resourceType": "Patient",
  "id": {{ fhir_id("Patient", msg.mrn) | tojson }},
  "name": [{"family": "{{ msg.family }}"}],
  "birthDate": {{ msg.dob | fhir_date | tojson }},
}"""


def test_it_maps_a_payload_to_a_valid_resource_with_timings() -> None:
    result = run_mapping(compile_mapping(PATIENT), json.dumps({"mrn": "7", "family": "Lee", "dob": "19800101"}))
    assert result.ok
    assert result.output["name"] == [{"family": "Lee"}]
    assert result.output["birthDate"] == "1980-01-01"
    assert set(result.timings) == {"parse", "render", "postprocess", "validate", "total"}
    assert result.issues["issue"][0]["severity"] == "information"


def test_it_escapes_printed_text_so_quotes_and_backslashes_stay_valid_json() -> None:
    result = run_mapping(compile_mapping(PATIENT), json.dumps({"mrn": "7", "family": 'O"Neil\\ \n'}))
    assert result.ok
    assert result.output["name"][0]["family"] == 'O"Neil\\ \n'


def test_it_gives_the_same_id_for_the_same_business_key_so_reruns_upsert() -> None:
    compiled = compile_mapping(PATIENT)
    first = run_mapping(compiled, '{"mrn": "7", "family": "A"}').output["id"]
    second = run_mapping(compiled, '{"mrn": "7", "family": "B"}').output["id"]
    other = run_mapping(compiled, '{"mrn": "8", "family": "A"}').output["id"]
    assert first == second != other


def test_it_traces_a_json_syntax_error_back_to_the_template_line_that_wrote_it() -> None:
    template = PATIENT.replace('"birthDate": {{', '"birthDate" {{')  # line 5 loses its colon
    result = run_mapping(compile_mapping(template), '{"mrn": "7", "dob": "2000"}')
    assert result.output is None
    [error] = result.errors
    assert (error.code, error.template, error.line) == ("FS-PST-001", "template.j2", 5)
    assert "birthDate" in error.message
    assert result.trace["rendered"].startswith("{")


def test_it_traces_a_json_error_inside_a_snippet_to_the_snippet_line() -> None:
    snippets = {"snippets/common/name.j2": '{% macro name(n) %}\n{"family": "{{ n }}"\n "given": []}\n{% endmacro %}'}
    template = '{% import "snippets/common/name.j2" as s %}\n{"resourceType": "Patient",\n "name": [{{ s.name("X") }}]}'
    result = run_mapping(compile_mapping(template, snippets=snippets), "{}")
    [error] = result.errors
    assert (error.code, error.template, error.line) == ("FS-PST-001", "snippets/common/name.j2", 3)


def test_it_locates_a_runtime_error_at_the_innermost_template_line() -> None:
    snippets = {"snippets/bad.j2": "{% macro boom(x) %}\n\n{{ x | translate('nope') }}\n{% endmacro %}"}
    template = '{% import "snippets/bad.j2" as b %}\n{"resourceType": "Basic", "code": {"text": "{{ b.boom(1) }}"}}'
    result = run_mapping(compile_mapping(template, snippets=snippets), "{}")
    [error] = result.errors
    assert (error.code, error.template, error.line) == ("FS-RND-004", "snippets/bad.j2", 3)
    issue = result.issues["issue"][0]
    assert issue["diagnostics"] == "render stage, at snippets/bad.j2:3"
    assert {"url": "line", "valueInteger": 3} in issue["extension"][0]["extension"]


def test_it_reports_a_template_syntax_error_with_its_line_at_compile_time() -> None:
    with pytest.raises(MappingError) as caught:
        compile_mapping('{\n"a": 1,\n"b": {{ x | }}\n}')
    assert (caught.value.code, caught.value.line) == ("FS-TPL-001", 3)
    assert "Template syntax error" in caught.value.message


def test_it_fails_on_undefined_names_only_when_the_mapping_is_strict() -> None:
    template = '{"resourceType": "Basic", "code": {"text": "x{{ msg.nope.deeper }}"}}'
    assert run_mapping(compile_mapping(template), "{}").ok
    result = run_mapping(compile_mapping(template, strict=True), "{}")
    assert [error.code for error in result.errors] == ["FS-RND-001"]


def test_it_stops_with_the_message_a_template_gives_to_fail() -> None:
    template = '{% if not msg.id %}{{ fail("The record has no id") }}{% endif %}{"resourceType": "Basic"}'
    result = run_mapping(compile_mapping(template), "{}")
    assert [(error.code, error.message) for error in result.errors] == [("FS-RND-005", "The record has no id")]


def test_it_keeps_the_output_beside_validation_errors_with_fhirpath_expressions() -> None:
    template = '{"resourceType": "Patient", "gender": 5, "name": [{"famly": "x"}]}'
    result = run_mapping(compile_mapping(template), "{}")
    assert not result.ok
    assert result.output is not None
    expressions = {tuple(error.expression) for error in result.errors}
    assert ("Patient.name[0].famly",) in expressions
    assert ("Patient.gender",) in expressions
    assert all(error.code == "FS-VAL-001" for error in result.errors)


def test_it_validates_resources_inside_a_bundle_with_entry_paths() -> None:
    template = """{"resourceType": "Bundle", "type": "collection", "entry": [
      {"resource": {"resourceType": "Patient", "id": "a", "birthDate": "1980-02-30"}},
      {"resource": {"resourceType": "Observation", "id": "b", "code": {"text": "x"},
                    "subject": {"reference": "Patient/not valid"}}}]}"""
    result = run_mapping(compile_mapping(template), "{}")
    found = {(error.code, error.expression[0]) for error in result.errors}
    assert ("FS-VAL-006", "Bundle.entry[1].resource.status") in found  # Observation.status is required
    assert ("FS-VAL-003", "Bundle.entry[0].resource.birthDate") in found
    assert ("FS-VAL-004", "Bundle.entry[1].resource.subject.reference") in found


def test_it_can_skip_validation() -> None:
    template = '{"resourceType": "Patient", "gender": 5}'
    result = run_mapping(compile_mapping(template), "{}", validate=False)
    assert result.ok
    assert "validate" not in result.timings


def test_it_exposes_run_variables_and_a_pinned_clock_to_templates() -> None:
    template = '{"resourceType": "Bundle", "type": "collection", "timestamp": "{{ now }}", "id": "{{ vars.site }}"}'
    result = run_mapping(
        compile_mapping(template), "{}", variables={"site": "north"}, now=datetime(2026, 5, 1, 12, tzinfo=UTC)
    )
    assert result.output["timestamp"] == "2026-05-01T12:00:00Z"
    assert result.output["id"] == "north"


def test_it_fills_full_urls_and_requests_for_transaction_bundles() -> None:
    template = """{"resourceType": "Bundle", "type": "transaction", "entry": [
      {"resource": {"resourceType": "Patient", "id": {{ fhir_id("Patient", "1") | tojson }}}},
      {"resource": {"resourceType": "Patient", "id": {{ fhir_id("Patient", "1") | tojson }}, "gender": "male"}},
      {"resource": {"resourceType": "Basic", "code": {"text": "no id"}}},]}"""
    output = run_mapping(compile_mapping(template), "{}").output
    assert len(output["entry"]) == 2  # the two Patient entries merged
    patient, basic = (entry for entry in output["entry"])
    assert patient["resource"]["gender"] == "male"
    assert patient["fullUrl"] == f"urn:uuid:{patient['resource']['id']}"
    assert patient["request"] == {"method": "PUT", "url": f"Patient/{patient['resource']['id']}"}
    assert basic["resource"]["id"]  # a deterministic id from the content
    assert basic["request"]["url"] == f"Basic/{basic['resource']['id']}"


def test_it_gives_the_same_result_from_many_threads() -> None:
    from concurrent.futures import ThreadPoolExecutor

    compiled = compile_mapping(PATIENT)
    payloads = [json.dumps({"mrn": str(n), "family": f"F{n}", "dob": "2000"}) for n in range(40)]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda payload: run_mapping(compiled, payload), payloads))
    assert [result.output["name"][0]["family"] for result in results] == [f"F{n}" for n in range(40)]


def test_it_keeps_loop_variables_working_through_the_loop_guard() -> None:
    template = (
        '{"resourceType": "Basic", "code": {"text": "{% for x in [1, 2, 3] %}{{ x }}{{ "," if not loop.last }}'
        "{% endfor %}/{% for x in [] %}a{% else %}empty{% endfor %}/"
        '{% for k, v in {"a": 1}.items() %}{{ k }}{{ v }}{{ loop.length }}{% endfor %}"}}'
    )
    assert run_mapping(compile_mapping(template), "{}").output["code"]["text"] == "1,2,3/empty/a11"
