"""Sample cases: run a mapping on a sample and judge the result — valid FHIR, equal to the expected output (volatile
fields masked) and every FHIRPath assertion true. Used by `fhirstudio test`, the test suite and (later) the studio's
test runs, so all three agree on what "passed" means."""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

import fhirpathpy
from antlr4 import CommonTokenStream, InputStream
from antlr4.error.ErrorListener import ErrorListener
from fhirpathpy.parser.generated.FHIRPathLexer import FHIRPathLexer
from fhirpathpy.parser.generated.FHIRPathParser import FHIRPathParser

from mappings.engine import CompiledMapping, Limits, MappingResult, run_mapping
from mappings.engine.definitions import Registry

# Fields that change every run; masked (not deleted) so their presence is still compared.
VOLATILE_KEYS = frozenset({"timestamp", "lastUpdated"})
MASK = "<masked>"
PINNED_NOW = datetime(2026, 1, 1, tzinfo=UTC)


def mask(value: object, keys: frozenset[str] = VOLATILE_KEYS) -> object:
    if isinstance(value, dict):
        return {key: MASK if key in keys else mask(item, keys) for key, item in value.items()}
    if isinstance(value, list):
        return [mask(item, keys) for item in value]
    return value


def mask_paths(value: object, paths: list[str] | tuple[str, ...]) -> object:
    """Mask elements named by dotted paths (`Bundle.entry.resource.meta`, or without the leading type); arrays on
    the way fan out. Used for a sample's ignorable paths."""
    for path in paths:
        parts = [part for part in path.split(".") if part]
        if parts and parts[0][:1].isupper():
            parts = parts[1:]
        if parts:
            value = _mask_path(value, parts)
    return value


def _mask_path(value: object, parts: list[str]) -> object:
    if isinstance(value, list):
        return [_mask_path(item, parts) for item in value]
    if not isinstance(value, dict) or parts[0] not in value:
        return value
    head, rest = parts[0], parts[1:]
    return {**value, head: MASK if not rest else _mask_path(value[head], rest)}


@dataclass
class CaseOutcome:
    name: str
    result: MappingResult
    problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.problems


def check_assertion(output: dict, expression: str) -> str | None:
    """None when the FHIRPath expression is true on the output, else what went wrong."""
    try:
        value = fhirpathpy.evaluate(output, expression)
    except Exception as exc:  # noqa: BLE001 — fhirpathpy raises many types for a bad expression; report, don't crash
        return f"assertion {expression!r} could not be evaluated: {exc}"
    if value != [True]:
        return f"assertion {expression!r} is {value!r}, expected [true]"
    return None


class _RaiseOnSyntaxError(ErrorListener):
    def syntaxError(self, recognizer, offendingSymbol, line, column, msg, e) -> None:  # noqa: N802, N803 — ANTLR's API
        # ANTLR lists every token it would have taken ("expecting {'+', '-', 'is', …}"): keep only short lists.
        expected = re.search(r" expecting \{([^}]*)\}", msg)
        if expected and expected.group(1).count(",") > 3:
            msg = msg[: expected.start()] + msg[expected.end() :]
        msg = msg.replace("mismatched input '<EOF>'", "the expression ends too early")
        raise SyntaxError(f"at column {column + 1}: {msg}")


def assertion_syntax_error(expression: str) -> str | None:
    """None when the text is one FHIRPath expression, else the parser's complaint. fhirpathpy's own parse() ignores
    syntax errors (its listener does nothing) and stops at the first token it cannot use, so `Patient.name)` would
    pass; here fhirpathpy's generated parser reads the grammar's whole-input rule with a listener that raises."""
    listener = _RaiseOnSyntaxError()
    lexer = FHIRPathLexer(InputStream(expression))
    lexer.removeErrorListeners()
    lexer.addErrorListener(listener)
    parser = FHIRPathParser(CommonTokenStream(lexer))
    parser.removeErrorListeners()
    parser.addErrorListener(listener)
    try:
        parser.entireExpression()
    except SyntaxError as exc:
        return str(exc)
    return None


def diff_outputs(expected: dict, actual: dict) -> str:
    lines_expected = json.dumps(mask(expected), indent=2, sort_keys=True).splitlines()
    lines_actual = json.dumps(mask(actual), indent=2, sort_keys=True).splitlines()
    return "\n".join(difflib.unified_diff(lines_expected, lines_actual, "expected", "actual", lineterm="", n=2))


def run_case(
    compiled: CompiledMapping,
    name: str,
    payload: bytes | str,
    *,
    expected: dict | None = None,
    assertions: tuple[str, ...] | list[str] = (),
    ignore_paths: tuple[str, ...] | list[str] = (),
    source_format: str | None = None,
    limits: Limits | None = None,
    registry: Registry | None = None,
) -> CaseOutcome:
    result = run_mapping(
        compiled, payload, source_format=source_format or None, limits=limits, now=PINNED_NOW, registry=registry
    )
    outcome = CaseOutcome(name, result)
    for error in result.errors:
        if error.fatal:
            where = f" at {error.where()}" if error.template else ""
            outcome.problems.append(f"{error.code}{where}: {error.message}")
    if result.output is None:
        return outcome
    if expected is not None:
        wanted, got = mask_paths(expected, ignore_paths), mask_paths(result.output, ignore_paths)
        if mask(wanted) != mask(got):
            outcome.problems.append("output differs from expected:\n" + diff_outputs(wanted, got))
    for expression in assertions:
        problem = check_assertion(result.output, expression)
        if problem:
            outcome.problems.append(problem)
    return outcome
