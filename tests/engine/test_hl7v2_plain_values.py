"""The data-type filters read most values through PlainValue (hl7v2_text.read_value): a value with no sub-component
separator, escape character or quote, whose parts need no search or decoding. Each of its answers must be RawValue's
for the same text; and the HD and coding-system names the filters turn into systems are remembered per process, with
the answers they gave before."""

from __future__ import annotations

import random

from mappings.engine.filters.codes import _v2_system, v2_system
from mappings.engine.filters.hl7v2_types import _hd_system
from mappings.engine.hl7v2_text import _COMP, _DEFAULT_ENC, _SUB, PlainValue, RawValue, read_value

ENCODINGS = [_DEFAULT_ENC, ("|", "^", "~", "\\", "&", "#"), ("!", "$", "%", "?", "*", "")]


def _texts(enc: tuple[str, ...], count: int) -> list[str]:
    """Random values over letters, spaces, the value's separators, its escape character and quotes."""
    rng = random.Random(f"plain {enc}")
    alphabet = ["a", "b", "Z", "7", " ", enc[_COMP], enc[_COMP], enc[_SUB], enc[3], '"', '""', "\\F\\"]
    return ["".join(rng.choices(alphabet, k=rng.randint(0, 14))) for _ in range(count)]


def test_it_reads_a_plain_value_without_searching_and_others_as_before() -> None:
    assert type(read_value("a^b^^c", _DEFAULT_ENC, _COMP)) is PlainValue
    for raw in ("a^b&c", 'a^""', "a\\F\\b", 'say "hi"'):
        assert type(read_value(raw, _DEFAULT_ENC, _COMP)) is RawValue, raw


def test_a_plain_value_answers_what_the_raw_value_answers() -> None:
    plain = 0
    for enc in ENCODINGS:
        for raw in _texts(enc, 3000):
            for sep in (_COMP, _SUB):
                value, oracle = read_value(raw, enc, sep), RawValue(raw, enc, sep)
                plain += type(value) is PlainValue
                for n in range(1, 7):
                    assert value.has(n) == oracle.has(n), (raw, n)
                    assert value.text(n) == oracle.text(n), (raw, n)
                    assert value.subs(n) == oracle.subs(n), (raw, n)
                    assert value.sub_texts(n, 3) == oracle.sub_texts(n, 3), (raw, n)
                    for k in range(1, 4):
                        assert value.has_sub(n, k) == oracle.has_sub(n, k), (raw, n, k)
                        assert value.sub(n, k) == oracle.sub(n, k), (raw, n, k)
    assert plain > 1000  # the fast path was tried, not only the fallback


def test_systems_are_remembered_with_the_answers_they_had() -> None:
    names = ["LN", "sct", "HL70203", "2.16.840.1.113883.6.1", "L", "99ZZZ", "http://loinc.org", "POST 12H", "ISO"]
    for name in names:
        assert v2_system(name) == _v2_system.__wrapped__(name) == v2_system(f" {name} "), name
    hits = _v2_system.cache_info().hits
    assert [v2_system(name) for name in names] == [_v2_system.__wrapped__(name) for name in names]
    assert _v2_system.cache_info().hits >= hits + len(names)
    for hd in [("NPI", "", ""), (None, "2.16.1", "ISO"), ("A B", "", ""), (None, "urn:x:y", ""), (None, "", "")]:
        assert _hd_system(*hd) == _hd_system.__wrapped__(*hd), hd


def test_parts_answer_what_has_and_text_answer_at_every_position() -> None:
    """The filters read a value's parts as two lists (RawValue.parts): each entry must be that position's answer."""
    values = 0
    for enc in ENCODINGS:
        for raw in [*_texts(enc, 2000), "", '""', "a", '""^b', "&x^y", "\\H\\^a", f"a{enc[_SUB]}b{enc[_COMP]}c"]:
            for sep in (_COMP, _SUB):
                for value in (read_value(raw, enc, sep), RawValue(raw, enc, sep)):
                    for count in (1, 3, 9):
                        texts, has = value.parts(count)
                        assert len(texts) > count and len(has) > count, (raw, count)
                        for n in range(1, count + 1):
                            assert texts[n] == value.text(n), (raw, n)
                            assert bool(has[n]) == value.has(n), (raw, n)
                    values += 1
    assert values > 20_000
