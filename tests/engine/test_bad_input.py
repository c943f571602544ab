"""Every malformed payload ends in a coded OperationOutcome, quickly: never an exception, a traceback or a hang."""

import time

import pytest

from mappings.engine import Limits, compile_mapping, run_mapping

ECHO = '{"resourceType": "Basic", "code": {"text": "x"}, "id": {{ fhir_id("x", msg | string) | tojson }}}'

BILLION_LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
    b'<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]><lolz>&lol3;</lolz>'
)
EXTERNAL_ENTITY = b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>'

BAD_PAYLOADS = [
    ("empty file", "hl7v2", b"", "FS-SRC-001"),
    ("only whitespace", "json", b"  \n\t ", "FS-SRC-001"),
    ("binary garbage", "hl7v2", bytes(range(256)) * 4, "FS-SRC-002"),
    ("non-UTF-8 bytes", "hl7v2", b"MSH|^~\\&|A|B\rPID|1||123||M\xfcller", "FS-SRC-002"),
    ("not HL7 at all", "hl7v2", b"hello world", "FS-SRC-010"),
    ("bad encoding characters", "hl7v2", b"MSH|&&&&|A|B", "FS-SRC-011"),
    ("bad segment id", "hl7v2", b"MSH|^~\\&|A|B\rpid|1", "FS-SRC-012"),
    ("JSON syntax", "json", b'{"a": }', "FS-SRC-020"),
    ("JSON nested 10,000 deep", "json", b"[" * 10_000 + b"]" * 10_000, "FS-SRC-020"),
    ("NDJSON bad line", "ndjson", b'{"a": 1}\n{oops}\n', "FS-SRC-021"),
    ("XML truncated", "xml", b"<ClinicalDocument><title>x</title>", "FS-SRC-030"),
    ("XML entity expansion", "xml", BILLION_LAUGHS, "FS-SRC-031"),
    ("XML external entity", "xml", EXTERNAL_ENTITY, "FS-SRC-031"),
    ("CSV ragged row", "csv", b"a,b,c\n1,2,3\n4,5\n", "FS-SRC-040"),
    ("CSV blank header", "csv", b",,\n1,2,3\n", "FS-SRC-041"),
    ("FHIR without resourceType", "fhir", b'{"id": "x"}', "FS-SRC-050"),
    ("FHIR XML with a DTD", "fhir", EXTERNAL_ENTITY, "FS-SRC-031"),
]


@pytest.mark.parametrize(
    ("case", "source_format", "payload", "code"), BAD_PAYLOADS, ids=[case[0] for case in BAD_PAYLOADS]
)
def test_it_reports_bad_payloads_as_coded_issues(case: str, source_format: str, payload: bytes, code: str) -> None:
    result = run_mapping(compile_mapping(ECHO), payload, source_format=source_format)
    assert result.output is None
    assert [error.code for error in result.errors] == [code]
    outcome = result.issues
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["details"]["coding"][0]["code"] == code
    assert "passwd" not in str(outcome) or "root:" not in str(outcome)


def test_it_refuses_a_payload_over_the_input_limit_before_parsing_it() -> None:
    payload = b"MSH|^~\\&|" + b"A" * 2_000_000
    result = run_mapping(
        compile_mapping(ECHO), payload, source_format="hl7v2", limits=Limits(max_input_bytes=1_000_000)
    )
    assert [error.code for error in result.errors] == ["FS-LIM-001"]
    assert "2,000,009 bytes" in result.errors[0].message


def test_it_handles_a_5_mb_one_line_message_quickly() -> None:
    payload = b"MSH|^~\\&|SENDER|FAC|" + b"X" * (5 * 1024 * 1024) + b"||||ADT^A01|1|P|2.5"
    template = '{"resourceType": "Basic", "code": {"text": {{ msg.MSH[9] | string | tojson }}}}'
    started = time.perf_counter()
    result = run_mapping(compile_mapping(template), payload, source_format="hl7v2")
    assert time.perf_counter() - started < 5
    assert result.ok, result.errors
    assert result.output["code"]["text"] == "ADT"


def test_it_accepts_an_hl7_message_with_only_msh() -> None:
    template = '{"resourceType": "Basic", "code": {"text": "{{ msg.MSH[9][1] }}-{{ msg.PID[3][1] }}"}}'
    result = run_mapping(
        compile_mapping(template), b"MSH|^~\\&|A|B|C|D|20200101||ADT^A01|1|P|2.5", source_format="hl7v2"
    )
    assert result.ok
    assert result.output["code"]["text"] == "ADT-"


def test_it_reads_latin_1_payloads_when_the_source_says_so() -> None:
    template = '{"resourceType": "Basic", "code": {"text": "{{ msg.PID[5][1] }}"}}'
    payload = "MSH|^~\\&|A|B\rPID|1||1||Müller^Hans".encode("latin-1")
    result = run_mapping(
        compile_mapping(template), payload, source_format="hl7v2", source_options={"encoding": "latin-1"}
    )
    assert result.ok
    assert result.output["code"]["text"] == "Müller"


def test_it_reports_an_unknown_resource_type_nested_in_a_bundle_instead_of_crashing() -> None:
    from mappings.engine import compile_mapping, run_mapping

    template = (
        '{"resourceType": "Bundle", "type": "collection", "entry": [{"resource": {"resourceType": "Foo"}},'
        ' {"resource": {"resourceType": "Patient", "contained": [{"resourceType": "Bar"}]}}]}'
    )
    result = run_mapping(compile_mapping(template), "{}", source_format="json")
    assert [(error.code, error.expression) for error in result.errors] == [
        ("FS-VAL-002", ["Bundle.entry[0].resource"]),
        ("FS-VAL-002", ["Bundle.entry[1].resource.contained[0]"]),
        ("FS-VAL-008", ["Bundle.entry[1].resource"]),  # dom-3: nothing refers to the contained resource
    ]
