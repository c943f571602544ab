"""sandbox_policy.expanded_size counts a value as printing it would: shared parts once per reference, a cycle once,
and stops past the cap. The size checks of tests/engine/test_hostile_templates.py rest on these counts."""

from markupsafe import Markup

from mappings.engine import compile_mapping, run_mapping
from mappings.engine.sandbox_policy import expanded_size, joined_size

CAP = 10**9


def test_it_counts_strings_and_items_flat_and_nested() -> None:
    assert expanded_size("abc", CAP) == 3
    assert expanded_size(7, CAP) == 1
    assert expanded_size(["ab", 1, []], CAP) == 3 + 2 + 1  # three items, two characters, one int, an empty list
    assert expanded_size({"k": "vv", "n": {"x": None}}, CAP) == 2 + 1 + 2 + 1 + (1 + 1 + 1)


def test_it_counts_a_shared_list_once_per_reference() -> None:
    inner = ["x" * 10]
    assert expanded_size([inner, inner, inner], CAP) == 3 + 3 * (1 + 10)
    assert expanded_size([[inner] * 4, inner], CAP) == 2 + (4 + 4 * 11) + 11


def test_it_counts_a_list_that_contains_itself_once() -> None:
    cycle: list = ["ab"]
    cycle.append(cycle)
    assert expanded_size(cycle, CAP) == 2 + 2
    assert expanded_size([cycle, cycle], CAP) == 2 + 2 * 4


def test_it_stops_counting_past_the_cap() -> None:
    counted = expanded_size(["x" * 60] * 1000, 2000)  # 1,000 items, then 60 characters each until over 2,000
    assert counted == 1000 + 17 * 60


def test_it_counts_a_joins_separators_and_skips_an_iterator() -> None:
    assert joined_size(["ab", "c"], ", ", CAP) == 2 + 3 + 2 * 2
    assert joined_size(iter(["ab"]), ", ", CAP) == 0


def test_it_counts_a_macros_output_as_the_string_it_is() -> None:
    assert expanded_size(Markup("x" * 10), CAP) == 10
    assert expanded_size([Markup("ab"), {"k": Markup("cde")}], CAP) == 2 + 2 + (1 + 1 + 3)


def test_it_stops_an_append_loop_of_big_macro_outputs() -> None:
    template = (
        "{% macro big() %}{{ 'x' * 1000000 }}{% endmacro %}{% set l = [] %}"
        "{% for i in range(100000) %}{{ l.append(big()) or '' }}{% endfor %}"
    )
    result = run_mapping(compile_mapping(template), "{}")
    assert result.output is None
    assert [error.code for error in result.errors] == ["FS-LIM-007"]
