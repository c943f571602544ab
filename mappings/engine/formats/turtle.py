"""FHIR RDF in Turtle, the R4 rules (hl7.org/fhir/R4/rdf.html): prefix `fhir:` = http://hl7.org/fhir/, the root
resource `a fhir:Patient; fhir:nodeRole fhir:treeRoot`, each element a predicate named after the type that defines
it (`fhir:Resource.id`, `fhir:Patient.name`, `fhir:HumanName.family`, `fhir:Observation.valueQuantity`), each
value a node: a primitive's `fhir:value` a literal typed by its FHIR type (xsd:date, xsd:gYear, xsd:dateTime,
xsd:decimal, xsd:boolean, xsd:integer…; strings, codes and URIs plain), list items numbered with `fhir:index`,
`Narrative.div` a plain literal, a Reference that resolves linked with `fhir:link <iri>` (as the spec's examples
do; the brief's `fhir:Reference.link` is not an R4 predicate).

Choices made where R4 leaves room: the root is the IRI `<base/Type/id>` when a base URL is given and the resource
has an id, else a blank node; contained resources and Bundle entries are nested blank nodes (`[ a fhir:Patient; …]`)
— parsing also follows an IRI object (the spec's examples put Bundle entries at their fullUrl). Codings get no
`a <concept>` type (optional in R4). The Turtle is written here (rdflib's writer rewrites literals, `1e3` as
`1e+03`); rdflib parses it, with literal normalisation off so that `0.70` stays `0.70`."""

from __future__ import annotations

import re
from collections import defaultdict

import rdflib
from rdflib import RDF, BNode, Graph, Literal, URIRef
from rdflib.exceptions import ParserError

from mappings.engine.errors import ErrorCode, MappingError

from .model import Element, Model, Shape
from .tree import complex_items, members, not_fhir, primitive_items, put, put_primitive, tidy
from .values import from_text, to_text

# rdflib rewrites typed literals to their canonical form by default ("0.70"^^xsd:decimal → "0.7"); FHIR decimals
# keep their digits, so literals keep their text. rdflib is used for FHIR RDF only in this project.
rdflib.NORMALIZE_LITERALS = False

FHIR = "http://hl7.org/fhir/"
XSD = "http://www.w3.org/2001/XMLSchema#"
PREFIXES = f"@prefix fhir: <{FHIR}> .\n@prefix xsd: <{XSD}> .\n\n"
INDENT = "  "
DATE_TYPES = ((re.compile(r"-?\d{4}"), "gYear"), (re.compile(r"-?\d{4}-\d{2}"), "gYearMonth"))
XSD_TYPES = {
    "boolean": "boolean",
    "integer": "integer",
    "positiveInt": "positiveInteger",
    "unsignedInt": "nonNegativeInteger",
    "decimal": "decimal",
    "instant": "dateTime",
    "time": "time",
    "base64Binary": "base64Binary",
}
ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"})
IRI_FORBIDDEN = re.compile(r'[\x00-\x20<>"{}|^`\\]')
TYPE_AND_ID = re.compile(r"^([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})(?:/_history/.*)?$")


# -- JSON → Turtle -------------------------------------------------------------------------------------------------


def serialize_turtle(model: Model, resource: dict, *, base: str | None = None) -> str:
    writer = _Writer(model, base.rstrip("/") + "/" if base else None)
    resource_type = writer.resource_type(resource, "The resource")
    root_iri = _iri(writer.base + f"{resource_type}/{resource['id']}") if writer.base and resource.get("id") else None
    body = [f"a fhir:{resource_type}", "fhir:nodeRole fhir:treeRoot", *writer.body(resource, resource_type, 1)]
    separator = ";\n" + INDENT
    text = f"{root_iri} {separator.join(body)} .\n" if root_iri else f"[ {separator.join(body)}\n] .\n"
    linked = "".join(f"\n{iri} a fhir:{kind} .\n" for iri, kind in sorted(writer.linked.items()))
    return PREFIXES + text + linked


