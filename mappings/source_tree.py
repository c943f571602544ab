"""The editor's source explorer: a parsed sample as a tree whose every node carries the exact template expression
that reaches it (`msg.PID[5][1]`, `msg.all("OBX")[1][5]`, `msg.recordTarget.patientRole.id.extension`,
`msg["first name"]`) and the value that expression prints, so a click inserts working code. Bounded: at most
MAX_NODES nodes, values cut at MAX_VALUE characters.

Expressions follow the engine's own lookup rules (mappings/engine/hl7v2.py, xmlsource.py and Jinja's attribute
fallback): a name that Jinja would resolve to a method of the object (`items` on a dict, `all` on an XML node)
is written as a subscript instead, and an XML attribute is written `node.name` only when the node's own lookup
would return that very attribute (no child element of that name wins first)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar

from lxml import etree

from mappings.engine import MappingError, parse_source
from mappings.engine.hl7v2 import Field, Message, Repetition
from mappings.engine.xmlsource import NAMESPACES, XmlNode
from mappings.hl7v2_dictionary import field_info, hl7v2_segments

MAX_NODES = 5000
MAX_VALUE = 200
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
PREFIXES = {uri: prefix for prefix, uri in NAMESPACES.items()}
T = TypeVar("T")


@dataclass
class Budget:
    left: int = MAX_NODES
    truncated: bool = False

    def take(self) -> bool:
        if self.left <= 0:
            self.truncated = True
            return False
        self.left -= 1
        return True


@dataclass
class Node:
    label: str
    expression: str
    value: str | None = None
    description: str = ""
    children: list[Node] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "label": self.label,
            "description": self.description,
            "value": self.value,
            "expression": self.expression,
            "children": [child.as_dict() for child in self.children],
        }


def _numbered(items: Iterable[T], name: Callable[[T], str], budget: Budget) -> Iterator[tuple[T, str, int]]:
    """Each item with its name and how many items before it had that name (0 for the first, reached by name; the
    next ones by `.all(name)[index]`), while the budget lasts."""
    seen: dict[str, int] = {}
    for item in items:
        key = name(item)
        index = seen.get(key, 0)
        seen[key] = index + 1
        if not budget.take():
            return
        yield item, key, index


def _short(text: str) -> str:
    return text if len(text) <= MAX_VALUE else text[: MAX_VALUE - 1] + "…"


def describe_payload(payload: str, source_format: str, *, options: dict, limits) -> dict:
    """The source-tree answer: {ok, source_format, tree, truncated, errors}; a payload that does not parse is
    ok=false with the engine's error (like render), not an HTTP error."""
    try:
        parsed = parse_source(payload, source_format, options=options, limits=limits)
    except MappingError as error:
        return {
            "ok": False,
            "source_format": source_format,
            "tree": [],
            "truncated": False,
            "errors": [error.as_dict()],
        }
    tree, truncated = source_tree(parsed)
    return {"ok": True, "source_format": source_format, "tree": tree, "truncated": truncated, "errors": []}


def source_tree(parsed: object) -> tuple[list[dict], bool]:
    """(tree, truncated) for what parse_source returned."""
    budget = Budget()
    if isinstance(parsed, Message):
        nodes = _hl7v2(parsed, budget)
    elif isinstance(parsed, XmlNode):
        nodes = [_xml(parsed, "msg", budget)] if budget.take() else []
    elif isinstance(parsed, dict | list):
        nodes = _json_children(parsed, "msg", budget)
    else:
        nodes = [Node("msg", "msg", _json_scalar(parsed))] if budget.take() else []
    return [node.as_dict() for node in nodes], budget.truncated


# --- HL7 v2 -----------------------------------------------------------------------------------------------------------
# Fields, components and sub-components are 1-based like the spec; msg.all("OBX") is a plain list, so the second OBX
# is msg.all("OBX")[1]. A field's value is its first leaf, which is exactly what {{ msg.PID[5] }} prints.


def _hl7v2(msg: Message, budget: Budget) -> list[Node]:
    dictionary = hl7v2_segments()
    nodes = []
    for segment, name, occurrence in _numbered(msg.segments, lambda segment: segment.name, budget):
        if occurrence:
            expression, label = f'msg.all("{name}")[{occurrence}]', f"{name} ({occurrence + 1})"
        else:
            # A segment id may start with a digit (the spec allows [A-Z0-9]{3}); msg.1AB would not parse.
            expression, label = (f"msg.{name}" if IDENTIFIER.match(name) else f'msg["{name}"]'), name
        node = Node(label, expression, description=dictionary.get(name, {}).get("description", ""))
        for position in range(1, len(segment) + 1):
            value = segment[position]
            if not value.raw or not budget.take():
                continue
            node.children.append(_hl7_field(name, position, value, expression, budget))
        nodes.append(node)
    return nodes


def _hl7_field(segment: str, position: int, value: Field, base: str, budget: Budget) -> Node:
    info = field_info(segment, position) or {}
    components = info.get("components", [])
    expression = f"{base}[{position}]"
    path = f"{segment}-{position}"
    node = Node(path, expression, _short(str(value)), info.get("name", ""))
    repetitions = value.reps
    if len(repetitions) > 1:
        for number, repetition in enumerate(repetitions, start=1):
            if not repetition.raw or not budget.take():
                continue
            rep_expression, rep_path = f"{expression}.rep({number})", f"{path}({number})"
            child = Node(rep_path, rep_expression, _short(str(repetition)), f"repetition {number}")
            if _has_parts(repetition):
                child.children = _hl7_components(rep_path, repetition, rep_expression, components, budget)
            node.children.append(child)
    elif repetitions and _has_parts(repetitions[0]):
        node.children = _hl7_components(path, repetitions[0], expression, components, budget)
    return node


