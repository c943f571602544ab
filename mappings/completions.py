"""What the template editor completes: filters, functions and tests with their documentation (from the engine's own
registries), snippet macros with their arguments, lookup tables, HL7 v2 segments and fields, and FHIR element names.
Computed from the code and the stored library, so completion never lists something the engine does not have.

Everything static is computed once per process (functools.cache) and only when first asked for: HL7 v2.5 tables
from hl7apy take ~50 ms; FHIR types and elements come from the R4 definitions registry (read once, ~1 s)."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Container

import jinja2.defaults
import jinja2.filters
import jinja2.tests
from jinja2 import nodes
from jinja2.exceptions import TemplateSyntaxError

from mappings.engine.environment import build_environment
from mappings.hl7v2_dictionary import hl7v2_segments
from mappings.models import LookupTable, Snippet

PARTS = ("engine", "library", "hl7v2", "fhir", "extensions")
HIDDEN = {"loop_guard", "concat_guard"}  # the sandbox's own plumbing, inserted by the compiler
HL7V2_VERSION = "2.5"


def completions(*, part: str | None, segments: list[str], resources: list[str]) -> dict:
    """The completion answer. Without `part` every group but FHIR comes back; FHIR elements come for the resource
    types named, HL7 v2 fields for the segments named (fields of all 150 segments would be 830 KB)."""
    answer: dict = {}
    if part in (None, "engine"):
        answer.update(engine_names())
    if part in (None, "library"):
        answer.update(library_names())
    if part in (None, "hl7v2"):
        answer["hl7v2"] = hl7v2_names(segments)
    if part == "extensions":  # only when asked for: the editor reads them once it is inside extension("…
        answer["extensions"] = extension_names()
    if part == "fhir" or resources:
        answer["fhir"] = {
            # The type list costs ~1.5 s the first time in a process, so it comes only when asked for by itself.
            "resource_types": fhir_resource_types() if part == "fhir" and not resources else [],
            "elements": {name: fhir_elements(name) for name in resources},
        }
    return answer


# --- the engine's filters, functions and tests ------------------------------------------------------------------------


def _doc(function: object) -> str:
    """The first paragraph of the docstring, on one line."""
    text = inspect.getdoc(function) or ""
    return text.strip().split("\n\n")[0].replace("\n", " ")


def _signature(name: str, function: object, *, drop_first: bool) -> str:
    try:
        parameters = list(inspect.signature(function).parameters.values())
    except (TypeError, ValueError):
        return f"{name}(…)"
    if parameters and parameters[0].name in {"environment", "context", "eval_ctx", "env"}:
        parameters = parameters[1:]
    if drop_first and parameters:
        parameters = parameters[1:]  # a filter's first argument is the value before the |
    return f"{name}({', '.join(str(parameter) for parameter in parameters)})"


def _environment():
    return build_environment({}, strict=False, max_value_bytes=1, lookup_tables={}, timezone="UTC")


def _origin(name: str, builtins: Container[str]) -> str:
    """ "studio" for the studio's FHIR helpers, "jinja" for Jinja's generic built-ins (even where the studio wraps
    one, like `tojson` or `center`, to bound its output)."""
    return "jinja" if name in builtins else "studio"


def _described(name: str, function: Callable, builtins: Container[str], drop_first: bool) -> dict:
    return {
        "name": name,
        "signature": _signature(name, function, drop_first=drop_first),
        "doc": _doc(function),
        "origin": _origin(name, builtins),
    }


def _studio_first(items: list[dict]) -> list[dict]:
    return sorted(items, key=lambda item: (item["origin"] != "studio", item["name"]))


@functools.cache
def engine_names() -> dict[str, list[dict]]:
    """Jinja's built-ins and the studio's FILTERS, GLOBALS and TESTS, exactly as a template's environment has them:
    the studio's FHIR helpers first, then Jinja's generic ones, each marked with its `origin`."""
    env = _environment()

    filters = [
        _described(name, function, jinja2.filters.FILTERS, drop_first=True)
        for name, function in env.filters.items()
        if name not in HIDDEN
    ]
    functions = [
        _described(name, value, jinja2.defaults.DEFAULT_NAMESPACE, drop_first=False)
        for name, value in env.globals.items()
        if callable(value)
    ]
    tests = [
        {"name": name, "doc": _doc(function), "origin": _origin(name, jinja2.tests.TESTS)}
        for name, function in env.tests.items()
    ]
    return {"filters": _studio_first(filters), "globals": _studio_first(functions), "tests": _studio_first(tests)}


# --- the library: snippet macros and lookup tables --------------------------------------------------------------------


def _default_text(node: nodes.Expr) -> str:
    """A macro argument's default as written in the snippet (constants and empty containers; … for the rest)."""
    if isinstance(node, nodes.Const):
        value = node.value
        return f'"{value}"' if isinstance(value, str) else repr(value)
    if isinstance(node, nodes.List | nodes.Tuple | nodes.Dict) and not node.items:
        return "{}" if isinstance(node, nodes.Dict) else "[]"
    return "…"


