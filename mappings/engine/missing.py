"""A key or column a template reads that the source does not have: a warning at the template line (FS-RND-007).

Templates run with `ChainableUndefined`, so `row["birth date"]` on a CSV whose header says `birth_date`, or
`msg.patient.birthdate` on JSON that has `birthDate`, gives nothing and the element silently disappears from the
output. This module turns those lookups into warnings, one per (template line, key) however many rows repeat it:

* a CSV row: every row has the header's columns, so any other name is a mistake (message: the columns there are);
* a JSON (or FHIR, NDJSON) object: records leave optional keys out, so only a name that looks like a misspelling of
  a key the object has is reported (other case or separators, `birth date` or `birthdate` for `birthDate`, or two
  letters swapped, `brithDate`); a name nothing resembles (`msg.deceased` on a record without it, `county` beside
  `country`) stays quiet;
* an XML element (`XmlNode`): the same misspelling rule, against its child elements and attributes;
* a key looked up on a list (`msg.name.family` where `name` is an array, `msg.mrn` on the list of CSV rows): always.

A lookup the template itself guards, `{% if row.middle %}`, `row.middle is defined`, `row.middle | default("")`,
`row.middle or ""`, says the key may be missing: only a misspelling is reported there (the environment compiles such
lookups to `quiet_attr` / `quiet_item`). `row.get("middle")` never warns. Strict mappings still fail where they failed
(FS-RND-001 when the missing value is used); printing one, which gives nothing there too, now warns as well.

Cost: nothing on a lookup that finds its key: the hooks run only when one finds nothing. A miss is decided from the
object (a CSV name once per run, a JSON name once per record shape, an XML name once per element kind, or for good
once it resembled nothing on TRUSTED_AFTER elements); only a miss to report looks for its template line. The source
is walked (to tell its objects from the template's own dicts, and to name them) only when a warning is to be given.
"""

from __future__ import annotations

import re
import sys

from .errors import ErrorCode, MappingError
from .limits import current_budget

SEPARATORS = re.compile(r"(?<=.)[\s_\-.]+")  # inner separators: a leading "_" (FHIR's _birthDate) is kept
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MAX_LISTED = 12  # names listed in a message
MAX_WALKED = 500_000  # containers of a source walked to find an object's path

_FOLDED: dict[str, str] = {}  # name → folded name: the same source names come back run after run
# Every name seen on an XML element checked here, in any run: a name some document really has is no misspelling, so
# `patient.deceasedInd` on a document without it costs one set lookup, not a look at the element's children.
_XML_NAMES: set[str] = set()
# An element kind and name found to resemble nothing on that many elements, in any runs, is not looked at again: the
# ~40 optional names a C-CDA template asks for and a document lacks cost a set lookup instead of ~8 µs each per run.
_XML_FAR: dict[tuple[str, str], int] = {}
TRUSTED_AFTER = 16
MAX_CACHED = 50_000
_UNSEEN = object()
_LOCAL: dict[str, str] = {}  # "{urn:hl7-org:v3}name" → "name"


def _local_name(tag: str) -> str:
    name = _LOCAL.get(tag)
    if name is None:
        name = tag.rpartition("}")[2]
        if len(_LOCAL) < MAX_CACHED:
            _LOCAL[tag] = name
    return name


def _folded(name: str) -> str:
    folded = _FOLDED.get(name)
    if folded is None:
        folded = SEPARATORS.sub("", name).casefold()
        if len(_FOLDED) < MAX_CACHED:
            _FOLDED[name] = folded
    return folded


def _swapped_neighbours(a: str, b: str) -> bool:
    """`brithdate` for `birthdate`. (Not one letter more, less or other: `county` and `country` are both C-CDA.)"""
    if len(a) != len(b) or a == b:
        return False
    diffs = [i for i in range(len(a)) if a[i] != b[i]]
    return len(diffs) == 2 and diffs[1] == diffs[0] + 1 and a[diffs[0]] == b[diffs[1]] and a[diffs[1]] == b[diffs[0]]


