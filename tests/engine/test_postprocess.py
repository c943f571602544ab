"""Post-processing: tolerant JSON, pruning and Bundle clean-up."""

import copy
import random

import pytest

from mappings.engine import MappingError, compile_mapping, run_mapping
from mappings.engine.formats.decimals import FhirDecimal
from mappings.engine.postprocess import (
    _pruned,
    _string_spans,
    _Strings,
    forgive_empty_values,
    parse_output,
    postprocess,
    prune,
    remove_stray_commas,
)

COMMAS = [
    ('{"a": [1, 2,],}', {"a": [1, 2]}),
    ('{"a": [,1]}', {"a": [1]}),
    ('{"a": [1,, ,2]}', {"a": [1, 2]}),
    ('{, "a": 1}', {"a": 1}),
    ('{"a": ",,]"}', {"a": ",,]"}),
    ('{"a": "x\\",", "b": [1,\n\n]}', {"a": 'x",', "b": [1]}),
    ("[,,]", []),
]


@pytest.mark.parametrize(("text", "expected"), COMMAS)
def test_it_tolerates_stray_commas_outside_strings(text: str, expected: object) -> None:
    assert parse_output(text) == expected


# A member whose value printed nothing (a helper or variable that gave nothing) is dropped, like an empty value.
EMPTY_VALUES = [
    ('{"a": 1, "code": , "b": 2}', {"a": 1, "b": 2}),
    ('{"a": 1, "code": }', {"a": 1}),
    ('{"code": , "a": 1}', {"a": 1}),
    ('{"code":}', {}),
    ('{"a": 1, "code":\n  }', {"a": 1}),
    ('{"a": 1, "code": ,}', {"a": 1}),
    ('{"a": [{"code": , "system": "x"}, {"code": }]}', {"a": [{"system": "x"}, {}]}),
    ('{"a": [ , ]}', {"a": []}),
    ('{"a": [1, , 2], "b": {"c": }}', {"a": [1, 2], "b": {}}),
    ('{"a": {"code": }, "b": 1,}', {"a": {}, "b": 1}),
    ('{"k\\"ey": , "a": 1}', {"a": 1}),  # an escaped quote inside the key
    ('{"a": 1, "a": }', {"a": 1}),  # the empty one never replaces an earlier value
    ('{"text": "a: , b: }", "x": }', {"text": "a: , b: }"}),  # inside a string, ": ," is text
]


@pytest.mark.parametrize(("text", "expected"), EMPTY_VALUES)
def test_it_drops_a_member_whose_value_printed_nothing(text: str, expected: object) -> None:
    assert parse_output(text) == expected


# Real syntax errors stay FS-PST-001, with the offset of the mistake in the text as rendered.
NOT_JSON = [
    ('{"a": "unterminated}', 20),
    ('{"a": "unterminated, "code": }', 22),
    ('{"a" 1}', 5),  # a missing colon
    ('{"a" , "b": 1}', 5),
    ('{"a": 1 "b": 2}', 8),  # a missing comma
    ('{a: , "b": 1}', 1),  # an unquoted key is not a member
    ('{"a": 1, : }', 9),  # a colon without a key
    ('{"a": [1, : ]}', 10),
    ('{"a": "b" : }', 10),  # a value is not a key
    ('{"a": tru}', 6),
    ('{"a": 1, "code": ', 17),  # nothing after the colon at all: the output stops there
    ('["code": ]', 7),
]


@pytest.mark.parametrize(("text", "offset"), NOT_JSON)
def test_it_does_not_forgive_real_syntax_errors(text: str, offset: int) -> None:
    with pytest.raises(MappingError) as caught:
        parse_output(text)
    assert caught.value.code == "FS-PST-001"
    assert caught.value.offset == offset


def test_it_blanks_a_member_without_a_value_without_moving_offsets() -> None:
    text = '{"a": 1,\n "code": ,\n "b": tru}'
    cleaned = forgive_empty_values(text)
    assert len(cleaned) == len(text)
    assert cleaned == '{"a": 1,\n         ,\n "b": tru}'
    with pytest.raises(MappingError) as caught:
        parse_output(text)
    assert text[caught.value.offset :] == "tru}"  # a later error still points into the text as rendered