@functools.lru_cache(maxsize=256)
def macros_in(text: str) -> tuple[dict, ...]:
    """The macros a snippet defines, parsed with Jinja's own parser: name, argument names, a signature with the
    defaults, the line, and the {# … #} comment right above as documentation (the library's convention)."""
    try:
        tree = _environment().parse(text)
    except TemplateSyntaxError:
        return ()
    lines = text.splitlines()
    found = []
    for macro in tree.find_all(nodes.Macro):
        args = [arg.name for arg in macro.args]
        defaults = [None] * (len(args) - len(macro.defaults)) + list(macro.defaults)
        shown = [
            name if default is None else f"{name}={_default_text(default)}"
            for name, default in zip(args, defaults, strict=True)
        ]
        found.append(
            {
                "name": macro.name,
                "args": args,
                "signature": f"{macro.name}({', '.join(shown)})",
                "doc": _comment_above(lines, macro.lineno),
                "line": macro.lineno,
            }
        )
    return tuple(found)


def _comment_above(lines: list[str], lineno: int) -> str:
    """The {# … #} comment that ends on the line just above a macro."""
    end = lineno - 2
    if end < 0 or not lines[end].rstrip().endswith("#}"):
        return ""
    start = end
    while start > max(0, end - 8) and not lines[start].lstrip().startswith("{#"):
        start -= 1
    if not lines[start].lstrip().startswith("{#"):
        return ""
    text = " ".join(line.strip() for line in lines[start : end + 1])
    return text.removeprefix("{#-").removeprefix("{#").removesuffix("-#}").removesuffix("#}").strip()


def library_names() -> dict[str, list[dict]]:
    """Two queries whatever the size of the library; macros are parsed once per distinct snippet text."""
    snippets = [
        {"name": name, "description": description, "macros": list(macros_in(text))}
        for name, description, text in Snippet.objects.order_by("name").values_list("name", "description", "text")
    ]
    tables = [
        {"name": name, "description": description}
        for name, description in LookupTable.objects.order_by("name").values_list("name", "description")
    ]
    return {"snippets": snippets, "lookup_tables": tables}


# --- HL7 v2 -----------------------------------------------------------------------------------------------------------


def hl7v2_names(segment_ids: list[str]) -> dict:
    """Every v2.5 segment id with its title; fields and components only for the segments asked for."""
    segments = hl7v2_segments()
    return {
        "version": HL7V2_VERSION,
        "segments": [{"id": key, "description": value["description"]} for key, value in sorted(segments.items())],
        "fields": {key: segments[key]["fields"] for key in segment_ids if key in segments},
    }


# --- FHIR (the R4 definitions the validator compiles) -----------------------------------------------------------------


@functools.cache
def fhir_resource_types() -> list[str]:
    """Every R4 resource type, from the shipped definitions (the R4-only ones included)."""
    from mappings.engine.definitions import core

    return sorted(core().resource_types())


@functools.cache
def fhir_elements(resource_type: str) -> list[dict]:
    """The JSON element names of a resource type in FHIR's order, with type, cardinality and required codes."""
    from mappings.engine.definitions import core
    from mappings.engine.validation.primitives import type_code_of
    from mappings.engine.validation.terminology import expand

    registry = core()
    if resource_type not in registry.resource_types():
        return []
    snapshot = registry.structure(resource_type)["snapshot"]["element"]
    elements = []
    for definition in snapshot[1:]:
        parent, _, name = definition["path"].rpartition(".")
        if parent != resource_type or ":" in definition.get("id", ""):
            continue
        maximum = "1" if definition.get("max") == "1" else "*"
        cardinality = f"{definition.get('min', 0)}..{maximum}"
        binding = definition.get("binding") or {}
        codes = []
        if binding.get("strength") == "required" and binding.get("valueSet"):
            expansion = expand(registry, binding["valueSet"].split("|", 1)[0])
            codes = list(expansion.ordered) if expansion is not None else []
        for entry in definition.get("type") or [{"code": "BackboneElement"}]:
            type_name = "id" if name == "id" else type_code_of(entry)
            key = name[:-3] + type_name[0].upper() + type_name[1:] if name.endswith("[x]") else name
            element = {"name": key, "type": type_name, "cardinality": cardinality}
            if codes and type_name == "code":
                element["codes"] = codes
            elements.append(element)
    return elements


# --- extension definitions (mappings.profiles: the core's, US Core's and uploaded ones) -------------------------------


def extension_names() -> list[dict]:
    """Every known extension definition's URL with the value types it allows ([] for a complex one), uploaded ones
    first: what extension("…", type, value) takes."""
    from mappings.profiles import extension_value_types, studio_registry, summaries

    registry = studio_registry()
    return [
        {
            "url": row.url,
            "name": row.title or row.name,
            "types": extension_value_types(row.url, registry) or [],
            "source": row.source,
        }
        for row in summaries(resource_type="StructureDefinition", type_name="Extension")
    ]
