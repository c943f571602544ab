"""compile_mapping and run_mapping: parse → render → post-process → validate, each stage timed and coded."""

from __future__ import annotations

import contextlib
import hashlib
import time
from bisect import bisect_right
from dataclasses import dataclass, field
from datetime import UTC, datetime

from jinja2 import Template, TemplateNotFound, TemplateSyntaxError, UndefinedError
from jinja2.exceptions import SecurityError

from .definitions import DefinitionsMissingError, Registry, core, core_loaded, using
from .environment import MappingEnvironment, build_environment, strip_markers
from .errors import ErrorCode, MappingError, operation_outcome
from .limits import Limits, current_budget, end_budget, start_budget
from .locate import locate_errors, needs_location, traced_environment
from .lookup import LookupTable
from .missing import MissingKeys
from .postprocess import postprocess
from .sources import SOURCE_FORMATS, parse_source
from .validate import validate_output


@dataclass(frozen=True)
class CompiledMapping:
    """A mapping ready to run many times: compile once per version, cache, reuse from any thread."""

    name: str
    template: Template
    environment: MappingEnvironment
    sources: dict[str, str]  # the root template and every snippet, by name
    lookup_tables: dict[str, LookupTable]
    source_format: str | None
    source_options: dict
    strict: bool
    timezone: str
    max_value_bytes: int
    content_hash: str
    calls_extension: bool = False  # extension() checks against the FHIR definitions: read them before the budget
    # Which clean-up parsed the last output (postprocess's `route`): a hint that orders the attempts, never changes
    # an answer, so threads may share it.
    route: dict = field(default_factory=dict, compare=False, repr=False)


@dataclass
class MappingResult:
    output: dict | None
    errors: list[MappingError]  # errors and warnings, in stage order
    timings: dict[str, float]  # milliseconds per stage and in total
    trace: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not any(error.fatal for error in self.errors)

    @property
    def issues(self) -> dict:
        """The errors and warnings as a FHIR OperationOutcome."""
        return operation_outcome(self.errors)


def _as_table(name: str, table: LookupTable | dict) -> LookupTable:
    return table if isinstance(table, LookupTable) else LookupTable.from_dict(name, table)


def compile_mapping(
    template: str,
    *,
    name: str = "template.j2",
    snippets: dict[str, str] | None = None,
    lookup_tables: dict[str, LookupTable | dict] | None = None,
    source_format: str | None = None,
    source_options: dict | None = None,
    strict: bool = False,
    timezone: str = "UTC",
    limits: Limits | None = None,
) -> CompiledMapping:
    """Compile a template with its snippet library (names like `snippets/hl7v2/datatypes.j2`) and lookup tables.
    Syntax errors, unknown snippets, include cycles and too-deep includes are refused here, with template and line."""
    limits = limits or Limits()
    if source_format is not None and source_format not in SOURCE_FORMATS:
        raise MappingError(ErrorCode.SRC_UNKNOWN_FORMAT, f"Unknown source format '{source_format}'.")
    sources = {**(snippets or {}), name: template}
    tables = {table_name: _as_table(table_name, table) for table_name, table in (lookup_tables or {}).items()}
    env = build_environment(
        sources, strict=strict, max_value_bytes=limits.max_value_bytes, lookup_tables=tables, timezone=timezone
    )
    root = _load(env, name, None)
    _check_includes(env, name, limits.max_include_depth)
    digest = hashlib.sha256()
    for key in sorted(sources):
        digest.update(f"{key}\0{sources[key]}\0".encode())
    for key in sorted(tables):
        digest.update(f"{key}\0{sorted(tables[key].entries.items(), key=repr)!r}\0{tables[key].default!r}".encode())
    return CompiledMapping(
        name=name,
        template=root,
        environment=env,
        sources=sources,
        lookup_tables=tables,
        source_format=source_format,
        source_options=dict(source_options or {}),
        strict=strict,
        timezone=timezone,
        max_value_bytes=limits.max_value_bytes,
        content_hash=digest.hexdigest(),
        calls_extension=any("extension(" in text for text in sources.values()),
    )


