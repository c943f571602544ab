"""FHIRPath invariants (ElementDefinition.constraint): the frequent core ones natively, the rest with fhirpathpy.

fhirpathpy costs 30-60 µs per evaluation, more than validating a whole resource, so the invariants that run on most
resources (ext-1, dom-2..6, obs-6/7, bdl-*, per-1, qty-3 …) are Python functions here with the same meaning; a native
is used only when the definition's expression is the exact text it was written for (a profile that redefines a key
gets fhirpathpy). ele-1 is the walker's "no empty values" check; ref-1 is references.py's contained resolution.
tests/engine/validation/test_invariants.py checks that every native agrees with fhirpathpy on the test resources.
An expression fhirpathpy cannot parse or run (htmlChecks(), …) is skipped: our limit, never the instance's error.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from .fastpath import FallbackError, UnsupportedError, compile_expression, truth
from .natives import NATIVES, REQUIRES

log = logging.getLogger(__name__)
HANDLED_ELSEWHERE = frozenset({"ele-1", "ref-1"})  # the walker and references.py check these
BEST_PRACTICE = frozenset({"dom-6"})  # best-practice advice (a narrative): not reported, as for most validators


@dataclass(frozen=True)
class Invariant:
    key: str
    severity: str
    human: str
    expression: str
    context: str  # the element path the expression runs on (Observation, Patient.contact, Period)
    native: Callable[[dict, dict], bool] | None
    requires: str | None = None  # a member without which the invariant holds: objects lacking it skip the call

    def holds(self, node: object, resource: dict) -> bool:
        if self.native is not None:
            try:
                return self.native(node, resource)
            except FallbackError:
                pass  # a value only full FHIRPath can judge (dates compared, …): fhirpathpy decides this one
        return fhirpath_holds(self.expression, self.context, node, resource)


def compile_invariants(constraints, context: str) -> tuple[Invariant, ...]:
    compiled = []
    for constraint in constraints:
        key = constraint.get("key", "")
        expression = constraint.get("expression")
        if key in HANDLED_ELSEWHERE or key in BEST_PRACTICE or not expression:
            continue
        native = NATIVES.get(key)
        exact = native is not None and native[0] == expression
        function = native[1] if exact else _compiled(expression)
        severity = constraint.get("severity", "error")
        requires = REQUIRES.get(key) if exact else None
        where = _context(constraint.get("source", ""), context)
        compiled.append(Invariant(key, severity, constraint.get("human", ""), expression, where, function, requires))
    return tuple(compiled)


def _compiled(expression: str) -> Callable[[object, dict], bool] | None:
    """The expression compiled by fastpath.py, or None when it uses FHIRPath that compiler does not know."""
    if expression in _compiled_cache:
        return _compiled_cache[expression]
    stems, suffixes = _choice_names()
    try:
        closure = compile_expression(expression, stems, suffixes)
    except UnsupportedError:
        function = None
    else:

        def function(node: object, resource: dict) -> bool:
            return truth(closure([node], {"resource": resource, "this": [node]})) is not False

    _compiled_cache[expression] = function
    return function


_compiled_cache: dict[str, Callable | None] = {}
_choices: list[tuple[frozenset[str], frozenset[str]]] = []


def _choice_names() -> tuple[frozenset[str], frozenset[str]]:
    """Choice element stems (value, effective …) and type names as key suffixes (Quantity, DateTime …), so that
    `value` finds valueQuantity but `period` never finds periodUnit."""
    if not _choices:
        from mappings.engine.definitions import core

        stems, types = set(), set()
        for definition in core().structures.values():
            for element in definition.get("snapshot", {}).get("element", ()):
                if element.get("path", "").endswith("[x]"):
                    stems.add(element["path"].rsplit(".", 1)[-1][:-3])
                    types.update(entry.get("code", "") for entry in element.get("type", ()))
        _choices.append((frozenset(stems), frozenset(t[:1].upper() + t[1:] for t in types if t)))
    return _choices[0]


CORE = "http://hl7.org/fhir/StructureDefinition/"
GENERIC_SOURCES = frozenset({"Element", "BackboneElement", "Resource", "DomainResource"})


def _context(source: str, element_path: str) -> str:
    """What fhirpathpy evaluates the expression on: a data type's own invariant (ext-1 on Patient.extension, or on a
    sub-extension at Extension.extension) on its type, which fhirpathpy's model knows; others on the element path."""
    name = source[len(CORE) :] if source.startswith(CORE) else ""
    return name if name[:1].isupper() and "/" not in name and name not in GENERIC_SOURCES else element_path


_parsed: dict[str, object] = {}
QUIET = {"traceFn": lambda *args: None}  # trace() in an expression (dom-3, ref-1) would print to stdout
_failed: set[str] = set()
_lock = threading.Lock()


def _model():
    from fhirpathpy.models import models  # imported on first use: fhirpathpy is only needed for rarer invariants

    return models["r4"]


def fhirpath_holds(expression: str, context: str, node: object, resource: dict) -> bool:
    verdict = fhirpath_verdict(expression, context, node, resource)
    return True if verdict is None else verdict


def fhirpath_verdict(expression: str, context: str, node: object, resource: dict) -> bool | None:
    """fhirpathpy's verdict, or None when it cannot evaluate the expression here (a function it lacks, such as
    hasValue() or htmlChecks(), or one of its bugs): our limit, never the instance's error."""
    if expression in _failed:
        return None
    from fhirpathpy import apply_parsed_path, parse
    from fhirpathpy.engine.nodes import ResourceNode

    parsed = _parsed.get(expression)
    try:
        if parsed is None:
            with _lock:
                parsed = _parsed[expression] = parse(expression)
        base = context if "." in context or context[:1].isupper() else None
        data = ResourceNode.create_node(node, base) if base else node
        variables = {"resource": resource, "rootResource": resource}
        result = apply_parsed_path(data, parsed, variables, _model(), QUIET)
    except Exception as exc:  # noqa: BLE001 — fhirpathpy's gaps are not the instance's fault
        log.info("FHIRPath invariant skipped: %s (%s)", expression, str(exc)[:200])
        if str(exc).startswith("Not implemented"):  # it never will be: stop asking
            with _lock:
                _failed.add(expression)
        return None
    return not (result == [False] or result is False)
