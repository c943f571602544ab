"""Every error code in engine/errors.py has a way to trigger it, checked here; a new code without a row fails."""

import io
import zipfile
from collections.abc import Callable

import pytest

from mappings.engine import ErrorCode, Limits, MappingError, SplitLimits, compile_mapping, run_mapping, split_messages

BASIC = '{"resourceType": "Basic", "code": {"text": "x"}}'
# An Observation claiming US Core blood pressure without its code (pattern) or its two components (slices)
BLOOD_PRESSURE = (
    '{"resourceType": "Observation", "meta": {"profile": ["http://hl7.org/fhir/us/core/StructureDefinition/'
    'us-core-blood-pressure"]}, "status": "final", "code": {"text": "bp"}, "subject": {"reference": "Patient/1"},'
    ' "effectiveDateTime": "2024-01-01", "category": [{"text": "vitals"}]}'
)


def codes_of_run(template: str, payload: bytes | str = "{}", *, limits: Limits | None = None, **options) -> list[str]:
    compiled = compile_mapping(template, limits=limits, **options)
    return [error.code for error in run_mapping(compiled, payload, limits=limits).errors]


def run_codes(payload: bytes | str, source_format: str, **run_options) -> list[str]:
    return [
        error.code
        for error in run_mapping(compile_mapping(BASIC), payload, source_format=source_format, **run_options).errors
    ]


def split_code(data: bytes, source_format: str, **options) -> list[str]:
    with pytest.raises(MappingError) as caught:
        list(split_messages(data, source_format=source_format, **options))
    return [caught.value.code]