def _load(env: MappingEnvironment, name: str, importer: tuple[str, int] | None) -> Template:
    try:
        return env.get_template(name)
    except TemplateSyntaxError as exc:
        raise MappingError(
            ErrorCode.TPL_SYNTAX, f"Template syntax error: {exc.message}", template=exc.name or name, line=exc.lineno
        ) from exc
    except TemplateNotFound as exc:
        template, line = importer or (None, None)
        raise MappingError(
            ErrorCode.TPL_UNKNOWN_SNIPPET, exc.message or str(exc), template=template, line=line
        ) from exc


def _check_includes(env: MappingEnvironment, root: str, max_depth: int) -> None:
    """Walk the import graph from the root: every snippet must exist and compile; no cycles; bounded depth."""

    def visit(name: str, chain: list[str]) -> None:
        for target, line in env.imports.get(name, []):
            if target in chain or target == name:
                cycle = " → ".join([*chain, name, target])
                raise MappingError(
                    ErrorCode.TPL_INCLUDE_CYCLE,
                    f"Snippets import each other in a cycle: {cycle}.",
                    template=name,
                    line=line,
                )
            if len(chain) + 1 >= max_depth:
                raise MappingError(
                    ErrorCode.LIM_INCLUDE_DEPTH,
                    f"Snippet imports nest deeper than {max_depth} levels ({' → '.join([*chain, name, target])}).",
                    template=name,
                    line=line,
                )
            _load(env, target, (name, line))
            visit(target, [*chain, name])

    visit(root, [])


def _location(exc: BaseException, names: dict[str, str]) -> tuple[str | None, int | None]:
    """The innermost template frame in a traceback Jinja has rewritten to template names and lines."""
    found: tuple[str | None, int | None] = (None, None)
    tb = exc.__traceback__
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if filename in names:
            found = (filename, tb.tb_lineno)
        tb = tb.tb_next
    return found


def _classify(exc: BaseException) -> MappingError:
    if isinstance(exc, MappingError):
        return exc
    if isinstance(exc, UndefinedError):
        return MappingError(ErrorCode.RND_UNDEFINED, f"{exc.message}. Check the name, or guard it with `is defined`.")
    if isinstance(exc, SecurityError):
        return MappingError(ErrorCode.RND_SANDBOX, f"Not allowed in a mapping template: {exc}.")
    if isinstance(exc, RecursionError):
        return MappingError(
            ErrorCode.LIM_RECURSION, "Macros call themselves too deeply (endless recursion?) and were stopped."
        )
    if isinstance(exc, MemoryError):
        return MappingError(ErrorCode.LIM_VALUE_SIZE, "The template tried to build a value too large for memory.")
    if isinstance(exc, (TypeError, ValueError, KeyError, IndexError, AttributeError, ZeroDivisionError)):
        return MappingError(ErrorCode.RND_TYPE, f"{type(exc).__name__}: {exc}")
    return MappingError(ErrorCode.RND_UNEXPECTED, f"Unexpected {type(exc).__name__} while rendering: {exc}")


def _render(compiled: CompiledMapping, context: dict, limits: Limits, template: Template | None = None) -> str:
    chunks: list[str] = []
    size = 0
    try:
        for chunk in (template or compiled.template).generate(context):
            chunks.append(chunk)
            size += len(chunk)
            if size > limits.max_output_bytes:
                raise MappingError(
                    ErrorCode.LIM_OUTPUT_BYTES,
                    f"The output grew past {limits.max_output_bytes:,} bytes and was stopped.",
                )
    except Exception as exc:  # the render stage boundary: every failure leaves with a code and a template line
        error = _classify(exc)
        template_name, line = _location(exc, compiled.sources)
        raise error.located(template_name, line) from exc
    return "".join(chunks)


def _traced_render(
    compiled: CompiledMapping, context: dict, limits: Limits
) -> tuple[str, list[tuple[int, str, int]]] | None:
    """Render again with line markers, under a fresh budget: (the text without markers, (offset, template, line) of
    each marked piece). None if the traced run fails; the plain one rendered, so its errors stand without a line."""
    token = start_budget(limits)
    try:
        env = traced_environment(compiled)
        marked = _render(compiled, context, limits, env.get_template(compiled.name))
    except MappingError:
        return None
    finally:
        end_budget(token)
    return strip_markers(marked, env.marker_places)


