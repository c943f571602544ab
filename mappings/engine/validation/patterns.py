"""fixed[x] and pattern[x]: a fixed value is matched exactly, a pattern is contained in the instance (every member
of the pattern present with a matching value; every item of a pattern array matched by some item of the instance)."""

from __future__ import annotations


def contains(value: object, pattern: object) -> bool:
    if isinstance(pattern, dict):
        if not isinstance(value, dict):
            return False
        return all(key in value and contains(value[key], inner) for key, inner in pattern.items())
    if isinstance(pattern, list):
        items = value if isinstance(value, list) else [value]
        return all(any(contains(item, inner) for item in items) for inner in pattern)
    if isinstance(value, list):
        return any(contains(item, pattern) for item in value)
    return _same(value, pattern)


def equals(value: object, fixed: object) -> bool:
    if isinstance(fixed, dict):
        if not isinstance(value, dict) or value.keys() != fixed.keys():
            return False
        return all(equals(value[key], inner) for key, inner in fixed.items())
    if isinstance(fixed, list):
        return isinstance(value, list) and len(value) == len(fixed) and all(map(equals, value, fixed))
    return _same(value, fixed)


def _same(value: object, expected: object) -> bool:
    if isinstance(expected, bool) or isinstance(value, bool):
        return value is expected
    return value == expected
