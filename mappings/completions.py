"""What the template editor completes: filters, functions and tests with their documentation (from the engine's own
registries), snippet macros with their arguments, lookup tables, HL7 v2 segments and fields, and FHIR element names.
Computed from the code and the stored library, so completion never lists something the engine does not have."""

from __future__ import annotations

import functools
import inspect
import pkgutil
import re

from jinja2 import nodes
from jinja2.exceptions import TemplateSyntaxError

from mappings.engine.environment import build_environment
from mappings.hl7v2_dictionary import hl7v2_segments
from mappings.models import LookupTable, Snippet

HIDDEN = {"loop_guard", "concat_guard"}  # the sandbox's own plumbing, inserted by the compiler


def _doc(function: object) -> str:
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


@functools.cache
def engine_names() -> dict[str, list[dict]]:
    env = build_environment({}, strict=False, max_value_bytes=1, lookup_tables={}, timezone="UTC")
    filters = [
        {"name": name, "signature": _signature(name, function, drop_first=True), "doc": _doc(function)}
        for name, function in sorted(env.filters.items())
        if name not in HIDDEN
    ]
    functions = [
        {"name": name, "signature": _signature(name, value, drop_first=False), "doc": _doc(value)}
        for name, value in sorted(env.globals.items())
        if callable(value)
    ]
    tests = [{"name": name, "doc": _doc(function)} for name, function in sorted(env.tests.items())]
    return {"filters": filters, "globals": functions, "tests": tests}


@functools.lru_cache(maxsize=256)
def _macros(text: str) -> list[dict]:
    env = build_environment({}, strict=False, max_value_bytes=1, lookup_tables={}, timezone="UTC")
    try:
        tree = env.parse(text)
    except TemplateSyntaxError:
        return []
    lines = text.splitlines()
    found = []
    for macro in tree.find_all(nodes.Macro):
        found.append(
            {
                "name": macro.name,
                "args": [arg.name for arg in macro.args],
                "doc": _comment_above(lines, macro.lineno),
                "line": macro.lineno,
            }
        )
    return found


def _comment_above(lines: list[str], lineno: int) -> str:
    """The {# … #} comment that ends on the line just above a macro (the library's convention for its docs)."""
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
    snippets = [
        {"name": name, "macros": _macros(text)}
        for name, text in Snippet.objects.order_by("name").values_list("name", "text")
    ]
    tables = [
        {"name": name, "description": description}
        for name, description in LookupTable.objects.order_by("name").values_list("name", "description")
    ]
    return {"snippets": snippets, "lookup_tables": tables}


def hl7v2_names(segment_ids: list[str]) -> dict:
    """Every segment id with its title; fields and components only for the segments asked for (all are 830 KB)."""
    segments = hl7v2_segments()
    return {
        "segments": [{"id": key, "description": value["description"]} for key, value in sorted(segments.items())],
        "fields": {key: segments[key]["fields"] for key in segment_ids if key in segments},
    }


@functools.cache
def fhir_resource_types() -> list[str]:
    """Resource types the validator (fhir.resources R4B) has a model for."""
    from fhir.resources import R4B
    from fhir.resources.R4B.resource import Resource

    from mappings.engine.validate import model_class

    names = []
    for module in pkgutil.iter_modules(R4B.__path__):
        for candidate in _class_names(module.name):
            model = model_class(candidate)
            if model is not None and issubclass(model, Resource) and candidate not in names:
                names.append(candidate)
    return sorted(names)


def _class_names(module_name: str) -> list[str]:
    # Module names are lower-case resource names (allergyintolerance); the class is found case-insensitively.
    import importlib

    module = importlib.import_module(f"fhir.resources.R4B.{module_name}")
    return [name for name in vars(module) if name.lower() == module_name]


PRIMITIVE = re.compile(r"Annotated\[[^,]+, (\w+)\(")
COMPLEX = re.compile(r"(\w+)Type\b")
PYTHON_TYPES = {"bool": "boolean", "str": "string", "int": "integer", "float": "decimal"}


def _type_name(annotation: str) -> str:
    for pattern in (PRIMITIVE, COMPLEX):
        match = pattern.search(annotation)
        if match:
            name = match.group(1)
            return name[0].lower() + name[1:] if pattern is PRIMITIVE else name
    bare = annotation.split(" ", 1)[0].rsplit(".", 1)[-1]
    return PYTHON_TYPES.get(bare, bare)


@functools.cache
def fhir_elements(resource_type: str) -> list[dict]:
    """The JSON element names of a resource type in FHIR's order, with type, cardinality and required codes."""
    from mappings.engine.validate import model_class

    model = model_class(resource_type)
    if model is None:
        return []
    fields = {
        info.alias or name: info
        for name, info in model.model_fields.items()
        if not (info.alias or name).startswith("_") and not name.endswith("__ext")
    }
    order = [name for name in model.elements_sequence() if name in fields]
    order += [name for name in fields if name not in order]
    elements = []
    for name in order:
        info = fields[name]
        annotation = repr(info.annotation)
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        element = {
            "name": name,
            "type": _type_name(annotation),
            "cardinality": f"{1 if info.is_required() else 0}..{'*' if 'List[' in annotation else 1}",
        }
        if extra.get("enum_values"):
            element["codes"] = list(extra["enum_values"])
        elements.append(element)
    return elements
