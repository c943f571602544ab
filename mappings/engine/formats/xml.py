"""FHIR XML (R4): elements in the namespace http://hl7.org/fhir in the definition's order, primitives as
`<name value="…"/>` (their id as an attribute, their extensions as children), `id` of other elements and
`Extension.url` as attributes, a resource inside an element wrapped in its type (`<contained><Patient>…`),
`Narrative.div` as XHTML. Parsing goes through the engine's safe parser (no DTD, no entities, nothing fetched)
and types values back from the definitions (booleans, integers, decimals that keep their digits)."""

from __future__ import annotations

import copy

from lxml import etree

from mappings.engine.errors import MappingError
from mappings.engine.xmlsource import parse_xml_element

from .model import Element, Model, Shape
from .tree import complex_items, members, not_fhir, primitive_items, put, put_primitive, tidy
from .values import from_text, to_text

FHIR_NS = "http://hl7.org/fhir"
XHTML_NS = "http://www.w3.org/1999/xhtml"
XSI = "{http://www.w3.org/2001/XMLSchema-instance}"
# R4 writes these elements as XML attributes (representation xmlAttr in the definitions), the rest as elements.
ATTRIBUTE_PREDICATES = frozenset({"Element.id", "Extension.url"})


def _tag(name: str) -> str:
    return f"{{{FHIR_NS}}}{name}"


# -- JSON → XML ----------------------------------------------------------------------------------------------------


def serialize_xml(model: Model, resource: dict, *, pretty: bool = False) -> str:
    root = etree.Element(_tag(_resource_type(model, resource, "The resource")), nsmap={None: FHIR_NS})
    divs: list[tuple[etree._Element, etree._Element]] = []
    _write_resource(model, root, resource, resource["resourceType"], divs)
    if pretty:
        etree.indent(root, space="  ")
    for narrative, div in divs:  # after indenting: whitespace inside the XHTML is content, never layout
        if pretty and len(narrative):
            div.tail, narrative[-1].tail = narrative[-1].tail, narrative.text
        narrative.append(div)
    return etree.tostring(root, encoding="unicode")


def _resource_type(model: Model, resource: object, where: str) -> str:
    if not isinstance(resource, dict):
        raise not_fhir(f"{where} must be a JSON object.")
    model.resource_shape(resource.get("resourceType"))  # raises for a missing or unknown type
    return resource["resourceType"]


Divs = list[tuple[etree._Element, etree._Element]]


def _write_resource(model: Model, node: etree._Element, resource: dict, where: str, divs: Divs) -> None:
    shape = model.resource_shape(resource["resourceType"])
    _write_members(model, node, resource, shape, where, divs, is_resource=True)


def _write_members(
    model: Model, node: etree._Element, obj: dict, shape: Shape, where: str, divs: Divs, is_resource: bool = False
) -> None:
    for element, type_code, name in members(shape, obj, where):
        path = f"{where}.{name}"
        if not is_resource and element.predicate in ATTRIBUTE_PREDICATES:
            if obj.get(name) is not None:
                node.set(name, to_text(obj[name], path))
            continue
        if type_code == "xhtml":
            divs.append((node, _parsed_div(name, obj[name], path)))
        elif model.is_primitive(type_code):
            for value, shadow in primitive_items(element, name, obj, where):
                child = etree.SubElement(node, _tag(name))
                if value is not None:
                    child.set("value", to_text(value, path))
                if shadow:
                    _write_members(model, child, shadow, model.shape((type_code, type_code)), f"{path}(shadow)", divs)
        elif model.holds_resource(type_code):
            for item in complex_items(element, name, obj, where):
                wrapper = etree.SubElement(node, _tag(name))
                inner = etree.SubElement(wrapper, _tag(_resource_type(model, item, path)))
                _write_resource(model, inner, item, f"{path}({item['resourceType']})", divs)
        else:
            for item in complex_items(element, name, obj, where):
                child = etree.SubElement(node, _tag(name))
                _write_members(model, child, item, model.type_shape(element, type_code), path, divs)