def test_a_template_whose_helper_printed_nothing_runs() -> None:
    template = (
        '{"resourceType": "Observation", "status": "final",\n'
        ' "code": {"coding": [{{ coding(msg.code, "http://loinc.org") }}], "text": "x"},\n'
        ' "valueQuantity": {{ quantity(msg.value, "mg") }},\n'
        ' "subject": {{ reference("Patient", msg.patient) }}}'
    )
    result = run_mapping(compile_mapping(template), "{}")
    assert result.ok, [error.as_dict() for error in result.errors]
    assert result.output == {"resourceType": "Observation", "status": "final", "code": {"text": "x"}}


def test_it_blanks_commas_without_moving_offsets() -> None:
    text = '{"a": [1,],\n"b": 2,}'
    cleaned = remove_stray_commas(text)
    assert len(cleaned) == len(text)
    assert cleaned == '{"a": [1 ],\n"b": 2 }'


def test_it_reports_the_offset_of_output_that_is_not_json() -> None:
    with pytest.raises(MappingError) as caught:
        parse_output('{"a": 1, "b" 2}')
    assert caught.value.code == "FS-PST-001"
    assert caught.value.offset == 13


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"a": "", "b": "  ", "c": [], "d": {}, "e": None, "f": 0, "g": False}, {"f": 0, "g": False}),
        ({"a": [{"b": [""]}], "c": "x"}, {"c": "x"}),
        ([{}, "", [None]], None),
    ],
)
def test_it_prunes_what_fhir_forbids_to_be_empty(value: object, expected: object) -> None:
    assert prune(value) == expected


def _pruned_copy(value: object) -> object:
    """The rule, as a new value: what `prune` (which works in place) must give."""
    if isinstance(value, dict):
        kept = {key: _pruned_copy(item) for key, item in value.items()}
        return {key: item for key, item in kept.items() if item is not None} or None
    if isinstance(value, list):
        return [item for item in map(_pruned_copy, value) if item is not None] or None
    if isinstance(value, str):
        return value if value.strip() and not value.isspace() else None
    return value


def _random_value(rnd: random.Random, depth: int) -> object:
    leaves = ["", " ", "\t\n", "\u3000", "x", " y ", None, 0, 1, 2.5, -0.0, False, True]
    if depth == 0 or rnd.random() < 0.3:
        return rnd.choice(leaves)
    if rnd.random() < 0.5:
        return [_random_value(rnd, depth - 1) for _ in range(rnd.randint(0, 4))]
    return {f"k{index}": _random_value(rnd, depth - 1) for index in range(rnd.randint(0, 4))}


def test_pruning_in_place_gives_the_rule_on_random_values_floats_noted() -> None:
    rnd = random.Random(14)
    for _ in range(3000):
        value = _random_value(rnd, 5)
        expected, expected_floats = _pruned_copy(copy.deepcopy(value)), _floats_in(value)
        floats: list = []
        assert _pruned(value, floats) == expected
        assert sorted(floats) == sorted(expected_floats)


def _floats_in(value: object) -> list:
    if isinstance(value, dict):
        return [number for item in value.values() for number in _floats_in(item)]
    if isinstance(value, list):
        return [number for item in value for number in _floats_in(item)]
    return [value] if type(value) is float else []


# Without a backslash, and with quotes that pair up, strings are told from syntax by counting quotes; otherwise by
# matching every string. Both ways must answer the same wherever the counting one is used.
PAIRED_TEXTS = [
    '{"a": ",]", "b": [1,,], "c": "x: }", "d": , "e": "{,", "f": [,"g",]}',
    '{"k": "v",\n "empty": ,\n "list": [ "a,", "b",\n ],}',
    "[,,]",
]


@pytest.mark.parametrize("text", PAIRED_TEXTS)
def test_counting_quotes_tells_strings_from_syntax_as_matching_them_does(text: str) -> None:
    counted, matched = _Strings(text), _Strings(text)
    assert counted.paired
    matched.paired, (matched.spans, matched.starts) = False, _string_spans(text)
    for offset in (offset for offset, char in enumerate(text) if char != '"'):
        assert counted.holds(offset) == matched.holds(offset), offset
        if not matched.holds(offset):
            assert counted.last_before(offset) == matched.last_before(offset), offset
    assert not _Strings('{"a\\"b": ,}').paired and not _Strings('{"a": "b}').paired


