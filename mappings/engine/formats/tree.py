"""Walking FHIR JSON against a shape, shared by the XML and Turtle formats: which members an object has in
definition order (an unknown member is an error: converting must lose nothing), a primitive's values paired with
their `_name` shadows (id and extensions; arrays aligned with nulls), and the reverse, building JSON back."""

from __future__ import annotations

from collections.abc import Iterator

from mappings.engine.errors import ErrorCode, MappingError

from .model import Element, Shape


def not_fhir(message: str) -> MappingError:
    return MappingError(ErrorCode.FHIR_NOT_RESOURCE, message)


def members(shape: Shape, obj: dict, where: str) -> Iterator[tuple[Element, str, str]]:
    """(element, type, JSON name) of each member of `obj`, in the definition's order."""
    # a resource's resourceType is its XML tag or RDF type; ExampleScenario.instance.resourceType is an element
    seen = 1 if "resourceType" in obj and "resourceType" not in shape.by_name else 0
    for element in shape.elements:
        names = (element.name,) if not element.is_choice else None
        if names is None:
            for type_code in element.types:
                name = element.name + type_code[0].upper() + type_code[1:]
                if name in obj or "_" + name in obj:
                    seen += (name in obj) + ("_" + name in obj)
                    yield element, type_code, name
            continue
        name = element.name
        if name in obj or "_" + name in obj:
            seen += (name in obj) + ("_" + name in obj)
            yield element, element.types[0], name
    if seen != len(obj):
        unknown = sorted(key for key in obj if key.lstrip("_") not in shape.by_name and key != "resourceType")
        raise not_fhir(f"{where} has no element {', '.join(repr(key) for key in unknown)} in FHIR R4.")


def primitive_items(element: Element, name: str, obj: dict, where: str) -> list[tuple[object, dict | None]]:
    """A primitive's (value, shadow) pairs: one for a single element, aligned lists for a repeating one."""
    value, shadow = obj.get(name), obj.get("_" + name)
    if not element.repeats:
        if shadow is not None and not isinstance(shadow, dict):
            raise not_fhir(f"{where}._{name} must be an object (id and extensions of {name}).")
        if isinstance(value, (dict, list)):
            raise not_fhir(f"{where}.{name} must be a single {element.types[0]} value.")
        if value is None and not shadow:
            raise not_fhir(f"{where}.{name} is null: leave it out instead.")
        return [(value, shadow)]
    values = value if value is not None else [None] * len(shadow or ())
    shadows = shadow if shadow is not None else [None] * len(values)
    if not isinstance(values, list) or not isinstance(shadows, list) or len(values) != len(shadows):
        raise not_fhir(f"{where}.{name} must be an array (and _{name} an array of the same length).")
    pairs = list(zip(values, shadows, strict=True))
    if any(value is None and not shadow for value, shadow in pairs):
        raise not_fhir(f"{where}.{name} holds a null with no extension beside it in _{name}.")
    return pairs


def complex_items(element: Element, name: str, obj: dict, where: str) -> list[dict]:
    if "_" + name in obj:
        raise not_fhir(f"{where}._{name}: only primitive elements have a shadow member.")
    value = obj[name]
    items = value if element.repeats and isinstance(value, list) else [value]
    if element.repeats != isinstance(value, list):
        raise not_fhir(f"{where}.{name} must be {'an array' if element.repeats else 'a single object'}.")
    for item in items:
        if not isinstance(item, dict):
            raise not_fhir(f"{where}.{name} must hold objects, found {type(item).__name__}.")
    return items


def put(obj: dict, element: Element, name: str, value: object) -> None:
    if element.repeats:
        obj.setdefault(name, []).append(value)
    elif name in obj:
        raise not_fhir(f"{name} appears more than once but is a single element.")
    else:
        obj[name] = value


def put_primitive(obj: dict, element: Element, name: str, value: object, shadow: dict | None) -> None:
    if not element.repeats:
        if name in obj or "_" + name in obj:
            raise not_fhir(f"{name} appears more than once but is a single element.")
        if value is not None:
            obj[name] = value
        if shadow:
            obj["_" + name] = shadow
        return
    obj.setdefault(name, []).append(value)
    obj.setdefault("_" + name, []).append(shadow or None)


def tidy(obj: dict) -> dict:
    """Drop the all-null arrays put_primitive leaves (no shadow at all, or only shadows)."""
    for key in [key for key in obj if key.startswith("_")]:
        shadows = obj[key]
        if isinstance(shadows, list):
            if all(item is None for item in shadows):
                del obj[key]
            elif all(item is None for item in obj.get(key[1:], ())):
                obj.pop(key[1:], None)
    return obj
