r"""A lean, lazy HL7 v2 (ER7, "pipe and hat") parser with a template API that reads like the spec.

``parse_hl7v2(text)`` returns a :class:`Message`. Parsing only splits the text into segments and checks them; fields,
repetitions and components are split the first time a template touches them (and kept), and escape sequences are
decoded only when a value is printed. Positions are 1-based, exactly as the HL7 spec counts them.

This module holds the parser and the node model below; the ER7 text layer they stand on (encoding characters,
escape decoding, positions) is in hl7v2_text.py.

Reading values
==============
Every node (segment, field, repetition, component, sub-component) prints as its *value*: the first repetition's first
component's first sub-component, with escape sequences decoded::

    {{ msg.PID[5] }}           {# "Smith" when PID-5 is Smith^John~Jones^Ann         #}
    {{ msg.PID[5][2] }}        {# "John"   PID-5.2: component 2 of the FIRST repetition #}
    {{ msg.PID[5].rep(2)[1] }} {# "Jones"  PID-5(2).1                                   #}
    {{ msg.PID[5].raw }}       {# "Smith^John~Jones^Ann", undecoded                    #}
    {{ msg.PID[3][4][2] }}     {# PID-3.4.2: a sub-component                           #}
    {{ msg.get("PID-3(2).1") }} {# the same paths as text: PID-5, PID.5.1, PID-5.1.2, OBX(2)-5 #}

``msg.PID`` (or ``msg["PID"]``) is the FIRST segment with that id; ``msg.all("OBX")`` is every OBX in order. Indexing
never fails: an absent segment, field or component is an empty node that prints "", is falsy and can be indexed
further, so ``msg.ZZZ[5][1][2]`` is simply "". Nodes compare equal to text (``msg.PID[8] == "M"``, ``msg.PID[8] in
["M", "F"]``, ``{"M": "male"}[msg.PID[8]]``), and ``|int`` / ``|float`` work on them.

Empty, null and truthiness
--------------------------
* ``{% if msg.PID[7] %}`` is true when the node holds any content. A present-but-empty field, ``^^`` and the HL7
  explicit null ``""`` are all false.
* ``msg.PID[7].is_null`` is true only for ``""`` ("delete this value" in HL7), so a template can tell it apart from an
  absent value. ``""`` prints as "".
* A *segment* is true when it is in the message: ``{% if msg.PV1 %}``.
* ``|default("x")`` does not replace an empty node (it is not undefined); use ``msg.PID[7] or "x"`` or
  ``|default("x", true)``.

Fields, repetitions, components
-------------------------------
* ``segment[n]`` is field n; ``segment.name`` is "PID"; ``len(segment)`` the number of fields; iterating a segment
  gives fields 1..n.
* MSH (and FHS/BHS) count like the spec: ``msg.MSH[1]`` is the field separator "|", ``msg.MSH[2]`` the encoding
  characters "^~\&" as literal text, ``msg.MSH[3]`` the sending application.
* A field is a list of repetitions: ``for cx in msg.PID[3]``, ``msg.PID[3].reps``, ``msg.PID[3].rep(2)``,
  ``msg.PID[3]|length``. ``field[n]`` is component n of the first repetition.
* ``repetition[n]`` is component n; iterating a repetition gives its components.
* ``component[n]`` is sub-component n; iterating a component gives its sub-components.

Escape sequences decoded on print: ``\F\ \S\ \T\ \R\ \E\`` (the message's own separators), ``\P\`` (truncation
character, v2.7+), ``\Xhhhh\`` (hex bytes, UTF-8 else Latin-1), ``\.br\`` (a new line), ``\.sp\`` (new lines);
``\H\ \N\``, ``\Cxxxx\ \Mxxxx\`` and the other formatting commands are dropped. Anything else that merely contains
the escape character (``C:\temp``) is left as it is.

Message-level helpers
---------------------
``msg.segments`` (all segments), ``msg.names`` (their ids in order), ``msg.version`` (MSH-12), ``msg.type``
("ADT^A01", from MSH-9.1 and MSH-9.2), ``msg.control_id`` (MSH-10), ``msg.separators`` (a dict: field, component,
repetition, escape, subcomponent, truncation).

``msg.group("OBR", "OBX", "NTE")`` cuts the message at each OBR and gives, per OBR, a :class:`Group`: a list of
segments starting with that OBR (``group.head``) followed by the OBX and NTE segments up to the next OBR. With only
the first name, a group takes every segment up to the next head. A group answers ``group.OBX``, ``group["OBX"]`` and
``group.all("OBX")`` like a message::

    {% for order in msg.group("OBR", "OBX", "NTE") %}
      {{ order.head[4][2] }}: {% for obx in order.all("OBX") %}{{ obx[5] }} {% endfor %}
    {% endfor %}

One text is one message. A batch envelope around it (FHS/BHS before the MSH, BTS/FTS after the last segment) is
dropped; a text with more than one MSH is refused (FS-SRC-013), since a mapping converts one message: split files
with ``split_messages`` (splitting.py), as batches and the records upload do.

Errors (``MappingError``): FS-SRC-010 when the text does not start with MSH, FS-SRC-011 when MSH-1/MSH-2 do not give
usable encoding characters, FS-SRC-012 when a line is not a segment (its id must be 3 capital letters or digits),
FS-SRC-013 when it holds several messages.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from mappings.engine.errors import ErrorCode, MappingError
from mappings.engine.hl7v2_text import (
    _COMP,
    _DEFAULT_ENC,
    _FS,
    _HEADER_SEGMENTS,
    _LEADING,
    _LITERAL_ENC,
    _PATH,
    _REP,
    _SUB,
    _TRAILERS,
    _after_envelope,
    _decode,
    _encoding,
    _index,
    _line_number,
)

__all__ = ["Component", "Field", "Group", "Message", "Repetition", "Segment", "SubComponent", "parse_hl7v2"]

# Defined here, not imported: CPython compiles `name.method()` on an imported name without LOAD_METHOD, which makes
# the per-line check in parse_hl7v2 and every `msg.PID` lookup measurably slower.
_SEGMENT_ID = re.compile(r"[A-Z0-9]{3}")


def parse_hl7v2(text: str) -> Message:
    """Parse an HL7 v2 message in ER7 encoding. Segments are split now; everything inside them on first access."""
    if not isinstance(text, str):
        raise TypeError(f"parse_hl7v2 expects decoded text (str), not {type(text).__name__}")
    body = text.lstrip(_LEADING)
    if body.startswith(("FHS", "BHS")):
        body = _after_envelope(body)
    if not body.startswith("MSH"):
        if not body.strip("\x1c\x00 \t\r\n"):
            raise MappingError(
                ErrorCode.HL7_NO_MSH, "The message is empty: an HL7 v2 message starts with an MSH segment."
            )
        raise MappingError(
            ErrorCode.HL7_NO_MSH,
            f"An HL7 v2 message must start with an MSH segment, but this text starts with {body[:20]!r}. "
            "Check that the source is HL7 v2 (pipe-delimited) and not, e.g., XML or JSON.",
        )
    # str.split is an order of magnitude faster than a regex split; most messages use a single kind of line break.
    if "\r" not in body:
        lines = body.split("\n")
    elif "\n" not in body:
        lines = body.split("\r")
    else:
        lines = body.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    enc = _encoding(lines[0])
    fs = enc[_FS]
    segments = []
    for line in lines:
        # Fast path: a well-formed segment is an id of three [A-Z0-9] followed by the field separator (or nothing).
        if (line[3:4] == fs or len(line) == 3) and _SEGMENT_ID.fullmatch(line, 0, 3):
            segments.append(Segment(line[:3], line, enc))
            continue
        stripped = line.strip(" \t\x1c\x0b")
        if not stripped:
            continue  # blank lines and MLLP framing bytes between or after segments
        if (stripped[3:4] == fs or len(stripped) == 3) and _SEGMENT_ID.fullmatch(stripped, 0, 3):
            segments.append(Segment(stripped[:3], stripped.rstrip("\x1c"), enc))  # indented segment: tolerated
            continue
        number = _line_number(text, body, lines, line)
        raise MappingError(
            ErrorCode.HL7_BAD_SEGMENT,
            f"Line {number} is not an HL7 segment: {stripped[:30]!r}. Each line must start with a "
            f"3-character segment id of capital letters or digits (like PID or ZPD) followed by {fs!r}. "
            "A line break inside a field value would also cause this.",
        )
    while segments[-1]._name in _TRAILERS:
        segments.pop()  # BTS/FTS closing a batch envelope of one message
    if body.find("MSH", 3) > 0:  # cheap test first: MSH may also be text inside a field
        heads = [segment for segment in segments if segment._name == "MSH"]
        if len(heads) > 1:
            ids = ", ".join(str(head[10]) or "(none)" for head in heads[:5]) + (", …" if len(heads) > 5 else "")
            raise MappingError(
                ErrorCode.HL7_SEVERAL_MESSAGES,
                f"This payload holds {len(heads)} HL7 v2 messages (control ids {ids}); a mapping converts one "
                "message: split it with a batch (or the records upload).",
            )
    return Message(segments, enc, body)


class _Node:
    """A field, repetition, component or sub-component: raw text, split into children only when asked."""

    __slots__ = ("_enc", "_kids", "_raw")
    _SEP = _SUB  # which encoding character splits this node into its children
    _CHILD: type[_Node]
    _EMPTY: _Node

    def __init__(self, raw: str, enc: tuple[str, ...]) -> None:
        self._raw = raw
        self._enc = enc
        self._kids: list | None = None

    def _children(self) -> list:
        kids = self._kids
        if kids is None:
            # Raw strings first; each is swapped for its node the first time it is read.
            kids = self._kids = self._raw.split(self._enc[self._SEP]) if self._raw else []
        return kids

    def _all_kids(self) -> list:
        kids = self._kids if self._kids is not None else self._children()
        for n, kid in enumerate(kids):
            if type(kid) is str:
                kids[n] = self._CHILD(kid, self._enc)
        return kids[:]  # a copy: a template may change the list it is given

    def __getitem__(self, n: int | str) -> _Node:
        n = n if type(n) is int else _index(n)
        kids = self._kids if self._kids is not None else self._children()
        if 0 < n <= len(kids):
            kid = kids[n - 1]
            if type(kid) is str:
                kid = kids[n - 1] = self._CHILD(kid, self._enc)
            return kid
        return self._CHILD._EMPTY

    _kid = __getitem__  # child n; Field's own [n] reads the first repetition's, its _kid(n) is repetition n

    def __iter__(self) -> Iterator[_Node]:
        return iter(self._all_kids())

    def __len__(self) -> int:
        return len(self._children())

    @property
    def raw(self) -> str:
        """The text as sent: separators and escape sequences left in place."""
        return self._raw

    @property
    def is_null(self) -> bool:
        """True only for the HL7 explicit null "" ("delete the stored value"), not for an empty or absent value."""
        return self._raw == '""'

    def __str__(self) -> str:
        s = self._raw
        if not s:
            return ""
        enc = self._enc
        # The value is the first leaf: cut at the first separator of any level below the field.
        i = s.find(enc[_REP])
        if i >= 0:
            s = s[:i]
        i = s.find(enc[_COMP])
        if i >= 0:
            s = s[:i]
        i = s.find(enc[_SUB])
        if i >= 0:
            s = s[:i]
        return _decode(s, enc)

    def __bool__(self) -> bool:
        raw = self._raw
        if not raw:
            return False
        enc = self._enc
        c = raw[0]
        if c != '"' and c != enc[_REP] and c != enc[_COMP] and c != enc[_SUB]:
            return True
        leaves = raw.replace(enc[_REP], enc[_SUB]).replace(enc[_COMP], enc[_SUB]).split(enc[_SUB])
        return any(leaf and leaf != '""' for leaf in leaves)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, str):
            return str(self) == other
        if isinstance(other, (_Node, Segment)):
            return str(self) == str(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(str(self))

    def __int__(self) -> int:
        return int(str(self))

    def __float__(self) -> float:
        return float(str(self))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._raw!r})"


class SubComponent(_Node):
    """The smallest part of a value (PID-3.4.2). Position 1 is the sub-component itself, so chains never break."""

    __slots__ = ()

    def _children(self) -> list:
        if self._kids is None:
            self._kids = [self] if self._raw else []
        return self._kids

    def _kid(self, n: int) -> _Node:
        return self if n == 1 and self._raw else SubComponent._EMPTY

    def __getitem__(self, n: int | str) -> _Node:
        return self._kid(n if type(n) is int else _index(n))

    def __str__(self) -> str:
        # Split out of its component at the sub-component separator, so no separator is left to cut at.
        return _decode(self._raw, self._enc) if self._raw else ""


class Component(_Node):
    """One component (PID-5.1). ``component[n]`` is sub-component n; iterating gives the sub-components."""

    __slots__ = ()
    _SEP = _SUB
    _CHILD = SubComponent

    def __str__(self) -> str:
        # Split out of its repetition at the component separator: only a sub-component separator can be left.
        s = self._raw
        if not s:
            return ""
        i = s.find(self._enc[_SUB])
        return _decode(s[:i] if i >= 0 else s, self._enc)


class Repetition(_Node):
    """One repetition of a field. ``repetition[n]`` is component n; iterating gives the components."""

    __slots__ = ()
    _SEP = _COMP
    _CHILD = Component


class Field(_Node):
    """A field: a list of repetitions. ``field[n]`` is component n of the first repetition (PID-5.1)."""

    __slots__ = ()
    _SEP = _REP
    _CHILD = Repetition

    def __getitem__(self, n: int | str) -> _Node:
        # self._kid(1)._kid(n) and their splits inlined: the most frequent read (measured: 1 % of an ADT^A01).
        n = n if type(n) is int else _index(n)
        kids = self._kids
        if kids is None:
            kids = self._kids = self._raw.split(self._enc[_REP]) if self._raw else []
        if not kids:
            return Component._EMPTY
        first = kids[0]
        if type(first) is str:
            first = kids[0] = Repetition(first, self._enc)
        parts = first._kids
        if parts is None:
            parts = first._kids = first._raw.split(self._enc[_COMP]) if first._raw else []
        if 0 < n <= len(parts):
            part = parts[n - 1]
            if type(part) is str:
                part = parts[n - 1] = Component(part, self._enc)
            return part
        return Component._EMPTY

    @property
    def reps(self) -> list[Repetition]:
        """Every repetition, in order (none for an empty field)."""
        return self._all_kids()

    def rep(self, n: int | str) -> Repetition:
        """Repetition n, counting from 1; an empty repetition when there is no such one."""
        return self._kid(_index(n))


SubComponent._EMPTY = SubComponent("", _DEFAULT_ENC)
Component._EMPTY = Component("", _DEFAULT_ENC)
Repetition._EMPTY = Repetition("", _DEFAULT_ENC)
Field._EMPTY = Field("", _DEFAULT_ENC)


class Segment:
    """One segment. ``segment[n]`` is field n (1-based; MSH-1 is the field separator itself)."""

    __slots__ = ("_enc", "_fields", "_name", "_raw")

    def __init__(self, name: str, raw: str, enc: tuple[str, ...]) -> None:
        self._name = name
        self._raw = raw
        self._enc = enc
        self._fields: list | None = None

    def _split(self) -> list:
        enc = self._enc
        fields = self._raw.split(enc[_FS]) if self._raw else []
        if self._name in _HEADER_SEGMENTS:
            # The separator is MSH-1, so everything after it shifts one position to the right.
            fields.insert(1, Field(enc[_FS], _LITERAL_ENC))
            if len(fields) > 2:
                fields[2] = Field(fields[2], _LITERAL_ENC)
        self._fields = fields
        return fields

    def __getitem__(self, n: int | str) -> Field:
        if type(n) is not int:
            n = _index(n)
        fields = self._fields if self._fields is not None else self._split()
        if 0 < n < len(fields):
            field = fields[n]
            if type(field) is str:
                field = fields[n] = Field(field, self._enc)
            return field
        return Field._EMPTY

    @property
    def name(self) -> str:
        """The segment id, e.g. "PID" ("" for an absent segment)."""
        return self._name

    @property
    def raw(self) -> str:
        """The whole segment as sent."""
        return self._raw

    @property
    def is_null(self) -> bool:
        """Always False: only a value can be the HL7 null "" (here for symmetry with the other nodes)."""
        return False

    def __len__(self) -> int:
        fields = self._fields if self._fields is not None else self._split()
        return max(0, len(fields) - 1)

    def __iter__(self) -> Iterator[Field]:
        return iter([self[n] for n in range(1, len(self) + 1)])

    def __bool__(self) -> bool:
        return bool(self._name)

    def __str__(self) -> str:
        return self._raw

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (str, _Node, Segment)):
            return self._raw == str(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._raw)

    def __repr__(self) -> str:
        return f"Segment({self._raw[:40]!r})"


_EMPTY_SEGMENT = Segment("", "", _DEFAULT_ENC)


def _segment_name(name: object) -> str:
    """A key that names a segment; other keys raise KeyError so Jinja falls back to attributes."""
    if isinstance(name, str) and len(name) == 3 and _SEGMENT_ID.fullmatch(name):
        return name
    raise KeyError(name)


class _Segments:
    """Lookup by segment id, shared by Message and Group."""

    __slots__ = ()

    def _list(self) -> list[Segment]:
        raise NotImplementedError

    def all(self, name: str) -> list[Segment]:
        """Every segment with this id, in message order (an empty list when there is none)."""
        return [segment for segment in self._list() if segment._name == name]

    @property
    def segments(self) -> list[Segment]:
        """All segments, in order."""
        return list(self._list())

    @property
    def names(self) -> list[str]:
        """The segment ids, in order."""
        return [segment._name for segment in self._list()]

    def __getattr__(self, name: str) -> Segment:
        if len(name) == 3 and _SEGMENT_ID.fullmatch(name):
            return self[name]
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")


class Group(_Segments, list):
    """A head segment (``group.head``) and the segments collected after it; a list of segments, head first."""

    __slots__ = ()

    def _list(self) -> list[Segment]:
        return self

    @property
    def head(self) -> Segment:
        """The segment that starts the group (the OBR in ``msg.group("OBR", "OBX")``)."""
        return list.__getitem__(self, 0)

    def __getitem__(self, key):
        if isinstance(key, (int, slice)):
            return list.__getitem__(self, key)
        name = _segment_name(key)
        for segment in self:
            if segment._name == name:
                return segment
        return _EMPTY_SEGMENT


class Message(_Segments):
    """A parsed message. ``msg.PID`` / ``msg["PID"]`` is the first PID segment; see the module docs for the rest."""

    __slots__ = ("_enc", "_first", "_raw", "_segments")

    def __init__(self, segments: list[Segment], enc: tuple[str, ...], raw: str) -> None:
        self._segments = segments
        self._enc = enc
        self._raw = raw
        self._first: dict[str, Segment] | None = None

    def _list(self) -> list[Segment]:
        return self._segments

    def __getitem__(self, name: str) -> Segment:
        first = self._first
        if first is None:
            first = {}
            for segment in self._segments:
                first.setdefault(segment._name, segment)
            self._first = first
        if type(name) is str and name in first:
            return first[name]
        _segment_name(name)  # KeyError for keys that cannot name a segment
        return _EMPTY_SEGMENT

    def group(self, head: str, *members: str) -> list[Group]:
        """Cut the message at each `head` segment; each Group holds it and the following `members` until the next."""
        groups: list[Group] = []
        current: Group | None = None
        wanted = frozenset(members)
        for segment in self._segments:
            if segment._name == head:
                current = Group([segment])
                groups.append(current)
            elif current is not None and (not wanted or segment._name in wanted):
                current.append(segment)
        return groups

    def get(self, path: str):
        """The node at a spec-style path: "PID-5", "PID.5.1", "PID-3(2).1", "PID-3.4.2", "OBX(2)-5" (2nd OBX)."""
        match = _PATH.fullmatch(path) if isinstance(path, str) else None
        if match is None:
            raise MappingError(
                ErrorCode.RND_FILTER_INPUT,
                f"msg.get({path!r}): a path looks like 'PID-5', 'PID-5.1', 'PID-3(2).1' or 'OBX(2)-5.1'.",
            )
        name, occurrence, field, rep, comp, sub = match.group("seg", "occ", "field", "rep", "comp", "sub")
        name = name.upper()
        if occurrence is None:
            node = self[name]
        else:
            found = self.all(name)
            n = int(occurrence)
            node = found[n - 1] if 0 < n <= len(found) else _EMPTY_SEGMENT
        if field is None:
            return node
        node = node[int(field)]
        if rep is not None:
            node = node.rep(int(rep))
        if comp is not None:
            node = node[int(comp)]
        if sub is not None:
            node = node[int(sub)]
        return node

    @property
    def separators(self) -> dict[str, str]:
        """The encoding characters this message declared in MSH-1 and MSH-2."""
        names = ("field", "component", "repetition", "escape", "subcomponent", "truncation")  # in MSH-1, MSH-2 order
        return dict(zip(names, self._enc, strict=True))

    @property
    def version(self) -> str:
        """MSH-12, the HL7 version ("2.5.1")."""
        return str(self["MSH"][12])

    @property
    def type(self) -> str:
        """MSH-9.1 and MSH-9.2 as "ADT^A01" (just "ACK" when there is no trigger event)."""
        msh9 = self["MSH"][9]
        code, event = msh9[1].raw, msh9[2].raw
        return f"{code}^{event}" if event else code

    @property
    def control_id(self) -> str:
        """MSH-10, the message control id."""
        return str(self["MSH"][10])

    @property
    def raw(self) -> str:
        """The message text as parsed."""
        return self._raw

    def __len__(self) -> int:
        return len(self._segments)

    def __iter__(self) -> Iterator[Segment]:
        return iter(list(self._segments))

    def __bool__(self) -> bool:
        return True

    def __str__(self) -> str:
        return self._raw

    def __repr__(self) -> str:
        return f"<Message {self.type} {len(self._segments)} segments>"
