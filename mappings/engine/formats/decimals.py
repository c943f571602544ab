"""FHIR decimals keep the digits they were written with (`0.70` stays `0.70`, `1.0` stays `1.0`, `1e3` stays `1e3`):
precision is part of a decimal's meaning in FHIR. A `FhirDecimal` is a float (everything that computes with it or
checks `isinstance(value, float)` still works) that remembers its text, and the JSON helpers here read and write it.

The common case stays on orjson: a text is re-read with the stdlib parser (the slow path) only when it holds a
number whose text a float would not give back (a trailing zero in the fraction, an exponent, many digits)."""

from __future__ import annotations

import json
import re

import cython
import orjson

try:  # compiled: the string's buffer and strcspn, for the typed scan below
    from cython.cimports.cpython.unicode import PyUnicode_1BYTE_KIND, PyUnicode_DATA, PyUnicode_KIND
    from cython.cimports.libc.string import strcspn
except (ImportError, AttributeError):  # plain Python: cython's shadow module has no cimports, and needs none
    pass

__all__ = [
    "FhirDecimal",
    "FhirJSONDecoder",
    "FhirJSONEncoder",
    "decimal_default",
    "dumps",
    "has_fragile_numbers",
    "loads",
    "reload_keeping_decimals",
]

# A JSON number a float would rewrite: a fraction ending in 0, an exponent, or 16+ digits; anchored on what may come
# before and after a JSON value, so a timestamp inside a string ("…:09.120Z") does not send the text down the slow
# path. A string that still matches ("a: 1.50,") only costs the slow path, never correctness.
FRAGILE_NUMBER = re.compile(r"[:\[,]\s*-?\d+(?:\.\d*0|(?:\.\d+)?[eE][+-]?\d+|\.\d{16,}|\d{15,})\s*[,\]}]")
# The same search as three patterns, one per character before the number: a pattern starting with one literal
# character is found by a fast search, where one starting with a class is tried at every position (the validated
# VXU^V04 demo's output, which holds floats and so is searched: 0.11 ms → 0.08 ms). Their runs are possessive (`++`,
# no giving back: each ":" of a member tried and failed cost about a third less, CCD 0.10 → 0.07 ms), so a length is
# a look-behind instead: 16+ digits (`\d+\d{15,}`, `\.\d{16,}`), a fraction ending in 0. Each run can only end where
# the next character is no digit, so every match of FRAGILE_NUMBER is one of these and none else (tested).
_AFTER = r"\s*+-?\d++(?:(?<=\d{16})|\.\d++(?:(?<=0)|(?<=\d{16})|[eE][+-]?\d++)|[eE][+-]?\d++)\s*+[,\]}]"
FRAGILE_SEARCHES = tuple(re.compile(re.escape(before) + _AFTER) for before in ":[,")
FRAGILE_SEARCHES_BYTES = tuple(re.compile(pattern.pattern.encode()) for pattern in FRAGILE_SEARCHES)


class FhirDecimal(float):
    """A float that keeps the text it was read from; `str()` and every serializer here give that text back."""

    __slots__ = ("text",)

    def __new__(cls, text: str) -> FhirDecimal:
        number = super().__new__(cls, text)
        number.text = text
        return number

    def __repr__(self) -> str:
        return self.text

    __str__ = __repr__

    def __reduce__(self) -> tuple:
        return (FhirDecimal, (self.text,))

    def __deepcopy__(self, memo: dict) -> FhirDecimal:
        return self

    def __copy__(self) -> FhirDecimal:
        return self


def decimal_default(value: object) -> object:
    """orjson's `default` for FhirDecimal (orjson refuses float subclasses): the number written with its own text."""
    if isinstance(value, FhirDecimal):
        return orjson.Fragment(value.text)
    raise TypeError(f"Type is not JSON serializable: {type(value).__name__}")


def has_fragile_numbers(text: str | bytes) -> bool:
    """Whether FRAGILE_NUMBER finds a number in `text`. Compiled, a text is read in one typed pass
    (`_scan_fragile_numbers`; on the validated CCD demo's output: 0.50 M instructions, against 1.08 M by the three
    searches); as plain Python, and for bytes, by the three searches."""
    if cython.compiled and type(text) is str:
        return _scan_fragile_numbers(text)
    patterns = FRAGILE_SEARCHES_BYTES if isinstance(text, bytes) else FRAGILE_SEARCHES
    return any(pattern.search(text) is not None for pattern in patterns)