def near_miss(key: str, names: list[str]) -> str | None:
    """The name `key` was probably meant to be: the same but for case and separators (`birth date`, `birthdate`
    for `birth_date`, `birthDate`), or with two neighbouring letters swapped (`brithDate`)."""
    folded = _folded(key)
    if not folded:
        return None
    size = len(folded)
    same_size = []
    for name in names:
        other = _folded(name)
        if len(other) == size:
            if other == folded and name != key:
                return name
            same_size.append((name, other))
    for name, other in same_size:
        if _swapped_neighbours(folded, other):
            return name
    return None


def _listing(names: list[str]) -> str:
    shown = ", ".join(names[:MAX_LISTED])
    return shown + (f", … ({len(names)} in all)" if len(names) > MAX_LISTED else "")


def _step(key: object) -> str:
    if type(key) is int:
        return f"[{key}]"
    return f".{key}" if IDENTIFIER.match(key) else f"[{key!r}]"


def note_missing(obj: object, key: object, guarded: bool) -> None:
    """A lookup of `key` on a dict or list found nothing (called by the environment's undefined and quiet lookups;
    per missing key of every record, so kept to a few attribute reads before the check proper)."""
    budget = current_budget()
    if budget is not None:
        lookups = budget.lookups
        if lookups is not None:
            lookups.note(budget, obj, key, guarded)


def note_missing_xml(element: object, key: str) -> None:
    """A name found neither as a child element nor as an attribute of an XML element (called by XmlNode)."""
    if key in _XML_NAMES or _XML_FAR.get((element.tag, key), 0) >= TRUSTED_AFTER:
        return  # a real name, just not on this element (C-CDA leaves out most optional ones), or a known far one
    budget = current_budget()
    if budget is not None and budget.lookups is not None:
        budget.lookups.note_xml(budget, element, key)


