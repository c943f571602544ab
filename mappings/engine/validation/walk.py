"""The walk: a parsed JSON resource checked against its compiled TypeSpec, element by element, in one pass.

Paths are FHIRPath as the pipeline locates them (Bundle.entry[2].resource.code.coding[0].system); a primitive's
`_element` object reports at the element's own path. Strings for paths are only built where the walk descends into
an object or finds an issue.
"""

from __future__ import annotations

import difflib

from orjson import dumps

from mappings.engine.errors import ErrorCode

from .compile import COMPLEX, PRIMITIVE, RESOURCE, ElementSpec, TypeSpec
from .patterns import contains, equals
from .primitives import MAX_STRING, describe
from .references import BundleScope, check_reference, resolve_bundle, resolve_local
from .slicing import check_slices
from .terminology import check_code, check_codings

STRUCTURE = ErrorCode.VAL_STRUCTURE
# Sizes that keep the caches small enough to stay in the CPU's cache: a big set of one-off values (ids, timestamps)
# made every look-up a memory access and warm passes slower than cold ones. The first values seen stay.
VALID_CACHE_SIZE = 4096  # strings per primitive type; past it, new strings are checked every time
MEMO_SIZE = 4096  # values per memoised data type
MEMO_KEY_SIZE = 2048  # bytes: a bigger value (an extension holding an attachment) is walked each time
# References whose check depends on where the value is (the resource's contained ones, the Bundle's fullUrls);
# Type/id and absolute ones are checked by their text and the element alone, so a value holding them can be memoised.
LOCAL, URN = b'"reference":"#', b'"reference":"urn:'
EMPTY_OBJECT = "is an empty object (ele-1: FHIR has no empty values, leave the element out)"


def check_resource(node: object, path: str, run, *, contained: bool = False, profiles=()) -> None:
    """A resource at `path`: by its own resourceType, with its meta.profile and the profiles asked for."""
    if type(node) is not dict:
        run.add(STRUCTURE, path, f"must be a resource (a JSON object with a resourceType), not {describe(node)}.")
        return
    resource_type = node.get("resourceType")
    spec = run.compiler.types.get(resource_type) if type(resource_type) is str else None
    if (spec is None or not spec.ready) and type(resource_type) is str:
        spec = run.compiler.type_spec(resource_type)
    if spec is None or spec.resource_type is None:
        run.add(
            ErrorCode.VAL_UNKNOWN_TYPE,
            path,
            f"{resource_type!r} is not an FHIR R4 resource type."
            if resource_type is not None
            else "has no resourceType: every resource names its type.",
        )
        return
    outer_resource, outer_scope, outer_bundle = run.resource, run.scope, run.bundle
    run.resource = node
    if not contained:
        run.scope = []  # its local (#id) references
    if resource_type == "Bundle":
        run.bundle = BundleScope(node)
    try:
        (spec.gen or install(spec, run.compiler))(node, path, run)  # walk(), one call less per resource
        for url in profiles:
            _profile(node, url, path, run, explicit=True)
        meta = node.get("meta")
        if type(meta) is dict and type(meta.get("profile")) is list:
            for index, url in enumerate(meta["profile"]):
                if type(url) is str:
                    _profile(node, url, f"{path}.meta.profile[{index}]", run, explicit=False, root=path)
        if not contained and run.scope:
            resolve_local(run, node, run.scope)
        if resource_type == "Bundle":
            resolve_bundle(run, run.bundle)
    finally:
        run.resource, run.scope, run.bundle = outer_resource, outer_scope, outer_bundle


def _profile(node: dict, url: str, where: str, run, *, explicit: bool, root: str | None = None) -> None:
    spec = run.compiler.profile_spec(url)
    wanted = url.partition("|")[2]
    loaded = (run.registry.structure(url) or {}).get("version") if spec is not None else None
    if spec is not None and wanted and loaded and wanted != loaded:
        run.add(
            ErrorCode.VAL_UNKNOWN_PROFILE,
            where,
            f"names version {wanted} of {url.partition('|')[0]}, but version {loaded} is loaded: it was not checked.",
            severity="error" if explicit else "warning",
        )
        return
    if spec is None:
        run.add(
            ErrorCode.VAL_UNKNOWN_PROFILE,
            where,
            f"names the profile {url}, which is not loaded: upload it (or its IG package) to validate against it.",
            severity="error" if explicit else "warning",
        )
        return
    if spec.resource_type is not None and spec.resource_type != node.get("resourceType"):
        run.add(STRUCTURE, where, f"the profile {url} is for {spec.resource_type}, not {node.get('resourceType')}.")
        return
    walk(node, spec, root or where, run)


