"""The post-processing scans written with possessive runs (`*+`, `++`: faster, no giving back) find exactly what the
plain patterns they replaced found: the fragile-number search (formats/decimals.py) and the quick comma and
empty-member scans (postprocess.py), on random texts built to hit their edges (digit runs around 16, fractions ending
in 0, exponents, Unicode digits and blanks, which `\\d` and `\\s` also match) and on every demo's expected output."""

import os
import random
import re
from pathlib import Path

import pytest

from mappings.engine.formats.decimals import FRAGILE_NUMBER, has_fragile_numbers
from mappings.engine.postprocess import EMPTY_VALUE, QUICK_STRAY

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
CORPUS = Path(os.environ.get("FHIR_STUDIO_CORPUS_DIR", Path(__file__).resolve().parents[3] / "shared" / "corpus"))
# The patterns as they were before the possessive runs: the reference.
PLAIN_QUICK_STRAY = re.compile(r",(?:(?=\s*[\]},])|(?<=[\[{],))")
PLAIN_EMPTY_VALUE = re.compile(r":(?=[ \t\n\r]*[,}])")

NUMBER_PIECES = [
    ":", "[", ",", " ", "\n", "\u00a0", "\u2028", "-", "+", "0", "1", "9", ".", "e", "E", "]", "}", '"', "a",
    "12345678", "1234567", "00000000", "9.50", "٠", "١", "1.0", "e-5", "\x00",
]  # fmt: skip
COMMA_PIECES = ["[", "]", "{", "}", ",", ",", " ", "\n", "\t", "\u00a0", '"', "a", ":", "1", "\\"]


def _random_texts(pieces: list[str], seed: int, count: int, longest: int):
    rng = random.Random(seed)
    for _ in range(count):
        yield "".join(rng.choice(pieces) for _ in range(rng.randint(0, longest)))


def _demo_outputs() -> list[str]:
    """The demos' expected outputs and the corpus's JSON files (what such scans meet: FHIR JSON, pretty or not)."""
    paths = sorted(EXAMPLES.glob("*/expected/*.json")) + sorted(CORPUS.glob("**/*.json"))[:300]
    return [path.read_text(encoding="utf-8", errors="replace") for path in paths if path.stat().st_size < 2_000_000]


def test_the_fragile_number_search_answers_as_the_plain_pattern_on_random_texts() -> None:
    plain_bytes = re.compile(FRAGILE_NUMBER.pattern.encode())  # bytes: ASCII digits and blanks only
    found = 0
    for text in _random_texts(NUMBER_PIECES, 21, 40_000, 24):
        expected = FRAGILE_NUMBER.search(text) is not None
        found += expected
        assert has_fragile_numbers(text) is expected, text
        raw = text.encode()
        assert has_fragile_numbers(raw) is (plain_bytes.search(raw) is not None), text
    assert found > 500


@pytest.mark.parametrize(
    "text",
    [
        ": 1234567890123456,", ": 123456789012345,", ": -1234567890123456]", "[0.1234567890123456}",
        ": 0.123456789012345,", ": 1.50 ,", ": 1.05,", ": 1e5}", ": 1.5E+05 ]", ": 1.5e,", ": 12.,", ": .50,",
        ":\u00a01.0,", ": ١.٠,", ": 1.0\u2028,", ',"x": 120,', ": 1234567890123456.5,", ": 0,", ": -0.0}",
    ],
)  # fmt: skip
def test_the_fragile_number_search_answers_as_the_plain_pattern_on_edges(text: str) -> None:
    assert has_fragile_numbers(text) is (FRAGILE_NUMBER.search(text) is not None)


def test_the_comma_and_empty_member_scans_find_what_the_plain_patterns_found() -> None:
    for text in _random_texts(COMMA_PIECES, 22, 40_000, 30):
        assert [m.start() for m in QUICK_STRAY.finditer(text)] == [
            m.start() for m in PLAIN_QUICK_STRAY.finditer(text)
        ], text
        assert [m.start() for m in EMPTY_VALUE.finditer(text)] == [
            m.start() for m in PLAIN_EMPTY_VALUE.finditer(text)
        ], text


def test_the_scans_agree_on_every_demo_output() -> None:
    outputs = _demo_outputs()
    assert len(outputs) >= 17
    for text in outputs:
        # As written (pretty, no stray comma), and with the blanks and commas a template leaves.
        for variant in (text, text.replace(",\n", ",\n,").replace("[", "[ ,").replace('": ', '": ,')):
            assert has_fragile_numbers(variant) is (FRAGILE_NUMBER.search(variant) is not None)
            assert [m.start() for m in QUICK_STRAY.finditer(variant)] == [
                m.start() for m in PLAIN_QUICK_STRAY.finditer(variant)
            ]
            assert [m.start() for m in EMPTY_VALUE.finditer(variant)] == [
                m.start() for m in PLAIN_EMPTY_VALUE.finditer(variant)
            ]


def test_the_one_pass_fragile_number_scan_answers_as_the_plain_pattern() -> None:
    """_scan_fragile_numbers (what compiled code runs for a str) against FRAGILE_NUMBER, whatever runs here: on the
    random texts (Unicode digits and blanks among them), the edges and every demo output."""
    from mappings.engine.formats.decimals import _scan_fragile_numbers

    texts = list(_random_texts(NUMBER_PIECES, 23, 40_000, 24)) + _demo_outputs()
    texts += [": 1234567890123456.5,", ": 12.e5,", ": --5,", ": 1.50e3}", ": 1.5e+,", ": ١.٠,", ": 1.0\u2028,"]
    texts += ["\x00: 2.50,", ":\x00 2.50,", "a\x00b, 1e3]", "\x00\x00[1.0}", ", 1.0\x00"]  # a NUL stops strcspn
    found = 0
    for text in texts:
        expected = FRAGILE_NUMBER.search(text) is not None
        found += expected
        assert _scan_fragile_numbers(text) is expected, text
    assert found > 500


def test_compiled_code_answers_by_the_one_pass_scan(monkeypatch) -> None:
    from mappings.engine import accelerated
    from mappings.engine.formats import decimals

    if not accelerated.loaded_compiled().get("mappings.engine.formats.decimals"):
        pytest.skip("the decimal helpers run as plain Python here (FHIR_STUDIO_PURE_PYTHON or no build)")
    # the searches, were they run, would find nothing
    monkeypatch.setattr(decimals, "FRAGILE_SEARCHES", ())
    monkeypatch.setattr(decimals, "FRAGILE_SEARCHES_BYTES", ())
    assert has_fragile_numbers(': {"value": 2.50}') is True
    assert has_fragile_numbers(b': {"value": 2.50}') is False  # bytes: still the (now empty) searches
