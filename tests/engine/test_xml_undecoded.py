"""A UTF-8 XML payload is parsed from its bytes without being decoded first (mappings/engine/sources.py,
`_parse_utf8_xml`): libxml2 refuses every payload decode_payload would refuse, and for those decode_payload's error
still wins. Compared with decoding first, as before, on the corpus and on generated payloads full of bad bytes."""

import random
from pathlib import Path

from django.conf import settings
from lxml import etree

from mappings.engine import Limits, parse_source
from mappings.engine.errors import MappingError
from mappings.engine.sources import decode_payload
from mappings.engine.xmlsource import parse_xml

CORPUS = Path(settings.FHIR_STUDIO["CORPUS_DIR"])
LIMITS = Limits()


def outcome(parse, payload: bytes, limits: Limits = LIMITS) -> tuple:
    try:
        return ("tree", etree.tostring(parse(payload, limits)._el))
    except MappingError as exc:
        return ("error", exc.code, str(exc))


def undecoded(payload: bytes, limits: Limits) -> object:
    return parse_source(payload, "xml", limits=limits)


def decoded_first(payload: bytes, limits: Limits) -> object:
    decode_payload(payload, encoding="utf-8", limits=limits)
    return parse_xml(payload, encoding="utf-8")


def test_it_parses_the_corpus_as_when_it_decoded_first() -> None:
    paths = [*(CORPUS / "fhir-converter" / "ccda").glob("*.ccda"), *(CORPUS / "more").rglob("*.xml")]
    assert len(paths) >= 10
    for path in paths:
        payload = path.read_bytes()
        assert outcome(undecoded, payload) == outcome(decoded_first, payload), path.name


# Every C0 control, bytes that are no UTF-8 (stray continuation, overlong, surrogate, past U+10FFFF, truncated), a
# BOM, XML's non-characters, and good multi-byte characters, put anywhere a document can hold text.
BAD = [bytes([code]) for code in range(32)] + [b"\xed\xa0\x80", b"\xc0\xaf", b"\xe0\x80\xaf", b"\xf4\x90\x80\x80"]
BAD += [b"\xf8\x88\x80\x80\x80", b"\xff", b"\x80", b"\xc3", b"\xe2\x80", b"\xef\xbf\xbe", b"\xef\xbb\xbf"]
BAD += [b"\xc3\xa9", b"\xe2\x80\x9d", b"\xf0\x9f\x98\x80", b" ", b"\n"]
SHAPE = b'<?xml version="1.0"?>X<r xmlns="urn:hl7-org:v3" a="X" b=\'X\'>X<!--X--><?p X?><![CDATA[X]]><cX>X</c>X</r>X'


def test_it_refuses_generated_bad_payloads_with_the_same_error_as_when_it_decoded_first() -> None:
    rng = random.Random(1414)
    differ = []
    for _ in range(6000):
        pieces = SHAPE.split(b"X")
        payload = pieces[0]
        for piece in pieces[1:]:
            filler = b"".join(rng.choice(BAD) for _ in range(rng.randrange(3))) if rng.random() < 0.3 else b"ok"
            payload += filler + piece
        payload = rng.choice([b"", b"", rng.choice(BAD)]) + payload
        if outcome(undecoded, payload) != outcome(decoded_first, payload):
            differ.append(payload)
    assert differ == []


def test_the_size_limit_and_an_empty_payload_come_first_as_before() -> None:
    small = Limits(max_input_bytes=10)
    for payload in (b"<r>" + b"\x00" * 20 + b"</r>", b"<r>\xff" + b" " * 20 + b"</r>", b"  \n ", b"", b"\xef\xbb\xbf "):
        for limits in (LIMITS, small):
            assert outcome(undecoded, payload, limits) == outcome(decoded_first, payload, limits), payload
    assert outcome(undecoded, b" " * 20, small)[1] == "FS-LIM-001"
    assert outcome(undecoded, b"<r>\x01</r>")[1] == "FS-SRC-002"
