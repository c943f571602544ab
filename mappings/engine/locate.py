"""Point validation issues at the template line that wrote the offending element (opt-in: the editor asks for it).

Validation speaks FHIRPath about the *output* (`Bundle.entry[3].resource.name[0].family`), which post-processing
made from the rendered text: stray commas and members without a value (`"code": ,`) blanked, empty values pruned,
Bundle entries merged by (resourceType, id). To find the line, the run is rendered once more with line markers
(`environment.LineMarker`), the rendered text is parsed by a small position-aware JSON parser that keeps the offset
of every key and item, and each expression is walked through that parse the way post-processing shaped the output:
array indices count only the items that survived pruning, and `Bundle.entry[i]` is the i-th entry that survived
merging. An element that was never written (a missing required one) is placed at the deepest ancestor found, a
resource at its "resourceType" key; one written empty and pruned, at its own key. Anything unexpected leaves the
issue without a line: this only explains.
"""

from __future__ import annotations

import re
import threading
from bisect import bisect_right
from typing import TYPE_CHECKING

import orjson

from .environment import COMPILED_CODE, CompiledCodeCache, MappingEnvironment, build_environment
from .errors import MappingError, Stage
from .references import forget_references
from .reuse_compiled import prime_traced_code

if TYPE_CHECKING:
    from .pipeline import CompiledMapping

MAX_CHARS = 2_000_000  # a pure-Python parse of more would cost the editor more than the line is worth
MAX_DEPTH = 200  # FHIR JSON nests a few dozen levels; this keeps well inside Python's recursion limit
MAX_PLACES = 200_000  # marker places kept before a new generation of traced code starts

WHITESPACE = re.compile(r"[ \t\n\r]*")
SEPARATOR = re.compile(r"[ \t\n\r,]*")  # one comma, or the stray ones the post-processor blanks
STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
LITERALS = (("true", True), ("false", False), ("null", None))
HEAD = re.compile(r"[A-Za-z][A-Za-z0-9]*")
STEP = re.compile(r"\.([A-Za-z_][A-Za-z0-9_]*)(?:\[([0-9]{1,9})\])?")

Step = str | int  # a member name, or an index among *all* the items an array was rendered with
Span = tuple[int, str, int]  # (offset in the rendered text, template, line), from strip_markers


# --- traced environments ------------------------------------------------------------------------------------------


class _TracedCode:
    """Line-marked compiled code shared by traced runs. The markers are numbers into `places`, one list for every
    traced environment of this generation, so code compiled for one run stays valid in the next (compiling the ADT
    demo's snippets with markers costs ~120 ms; reusing them, under 1 ms). Each compile of a changed template
    appends its lines, so past MAX_PLACES a new generation starts; environments already built keep the old one."""

    def __init__(self) -> None:
        self.places: list[tuple[str, int]] = []
        self.code = CompiledCodeCache(size=128)
        self.lock = threading.Lock()


_generation = _TracedCode()


def clear_caches() -> None:
    """Forget the engine's compiled template code, plain and traced, and the references read from template texts.
    All are keyed by source text or checksum, so they are never stale, only memory; the studio's caches.clear() calls
    this so that one call empties every cache."""
    global _generation
    COMPILED_CODE.clear()
    forget_references()
    _generation = _TracedCode()


def traced_environment(compiled: CompiledMapping) -> MappingEnvironment:
    """An environment whose templates prefix each line of literal text with a marker (see `strip_markers`), with
    the mapping's root and every snippet it imports already loaded."""
    global _generation
    generation = _generation
    if len(generation.places) > MAX_PLACES:
        generation = _generation = _TracedCode()
    env = build_environment(
        compiled.sources,
        strict=compiled.strict,
        max_value_bytes=compiled.max_value_bytes,
        lookup_tables=compiled.lookup_tables,
        timezone=compiled.timezone,
        tracing=True,
    )
    env.marker_places = generation.places
    env.bytecode_cache = generation.code
    # A marker's number is its place's index in the shared list, so two compiles must not append at once. Imports
    # are literal and known since compile time: load them all now, so rendering compiles nothing. A root that differs
    # from an earlier one only in literal text reuses its traced code (engine/reuse_compiled.py, issue 14).
    with generation.lock:
        prime_traced_code(env, compiled.sources[compiled.name], name=compiled.name)
        for name in _imported(compiled.environment.imports, compiled.name):
            env.get_template(name)
    return env