def _parsed_div(name: str, div: object, where: str) -> etree._Element:
    if not isinstance(div, str):
        raise not_fhir(f"{where} must be XHTML text.")
    try:  # well-formed, no DTD or entities: never pasted into the document as text
        parsed = parse_xml_element(div)
    except MappingError as error:
        raise not_fhir(f"{where} is not well-formed XHTML: {error.message}") from None
    if parsed.tag != f"{{{XHTML_NS}}}div":
        raise not_fhir(f'{where} must be a <div xmlns="{XHTML_NS}"> element.')
    if name != "div":
        raise not_fhir(f"{where}: only Narrative.div holds XHTML.")
    return parsed


# -- XML → JSON ----------------------------------------------------------------------------------------------------


def parse_fhir_xml(model: Model, text: str | bytes) -> dict:
    root = parse_xml_element(text)
    return _read_resource(model, root, "The document")


def _local(node: etree._Element, where: str, namespace: str = FHIR_NS) -> str:
    found, _, local = node.tag[1:].partition("}") if node.tag.startswith("{") else ("", "", node.tag)
    if found != namespace:
        raise not_fhir(f"{where}: <{local}> is not in the namespace {namespace}.")
    return local


def _read_resource(model: Model, node: etree._Element, where: str) -> dict:
    resource_type = _local(node, where)
    if not model.is_resource_type(resource_type):
        raise not_fhir(f"{where}: <{resource_type}> is not an R4 resource type.")
    resource = {"resourceType": resource_type}
    _read_members(model, node, resource, model.resource_shape(resource_type), resource_type, is_resource=True)
    return resource


def _read_members(
    model: Model, node: etree._Element, obj: dict, shape: Shape, where: str, is_resource: bool, primitive: bool = False
) -> None:
    for attribute, text in node.attrib.items():
        if (primitive and attribute == "value") or attribute.startswith(XSI):
            continue  # xsi:schemaLocation and the like say where the schema is, not what the resource holds
        found = None if is_resource or attribute.startswith("{") else shape.by_name.get(attribute)
        if found is None or found[0].predicate not in ATTRIBUTE_PREDICATES:
            raise not_fhir(f"{where}: unexpected attribute {attribute}.")
        obj[attribute] = from_text(found[1], text, f"{where}@{attribute}")
    if node.text and node.text.strip():
        raise not_fhir(f"{where}: FHIR elements hold no text (values go in value attributes).")
    for child in node.iterchildren(etree.Element):
        name = etree.QName(child).localname
        found = shape.by_name.get(name)
        _local(child, where, XHTML_NS if found and found[1] == "xhtml" else FHIR_NS)
        if found is None or (not is_resource and found[0].predicate in ATTRIBUTE_PREDICATES):
            raise not_fhir(f"{where}: <{name}> is not an element of {shape.key[1]} in FHIR R4.")
        element, type_code = found
        _read_child(model, child, obj, element, type_code, name, f"{where}.{name}")
    tidy(obj)


def _read_child(
    model: Model, child: etree._Element, obj: dict, element: Element, type_code: str, name: str, path: str
) -> None:
    if type_code == "xhtml":
        div = copy.deepcopy(child)  # its own tree: no tail, and only the namespaces the XHTML uses
        div.tail = None
        etree.cleanup_namespaces(div)
        put(obj, element, name, etree.tostring(div, encoding="unicode"))
    elif model.is_primitive(type_code):
        value = child.get("value")
        shadow: dict = {}  # the id attribute and the extension children, read as the primitive type's Element
        _read_members(model, child, shadow, model.shape((type_code, type_code)), path, False, primitive=True)
        if value is None and not shadow:
            raise not_fhir(f"{path} has neither a value nor extensions.")
        put_primitive(obj, element, name, None if value is None else from_text(type_code, value, path), shadow)
    elif model.holds_resource(type_code):
        inner = list(child.iterchildren(etree.Element))
        if len(inner) != 1:
            raise not_fhir(f"{path} must hold exactly one resource.")
        put(obj, element, name, _read_resource(model, inner[0], path))
    else:
        item: dict = {}
        _read_members(model, child, item, model.type_shape(element, type_code), path, False)
        put(obj, element, name, item)