class _Writer:
    def __init__(self, model: Model, base: str | None) -> None:
        self.model = model
        self.base = base or ""
        self.linked: dict[str, str] = {}  # IRIs of resources references point at → their type, as R4 examples say

    def resource_type(self, resource: object, where: str) -> str:
        if not isinstance(resource, dict):
            raise not_fhir(f"{where} must be a JSON object.")
        self.model.resource_shape(resource.get("resourceType"))
        return resource["resourceType"]

    def body(self, resource: dict, where: str, depth: int) -> list[str]:
        return self.members(resource, self.model.resource_shape(resource["resourceType"]), where, depth)

    def members(self, obj: dict, shape: Shape, where: str, depth: int) -> list[str]:
        lines = []
        for element, type_code, name in members(shape, obj, where):
            path = f"{where}.{name}"
            predicate = "fhir:" + (
                element.predicate + name[len(element.name) :] if element.is_choice else element.predicate
            )
            if type_code == "xhtml":
                lines.append(f"{predicate} {_string(to_text(obj[name], path))}")
                continue
            objects = [
                self.node(element, type_code, item, shadow, index, path, depth + 1)
                for index, (item, shadow) in enumerate(self.items(element, type_code, name, obj, where))
            ]
            if objects:  # an empty array (not FHIR, but servers write them) has nothing to say
                lines.append(f"{predicate} {', '.join(objects)}")
        return lines

    def items(self, element: Element, type_code: str, name: str, obj: dict, where: str) -> list[tuple]:
        if self.model.is_primitive(type_code):
            return primitive_items(element, name, obj, where)
        return [(item, None) for item in complex_items(element, name, obj, where)]

    def node(
        self, element: Element, type_code: str, item: object, shadow: dict | None, index: int, path: str, depth: int
    ) -> str:
        parts = [f"fhir:index {index}"] if element.repeats else []
        if self.model.is_primitive(type_code):
            if item is not None:
                parts.append(f"fhir:value {_literal(type_code, to_text(item, path))}")
            if shadow:
                parts += self.members(shadow, self.model.shape((type_code, type_code)), path, depth)
        elif self.model.holds_resource(type_code):
            resource_type = self.resource_type(item, path)
            parts += [f"a fhir:{resource_type}", *self.body(item, f"{path}({resource_type})", depth)]
        else:
            if type_code == "Reference":
                parts += self.link(item)
            parts += self.members(item, self.model.type_shape(element, type_code), path, depth)
        if len(parts) == 1 and "\n" not in parts[0]:
            return f"[ {parts[0]} ]"  # `[ fhir:value "x" ]`, as the spec's examples write a plain value
        pad = "\n" + INDENT * depth
        return f"[{pad}{(';' + pad).join(parts)}\n{INDENT * (depth - 1)}]" if parts else "[ ]"

    def link(self, reference: dict) -> list[str]:
        target = reference.get("reference")
        if not isinstance(target, str) or target.startswith("#"):
            return []
        relative = TYPE_AND_ID.match(target)
        if relative and self.base:
            iri = _iri(self.base + target)
            if iri and self.model.is_resource_type(relative.group(1)):
                self.linked[iri] = relative.group(1)
        else:
            iri = _iri(target) if ":" in target else None
        return [f"fhir:link {iri}"] if iri else []


def _iri(text: str) -> str | None:
    return None if IRI_FORBIDDEN.search(text) else f"<{text}>"


def _string(text: str) -> str:
    return f'"{text.translate(ESCAPES)}"'


def _literal(type_code: str, text: str) -> str:
    kind = XSD_TYPES.get(type_code)
    if type_code in ("date", "dateTime"):
        kind = "dateTime" if "T" in text else next((k for p, k in DATE_TYPES if p.fullmatch(text)), "date")
    elif type_code == "decimal" and ("e" in text or "E" in text):
        kind = "double"  # an exponent is no xsd:decimal lexical form; xsd:double keeps the text as written
    return f"{_string(text)}^^xsd:{kind}" if kind else _string(text)


# -- Turtle → JSON -------------------------------------------------------------------------------------------------

NODE_ROLE, TREE_ROOT = URIRef(FHIR + "nodeRole"), URIRef(FHIR + "treeRoot")
VALUE, INDEX, LINK = URIRef(FHIR + "value"), URIRef(FHIR + "index"), URIRef(FHIR + "link")
IGNORED = frozenset({RDF.type, INDEX, LINK, NODE_ROLE})