def test_it_reads_a_decimal_again_only_when_the_output_has_one() -> None:
    output, _ = postprocess('{"resourceType": "Basic", "a": 0.70, "b": [1.0, 2], "text": "0.70,"}')
    assert isinstance(output["a"], FhirDecimal) and str(output["a"]) == "0.70"
    assert str(output["b"][0]) == "1.0" and output["b"][1] == 2
    plain, _ = postprocess('{"resourceType": "Basic", "text": "a: 1.50,", "n": 12345678901234567}')
    assert plain == {"resourceType": "Basic", "text": "a: 1.50,", "n": 12345678901234567}


def test_it_tells_strings_by_counting_quotes_when_no_quote_is_escaped() -> None:
    """_Strings counts quotes when no backslash stands before one (a `\\n` in a note, the ORU^R01 demo's output);
    its answers are the string regex's, on random texts of quotes, backslashes, commas and letters."""
    import random

    from mappings.engine.postprocess import _in_string, _string_spans, _Strings

    rng = random.Random(14)
    counted = 0
    for _ in range(5000):
        text = "".join(rng.choice('"",\\n a]') for _ in range(rng.randint(0, 40)))
        strings = _Strings(text)
        counted += strings.paired and "\\" in text  # a backslash, yet counted
        spans, starts = _string_spans(text)
        for offset in (i for i, char in enumerate(text) if char == ","):
            assert strings.holds(offset) == _in_string(offset, spans, starts), (text, offset)
    assert counted > 500


def _messy_json(rng: random.Random, depth: int = 0) -> str:
    """A JSON value as a template might print it: stray commas before and after items, blank runs, members whose
    value printed nothing, strings holding brackets, commas, colons and escaped quotes."""
    gap = rng.choice(["", "", " ", "\n  "])
    stray = rng.choice(["", "", "", ",", ", ,", "\n,"])
    kind = rng.randrange(5) if depth < 3 else rng.randrange(2)
    if rng.random() < 0.01:
        return rng.choice(["tru", '"a" 1', "[1 2]", '"open, ]'])  # a real syntax error (an odd number of quotes)
    if kind == 0:
        return rng.choice(['"a"', '"x, ]"', '"b\\", }"', '"k: ,"', "1", "2.50", "true", "null", '""'])
    if kind == 1:
        return rng.choice(["0", '"[,"', '"{ ,}"', '" "'])
    if kind in (2, 3):
        items = [_messy_json(rng, depth + 1) + rng.choice([",", ",", f",{gap}"]) for _ in range(rng.randrange(4))]
        return "[" + stray + gap + "".join(items) + stray + gap + "]"
    members = []
    for number in range(rng.randrange(4)):
        value = "" if rng.random() < 0.1 else _messy_json(rng, depth + 1)
        members.append(f'"m{number}":{gap}{value}{rng.choice([",", ",", f",{gap}"])}')
    return "{" + stray + gap + "".join(members) + stray + gap + "}"


def test_it_parses_what_the_full_clean_up_parses_on_random_outputs() -> None:
    """The quick clean-up (commas before a closing bracket, or right after an opening one) gives what blanking every
    stray comma gives, or falls back to that: same value, same cleaned text, same error and offset."""
    import orjson

    from mappings.engine.postprocess import _parse

    rng = random.Random(14)
    routes = {"error": 0, "quick": 0, "full": 0}
    for _ in range(4000):
        text = '{"resourceType": "Basic", "x": ' + _messy_json(rng) + "}"
        cleaned = remove_stray_commas(forgive_empty_values(text))
        try:
            expected = (orjson.loads(cleaned), cleaned)
        except orjson.JSONDecodeError as exc:
            with pytest.raises(MappingError) as caught:
                _parse(text)
            assert caught.value.offset == exc.pos, text
            routes["error"] += 1
            continue
        assert _parse(text) == expected, text
        try:
            orjson.loads(remove_stray_commas(forgive_empty_values(text), quick=True))
            routes["quick"] += 1
        except orjson.JSONDecodeError:
            routes["full"] += 1
    assert min(routes.values()) > 100, routes  # every way through was taken


