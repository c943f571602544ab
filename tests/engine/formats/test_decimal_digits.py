"""FHIR decimals keep the digits they were written with, from the source through the template's output to JSON, XML
and Turtle, while still being numbers to everything that reads them."""

import copy
import pickle

import orjson
import pytest

from mappings.engine import compile_mapping, run_mapping
from mappings.engine.formats import FhirDecimal, dumps, loads, parse, serialize
from mappings.engine.postprocess import parse_output

OBSERVATION = (
    '{"resourceType": "Observation", "status": "final", "code": {"text": "x"}, "valueQuantity": {"value": %s}}'
)


@pytest.mark.parametrize("written", ["0.70", "1.0", "1e3", "1E-2", "-0.50", "3.14159265358979323846", "100.00"])
def test_it_keeps_the_text_of_a_decimal_through_json(written: str) -> None:
    value = loads(OBSERVATION % written)["valueQuantity"]["value"]
    assert isinstance(value, float)
    assert value == float(written)
    assert dumps({"v": value}) == f'{{"v":{written}}}'.encode()


def test_it_stays_on_plain_floats_and_ints_when_no_digit_would_be_lost() -> None:
    parsed = loads('{"a": 0.5, "b": 12, "c": [1.25, -3]}')
    assert [type(parsed["a"]), type(parsed["b"]), type(parsed["c"][0])] == [float, int, float]


def test_it_reads_numbers_in_strings_as_text_even_on_the_slow_path() -> None:
    parsed = loads('{"a": "version 1.10", "b": 0.70}')
    assert parsed == {"a": "version 1.10", "b": 0.7}
    assert dumps(parsed) == b'{"a":"version 1.10","b":0.70}'


def test_it_behaves_as_a_number() -> None:
    value = FhirDecimal("0.70")
    assert isinstance(value, float)
    assert value + 1 == pytest.approx(1.7)
    assert value > 0.6
    assert str(value) == repr(value) == "0.70"
    assert pickle.loads(pickle.dumps(value)).text == "0.70"
    assert copy.deepcopy({"v": value})["v"].text == "0.70"


def test_it_refuses_to_let_orjson_drop_the_digits_silently() -> None:
    # orjson refuses float subclasses: every writer of FHIR JSON passes decimal_default (formats.dumps does)
    with pytest.raises(TypeError):
        orjson.dumps(FhirDecimal("0.70"))


def test_it_keeps_digits_the_template_wrote_in_the_rendered_output() -> None:
    parsed = parse_output('{"a": 0.70, "b": [1.0, 2.50,],}')
    assert dumps(parsed) == b'{"a":0.70,"b":[1.0,2.50]}'


def test_it_keeps_an_hl7_value_of_0_70_from_source_to_every_format() -> None:
    compiled = compile_mapping(
        '{"resourceType": "Observation", "status": "final", "code": {"text": "K"},'
        ' "valueQuantity": {"value": {{ msg.OBX[5] }}, "unit": "mmol/L"}}',
        source_format="hl7v2",
    )
    result = run_mapping(compiled, b"MSH|^~\\&|LAB|X|||202401010000||ORU^R01|1|P|2.5\rOBX|1|NM|K||0.70|mmol/L")
    assert result.ok, result.issues
    assert b'"value":0.70' in dumps(result.output)
    assert '<value value="0.70"/>' in serialize(result.output, "xml")
    assert '"0.70"^^xsd:decimal' in serialize(result.output, "ttl")


def test_it_keeps_decimals_of_a_json_source_through_tojson() -> None:
    compiled = compile_mapping(
        '{"resourceType": "Observation", "status": "final", "code": {"text": "x"},'
        ' "valueQuantity": {"value": {{ msg.result | tojson }}}}',
        source_format="json",
    )
    result = run_mapping(compiled, b'{"result": 1.50}')
    assert result.ok, result.issues
    assert dumps(result.output["valueQuantity"]) == b'{"value":1.50}'


@pytest.mark.parametrize("fmt", ["xml", "ttl"])
def test_it_reads_decimals_back_with_their_digits(fmt: str) -> None:
    resource = loads(OBSERVATION % "1.000")
    back = parse(serialize(resource, fmt), fmt)
    assert isinstance(back["valueQuantity"]["value"], float)
    assert dumps(back["valueQuantity"]) == b'{"value":1.000}'


def test_it_writes_an_exponent_as_xsd_double_so_turtle_keeps_it() -> None:
    resource = loads(OBSERVATION % "1e3")
    text = serialize(resource, "ttl")
    assert '"1e3"^^xsd:double' in text
    assert dumps(parse(text, "ttl")["valueQuantity"]) == b'{"value":1e3}'


def test_the_three_searches_find_a_fragile_number_where_the_one_pattern_did() -> None:
    """has_fragile_numbers searches with one pattern per character before the number (faster); its answer is the
    single pattern's, on random texts of digits, signs, separators and brackets, as str and as bytes."""
    import random

    from mappings.engine.formats.decimals import FRAGILE_NUMBER, has_fragile_numbers

    rng = random.Random(14)
    found = 0
    for _ in range(20_000):
        pieces = [":", "[", ",", " ", "\n", "-", "+", "1", "0", ".", "e", "E", "]", "}", '"', "a", "12345678", "9.50"]
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 16)))
        expected = FRAGILE_NUMBER.search(text) is not None
        found += expected
        assert has_fragile_numbers(text) is expected, text
        assert has_fragile_numbers(text.encode()) is expected, text
    assert found > 200  # texts that hold a fragile number (most do not)