def walk(node: dict, spec: TypeSpec, path: str, run) -> None:
    # Each spec's walker is generated once (checkers.py), the first time a value of it is walked.
    (spec.gen or install(spec, run.compiler))(node, path, run)


def install(spec: TypeSpec, compiler):
    """The spec's walker: generated source, or generic_walk where the compiler asks for it (tests compare them)."""
    from .checkers import generate

    spec.gen = generate(spec, compiler)
    return spec.gen


def generic_walk(node: dict, spec: TypeSpec, path: str, run) -> None:
    """The walk as plain code: what generated walkers do, and where they fall back to. Tests compare the two."""
    memo = spec.memo
    if memo is None:
        _walk(node, spec, path, run)
        return
    # A data type value seen valid before (same text) is valid again, unless it holds a reference resolved in
    # context (#id, urn:uuid:): its serialisation is the key. One with an issue is never remembered.
    try:
        key = dumps(node)
    except TypeError:
        key = LOCAL  # not serialisable: never remembered
    if memo.get(key) == ():
        return
    before = len(run.trail)
    _walk(node, spec, path, run)
    room = len(key) <= MEMO_KEY_SIZE and len(memo) < MEMO_SIZE
    if len(run.trail) == before and LOCAL not in key and URN not in key and room:
        memo[key] = ()


def _walk(node: dict, spec: TypeSpec, path: str, run) -> None:
    # The common cases (a cached-valid string, a plain complex value) first; member() does every other one.
    elements = spec.elements
    choices = None
    for key, value in node.items():
        element = elements.get(key)
        if element is not None:
            if element.simple and type(value) is not list:
                if type(value) is str and (value in element.valid or (element.text and 0 < len(value) <= MAX_STRING)):
                    continue
                _primitive(node, key, value, element, f"{path}.{key}", run, None)
                continue
            if element.plain and type(value) is dict and (len(value) > 1 or "id" not in value):
                walk(value, element.spec, f"{path}.{key}", run)
                continue
        choices = member(node, key, value, element, spec, path, run, choices)
    finish(node, spec, path, run)


def member(node: dict, key: str, value: object, element, spec: TypeSpec, path: str, run, choices):
    """One member of an object, any case: an unknown or `_shadow` key, a choice, then its value. Returns the
    choice keys seen so far (two keys of one value[x] are an error)."""
    if element is None:
        if key[:1] == "_":
            _shadow(node, key, value, spec, path, run)
        elif key != "resourceType" or spec.resource_type is None:
            _unknown(key, spec, path, run)
        return choices
    if element.choice is not None:
        choices = _choice(choices, element.choice, key, path, run)
    member_value(node, key, value, element, spec, path, run)
    return choices


def member_value(node: dict, key: str, value: object, element: ElementSpec, spec: TypeSpec, path: str, run) -> None:
    kind = element.kind
    if element.array:
        malformed = type(value) is not list or not value or (element.max is not None and len(value) > element.max)
        if malformed and not _array_shape(value, element, spec, f"{path}.{key}", run):
            return
        where = f"{path}.{key}"
        if kind == PRIMITIVE:
            valid, fast = element.valid, not element.rules
            for index, item in enumerate(value):
                if fast and type(item) is str and item in valid:
                    continue
                _primitive(node, key, item, element, f"{where}[{index}]", run, index)
        elif kind == COMPLEX and not element.extras:
            inner = element.spec
            for index, item in enumerate(value):
                if type(item) is dict and (len(item) > 1 or (item and "id" not in item)):
                    walk(item, inner, f"{where}[{index}]", run)
                else:
                    check_value(item, element, f"{where}[{index}]", run)
        else:
            for index, item in enumerate(value):
                check_value(item, element, f"{where}[{index}]", run)
        if element.slicing is not None:
            check_slices(run, element.slicing, value, where, _slice_checker(run))
    elif type(value) is list:
        run.add(STRUCTURE, f"{path}.{key}", "must be a single value, not an array.")
    elif element.max == 0:
        run.add(ErrorCode.VAL_CARDINALITY, f"{path}.{key}", f"is not allowed here ({spec.name} sets its maximum to 0).")
    elif kind == PRIMITIVE:
        if type(value) is str and value in element.valid and not element.rules:
            return
        _primitive(node, key, value, element, f"{path}.{key}", run, None)
    elif kind == COMPLEX and not element.extras and type(value) is dict and (len(value) > 1 or "id" not in value):
        walk(value, element.spec, f"{path}.{key}", run)
    else:
        check_value(value, element, f"{path}.{key}", run)