def _locate_json_error(compiled: CompiledMapping, context: dict, limits: Limits, error: MappingError) -> None:
    """Render again with line markers and point the JSON error at the template line that wrote that text."""
    traced = _traced_render(compiled, context, limits)
    if traced is None or error.offset is None or not traced[1]:
        return
    _, spans = traced
    index = bisect_right([start for start, _, _ in spans], error.offset) - 1
    if index >= 0:
        _, template_name, line = spans[index]
        error.located(template_name, line)


def _load_definitions_before_budget(compiled: CompiledMapping) -> None:
    """The first run in a process of a template that calls extension() would read the FHIR definitions (about a
    second; several on a loaded machine) inside the render's time budget, and could be stopped for it: read them
    before the budget starts. A checkout without them fails at the extension() call, as before."""
    if core_loaded() or not compiled.calls_extension:
        return
    with contextlib.suppress(DefinitionsMissingError):
        core()


def run_mapping(
    compiled: CompiledMapping,
    payload: bytes | str,
    *,
    source_format: str | None = None,
    source_options: dict | None = None,
    limits: Limits | None = None,
    validate: bool = True,
    variables: dict | None = None,
    now: datetime | None = None,
    locate_issues: bool = False,
    registry: Registry | None = None,
) -> MappingResult:
    """Run a compiled mapping on one payload. Never raises for bad input or a bad template: every failure is in
    `result.errors` (and `result.issues` as an OperationOutcome), with `result.output` None on error.

    `locate_issues=True` (the editor) also points validation issues and merge warnings at the template line that
    wrote their element, by rendering once more with line markers when there are such issues (timed as "locate").
    `registry` is what validation resolves profiles against (uploads layered on the core; None: the core)."""
    limits = limits or Limits()
    source_format = source_format or compiled.source_format or "json"
    options = {**compiled.source_options, **(source_options or {})}
    timings: dict[str, float] = {}
    errors: list[MappingError] = []
    trace: dict = {"source_format": source_format, "mapping": compiled.name}
    started = time.perf_counter()
    mark = started
    output = None

    def lap(stage: str) -> None:
        nonlocal mark
        now_ = time.perf_counter()
        timings[stage] = round((now_ - mark) * 1000, 3)
        mark = now_

    _load_definitions_before_budget(compiled)
    token = start_budget(limits)
    budget = current_budget()
    try:
        msg = parse_source(payload, source_format, options=options, limits=limits)
        lap("parse")
        budget.lookups = MissingKeys(compiled.environment, msg, source_format)
        run_time = (now or datetime.now(UTC)).astimezone(UTC)
        context = {
            "msg": msg,
            "source_format": source_format,
            "vars": variables or {},
            "now": run_time.isoformat(timespec="seconds").replace("+00:00", "Z"),
        }
        with using(registry):  # template helpers (extension()) see uploaded definitions too
            text = _render(compiled, context, limits)
        lap("render")
        trace["rendered_bytes"] = len(text)
        try:
            output, warnings = postprocess(text, compiled.route)
        except MappingError as error:
            if error.error is ErrorCode.PST_NOT_JSON:
                _locate_json_error(compiled, context, limits, error)
                trace["rendered"] = text
            raise
        lap("postprocess")
        errors.extend(warnings)
        if validate:
            errors.extend(validate_output(output, registry=registry))
            lap("validate")
        if locate_issues and any(needs_location(error) for error in errors):
            with using(registry):
                traced = _traced_render(compiled, context, limits)
            if traced is not None:
                locate_errors(errors, text, *traced)
            lap("locate")
        if output.get("resourceType") == "Bundle":
            trace["resources"] = len(output.get("entry") or [])
    except MappingError as error:
        errors.append(error)
        output = None
    finally:
        end_budget(token)
    errors[0:0] = budget.warnings  # render warnings (dropped values) come first, in the order they happened
    timings["total"] = round((time.perf_counter() - started) * 1000, 3)
    return MappingResult(output=output, errors=errors, timings=timings, trace=trace)