def test_it_scans_for_commas_after_an_opening_bracket_only_when_the_quick_clean_up_fails(monkeypatch) -> None:
    from mappings.engine import postprocess as module

    used: list[str] = []

    def counted(name: str, function):
        def scan(text: str) -> list[int]:
            used.append(name)
            return function(text)

        return scan

    monkeypatch.setattr(module, "_quick_commas", counted("quick", module._quick_commas))
    monkeypatch.setattr(module, "_stray_commas", counted("full", module._stray_commas))
    assert postprocess('{"resourceType": "Basic", "a": [1, 2,\n ],}')[0] == {"resourceType": "Basic", "a": [1, 2]}
    assert used == ["quick"]
    used.clear()
    assert postprocess('{"resourceType": "Basic", "a": [, 1,],}')[0] == {"resourceType": "Basic", "a": [1]}
    assert used == ["quick"]
    used.clear()
    assert postprocess('{"resourceType": "Basic", "a": [ ,1]}')[0] == {"resourceType": "Basic", "a": [1]}
    assert used == ["quick", "full"]  # the quick clean-up, then the full one


def _quick_commas_by_regex(text: str) -> list[int]:
    """The quick clean-up's commas as the plain-Python path finds them: QUICK_STRAY's scan, less those in strings."""
    from mappings.engine.postprocess import QUICK_STRAY

    strings = _Strings(text, parsed_after=True)
    return [match.start() for match in QUICK_STRAY.finditer(text) if not strings.holds(match.start())]


def _blanked(text: str, commas: list[int]) -> str:
    return "".join(" " if offset in set(commas) else char for offset, char in enumerate(text))


def test_the_one_pass_comma_scan_blanks_what_the_regex_scan_blanks_wherever_the_result_parses() -> None:
    """_scan_quick_commas (what compiled code runs) against the regex scan and quote count (plain Python), on random
    template outputs and on random texts of brackets, commas, blanks (Unicode ones too), quotes and backslashes: the
    same commas wherever either blanked text parses, the only case whose clean-up is kept."""
    import orjson

    from mappings.engine.postprocess import _scan_quick_commas

    def parses(text: str) -> bool:
        try:
            orjson.loads(text)
        except orjson.JSONDecodeError:
            return False
        return True

    rng = random.Random(7)
    pieces = ["[", "]", "{", "}", ",", " ", "\n", "\x1c", "\u00a0", '"', "\\", "a", ":", "1", '"x,]"', ",]", "[,"]
    wide = ["\u2028", "é", "\U0001f600"]  # two and four bytes a character: no memchr there (and a Unicode blank)
    texts = ['{"x": ' + _messy_json(rng) + "}" for _ in range(3000)]
    texts += ["".join(rng.choice(pieces) for _ in range(rng.randrange(30))) for _ in range(30000)]
    texts += ["".join(rng.choice(pieces + wide) for _ in range(rng.randrange(30))) for _ in range(10000)]
    texts += [text.replace('"a"', '"\u2028\\"\U0001f600"') for text in texts[:3000]]
    kept = wide_kept = 0
    for text in texts:
        scanned, matched = _scan_quick_commas(text), _quick_commas_by_regex(text)
        if parses(_blanked(text, scanned)) or parses(_blanked(text, matched)):
            assert scanned == matched, text
            kept += 1
            wide_kept += not text.isascii() and max(map(ord, text)) > 0xFF
    assert kept > 2000 and wide_kept > 50, (kept, wide_kept)
    # the quote after an escaped backslash ends the string, one after an odd run of backslashes does not
    assert _scan_quick_commas('{"a": "\\\\", "b": [1,\u00a0]}') == [19]
    assert _scan_quick_commas('{"a": "\\\\\\", ]", "b": [1,\u00a0]}') == [24]
    assert _scan_quick_commas('["\u2028\\"", 1,]') == [9]  # the same, two bytes a character


def test_compiled_post_processing_takes_the_one_pass_scan(monkeypatch) -> None:
    """Compiled, the quick clean-up never runs the regex scan; as plain Python it does (far faster there)."""
    from mappings.engine import accelerated
    from mappings.engine import postprocess as module

    compiled = accelerated.loaded_compiled().get("mappings.engine.postprocess")
    if not compiled:
        pytest.skip("post-processing runs as plain Python here (FHIR_STUDIO_PURE_PYTHON or no build)")

    class Refusing:
        def finditer(self, text: str):
            raise AssertionError("the regex scan ran")

    monkeypatch.setattr(module, "QUICK_STRAY", Refusing())
    assert remove_stray_commas('{"a": [1, 2,\n ], "b": "c,]",}', quick=True) == '{"a": [1, 2 \n ], "b": "c,]" }'