def finish(node: dict, spec: TypeSpec, path: str, run) -> None:
    """After the members: required ones, then the type's invariants."""
    if spec.required:
        required(node, spec, path, run)
    if spec.always:
        _invariants(spec.always, node, path, run)
    if spec.keyed:
        for member_key, invariants in spec.keyed:
            if member_key in node:
                _invariants(invariants, node, path, run)


def _choice(choices: dict | None, stem: str, key: str, path: str, run) -> dict:
    if choices is None:
        return {stem: key}
    if stem in choices:
        run.add(STRUCTURE, f"{path}.{key}", f"and {path}.{choices[stem]} are both values of {stem}[x]: keep one.")
    else:
        choices[stem] = key
    return choices


def _array_shape(value: object, element: ElementSpec, spec: TypeSpec, where: str, run) -> bool:
    """Not an array, an empty one, or more items than allowed: report; True when the items are still worth checking."""
    if type(value) is not list:
        run.add(STRUCTURE, where, f"must be an array ([…]), not {describe(value)}.")
        return False
    if not value:
        run.add(STRUCTURE, where, "is an empty array (ele-1: FHIR has no empty values).")
        return False
    run.add(
        ErrorCode.VAL_CARDINALITY,
        where,
        f"has {len(value)} items but {spec.name} allows at most {element.max}."
        if element.max
        else f"is not allowed here ({spec.name} sets its maximum to 0).",
    )
    return True


def _primitive(node: dict, key: str, value: object, element: ElementSpec, where: str, run, index: int | None) -> None:
    if value is None:
        if index is None and type(node.get("_" + key)) is not dict:
            run.add(STRUCTURE, where, "is null (leave the element out).")
        elif index is not None and not _shadowed(node, key, index):
            run.add(STRUCTURE, where, f"is null without an extension in _{key}.")
        return
    problem = element.check(value)
    if problem is not None:
        run.add(problem[0], where, problem[1] + ".")
        return
    if type(value) is str and type(element.valid) is set and len(element.valid) < VALID_CACHE_SIZE:
        element.valid.add(value)
    if element.rules:
        _primitive_rules(value, element, where, run)
        if element.constraints:
            _invariants(element.constraints, value, where, run)


def required(node: dict, spec: TypeSpec, path: str, run) -> None:
    for label, keys, minimum in spec.required:
        count = 0
        for key in keys:
            if key in node:
                value = node[key]
                count += len(value) if type(value) is list else 1
        if count < minimum:
            run.add(
                ErrorCode.VAL_CARDINALITY,
                f"{path}.{label.replace('[x]', '')}",
                f"is required (at least {minimum}) but missing."
                if count == 0
                else f"needs at least {minimum} item(s), found {count}.",
            )


def _slice_checker(run):
    return lambda item, slice_element, at, index: check_value(item, slice_element, f"{at}[{index}]", run)


def check_value(item: object, element: ElementSpec, where: str, run) -> None:
    """One value of a complex or resource element (primitives are checked inline by walk)."""
    if element.kind == RESOURCE:
        check_resource(item, where, run, contained=element.name == "contained")
        return
    if element.kind == PRIMITIVE:  # slices of primitive arrays come here
        problem = element.check(item)
        if problem is not None:
            run.add(problem[0], where, problem[1] + ".")
        else:
            _primitive_rules(item, element, where, run)
        return
    if type(item) is not dict:
        run.add(STRUCTURE, where, f"must be an object ({element.type_code}), not {describe(item)}.")
        return
    if not item or (len(item) == 1 and "id" in item):
        run.add(STRUCTURE, where, EMPTY_OBJECT)
        return
    type_code = element.type_code
    spec = element.spec
    also = None
    profiles = element.profiles
    if type_code == "Extension" and len(profiles) == 1 and spec is run.compiler.types.get("Extension"):
        definition = run.compiler.profile_spec(profiles[0])  # a profile's extension slice: its definition alone
        if definition is not None:
            spec, profiles = definition, ()
    elif type_code == "Extension" and not profiles and type(item.get("url")) is str:
        definition = run.compiler.extension_spec(item["url"])
        if definition is not None and spec is run.compiler.types.get("Extension"):
            spec = definition  # its snapshot holds every rule of Extension, tightened: one walk instead of two
        elif definition is not None and definition is not spec:
            also = definition  # a profile's own extension slice: its rules and the definition's
    walk(item, spec, where, run)
    if also is not None:
        walk(item, also, where, run)
    if type_code == "Reference":
        check_reference(run, item, where, element.targets)
    if element.binding is not None:
        if type_code == "CodeableConcept":
            codings = item.get("coding")
            if type(codings) is list:
                check_codings(run, element.binding, codings, where, concept=True)
        else:
            check_codings(run, element.binding, [item], where, concept=False)
    if element.fixed is not None and not equals(item, element.fixed):
        run.add(ErrorCode.VAL_FIXED_PATTERN, where, f"must be exactly {_short(element.fixed)}.")
    if element.pattern is not None and not contains(item, element.pattern):
        run.add(ErrorCode.VAL_FIXED_PATTERN, where, f"must contain {_short(element.pattern)}.")
    if element.constraints:
        _invariants(element.constraints, item, where, run)
    for url in profiles:
        definition = run.compiler.profile_spec(url)
        if definition is not None and definition is not element.spec:
            walk(item, definition, where, run)


