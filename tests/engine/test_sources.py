"""Each source format becomes the `msg` a template reads."""

import pytest

from mappings.engine import Limits, parse_source

FHIR_XML = (
    b'<Patient xmlns="http://hl7.org/fhir"><id value="x1"/><name><family value="Chalmers"/>'
    b'<given value="Peter"/></name><birthDate value="1974-12-25"/></Patient>'
)


def parse(payload: bytes, source_format: str, **options) -> object:
    return parse_source(payload, source_format, options=options, limits=Limits())


def test_it_reads_json_and_ndjson() -> None:
    assert parse(b'{"a": [1, "x"]}', "json") == {"a": [1, "x"]}
    assert parse(b'{"n": 1}\n\n{"n": 2}\n', "ndjson") == [{"n": 1}, {"n": 2}]


@pytest.mark.parametrize(
    ("payload", "options", "expected"),
    [
        (b"id,name\n1,Ann\n2,Bob\n", {}, [{"id": "1", "name": "Ann"}, {"id": "2", "name": "Bob"}]),
        (b'id;name\n1;"A;nn"\n', {"delimiter": ";"}, [{"id": "1", "name": "A;nn"}]),
        ("id,name\n1,Zoë\n".encode("latin-1"), {"encoding": "latin-1"}, [{"id": "1", "name": "Zoë"}]),
        (b"\xef\xbb\xbfid , name\n1,Ann\n\n", {}, [{"id": "1", "name": "Ann"}]),
    ],
)
def test_it_reads_csv_with_delimiter_and_encoding_options(payload: bytes, options: dict, expected: list) -> None:
    assert parse(payload, "csv", **options) == expected


def test_it_reads_fhir_resources_from_json_and_from_xml() -> None:
    assert parse(b'{"resourceType": "Patient", "id": "x1"}', "fhir") == {"resourceType": "Patient", "id": "x1"}
    resource = parse(FHIR_XML, "fhir")
    assert resource["name"] == [{"family": "Chalmers", "given": ["Peter"]}]
    assert resource["birthDate"] == "1974-12-25"


def test_it_reads_c_cda_as_a_navigable_xml_tree(corpus_dir) -> None:
    doc = parse((corpus_dir / "fhir-converter/ccda/CCD.ccda").read_bytes(), "xml")
    assert doc.tag == "ClinicalDocument"
    assert str(doc["recordTarget"]["patientRole"]["patient"]["name"]["family"]) == "Jones"


def test_it_strips_mllp_framing_from_hl7v2() -> None:
    msg = parse(b"\x0bMSH|^~\\&|A|B\rPID|1||42\r\x1c\r", "hl7v2")
    assert str(msg.PID[3]) == "42"


@pytest.mark.parametrize("code", range(0x20))
def test_control_characters_are_refused_at_their_offset_or_kept(code: int) -> None:
    """The payload's control characters: tab, LF, VT, FF, CR, FS and ESC are text (HL7 framing), every other one is
    binary data, named with the offset of the first one."""
    from mappings.engine.errors import ErrorCode, MappingError

    char = chr(code)
    payload = f'{{"a": "x{char}y", "b": "{char}"}}'
    binary = code <= 0x08 or 0x0E <= code <= 0x1A or 0x1D <= code <= 0x1F
    if not binary:
        with pytest.raises(MappingError) as caught:  # kept as text: then JSON itself refuses a raw control character
            parse(payload.encode(), "json")
        assert caught.value.error is not ErrorCode.SRC_NOT_TEXT
        return
    with pytest.raises(MappingError) as caught:
        parse(payload.encode(), "json")
    assert caught.value.error is ErrorCode.SRC_NOT_TEXT
    assert f"{char!r}" in str(caught.value) and "offset 8" in str(caught.value)
