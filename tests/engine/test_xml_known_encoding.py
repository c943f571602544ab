"""XML bytes already decoded as UTF-8 are parsed as they came (`parse_xml(raw, encoding="utf-8")`), not encoded again
from their text: the same tree, and the same refusals, as parsing the decoded text."""

from __future__ import annotations

import glob
from pathlib import Path

import pytest
from lxml import etree

from mappings.engine import Limits, parse_source
from mappings.engine.errors import MappingError
from mappings.engine.xmlsource import parse_xml

CORPUS = Path("/work/shared/corpus")
FILES = sorted(glob.glob(str(CORPUS / "fhir-converter/ccda/*.ccda")) + glob.glob(str(CORPUS / "more/ccda/*.xml")))

TRICKY = {
    "bom": b'\xef\xbb\xbf<?xml version="1.0"?><r>bom \xc3\xa9</r>',
    "declares-latin-1": b'<?xml version="1.0" encoding="ISO-8859-1"?><r>caf\xc3\xa9</r>',
    "declares-unknown": b'<?xml version="1.0" encoding="latin-1"?><r>caf\xc3\xa9 \xe2\x80\x9d</r>',
    "declares-utf-16": b'<?xml version="1.0" encoding="UTF-16"?><r>x</r>',
    "no-declaration": b"<r a='\xe2\x80\x9c'>\xe2\x80\x9d</r>",
    "malformed": b'<?xml version="1.0"?>\n<r>\n  <a>\xc3\xa9</b>\n</r>',
    "malformed-after-bom": b"\xef\xbb\xbf<r><a></r>",
    "doctype": b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x "y">]><r>&x;</r>',
    "doctype-after-bom": b'\xef\xbb\xbf<!DOCTYPE r [<!ENTITY x "y">]><r>&x;</r>',
    "empty-root": b"<r/>",
    "truncated": b"<r><a>",
}


def outcome(parse, data) -> tuple:
    try:
        root = parse(data)
    except MappingError as error:
        return ("error", error.code, str(error))
    return ("tree", etree.tostring(root._el, encoding="unicode"), str(root))


def cases() -> list[tuple[str, bytes]]:
    return [(Path(path).name, Path(path).read_bytes()) for path in FILES] + list(TRICKY.items())


@pytest.mark.parametrize(("name", "raw"), cases(), ids=[name for name, _ in cases()])
def test_utf_8_bytes_parse_as_their_decoded_text(name: str, raw: bytes) -> None:
    text = raw.decode("utf-8-sig")
    assert outcome(lambda data: parse_xml(data, encoding="utf-8"), raw) == outcome(parse_xml, text)


@pytest.mark.parametrize(("name", "raw"), cases(), ids=[name for name, _ in cases()])
def test_an_xml_source_reads_the_same_from_bytes_and_from_text(name: str, raw: bytes) -> None:
    def parse(data):
        return parse_source(data, "xml", limits=Limits())

    assert outcome(parse, raw) == outcome(parse, raw.decode("utf-8-sig"))


@pytest.mark.parametrize("code", range(0x20))
def test_control_characters_in_xml_bytes_are_refused_as_in_text(code: int) -> None:
    raw = f"<r>\u201cx{chr(code)}y</r>".encode()

    def parse(data):
        return parse_source(data, "xml", limits=Limits())

    assert outcome(parse, raw) == outcome(parse, raw.decode())


def test_a_known_encoding_wins_over_the_declared_one() -> None:
    raw = b'<?xml version="1.0" encoding="ISO-8859-1"?><r>caf\xc3\xa9</r>'
    assert str(parse_xml(raw)) == "caf\u00c3\u00a9"  # as declared: two Latin-1 characters
    assert str(parse_xml(raw, encoding="utf-8")) == "caf\u00e9"