def _imported(imports: dict[str, list[tuple[str, int]]], root: str) -> list[str]:
    found, todo = [root], [root]
    while todo:
        for target, _ in imports.get(todo.pop(), []):
            if target not in found:
                found.append(target)
                todo.append(target)
    return found


# --- a position-aware, tolerant JSON parser -----------------------------------------------------------------------


class UnparseableError(ValueError):
    """The text is not JSON even by the post-processor's rules (it never escapes this module)."""


class Node:
    """One JSON value of the rendered text. `value` is a dict name → (key offset, Node) for an object, a list of
    Nodes for an array (all rendered items, pruned ones too), else the scalar. `alive` says it survived pruning."""

    __slots__ = ("alive", "end", "start", "value")

    def __init__(self, start: int, end: int, value: object, alive: bool) -> None:
        self.start, self.end, self.value, self.alive = start, end, value, alive

    def member(self, name: str) -> tuple[int, Node] | None:
        return self.value.get(name) if type(self.value) is dict else None

    def scalar(self, name: str) -> object:
        """The value of a member that survived pruning, when it is a scalar (resourceType, id)."""
        found = self.member(name)
        if found is None or not found[1].alive or type(found[1].value) in (dict, list):
            return None
        return found[1].value


def parse_positions(text: str) -> Node | None:
    """Parse rendered output as the post-processor does (stray commas and `"key": ,` allowed), keeping offsets; None if
    it can't."""
    if len(text) > MAX_CHARS:
        return None
    try:
        node, pos = _value(text, WHITESPACE.match(text).end(), 0)
    except UnparseableError:
        return None
    return node if WHITESPACE.match(text, pos).end() == len(text) else None


def _value(text: str, pos: int, depth: int) -> tuple[Node, int]:
    if depth > MAX_DEPTH:
        raise UnparseableError("too deep")
    start = pos
    char = text[pos : pos + 1]
    if char == "{":
        members: dict[str, tuple[int, Node]] = {}
        pos = SEPARATOR.match(text, pos + 1).end()
        while not text.startswith("}", pos):
            key = STRING.match(text, pos)
            if key is None:
                raise UnparseableError("expected a member name")
            pos = WHITESPACE.match(text, key.end()).end()
            if not text.startswith(":", pos):
                raise UnparseableError("expected ':'")
            pos = WHITESPACE.match(text, pos + 1).end()
            if text.startswith((",", "}"), pos):
                # A member whose value printed nothing ("code": ,): the post-processor blanks it, so it never
                # replaces an earlier one; kept dead at its own key when it is the only one.
                members.setdefault(_decode(key.group()), (key.start(), Node(pos, pos, None, False)))
                pos = _after_item(text, pos, "}")
                continue
            child, pos = _value(text, pos, depth + 1)
            members[_decode(key.group())] = (key.start(), child)  # a repeated name: the last one wins, as in orjson
            pos = _after_item(text, pos, "}")
        alive = any(child.alive for _, child in members.values())
        return Node(start, pos + 1, members, alive), pos + 1
    if char == "[":
        items: list[Node] = []
        pos = SEPARATOR.match(text, pos + 1).end()
        while not text.startswith("]", pos):
            child, pos = _value(text, pos, depth + 1)
            items.append(child)
            pos = _after_item(text, pos, "]")
        return Node(start, pos + 1, items, any(item.alive for item in items)), pos + 1
    if char == '"':
        match = STRING.match(text, pos)
        if match is None:
            raise UnparseableError("unterminated string")
        value = _decode(match.group())
        return Node(pos, match.end(), value, bool(value) and not value.isspace()), match.end()
    match = NUMBER.match(text, pos)
    if match is not None:
        token = match.group()
        number = float(token) if any(c in token for c in ".eE") else int(token)
        return Node(pos, match.end(), number, True), match.end()
    for word, literal in LITERALS:
        if text.startswith(word, pos):
            return Node(pos, pos + len(word), literal, literal is not None), pos + len(word)
    raise UnparseableError(f"unexpected {char!r}")


def _after_item(text: str, pos: int, closing: str) -> int:
    pos = WHITESPACE.match(text, pos).end()
    if text.startswith(",", pos):
        return SEPARATOR.match(text, pos).end()
    if text.startswith(closing, pos):
        return pos
    raise UnparseableError("expected ',' or " + closing)


def _decode(token: str) -> str:
    if "\\" not in token:
        return token[1:-1]
    try:
        return orjson.loads(token)
    except orjson.JSONDecodeError as exc:
        raise UnparseableError("bad string escape") from exc


