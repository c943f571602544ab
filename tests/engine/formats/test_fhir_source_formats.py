"""The `fhir` source format reads FHIR JSON, XML and Turtle (told apart by the first character), so a mapping can take
any of them as input; the engine's format functions reject unknown format names."""

import pytest

from mappings.engine import Limits, MappingError, compile_mapping, parse_source, run_mapping
from mappings.engine.formats import detect_format, format_for_accept, format_named, parse, serialize

PATIENT = {"resourceType": "Patient", "id": "p1", "name": [{"family": "Chalmers", "given": ["Peter"]}], "active": True}


@pytest.mark.parametrize("fmt", ["json", "xml", "ttl"])
def test_it_reads_a_fhir_source_in_every_format(fmt: str) -> None:
    payload = ("\ufeff  \n" + serialize(PATIENT, fmt, pretty=True)).encode()
    assert detect_format(payload) == fmt
    assert parse_source(payload, "fhir", limits=Limits()) == PATIENT


def test_it_maps_a_turtle_patient_like_a_json_one() -> None:
    compiled = compile_mapping(
        '{"resourceType": "Person", "name": [{"family": {{ msg.name[0].family | tojson }}}]}', source_format="fhir"
    )
    outputs = [run_mapping(compiled, serialize(PATIENT, fmt)).output for fmt in ("json", "xml", "ttl")]
    assert outputs[0] == outputs[1] == outputs[2] == {"resourceType": "Person", "name": [{"family": "Chalmers"}]}


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (b'<!DOCTYPE Patient [<!ENTITY e "x">]><Patient xmlns="http://hl7.org/fhir"/>', "FS-SRC-031"),
        (b'<Patient xmlns="http://hl7.org/fhir"><unknown value="1"/></Patient>', "FS-SRC-050"),
        (b"@prefix fhir: <http://hl7.org/fhir/> . [ a fhir:Patient", "FS-SRC-051"),
        (b'{"id": "no type"}', "FS-SRC-050"),
        (b"{", "FS-SRC-020"),
    ],
)
def test_it_reports_an_unreadable_fhir_source_with_its_code(payload: bytes, code: str) -> None:
    with pytest.raises(MappingError) as caught:
        parse_source(payload, "fhir", limits=Limits())
    assert caught.value.code == code


def test_it_rejects_an_unknown_format_name() -> None:
    with pytest.raises(MappingError) as caught:
        parse("{}", "yaml")
    assert caught.value.code == "FS-SRC-003"
    with pytest.raises(MappingError):
        serialize(PATIENT, "csv")


@pytest.mark.parametrize(
    ("accept", "fmt"),
    [
        ("", "json"),
        ("application/fhir+json", "json"),
        ("application/fhir+xml;q=0.9, application/json;q=0.1", "xml"),
        ("text/turtle; charset=utf-8", "ttl"),
        ("text/html, */*", "json"),
        ("application/*", "json"),
        ("application/pdf", None),
        ("text/html, image/png", None),
    ],
)
def test_it_picks_the_format_an_accept_header_names(accept: str, fmt: str | None) -> None:
    assert format_for_accept(accept) == fmt


@pytest.mark.parametrize(
    ("name", "fmt"),
    [("xml", "xml"), ("ttl", "ttl"), ("JSON", "json"), ("application/fhir xml", "xml"), ("text/csv", None), ("", None)],
)
def test_it_knows_each_format_by_its_short_name_and_mime_types(name: str, fmt: str | None) -> None:
    assert format_named(name) == fmt
