"""Generated FHIR R4 instances for format tests: for a resource type, every element of its definition filled (data
types to a bounded depth), choice types rotated across variants, primitive extensions and ids (`_name`, aligned
arrays with nulls) included, a contained resource, a Narrative div. Built from the StructureDefinitions through the
same model the formats use, so every element of every type is exercised without shipping the spec's examples.

The values are of the right JSON type, not meaningful: these instances test formats, not validation."""

from __future__ import annotations

from mappings.engine.formats.decimals import FhirDecimal
from mappings.engine.formats.model import Element, Model, choice_name

MAX_DEPTH = 2  # data types nested deeper than this get only their primitive elements
DIV = '<div xmlns="http://www.w3.org/1999/xhtml"><p>Generated <b>narrative</b> &amp; text</p></div>'
PRIMITIVES = {
    "boolean": True,
    "integer": -7,
    "positiveInt": 3,
    "unsignedInt": 0,
    "decimal": "0.70",  # becomes a FhirDecimal: the digits must survive every format
    "date": "2024-05",
    "dateTime": "2024-05-06T07:08:09+02:00",
    "instant": "2024-05-06T07:08:09.123Z",
    "time": "10:11:12",
    "base64Binary": "aGVsbG8=",
    "uri": "http://example.org/fhir/x",
    "url": "https://example.org/x",
    "canonical": "http://example.org/fhir/StructureDefinition/x|1.0",
    "oid": "urn:oid:1.2.3",
    "uuid": "urn:uuid:3a9d1b0c-5f4e-4c2b-9d8e-1a2b3c4d5e6f",
    "id": "a-1",
    "code": "c0de",
    "markdown": '**bold** "quoted"\nnext line',
}
ALTERNATE_DATES = ("2024", "2024-05-06", "2024-05-06T07:08:09Z")


class Generator:
    def __init__(self, model: Model, variant: int = 0, forced: dict[Element, str] | None = None) -> None:
        self.model = model
        self.variant = variant
        self.counter = variant  # rotates choice types and shadows across the whole instance
        self.forced = forced or {}  # choice elements given one type

    def resource(self, resource_type: str, depth: int = 0) -> dict:
        shape = self.model.resource_shape(resource_type)
        resource = {"resourceType": resource_type}
        self.fill(resource, shape.elements, shape.key, depth)
        return resource

    def fill(self, obj: dict, elements: list[Element], key: tuple[str, str], depth: int) -> None:
        for element in elements:
            type_code = self.pick(element)
            name = choice_name(element.name, type_code) if element.is_choice else element.name
            if self.model.is_primitive(type_code) or type_code == "xhtml":
                self.primitive(obj, element, name, type_code, depth)
            elif self.model.holds_resource(type_code):
                if depth == 0:
                    inner = self.resource("Basic" if type_code == "Resource" else type_code, MAX_DEPTH)
                    obj[name] = [inner] if element.repeats else inner
            elif depth < MAX_DEPTH and not (element.name in ("extension", "modifierExtension") and depth > 1):
                defined_here = element.inline == (key[0], f"{key[1]}.{element.name}")  # not a contentReference
                item = self.complex(element, type_code, depth if defined_here else depth + 1)
                if item:
                    obj[name] = [item] if element.repeats else item

    def pick(self, element: Element) -> str:
        if not element.is_choice:
            return element.types[0]
        if element in self.forced:
            return self.forced[element]
        self.counter += 1
        return element.types[self.counter % len(element.types)]

    def complex(self, element: Element, type_code: str, depth: int) -> dict:
        shape = self.model.type_shape(element, type_code)
        item: dict = {}
        if type_code == "Extension" and not element.inline:
            item["url"] = f"http://example.org/fhir/StructureDefinition/ext-{self.counter}"
            value = next(e for e in shape.elements if e.name == "value")
            self.fill(item, [value], shape.key, depth)
            return item
        self.fill(item, shape.elements, shape.key, depth)
        return item

    def value(self, type_code: str) -> object:
        if type_code == "xhtml":
            return DIV
        if type_code == "dateTime" and self.counter % 4:
            return ALTERNATE_DATES[self.counter % 3]
        raw = PRIMITIVES.get(type_code, f"text {self.counter} é")
        return FhirDecimal(raw) if type_code == "decimal" else raw

    def primitive(self, obj: dict, element: Element, name: str, type_code: str, depth: int) -> None:
        self.counter += 1
        value = self.value(type_code)
        shadow = None
        if type_code != "xhtml" and self.counter % 3 == 0:
            shadow = {"id": f"p{self.counter}", "extension": [{"url": "http://example.org/ext", "valueCode": "x"}]}
        if not element.repeats:
            obj[name] = value
            if shadow and name != "id" and element.predicate not in ("Element.id", "Extension.url"):
                obj["_" + name] = shadow
            return
        if shadow:  # the second item has only extensions: arrays aligned with nulls in both members
            obj[name] = [value, None]
            obj["_" + name] = [None, shadow]
        else:
            obj[name] = [value, value]


def instances(model: Model, resource_type: str) -> list[dict]:
    """One full instance of the type, then small ones (id and choice elements only), one per type of its widest
    choice element, so that each of the resource's own choice elements takes every one of its types."""
    shape = model.resource_shape(resource_type)
    choices = [element for element in shape.elements if element.is_choice]
    found = [Generator(model).resource(resource_type)]
    for variant in range(max([len(element.types) for element in choices] or [0])):
        small: dict = {"resourceType": resource_type, "id": f"v{variant}"}
        for element in choices:
            generator = Generator(model, variant, forced={element: element.types[variant % len(element.types)]})
            generator.fill(small, [element], shape.key, 1)
        found.append(small)
    return found


def every_extension_value(model: Model) -> dict:
    """A Basic with one extension per type Extension.value[x] allows (fifty), each in its own element form."""
    extension = next(e for e in model.shape(("Extension", "Extension")).elements if e.name == "value")
    basic = {"resourceType": "Basic", "id": "every-value", "code": {"text": "every Extension.value[x]"}}
    basic["extension"] = []
    for type_code in extension.types:
        generator = Generator(model, forced={extension: type_code})
        item = {"url": f"http://example.org/fhir/StructureDefinition/{type_code}"}
        generator.fill(item, [extension], ("Extension", "Extension"), 1)
        basic["extension"].append(item)
    return basic
