"""What the XML and Turtle formats need to know about an R4 structure, read from the StructureDefinitions of the
registry (definitions.py), never from per-type tables: each structure's elements in definition order, their JSON
names (a choice `value[x]` as `valueQuantity`, `valueString`…), types, whether they repeat, and the RDF predicate
each one gets (R4 names an element after the type that defines it: `fhir:Resource.id`, `fhir:HumanName.family`).

A *shape* is a structure with elements: a resource or data type (`Patient`, `HumanName`), or an element defined
inline in one (`Patient.contact`, `Questionnaire.item`, reached again through `contentReference`)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from mappings.engine.definitions import Registry, core
from mappings.engine.errors import ErrorCode, MappingError

FHIR_TYPE_EXTENSION = "http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type"
SYSTEM_TYPE_PREFIX = "http://hl7.org/fhirpath/System."
RESOURCE = "Resource"  # the type code of contained, Bundle.entry.resource, Parameters.parameter.resource


@dataclass(frozen=True, slots=True)
class Element:
    name: str  # the JSON name, or a choice's stem ("value" of value[x])
    predicate: str  # the RDF predicate's local name, or a choice's stem ("Observation.value")
    types: tuple[str, ...]  # FHIR type codes: "string", "HumanName", "BackboneElement", "Resource", "xhtml"…
    repeats: bool
    is_choice: bool
    inline: tuple[str, str] | None  # the shape key of an element defined inline (BackboneElement, contentReference)


@dataclass(slots=True)
class Shape:
    key: tuple[str, str]
    elements: list[Element] = field(default_factory=list)
    # JSON name ("valueQuantity", "name") → (element, the type that name carries)
    by_name: dict[str, tuple[Element, str]] = field(default_factory=dict)
    # RDF predicate local name ("Observation.valueQuantity", "Resource.id") → (element, JSON name, type)
    by_predicate: dict[str, tuple[Element, str, str]] = field(default_factory=dict)
    position: dict[str, int] = field(default_factory=dict)  # an element's predicate → its place in the definition


def choice_name(stem: str, type_code: str) -> str:
    return stem + type_code[0].upper() + type_code[1:]


class Model:
    """Shapes of one registry, built on first use and cached (a few hundred microseconds per structure)."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self._shapes: dict[tuple[str, str], Shape] = {}
        self._lock = threading.Lock()
        self._resource_types = registry.resource_types()
        self._primitive: dict[str, bool] = {}

    def is_resource_type(self, name: str) -> bool:
        return name in self._resource_types

    def is_primitive(self, type_code: str) -> bool:
        found = self._primitive.get(type_code)
        if found is None:  # asked for every value written or read: one dict lookup once known
            sd = self.registry.structure(type_code)
            found = self._primitive[type_code] = sd is not None and sd.get("kind") == "primitive-type"
        return found

    def holds_resource(self, type_code: str) -> bool:
        return type_code == RESOURCE or type_code in self._resource_types

    def resource_shape(self, resource_type: object) -> Shape:
        if not isinstance(resource_type, str) or not self.is_resource_type(resource_type):
            raise MappingError(ErrorCode.FHIR_NOT_RESOURCE, f"{resource_type!r} is not an R4 resource type.")
        return self.shape((resource_type, resource_type))

    def type_shape(self, element: Element, type_code: str) -> Shape:
        """The shape of an element's value of this type (an inline definition, or the named data type)."""
        return self.shape(element.inline or (type_code, type_code))

    def shape(self, key: tuple[str, str]) -> Shape:
        found = self._shapes.get(key)
        if found is None:
            with self._lock:
                found = self._shapes.get(key) or self._build(key)
                self._shapes[key] = found
        return found

    def _build(self, key: tuple[str, str]) -> Shape:
        structure_type, path = key
        sd = self.registry.structure(structure_type)
        if sd is None or "snapshot" not in sd:
            raise MappingError(ErrorCode.FHIR_NOT_RESOURCE, f"No R4 definition for {structure_type}.")
        snapshot = sd["snapshot"]["element"]
        shape = Shape(key)
        prefix = path + "."
        inline_paths = {e["path"].rsplit(".", 1)[0] for e in snapshot if "." in e["path"]}
        for definition in snapshot:
            element_path = definition["path"]
            if not element_path.startswith(prefix) or "." in element_path[len(prefix) :] or "sliceName" in definition:
                continue
            if element_path.endswith(".value") and sd.get("kind") == "primitive-type":
                continue  # a primitive's own value is the JSON value / XML attribute / fhir:value, not an element
            element = self._element(structure_type, definition, element_path in inline_paths)
            shape.position[element.predicate] = len(shape.elements)
            shape.elements.append(element)
            for type_code in element.types:
                name = choice_name(element.name, type_code) if element.is_choice else element.name
                predicate = choice_name(element.predicate, type_code) if element.is_choice else element.predicate
                shape.by_name[name] = (element, type_code)
                shape.by_predicate[predicate] = (element, name, type_code)
        return shape

    def _element(self, structure_type: str, definition: dict, has_children: bool) -> Element:
        path = definition["path"]
        name = path.rsplit(".", 1)[1]
        base_path = (definition.get("base") or {}).get("path") or path
        is_choice = name.endswith("[x]")
        if is_choice:
            name, base_path = name[:-3], base_path.removesuffix("[x]")
        inline = None
        if definition.get("contentReference"):
            inline = (structure_type, definition["contentReference"].split("#", 1)[1])
        elif has_children:
            inline = (structure_type, path)
        types = tuple(_type_code(t) for t in definition.get("type") or ()) or ("BackboneElement",)
        return Element(name, base_path, types, definition.get("max") != "1", is_choice, inline)


def _type_code(type_definition: dict) -> str:
    code = type_definition["code"]
    if not code.startswith(SYSTEM_TYPE_PREFIX):
        return code
    # Element.id, Extension.url, Resource.id: FHIRPath system types, with the FHIR type named in an extension.
    for extension in type_definition.get("extension") or ():
        if extension.get("url") == FHIR_TYPE_EXTENSION:
            return extension.get("valueUrl") or extension.get("valueUri") or "string"
    return "string"


_models: dict[int, Model] = {}
_models_lock = threading.Lock()


def model_for(registry: Registry | None = None) -> Model:
    """The (cached) model of a registry, the core one by default."""
    registry = registry or core()
    found = _models.get(id(registry))
    if found is None or found.registry is not registry:
        with _models_lock:
            found = Model(registry)
            _models[id(registry)] = found
    return found
