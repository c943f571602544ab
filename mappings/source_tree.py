"""The editor's source explorer: a parsed sample as a tree whose every node carries the exact template expression
that reaches it (`msg.PID[5][1]`, `msg.all("OBX")[1][5]`, `msg.recordTarget.patientRole`, `msg["first name"]`), so a
click inserts working code. Bounded: at most MAX_NODES nodes, values cut at MAX_VALUE characters."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from mappings.engine.hl7v2 import Message
from mappings.engine.xmlsource import XmlNode
from mappings.hl7v2_dictionary import field_info, hl7v2_segments

MAX_NODES = 5000
MAX_VALUE = 200
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
# Names a Jinja attribute lookup would resolve to something else (dict methods, XmlNode's own API).
RESERVED = {
    "items",
    "keys",
    "values",
    "get",
    "all",
    "first",
    "attr",
    "attrs",
    "xpath",
    "tag",
    "parent",
    "xml",
    "exists",
    "find_all",
    "by_template",
    "section",
    "update",
    "pop",
    "copy",
}


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


def _short(text: str) -> str:
    return text if len(text) <= MAX_VALUE else text[: MAX_VALUE - 1] + "…"


def source_tree(parsed: object) -> tuple[list[dict], bool]:
    """(tree, truncated) for what parse_source returned."""
    budget = Budget()
    if isinstance(parsed, Message):
        nodes = _hl7v2(parsed, budget)
    elif isinstance(parsed, XmlNode):
        nodes = [_xml(parsed, "msg", budget)] if budget.take() else []
    else:
        nodes = _json_children(parsed, "msg", budget)
    return [node.as_dict() for node in nodes], budget.truncated


# --- HL7 v2 -----------------------------------------------------------------------------------------------------------


def _hl7v2(msg: Message, budget: Budget) -> list[Node]:
    seen: dict[str, int] = {}
    dictionary = hl7v2_segments()
    nodes = []
    for segment in msg.segments:
        name = segment.name
        occurrence = seen.get(name, 0)
        seen[name] = occurrence + 1
        if not budget.take():
            break
        expression = f"msg.{name}" if occurrence == 0 else f'msg.all("{name}")[{occurrence}]'
        label = name if occurrence == 0 else f"{name} ({occurrence + 1})"
        node = Node(label, expression, description=dictionary.get(name, {}).get("description", ""))
        for position in range(1, len(segment) + 1):
            value = segment[position]
            if not value.raw or not budget.take():
                continue
            node.children.append(_hl7_field(name, position, value, expression, budget))
        nodes.append(node)
    return nodes


def _hl7_field(segment: str, position: int, value, base: str, budget: Budget) -> Node:
    info = field_info(segment, position) or {}
    components = {component["position"]: component["name"] for component in info.get("components", [])}
    expression = f"{base}[{position}]"
    node = Node(f"{segment}-{position}", expression, _short(str(value)), info.get("name", ""))
    repetitions = value.reps
    if len(repetitions) > 1:
        for number, repetition in enumerate(repetitions, start=1):
            if not repetition.raw or not budget.take():
                continue
            rep_expression = f"{expression}.rep({number})"
            child = Node(f"{segment}-{position}({number})", rep_expression, _short(str(repetition)), "repetition")
            child.children = _hl7_components(f"{segment}-{position}", repetition, rep_expression, components, budget)
            node.children.append(child)
    elif len(repetitions) == 1 and len(repetitions[0]) > 1:
        node.children = _hl7_components(f"{segment}-{position}", repetitions[0], expression, components, budget)
    return node


def _hl7_components(prefix: str, repetition, base: str, names: dict[int, str], budget: Budget) -> list[Node]:
    nodes = []
    for number, component in enumerate(repetition, start=1):
        if not component.raw or not budget.take():
            continue
        expression = f"{base}[{number}]"
        node = Node(f"{prefix}.{number}", expression, _short(str(component)), names.get(number, ""))
        if len(component) > 1:
            for sub_number, sub in enumerate(component, start=1):
                if sub.raw and budget.take():
                    node.children.append(
                        Node(f"{prefix}.{number}.{sub_number}", f"{expression}[{sub_number}]", _short(str(sub)))
                    )
        nodes.append(node)
    return nodes


# --- XML --------------------------------------------------------------------------------------------------------------


def _xml(node: XmlNode, expression: str, budget: Budget) -> Node:
    own_text = (node._el.text or "").strip() if node._el is not None else ""
    tree = Node(f"<{node.tag}>", expression, _short(own_text) if own_text else None)
    for name, value in node.attrs.items():
        if budget.take():
            tree.children.append(Node(f"@{name}", f'{expression}.attr("{name}")', _short(value)))
    counts: dict[str, int] = {}
    for child in node.all():
        tag = child.tag
        index = counts.get(tag, 0)
        counts[tag] = index + 1
        if not budget.take():
            break
        if index == 0 and IDENTIFIER.match(tag) and tag not in RESERVED:
            child_expression = f"{expression}.{tag}"
        elif index == 0:
            child_expression = f'{expression}["{tag}"]'
        else:
            child_expression = f'{expression}.all("{tag}")[{index}]'
        tree.children.append(_xml(child, child_expression, budget))
    return tree


# --- JSON, NDJSON, CSV, FHIR ------------------------------------------------------------------------------------------


def _member(base: str, key: str) -> str:
    if IDENTIFIER.match(key) and key not in RESERVED:
        return f"{base}.{key}"
    return f"{base}[{_quoted(key)}]"


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


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
        scalar = None if isinstance(item, dict | list) else _short("" if item is None else str(item))
        node = Node(label, child_expression, scalar)
        node.children = _json_children(item, child_expression, budget)
        nodes.append(node)
    return nodes
