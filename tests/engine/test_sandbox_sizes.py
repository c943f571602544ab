"""sandbox_policy.expanded_size counts a value as printing it would: shared parts once per reference, a cycle once,
and stops past the cap. The size checks of tests/engine/test_hostile_templates.py rest on these counts."""

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
