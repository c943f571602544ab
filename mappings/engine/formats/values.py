"""Primitive values between JSON and text (XML `value` attributes, Turtle literals): JSON gives booleans and numbers
their own types, the other formats write text, and the element's type in the definition says which is which."""

from __future__ import annotations

import re

import orjson

from mappings.engine.errors import ErrorCode, MappingError

from .decimals import FhirDecimal

INTEGER_TYPES = frozenset({"integer", "positiveInt", "unsignedInt"})
NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?")
INTEGER = re.compile(r"[+-]?\d+")


def from_text(type_code: str, text: str, where: str) -> object:
    """The JSON value of a primitive written as text."""
    if type_code == "boolean":
        if text in ("true", "false"):
            return text == "true"
        raise MappingError(ErrorCode.FHIR_NOT_RESOURCE, f"{where}: a boolean is true or false, not {text!r}.")
    if type_code in INTEGER_TYPES:
        if INTEGER.fullmatch(text):
            return int(text)
        raise MappingError(ErrorCode.FHIR_NOT_RESOURCE, f"{where}: {text!r} is not a whole number.")
    if type_code == "decimal":
        if NUMBER.fullmatch(text):
            return FhirDecimal(text)  # keeps the digits as written: 0.70 stays 0.70
        raise MappingError(ErrorCode.FHIR_NOT_RESOURCE, f"{where}: {text!r} is not a decimal number.")
    return text


def to_text(value: object, where: str) -> str:
    """A JSON primitive as the text the other formats write."""
    if isinstance(value, str):
        return value
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, FhirDecimal):
        return value.text
    if isinstance(value, (int, float)):
        return orjson.dumps(value).decode()
    raise MappingError(
        ErrorCode.FHIR_NOT_RESOURCE, f"{where}: expected a primitive value, found {type(value).__name__}."
    )