class MissingKeys:
    """The missing-key check of one run: the source, the template names, and what was already reported."""

    __slots__ = ("env", "far", "msg", "parents", "row_near", "rows", "seen", "source_format", "templates", "xml_far")

    def __init__(self, env: object, msg: object, source_format: str) -> None:
        self.env = env
        self.templates = env.loader.sources  # a template's code reports this file name
        self.msg = msg
        self.source_format = source_format
        self.rows = {id(row) for row in msg} if source_format == "csv" and type(msg) is list else set()
        self.row_near: dict[str, str | None] = {}  # a name missing from the CSV → the column it resembles
        self.seen: set[tuple] = set()  # (code object, line, key, guarded) already reported
        self.far: set[tuple[str, tuple]] = set()  # (name, an object's keys) where the name resembles no key
        self.xml_far: set[tuple[str, str]] = set()  # (element tag, name) that resemble nothing there
        self.parents: dict[int, tuple[int | None, object]] | None = None

    # --- where -----------------------------------------------------------------------------------------------------

    def _template_frame(self):
        """The innermost frame of template code (its file name is the template's): the line the lookup is on."""
        frame = sys._getframe(0)  # its own frame, or compiled (accelerated.py) the innermost Python one
        templates = self.templates
        while frame is not None and frame.f_code.co_filename not in templates:
            frame = frame.f_back
        return frame

    def _warn(self, budget, frame, key: str, message: str) -> None:
        template = frame.f_code.co_filename
        line = self.env.get_template(template).get_corresponding_lineno(frame.f_lineno)
        error = MappingError(ErrorCode.RND_MISSING_KEY, message, template=template, line=line)
        budget.warn(error, once=("missing", template, line, key))

    # --- dicts and lists -------------------------------------------------------------------------------------------

    def note(self, budget, obj: object, key: object, guarded: bool) -> None:
        if type(key) is not str:
            return  # an index past the end, a lookup by a value: not a name the template misspelled
        # Decide first, from the object alone (cheap, and most misses are quiet); find the template line after.
        if type(obj) is list:
            if hasattr(list, key) or not self._in_source(obj):
                return
            near = None
        else:
            if self.rows and id(obj) in self.rows:
                near = self.row_near.get(key, _UNSEEN)
                if near is _UNSEEN:  # every row has the header's columns: decide once per name
                    near = self.row_near[key] = near_miss(key, list(obj))
                if guarded and near is None:
                    return  # `row.middle is defined`: the template expects files without that column
            else:
                shape = (key, tuple(obj))  # records of one shape come back row after row: decide once per shape
                if shape in self.far:
                    return
                near = near_miss(key, [name for name in obj if type(name) is str])
                if near is None or not self._in_source(obj):
                    self.far.add(shape)
                    return  # an optional key (JSON records leave them out), or the template's own dict
        frame = self._template_frame()
        if frame is None:
            return
        seen = (frame.f_code, frame.f_lineno, key, guarded)
        if seen in self.seen:
            return
        self.seen.add(seen)
        self._warn(budget, frame, key, self._describe(obj, key, near))

    def _describe(self, obj: dict | list, key: str, near: str | None) -> str:
        if type(obj) is list:
            return self._describe_list(obj, key)
        names = [name for name in obj if type(name) is str]
        hint = f"; did you mean {near!r}?" if near else ""
        if id(obj) in self.rows:
            return f"The CSV has no column {key!r}{hint} (columns: {_listing(names)}). Its value is empty."
        return f"{self._path(obj)} has no key {key!r}{hint} (keys: {_listing(names)}). Its value is empty."

    def _describe_list(self, obj: list, key: str) -> str:
        if obj is self.msg and self.source_format == "csv":
            return (
                f"msg is the list of the CSV's {len(obj)} rows, not one row, so it has no column {key!r}: loop over "
                f"it ({{% for row in msg %}} … row{_step(key)} …) or pick one (msg[0]{_step(key)})."
            )
        path = self._path(obj)
        return (
            f"{path} is a list of {len(obj)} items, not an object, so it has no key {key!r}: pick one "
            f"({path}[0]{_step(key)}) or loop over it."
        )

    def _in_source(self, obj: object) -> bool:
        if self.parents is None:
            self.parents = self._walk()
        return id(obj) in self.parents

    def _walk(self) -> dict[int, tuple[int | None, object]]:
        """Every dict and list of the source, each with its parent and the step from it (breadth-first)."""
        parents: dict[int, tuple[int | None, object]] = {}
        if type(self.msg) not in (dict, list):
            return parents
        parents[id(self.msg)] = (None, "msg")
        todo = [self.msg]
        while todo and len(parents) < MAX_WALKED:
            node = todo.pop()
            items = node.items() if type(node) is dict else enumerate(node)
            for step, child in items:
                if (type(child) is dict or type(child) is list) and id(child) not in parents:
                    parents[id(child)] = (id(node), step)
                    todo.append(child)
        return parents

    def _path(self, obj: object) -> str:
        steps = []
        current: int | None = id(obj)
        while current is not None:
            parent, step = self.parents[current]
            steps.append("msg" if parent is None else _step(step))
            current = parent
        return "".join(reversed(steps))

    # --- XML -------------------------------------------------------------------------------------------------------

    def note_xml(self, budget, element, key: str) -> None:
        pair = (element.tag, key)
        if pair in self.xml_far or ":" in key:
            return  # `sdtc:raceCode` names its namespace on purpose
        tag = element.tag
        local = _local_name
        tags = [child.tag for child in element]  # (a comment's tag is a function; the parser drops comments)
        elements = list(dict.fromkeys([local(tag) for tag in tags if type(tag) is str]))
        attributes = [local(name) for name in element.attrib.keys()]  # noqa: SIM118 — lxml's keys() is faster
        if len(_XML_NAMES) < MAX_CACHED:
            _XML_NAMES.update(elements)
            _XML_NAMES.update(attributes)
        near = near_miss(key, elements + attributes)
        if near is None:
            self.xml_far.add(pair)
            if len(_XML_FAR) < MAX_CACHED and _XML_FAR.get(pair, 0) >= 0:
                _XML_FAR[pair] = _XML_FAR.get(pair, 0) + 1
            return
        _XML_FAR[pair] = -1  # this name is misspelt on some elements of this kind: keep looking
        frame = self._template_frame()
        if frame is None:
            return
        seen = (frame.f_code, frame.f_lineno, key, False)
        if seen in self.seen:
            return
        self.seen.add(seen)
        listing = f"elements: {_listing(elements) or 'none'}; attributes: {_listing(attributes) or 'none'}"
        message = (
            f"<{tag.rpartition('}')[2]}> has no element or attribute {key!r}; did you mean {near!r}? ({listing}). "
            "Its value is empty."
        )
        self._warn(budget, frame, key, message)