def _has_parts(repetition: Repetition) -> bool:
    """More than one component, or one component split into sub-components (HOSP&2.16.840&ISO)."""
    return len(repetition) > 1 or (len(repetition) == 1 and len(repetition[1]) > 1)


def _hl7_components(path: str, repetition: Repetition, base: str, names: list[dict], budget: Budget) -> list[Node]:
    by_position = {component["position"]: component for component in names}
    nodes = []
    for number, component in enumerate(repetition, start=1):
        if not component.raw or not budget.take():
            continue
        expression = f"{base}[{number}]"
        info = by_position.get(number, {})
        node = Node(f"{path}.{number}", expression, _short(str(component)), info.get("name", ""))
        if len(component) > 1:
            sub_names = {sub["position"]: sub["name"] for sub in info.get("components", [])}
            for sub_number, sub in enumerate(component, start=1):
                if sub.raw and budget.take():
                    node.children.append(
                        Node(
                            f"{path}.{number}.{sub_number}",
                            f"{expression}[{sub_number}]",
                            _short(str(sub)),
                            sub_names.get(sub_number, ""),
                        )
                    )
        nodes.append(node)
    return nodes


# --- XML --------------------------------------------------------------------------------------------------------------
# Names are local (namespaces are ignored when navigating by name), so occurrences are counted by local name, exactly
# as node.all(name) lists them.


def _xml_api(name: str) -> bool:
    """True when node.<name> is the XmlNode API (a method or property), not an element or attribute lookup."""
    return hasattr(XmlNode, name) or name.startswith("_")


def _xml_value(el: etree._Element, node: XmlNode) -> str | None:
    """What {{ node }} prints, for a leaf or mixed content; None for a pure container (its text is its children's)."""
    has_children = any(True for _ in el.iterchildren(etree.Element))
    has_text = bool((el.text or "").strip()) or any((child.tail or "").strip() for child in el)
    if has_children and not has_text:
        return None
    return _short(str(node))


def _xml(node: XmlNode, expression: str, budget: Budget) -> Node:
    el = node._el
    tree = Node(f"<{node.tag}>", expression, _xml_value(el, node))
    for key, value in el.attrib.items():
        if not budget.take():
            break
        tree.children.append(_xml_attribute(node, expression, key, value))
    for child, tag, index in _numbered(node.all(), lambda child: child.tag, budget):
        if index:
            child_expression = f"{expression}.all({_quoted(tag)})[{index}]"
        elif IDENTIFIER.match(tag) and (tag == "section" or not _xml_api(tag)):
            child_expression = f"{expression}.{tag}"  # node.section is the first <section> too (see xmlsource.py)
        else:
            child_expression = f"{expression}[{_quoted(tag)}]"
        tree.children.append(_xml(child, child_expression, budget))
    return tree


def _xml_attribute(node: XmlNode, base: str, key: str, value: str) -> Node:
    namespace, _, local = key.rpartition("}")
    prefix = PREFIXES.get(namespace.lstrip("{")) if namespace else None
    name = f"{prefix}:{local}" if prefix else local
    if IDENTIFIER.match(local) and not _xml_api(local) and _is_attribute(node[local], value):
        expression = f"{base}.{local}"  # what the examples write: birthTime.value, id.extension
    elif node.attr(name) == value:
        expression = f"{base}.attr({_quoted(name)})"
    else:
        # An attribute in a namespace the engine has no prefix for, shadowed by a plain one of the same name.
        query = f"string(@*[local-name()={_xpath_literal(local)} and namespace-uri()={_xpath_literal(namespace[1:])}])"
        expression = f"{base}.xpath({_quoted(query)})"
    return Node(f"@{name}", expression, _short(value))


def _is_attribute(found: XmlNode | str, value: str) -> bool:
    # A child element of the same name would be found first (and an XmlNode compares equal to its text).
    return isinstance(found, str) and found == value


def _xpath_literal(text: str) -> str:
    return f"'{text}'" if "'" not in text else f'"{text}"'


# --- JSON, NDJSON, CSV, FHIR ------------------------------------------------------------------------------------------


def _member(base: str, key: str) -> str:
    # Jinja's msg.items is the dict method, not the key "items": such keys (and any non-identifier) are subscripts.
    if IDENTIFIER.match(key) and not hasattr(dict, key):
        return f"{base}.{key}"
    return f"{base}[{_quoted(key)}]"


def _quoted(text: str) -> str:
    """A Jinja string literal (Jinja reads backslash escapes like Python; other characters stand for themselves)."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + escaped.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t") + '"'


def _json_scalar(value: object) -> str:
    """What {{ value }} prints: true/false for booleans, nothing for null, numbers and text as they are."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return _short(str(value))


def _json_children(value: object, expression: str, budget: Budget) -> list[Node]:
    if isinstance(value, dict):
        items = [(str(key), _member(expression, str(key)), item) for key, item in value.items()]
    elif isinstance(value, list):
        items = [(f"[{index}]", f"{expression}[{index}]", item) for index, item in enumerate(value)]
    else:
        return []
    nodes = []
    for label, child_expression, item in items:
        if not budget.take():
            break
        scalar = None if isinstance(item, dict | list) else _json_scalar(item)
        node = Node(label, child_expression, scalar)
        node.children = _json_children(item, child_expression, budget)
        nodes.append(node)
    return nodes
