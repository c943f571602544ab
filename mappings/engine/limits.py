"""Explicit, per-run limits: a template is untrusted code, so every way it can spend time or memory is bounded.

`Limits` is frozen and passed in by the caller (the engine reads no settings). `Budget` is the running account of
one run; the sandbox, the loop guard and the output writer charge it, and it raises a coded FS-LIM error when spent.
It lives in a context variable so concurrent runs in threads or asyncio tasks each see their own.
"""

from __future__ import annotations

import contextvars
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from .errors import ErrorCode, MappingError


@dataclass(frozen=True)
class Limits:
    max_input_bytes: int = 10 * 1024 * 1024
    render_timeout_ms: int = 5_000
    max_loop_iterations: int = 200_000  # all loops of one run together, macros and snippets included
    max_output_bytes: int = 20 * 1024 * 1024
    max_include_depth: int = 10  # nesting of {% import %}/{% include %}, checked when compiling
    max_value_bytes: int = 1024 * 1024  # the largest string/list one `*` or `**` may build


class Budget:
    """What one run has left. Cheap to charge: loops call `tick()` once per iteration."""

    __slots__ = ("calls", "deadline", "ids", "iterations", "limits", "lookups", "warned", "warnings")

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.deadline = time.perf_counter() + limits.render_timeout_ms / 1000
        self.iterations = 0
        self.calls = 0  # calls the template made (environment.call, a macro's first lines): clock read every 16th
        self.warnings: list[MappingError] = []  # filters report dropped values here
        self.warned: set[object] = set()  # the `once` keys of warnings already given
        self.lookups = None  # the run's missing-key check (engine/missing.py), set once the source is parsed
        self.ids: dict[str, str] = {}  # fhir_id's answers in this run: a clinician named in 2 places is hashed once

    def tick(self) -> None:
        self.iterations += 1
        if self.iterations > self.limits.max_loop_iterations:
            self._too_many_iterations()
        if self.iterations & 63 == 0:
            self.check_time()

    def charge(self, iterations: int) -> None:
        """`tick()` for several iterations at once (a loop over items counted beforehand). Like `tick()`, reads the
        clock once per 64 iterations: when the count passes a multiple of 64 (most loops over HL7 v2 fields hold one
        or two items)."""
        before = self.iterations
        self.iterations = after = before + iterations
        if after > self.limits.max_loop_iterations:
            self._too_many_iterations()
        if after >> 6 != before >> 6:
            self.check_time()

    def _too_many_iterations(self) -> None:
        raise MappingError(
            ErrorCode.LIM_LOOP_ITERATIONS,
            f"The template looped more than {self.limits.max_loop_iterations:,} times in one run. Check for a "
            "loop over the wrong collection, or raise the mapping's loop limit.",
        )

    def check_time(self) -> None:
        if time.perf_counter() > self.deadline:
            raise MappingError(
                ErrorCode.LIM_RENDER_TIME,
                f"Rendering took longer than {self.limits.render_timeout_ms:,} ms and was stopped. Look for deep "
                "recursion or loops over large inputs, or raise the mapping's render time limit.",
            )

    def warn(self, error: MappingError, once: object = None) -> None:
        """Keep a warning; with `once` (e.g. its template line and key), only the first warning with that key."""
        if once is not None:
            if once in self.warned:
                return
            self.warned.add(once)
        error.severity = "warning"
        if len(self.warnings) < 100:  # a bad column repeated over 10k rows needn't give 10k warnings
            self.warnings.append(error)


def template_line_here(env) -> tuple[str | None, int | None]:
    """The template and line being rendered right now (innermost), for warnings raised by filters. Only called on
    the rare warning path: it walks the Python stack and maps generated-code lines back to template lines."""
    frame = sys._getframe(0)  # this function's own frame, or compiled (accelerated.py) the innermost Python one
    while frame is not None:
        name = frame.f_code.co_filename
        if name in env.loader.sources:
            return name, env.get_template(name).get_corresponding_lineno(frame.f_lineno)
        frame = frame.f_back
    return None, None


_current: contextvars.ContextVar[Budget | None] = contextvars.ContextVar("fhir_studio_budget", default=None)


# The running budget, or None outside a run: the context variable's own get, with no Python call around it, because
# every call a template makes (environment.call), every loop and every missed lookup asks for it.
current_budget: Callable[[], Budget | None] = _current.get


def start_budget(limits: Limits) -> contextvars.Token:
    return _current.set(Budget(limits))


def end_budget(token: contextvars.Token) -> None:
    _current.reset(token)
