"""Post-processing: tolerant JSON, pruning and Bundle clean-up."""

import pytest

from mappings.engine import MappingError
from mappings.engine.postprocess import parse_output, prune, remove_stray_commas

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