def parse_turtle(model: Model, text: str | bytes) -> dict:
    graph = Graph()
    try:
        graph.parse(data=text, format="turtle")
    except (SyntaxError, ParserError, ValueError) as exc:  # rdflib's BadSyntax is a SyntaxError
        raise MappingError(ErrorCode.TURTLE_INVALID, f"The Turtle could not be read: {_first_line(exc)}") from None
    except Exception as exc:  # the parser's boundary: whatever else rdflib raises is still bad input
        raise MappingError(ErrorCode.TURTLE_INVALID, f"The Turtle could not be read: {_first_line(exc)}") from exc
    roots = list(graph.subjects(NODE_ROLE, TREE_ROOT))
    if len(roots) != 1:
        raise not_fhir(
            f"FHIR Turtle has exactly one resource marked fhir:nodeRole fhir:treeRoot; this text has {len(roots)}."
        )
    return _Reader(model, graph).resource(roots[0], "The document")


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__


class _Reader:
    def __init__(self, model: Model, graph: Graph) -> None:
        self.model = model
        self.graph = graph

    def resource(self, node: URIRef | BNode, where: str) -> dict:
        types = [str(t)[len(FHIR) :] for t in self.graph.objects(node, RDF.type) if str(t).startswith(FHIR)]
        kinds = [t for t in types if self.model.is_resource_type(t)]
        if len(kinds) != 1:
            raise not_fhir(f"{where}: a resource node needs one `a fhir:<ResourceType>`, found {types or 'none'}.")
        resource = {"resourceType": kinds[0]}
        self.fill(node, resource, self.model.resource_shape(kinds[0]), kinds[0])
        return resource

    def fill(self, node: URIRef | BNode, obj: dict, shape: Shape, where: str, primitive: bool = False) -> None:
        grouped: dict[str, list] = defaultdict(list)
        for predicate, value in self.graph.predicate_objects(node):
            if predicate in IGNORED or (primitive and predicate == VALUE):
                continue
            name = str(predicate)[len(FHIR) :] if str(predicate).startswith(FHIR) else None
            found = shape.by_predicate.get(name) if name else None
            if found is None:
                raise not_fhir(f"{where}: {predicate} is not an element of {shape.key[1]} in FHIR R4.")
            grouped[name].append(value)
        # definition order, so the JSON reads like the other formats' (a graph has no order)
        for predicate in sorted(grouped, key=lambda p: shape.position[shape.by_predicate[p][0].predicate]):
            element, json_name, type_code = shape.by_predicate[predicate]
            for value in self.ordered(grouped[predicate], element, f"{where}.{json_name}"):
                self.read(value, obj, element, json_name, type_code, f"{where}.{json_name}")
        tidy(obj)

    def ordered(self, values: list, element: Element, where: str) -> list:
        if not element.repeats:
            if len(values) > 1:
                raise not_fhir(f"{where} has {len(values)} values but is a single element.")
            return values
        indexed = []
        for value in values:
            index = self.graph.value(value, INDEX) if not isinstance(value, Literal) else None
            if index is None or not str(index).isdigit():
                raise not_fhir(f"{where}: every item of a list needs its fhir:index.")
            indexed.append((int(str(index)), value))
        indexed.sort(key=lambda pair: pair[0])
        return [value for _, value in indexed]

    def read(self, value: object, obj: dict, element: Element, name: str, type_code: str, where: str) -> None:
        if type_code == "xhtml":
            if not isinstance(value, Literal):
                raise not_fhir(f"{where} must be a literal holding the XHTML.")
            put(obj, element, name, str(value))
        elif isinstance(value, Literal):
            raise not_fhir(f"{where}: expected a node ([ fhir:value … ]), found the literal {str(value)[:40]!r}.")
        elif self.model.is_primitive(type_code):
            literal = self.graph.value(value, VALUE)
            shadow: dict = {}
            self.fill(value, shadow, self.model.shape((type_code, type_code)), where, primitive=True)
            if literal is None and not shadow:
                raise not_fhir(f"{where} has neither a fhir:value nor extensions.")
            typed = None if literal is None else from_text(type_code, str(literal), where)
            put_primitive(obj, element, name, typed, shadow)
        elif self.model.holds_resource(type_code):
            put(obj, element, name, self.resource(value, where))
        else:
            item: dict = {}
            self.fill(value, item, self.model.type_shape(element, type_code), where)
            put(obj, element, name, item)