# --- FHIRPath → the rendered element ------------------------------------------------------------------------------


def parse_expression(expression: str) -> tuple[str, list[tuple[str, int | None]]] | None:
    """`Bundle.entry[3].resource.name[0]` → ("Bundle", [("entry", 3), ("resource", None), ("name", 0)]). Stops at
    the first step it does not understand (`.where(…)`, `.extension('url')`): the elements before it still count."""
    head = HEAD.match(expression)
    if head is None:
        return None
    path: list[tuple[str, int | None]] = []
    pos = head.end()
    while (match := STEP.match(expression, pos)) is not None and not expression.startswith("(", match.end()):
        path.append((match[1], None if match[2] is None else int(match[2])))
        pos = match.end()
    return head.group(), path


def _entry_key(entry: Node) -> tuple[object, object] | None:
    """merge_duplicate_entries' key for a rendered entry: (resourceType, id) of its resource, after pruning."""
    found = entry.member("resource")
    if found is None or not found[1].alive or type(found[1].value) is not dict:
        return None
    return found[1].scalar("resourceType"), found[1].scalar("id")


def _alive_member(node: Node, name: str) -> Node | None:
    found = node.member(name)
    return found[1] if found is not None and found[1].alive else None


def _plain(node: Node) -> object:
    """The pruned Python value, as the output holds it."""
    if type(node.value) is dict:
        return {name: _plain(child) for name, (_, child) in node.value.items() if child.alive}
    if type(node.value) is list:
        return [_plain(item) for item in node.value if item.alive]
    return node.value


class Layout:
    """The rendered text's parse, and the changes post-processing made to it on the way to the output."""

    def __init__(self, root: Node) -> None:
        self.root = root
        self.resource_type = root.scalar("resourceType")
        entries = root.member("entry") if self.resource_type == "Bundle" else None
        self.entries = entries[1] if entries is not None and type(entries[1].value) is list else None
        self.merged: list[int] = []  # the rendered index of each output Bundle entry
        self.duplicates: dict[int, list[int]] = {}  # rendered index → later entries whose resource merged into it
        if self.entries is not None:
            self._replay_merge()

    def _replay_merge(self) -> None:
        """merge_duplicate_entries, replayed on the parse."""
        seen: dict[tuple[object, object], int] = {}
        for index, entry in enumerate(self.entries.value):
            if not entry.alive:
                continue
            key = _entry_key(entry)
            if key is None or key[1] is None:
                self.merged.append(index)
            elif key in seen:
                self.duplicates[seen[key]].append(index)
            else:
                seen[key] = index
                self.duplicates[index] = []
                self.merged.append(index)

    def steps(self, expression: str, occurrence: int = 0) -> list[Step] | None:
        """The rendered path (member names, rendered indices) to the element an output expression names, or to its
        deepest ancestor that was rendered. `occurrence` tells apart warnings with the same resource-relative path."""
        parsed = parse_expression(expression)
        if parsed is None:
            return None
        head, path = parsed
        if head == self.resource_type:
            return self._walk(path)
        if self.entries is not None and path and all(index is None for _, index in path):
            conflicts = self._conflicts(head, [name for name, _ in path])  # merge warnings: Practitioner.gender
            return conflicts[occurrence] if occurrence < len(conflicts) else None
        return None

    def _walk(self, path: list[tuple[str, int | None]]) -> list[Step]:
        # The rendered values that became this output element, first one first: one, except inside a Bundle entry's
        # resource, where later entries for the same resource were merged in (objects merged, arrays unioned).
        sources: list[tuple[Node, list[Step]]] = [(self.root, [])]
        merged_in: list[tuple[Node, list[Step]]] = []
        anchor = True
        for position, (name, index) in enumerate(path):
            if name == "resource":
                sources = sources + merged_in
            merged_in = []
            if not any(node.member(name) for node, _ in sources):
                name = "_" + name  # only the primitive's extension (_birthDate) was written, or nothing
            found = [(node.member(name)[1], [*steps, name]) for node, steps in sources if node.member(name)]
            alive = [(child, steps) for child, steps in found if child.alive]
            if not alive:
                if found and position == len(path) - 1 and index is None:
                    sources, anchor = found[:1], False  # written, but empty and pruned: its own key is where to fix it
                break  # never written: stay at the ancestor
            kind = type(alive[0][0].value)
            sources = [pair for pair in alive if type(pair[0].value) is kind] if kind in (dict, list) else alive[:1]
            if index is not None:
                array = sources[0][0]
                items = self._items(sources) if kind is list else []
                if index >= len(items):
                    break
                sources = [items[index]]
                if array is self.entries:
                    merged_in = [
                        (self.entries.value[later], ["entry", later])
                        for later in self.duplicates.get(items[index][1][-1], [])
                    ]
            elif kind is list and position < len(path) - 1:  # no index means every item: the first with the next step
                following = path[position + 1][0]
                chosen = next((pair for pair in self._items(sources) if _alive_member(pair[0], following)), None)
                if chosen is None:
                    break
                sources = [chosen]
        node, steps = sources[0]
        if anchor and node.member("resourceType") is not None:
            steps = [*steps, "resourceType"]  # a resource (or a missing element of one): its "resourceType" line
        return steps

    def _items(self, sources: list[tuple[Node, list[Step]]]) -> list[tuple[Node, list[Step]]]:
        """The output items of an array, each with its rendered node: the survivors of pruning; for the Bundle's
        entries, of merging; for an array merged from duplicates, the first one's items then the others' new ones."""
        first, steps = sources[0]
        if first is self.entries:
            return [(first.value[index], [*steps, index]) for index in self.merged]
        items = [(item, [*steps, number]) for number, item in enumerate(first.value) if item.alive]
        if len(sources) > 1:
            values = [_plain(item) for item, _ in items]
            for other, other_steps in sources[1:]:
                for number, item in enumerate(other.value):
                    if item.alive and (value := _plain(item)) not in values:
                        values.append(value)
                        items.append((item, [*other_steps, number]))
        return items

    def _conflicts(self, resource_type: str, names: list[str]) -> list[list[Step]]:
        """merge_duplicate_entries warns with a path inside the resource, naming no entry: find each later duplicate
        whose value there differed from the first one's (objects and arrays merge, so they never conflict), in the
        order the merge met them."""
        found: list[tuple[int, list[Step]]] = []
        for kept, later in self.duplicates.items():
            if not later or _entry_key(self.entries.value[kept])[0] != resource_type:
                continue
            first: object = None
            for index in [kept, *later]:
                node = _alive_member(self.entries.value[index], "resource")
                for name in names:
                    node = _alive_member(node, name) if node is not None else None
                if node is None:
                    continue
                value = _plain(node)
                if first is None:
                    first = value
                elif not (type(first) is type(value) and type(value) in (dict, list)) and value != first:
                    found.append((index, ["entry", index, "resource", *names]))
        return [steps for _, steps in sorted(found, key=lambda hit: hit[0])]