def test_the_quick_comma_scan_finds_what_its_two_parts_find() -> None:
    """QUICK_STRAY's one scan blanks the commas the trailing-comma pattern and the `[,` / `{,` substring searches
    found together (what the quick clean-up did before), on random texts of brackets, commas, blanks and strings."""
    from mappings.engine.postprocess import QUICK_STRAY, STRAY

    rng = random.Random(9)
    alphabet = ["[", "]", "{", "}", ",", ",", " ", "\n", '"', "a", ":", "1", "\\"]
    for _ in range(20_000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 30)))
        expected = {match.start() for match in STRAY[0].finditer(text)}
        expected |= {at + 1 for at in range(len(text) - 1) if text[at : at + 2] in ("[,", "{,")}
        assert [match.start() for match in QUICK_STRAY.finditer(text)] == sorted(expected), text


def test_a_remembered_route_changes_no_answer_on_random_outputs() -> None:
    """Whatever clean-up the last output took (the route a CompiledMapping keeps), the next text gives the same value
    and cleaned text, or the same error at the same offset, as without a route."""
    from mappings.engine.postprocess import _parse

    rng = random.Random(15)
    for _ in range(1500):
        text = '{"resourceType": "Basic", "x": ' + _messy_json(rng) + "}"
        try:
            expected = _parse(text)
        except MappingError as error:
            expected = (error.message, error.offset)
        for last in ("text", "quick", "full"):
            route = {"last": last}
            try:
                got = _parse(text, route)
            except MappingError as error:
                got = (error.message, error.offset)
            assert got == expected, (last, text)
            assert route["last"] in ("text", "quick", "full")


def test_a_mapping_whose_outputs_need_only_commas_skips_the_empty_member_scan(monkeypatch) -> None:
    from mappings.engine import postprocess as module

    scans: list[str] = []
    route: dict = {}
    monkeypatch.setattr(module, "forgive_empty_values", _counting(module.forgive_empty_values, scans))
    assert postprocess('{"resourceType": "Basic", "a": [1, 2,],}', route)[0] == {"resourceType": "Basic", "a": [1, 2]}
    assert route == {"last": "quick"} and len(scans) == 1
    assert postprocess('{"resourceType": "Basic", "a": [3,],}', route)[0] == {"resourceType": "Basic", "a": [3]}
    assert len(scans) == 1  # the remembered route went straight to the comma clean-up
    assert postprocess('{"resourceType": "Basic", "b": , "a": [3,]}', route)[0] == {"resourceType": "Basic", "a": [3]}
    assert route == {"last": "full"} and len(scans) == 2  # an empty member: every way again, remembered
    assert postprocess('{"resourceType": "Basic"}', route)[0] == {"resourceType": "Basic"}
    assert route == {"last": "quick"} and len(scans) == 3  # valid JSON: the clean-up changes nothing


def _counting(function, calls: list):
    def counted(text: str) -> str:
        calls.append(text)
        return function(text)

    return counted


def test_forgiving_empty_members_without_counting_the_quotes_blanks_what_counting_blanks(monkeypatch) -> None:
    """forgive_empty_values takes the quotes of a text without a backslash to pair up in order, without counting them
    first. Against _Strings as it counts (strings matched by regex when the number is odd), on random texts with odd
    and even numbers of quotes, empty members before and after a quote left open, backslashes and escaped quotes."""
    from mappings.engine import postprocess as module

    class Counting(_Strings):
        def __init__(self, text: str, *, parsed_after: bool = False) -> None:
            super().__init__(text)

    rng = random.Random(23)
    pieces = ['"a": ,', '"b":}', '"c": "x: ,"', '"open, ', '"d": 1,', " ", ",", "{", "}", "[", "]", '"\\', "\n"]
    odd = 0
    for _ in range(6000):
        text = "{" + "".join(rng.choice(pieces) for _ in range(rng.randrange(1, 10))) + "}"
        odd += text.count('"') % 2
        fast = forgive_empty_values(text)
        with monkeypatch.context() as patched:
            patched.setattr(module, "_Strings", Counting)
            assert forgive_empty_values(text) == fast, text
    assert odd > 1500