@cython.locals(text=str, size=cython.Py_ssize_t, i=cython.Py_ssize_t, char=cython.Py_UCS4, data=cython.p_char)
def _scan_fragile_numbers(text: str) -> bool:
    """FRAGILE_SEARCHES' answer in one pass: after each ":", "[" or ",", a number read as the patterns read it.
    Compiled, on a one-byte string (nearly every output), `strcspn` finds each of those characters (it stops at a
    NUL too, which is then stepped over: CPython ends a string's buffer with one)."""
    size = len(text)
    if cython.compiled and PyUnicode_KIND(text) == PyUnicode_1BYTE_KIND:
        data = cython.cast(cython.p_char, PyUnicode_DATA(text))
        i = strcspn(data, b":[,")
        while i < size:
            if data[i] != 0 and _fragile_at(text, i + 1, size):
                return True
            i += 1
            i += strcspn(data + i, b":[,")
        return False
    i = 0
    for char in text:
        i += 1  # a typed counter: Cython's loop over the characters stays in C (enumerate would not)
        if (char == ":" or char == "[" or char == ",") and _fragile_at(text, i, size):
            return True
    return False


@cython.cfunc
@cython.returns(cython.bint)
@cython.locals(text=str, j=cython.Py_ssize_t, size=cython.Py_ssize_t, start=cython.Py_ssize_t)
def _fragile_at(text: str, j: int, size: int) -> bool:
    """Whether `_AFTER` matches at j: blanks, a number with 16+ digits, a fraction ending in 0 or of 16+ digits, or an
    exponent, then blanks and ",", "]" or "}". Digits and blanks are the patterns' (`str.isdecimal`, `str.isspace`);
    every run is read whole, as their possessive runs are."""
    j = _blanks_end(text, j, size)
    if j < size and text[j] == "-":
        j += 1
    start, j = j, _digits_end(text, j, size)
    if j == start:
        return False
    if j - start >= 16 and _closes_at(text, j, size):
        return True
    if j < size and text[j] == ".":
        start, j = j + 1, _digits_end(text, j + 1, size)
        if j == start:
            return False
        if (text[j - 1] == "0" or j - start >= 16) and _closes_at(text, j, size):
            return True
    return _exponent_closes_at(text, j, size)


@cython.cfunc
@cython.returns(cython.bint)
@cython.locals(text=str, j=cython.Py_ssize_t, size=cython.Py_ssize_t, start=cython.Py_ssize_t)
def _exponent_closes_at(text: str, j: int, size: int) -> bool:
    """`[eE][+-]?\\d++` at j, then blanks and a closing character."""
    if j >= size or (text[j] != "e" and text[j] != "E"):
        return False
    j += 1
    if j < size and (text[j] == "+" or text[j] == "-"):
        j += 1
    start, j = j, _digits_end(text, j, size)
    return j > start and _closes_at(text, j, size)


@cython.cfunc
@cython.returns(cython.bint)
@cython.locals(text=str, j=cython.Py_ssize_t, size=cython.Py_ssize_t, char=cython.Py_UCS4)
def _closes_at(text: str, j: int, size: int) -> bool:
    """Blanks from j, then ",", "]" or "}"."""
    j = _blanks_end(text, j, size)
    if j >= size:
        return False
    char = text[j]
    return char == "," or char == "]" or char == "}"


@cython.cfunc
@cython.returns(cython.Py_ssize_t)
@cython.locals(text=str, j=cython.Py_ssize_t, size=cython.Py_ssize_t)
def _digits_end(text: str, j: int, size: int) -> int:
    """Where the run of digits (`str.isdecimal`) starting at j ends."""
    while j < size and text[j].isdecimal():
        j += 1
    return j


@cython.cfunc
@cython.returns(cython.Py_ssize_t)
@cython.locals(text=str, j=cython.Py_ssize_t, size=cython.Py_ssize_t)
def _blanks_end(text: str, j: int, size: int) -> int:
    """Where the run of blanks (`str.isspace`) starting at j ends."""
    while j < size and text[j].isspace():
        j += 1
    return j


def reload_keeping_decimals(text: str | bytes) -> object:
    """Parse JSON known to be valid, every fraction or exponent as a FhirDecimal (the slow path; the stdlib hands
    `1e3` to parse_float too, and whole numbers stay ints)."""
    return json.loads(text, parse_float=FhirDecimal)


def loads(text: str | bytes) -> object:
    """JSON → Python like orjson.loads (same errors), numbers keeping their digits where a float would not."""
    value = orjson.loads(text)
    if has_fragile_numbers(text):
        return reload_keeping_decimals(text)
    return value


def dumps(value: object, *, pretty: bool = False) -> bytes:
    """Python → JSON bytes with orjson, FhirDecimals written as they were read."""
    return orjson.dumps(value, default=decimal_default, option=orjson.OPT_INDENT_2 if pretty else 0)


class FhirJSONEncoder(json.JSONEncoder):
    """For Django's JSONField (`encoder=`) and anything else that takes a json encoder class: FHIR content is written
    with orjson, decimals as they were read. (The stdlib encoder writes every float subclass as a plain float.)"""

    def encode(self, o: object) -> str:
        return dumps(o).decode()


class FhirJSONDecoder(json.JSONDecoder):
    """For Django's JSONField (`decoder=`): fractions and exponents come back as FhirDecimals with their digits."""

    def __init__(self, **kwargs: object) -> None:
        kwargs.setdefault("parse_float", FhirDecimal)
        super().__init__(**kwargs)