def zipped(**members: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in members.items():
            archive.writestr(name.replace("_", "."), text)
    return buffer.getvalue()


def compile_code(template: str, **options) -> list[str]:
    with pytest.raises(MappingError) as caught:
        compile_mapping(template, **options)
    return [caught.value.code]


TRIGGERS: dict[ErrorCode, Callable[[], list[str]]] = {
    ErrorCode.SRC_EMPTY: lambda: run_codes(b"", "json"),
    ErrorCode.SRC_NOT_TEXT: lambda: run_codes(b"\x00\x01\x02", "json"),
    ErrorCode.SRC_UNKNOWN_FORMAT: lambda: run_codes(b"{}", "pdf"),
    ErrorCode.SRC_BAD_OPTION: lambda: run_codes(b"a\n1", "csv", source_options={"delimiter": ";;"}),
    ErrorCode.HL7_NO_MSH: lambda: run_codes(b"PID|1", "hl7v2"),
    ErrorCode.HL7_BAD_ENCODING: lambda: run_codes(b"MSH|^^^^|x", "hl7v2"),
    ErrorCode.HL7_BAD_SEGMENT: lambda: run_codes(b"MSH|^~\\&|x\rP1|", "hl7v2"),
    ErrorCode.HL7_SEVERAL_MESSAGES: lambda: run_codes(b"MSH|^~\\&|x\rPID|1\rMSH|^~\\&|y\rPID|2", "hl7v2"),
    ErrorCode.JSON_INVALID: lambda: run_codes(b"{", "json"),
    ErrorCode.NDJSON_INVALID: lambda: run_codes(b"{}\n[", "ndjson"),
    ErrorCode.XML_INVALID: lambda: run_codes(b"<a><b></a>", "xml"),
    ErrorCode.XML_DTD_REFUSED: lambda: run_codes(b'<!DOCTYPE a [<!ENTITY e "x">]><a>&e;</a>', "xml"),
    ErrorCode.CSV_RAGGED: lambda: run_codes(b"a,b\n1\n", "csv"),
    ErrorCode.CSV_NO_HEADER: lambda: run_codes(b" , \n1,2\n", "csv"),
    ErrorCode.FHIR_NOT_RESOURCE: lambda: run_codes(b"[1]", "fhir"),
    ErrorCode.TURTLE_INVALID: lambda: run_codes(b"@prefix fhir: <http://hl7.org/fhir/> . [ a fhir:Patient", "fhir"),
    ErrorCode.SPLIT_NOT_ZIP: lambda: split_code(b"MSH|^~\\&|x", "zip"),
    ErrorCode.SPLIT_ZIP_TOO_LARGE: lambda: split_code(
        zipped(a_hl7="MSH|^~\\&|x\r" * 1000), "hl7v2", limits=SplitLimits(max_uncompressed_bytes=100)
    ),
    ErrorCode.SPLIT_TOO_MANY_MESSAGES: lambda: split_code(b"{}\n{}\n{}", "ndjson", limits=SplitLimits(max_messages=2)),
    ErrorCode.SPLIT_MESSAGE_TOO_LARGE: lambda: split_code(b"<a>x</a>", "xml", limits=SplitLimits(max_message_bytes=4)),
    ErrorCode.TPL_SYNTAX: lambda: compile_code("{% for %}"),
    ErrorCode.TPL_UNKNOWN_SNIPPET: lambda: compile_code('{% import "snippets/none.j2" as n %}'),
    ErrorCode.TPL_INCLUDE_CYCLE: lambda: compile_code(
        '{% import "snippets/a.j2" as a %}', snippets={"snippets/a.j2": '{% import "snippets/a.j2" as a %}'}
    ),
    ErrorCode.TPL_DYNAMIC_INCLUDE: lambda: compile_code("{% include msg.name %}"),
    ErrorCode.TPL_BAD_LOOKUP_TABLE: lambda: compile_code(BASIC, lookup_tables={"t": {"entries": [{"code": "x"}]}}),
    ErrorCode.RND_UNDEFINED: lambda: codes_of_run("{{ nope.x }}", strict=True),
    ErrorCode.RND_FILTER_INPUT: lambda: codes_of_run("{{ fhir_id('') }}"),
    ErrorCode.RND_SANDBOX: lambda: codes_of_run("{{ msg.__class__ }}"),
    ErrorCode.RND_UNKNOWN_TABLE: lambda: codes_of_run("{{ 'M' | translate('none') }}"),
    ErrorCode.RND_FAIL_CALLED: lambda: codes_of_run("{{ fail('stop') }}"),
    ErrorCode.RND_TYPE: lambda: codes_of_run("{{ 1 + 'a' }}"),
    ErrorCode.RND_MISSING_KEY: lambda: codes_of_run(
        '{"resourceType": "Basic", "code": {"text": "{{ msg[0][\'birth date\'] }}"}}',
        "mrn,birth_date\n1,19800101\n",
        source_format="csv",
    ),
    ErrorCode.RND_SWAPPED_ARGUMENTS: lambda: codes_of_run(
        '{"resourceType": "Basic", "code": {"coding": [{{ coding("http://loinc.org", "718-7") }}]}}'
    ),
    ErrorCode.RND_UNEXPECTED: lambda: codes_of_run("{{ 10.0 ** 1000 }}"),
    ErrorCode.PST_NOT_JSON: lambda: codes_of_run('{"a" 1}'),
    ErrorCode.PST_NOT_RESOURCE: lambda: codes_of_run("[1, 2]"),
    ErrorCode.PST_DUPLICATE_CONFLICT: lambda: codes_of_run(
        '{"resourceType": "Bundle", "type": "collection", "entry": ['
        '{"resource": {"resourceType": "Patient", "id": "a", "gender": "male"}},'
        '{"resource": {"resourceType": "Patient", "id": "a", "gender": "female"}}]}'
    ),
    ErrorCode.VAL_STRUCTURE: lambda: codes_of_run('{"resourceType": "Patient", "active": "maybe"}'),
    ErrorCode.VAL_UNKNOWN_TYPE: lambda: codes_of_run('{"resourceType": "Spaceship"}'),
    ErrorCode.VAL_BAD_DATE: lambda: codes_of_run('{"resourceType": "Patient", "birthDate": "2021-02-29"}'),
    ErrorCode.VAL_BAD_REFERENCE: lambda: codes_of_run(
        '{"resourceType": "Patient", "managingOrganization": {"reference": "Organization/a b"}}'
    ),
    ErrorCode.VAL_BAD_CODE: lambda: codes_of_run('{"resourceType": "Patient", "gender": "M"}'),
    ErrorCode.VAL_CARDINALITY: lambda: codes_of_run('{"resourceType": "Observation", "code": {"text": "x"}}'),
    ErrorCode.VAL_BAD_VALUE: lambda: codes_of_run('{"resourceType": "Patient", "id": "a b"}'),
    ErrorCode.VAL_INVARIANT: lambda: codes_of_run('{"resourceType": "Patient", "telecom": [{"value": "555"}]}'),
    ErrorCode.VAL_FIXED_PATTERN: lambda: codes_of_run(BLOOD_PRESSURE),
    ErrorCode.VAL_SLICING: lambda: codes_of_run(BLOOD_PRESSURE),
    ErrorCode.VAL_UNKNOWN_PROFILE: lambda: codes_of_run(
        '{"resourceType": "Patient", "meta": {"profile": ["http://example.org/StructureDefinition/none"]}}'
    ),
    ErrorCode.VAL_UNRESOLVED_REFERENCE: lambda: codes_of_run(
        '{"resourceType": "Patient", "managingOrganization": {"reference": "#org"}}'
    ),
    ErrorCode.LIM_INPUT_BYTES: lambda: run_codes(b"{}" * 100, "json", limits=Limits(max_input_bytes=10)),
    ErrorCode.LIM_RENDER_TIME: lambda: codes_of_run(
        "{% for i in range(10**5) %}{{ i | string | list | join }}{% endfor %}",
        limits=Limits(render_timeout_ms=1, max_loop_iterations=10**6),
    ),
    ErrorCode.LIM_LOOP_ITERATIONS: lambda: codes_of_run(
        "{% for i in range(100) %}{% endfor %}", limits=Limits(max_loop_iterations=10)
    ),
    ErrorCode.LIM_OUTPUT_BYTES: lambda: codes_of_run(BASIC + " " * 100, limits=Limits(max_output_bytes=50)),
    ErrorCode.LIM_INCLUDE_DEPTH: lambda: compile_code(
        '{% import "snippets/a.j2" as a %}',
        snippets={"snippets/a.j2": '{% import "snippets/b.j2" as b %}', "snippets/b.j2": ""},
        limits=Limits(max_include_depth=1),
    ),
    ErrorCode.LIM_RECURSION: lambda: codes_of_run("{% macro r() %}{{ r() }}{% endmacro %}{{ r() }}"),
    ErrorCode.LIM_VALUE_SIZE: lambda: codes_of_run("{{ 'ab' * 10**8 }}"),
}


@pytest.mark.parametrize("error", list(ErrorCode), ids=lambda error: error.code)
def test_it_triggers_every_error_code(error: ErrorCode) -> None:
    assert error in TRIGGERS, f"{error.code} has no trigger in this table: add one"
    assert error.code in TRIGGERS[error]()


def test_it_never_reuses_a_code() -> None:
    codes = [error.code for error in ErrorCode]
    assert len(codes) == len(set(codes))
    assert all(code.split("-")[1] in {"SRC", "TPL", "RND", "PST", "VAL", "LIM"} for code in codes)