def offset_of(root: Node, steps: list[Step]) -> int:
    """The offset of the last step that exists in this parse: a member's key, or an item's first character."""
    node, offset = root, root.start
    for step in steps:
        if type(step) is str:
            found = node.member(step)
            if found is None:
                break
            offset, node = found
        else:
            if type(node.value) is not list or step >= len(node.value):
                break
            node = node.value[step]
            offset = node.start
    return offset


def needs_location(error: MappingError) -> bool:
    """A validation issue, or a post-processing warning, that names an element but no template line."""
    return error.line is None and bool(error.expression) and error.stage in (Stage.VALIDATE, Stage.POSTPROCESS)


def locate_errors(errors: list[MappingError], rendered: str, traced: str, spans: list[Span]) -> None:
    """Point each error that `needs_location` at the template line that wrote its element. `rendered` is the text
    the run post-processed; `traced` the same run rendered with markers, markers removed; `spans` their places."""
    pending = [error for error in errors if needs_location(error)]
    if not pending or not spans:
        return
    root = parse_positions(rendered)
    # The traced text is almost always the rendered one. It differs when a template computed a value from a macro's
    # output (an id hashed from it, a test on it), because the markers were part of that output. The element is
    # then found in the rendered text, and the same rendered path followed in the traced text as far as it goes.
    traced_root = root if traced == rendered else parse_positions(traced)
    if root is None or traced_root is None:
        return
    layout = Layout(root)
    starts = [start for start, _, _ in spans]
    seen: dict[tuple[str, str], int] = {}
    for error in pending:
        expression = error.expression[0]
        occurrence = seen.get((error.code, expression), 0)
        seen[(error.code, expression)] = occurrence + 1
        steps = layout.steps(expression, occurrence)
        if steps is None:
            continue
        index = bisect_right(starts, offset_of(traced_root, steps)) - 1
        if index >= 0:
            _, template, line = spans[index]
            error.located(template, line)