def _primitive_rules(value: object, element: ElementSpec, where: str, run) -> None:
    if element.binding is not None:
        check_code(run, element.binding, value, where)
    if element.fixed is not None and not equals(value, element.fixed):
        run.add(ErrorCode.VAL_FIXED_PATTERN, where, f"must be exactly {_short(element.fixed)}.")
    if element.pattern is not None and not contains(value, element.pattern):
        run.add(ErrorCode.VAL_FIXED_PATTERN, where, f"must be {_short(element.pattern)}.")


def _invariants(invariants, node: object, path: str, run) -> None:
    resource = run.resource
    is_object = type(node) is dict
    for invariant in invariants:
        if invariant.requires is not None and is_object and invariant.requires not in node:
            continue
        if not invariant.holds(node, resource):
            broken(invariant, path, run)


def broken(invariant, path: str, run) -> None:
    run.add(
        ErrorCode.VAL_INVARIANT,
        path,
        f"breaks {invariant.key}: {invariant.human}",
        severity="warning" if invariant.severity == "warning" else "error",
    )


def _shadowed(node: dict, key: str, index: int) -> bool:
    shadow = node.get("_" + key)
    return type(shadow) is list and index < len(shadow) and shadow[index] is not None


def _shadow(node: dict, key: str, value: object, spec: TypeSpec, path: str, run) -> None:
    """`_birthDate` / `_given`: the id and extensions of a primitive, reported at the primitive's own path."""
    name = key[1:]
    element = spec.elements.get(name)
    where = f"{path}.{name}"
    if element is None or element.kind != PRIMITIVE:
        _unknown(key, spec, path, run)
        return
    if not element.array:
        if type(value) is not dict:
            run.add(STRUCTURE, where, f"has {key} that must be an object (id, extension), not {describe(value)}.")
        elif not value:
            run.add(STRUCTURE, where, f"has an empty {key} (ele-1).")
        else:
            walk(value, element.shadow, where, run)
        return
    values = node.get(name)
    if type(value) is not list:
        run.add(STRUCTURE, where, f"has {key} that must be an array aligned with {name}, not {describe(value)}.")
        return
    if values is not None and (type(values) is not list or len(values) != len(value)):
        run.add(STRUCTURE, where, f"has {key} with {len(value)} items: it must line up with the items of {name}.")
        return
    for index, item in enumerate(value):
        if item is None:
            if values is None or values[index] is None:
                run.add(STRUCTURE, f"{where}[{index}]", f"is null in both {name} and {key}.")
            continue
        if type(item) is not dict or not item:
            run.add(STRUCTURE, f"{where}[{index}]", f"has a {key} item that must be an object (id, extension).")
            continue
        walk(item, element.shadow, f"{where}[{index}]", run)


def _unknown(key: str, spec: TypeSpec, path: str, run) -> None:
    names = [name for name in spec.elements if not name.startswith("_")]
    close = difflib.get_close_matches(key, names, n=1, cutoff=0.7)
    hint = f" Did you mean '{close[0]}'?" if close else " Check the spelling against the definition."
    stem = next((e.choice for e in spec.elements.values() if e.choice and key.startswith(e.choice)), None)
    if stem and not close:
        allowed = ", ".join(name for name, e in spec.elements.items() if e.choice == stem)
        hint = f" {stem}[x] here can be: {allowed}."
    run.add(STRUCTURE, f"{path}.{key}", f"is not an element of {spec.name}.{hint}")


def _short(value: object) -> str:
    import orjson

    from mappings.engine.formats.decimals import decimal_default

    text = orjson.dumps(value, default=decimal_default).decode()  # a decimal shows its own digits
    return text if len(text) <= 120 else text[:117] + "..."


__all__ = ["COMPLEX", "check_resource", "check_value", "walk"]
