"""XML sources (C-CDA and friends): safe parsing, and the node object templates navigate.

``parse_xml(data)`` returns the document's root element as an ``XmlNode``; a mapping template sees it as its input
(``doc`` in the examples below). Namespaces are ignored when navigating by name: ``<name>``, ``<cda:name>`` and
``<sdtc:name>`` are all found as ``name``. Write a prefix (``cda``, ``sdtc`` or ``xsi``) to pick one namespace:
``patient["sdtc:raceCode"]``.

Navigating
----------
``node.childName`` (or ``node["childName"]``) is, in order of preference:

* the FIRST child element with that name::

      {{ doc.recordTarget.patientRole.patient.name.family }}          -> Jones

* otherwise the attribute with that name, as a plain string::

      {{ doc.recordTarget.patientRole.patient.birthTime.value }}      -> 19501219
      {{ patient.administrativeGenderCode.code }}                     -> F
      {{ observation.value.type }}                                    -> CD   (the xsi:type attribute)

* otherwise an empty node: it is falsy, prints as "" and can be navigated further without error, so a missing
  branch never breaks a template (a name that looks like a misspelling of one of the element's children or
  attributes, ``birthtime`` for ``birthTime``, leaves a warning, FS-RND-007)::

      {{ doc.no.such.path }}                                          -> (nothing)
      {% if patient.deceasedInd %}...{% endif %}                      -> skipped
      {{ patient.name.suffix or "none" }}                             -> none

  Every name is therefore "defined"; test presence with ``{% if node.x %}`` or ``node.x.exists``, not
  ``is defined``. Use ``|default("x", true)`` rather than ``|default("x")``.

Element names win over attribute names: ``observation.value`` is the ``<value>`` element, ``value.value`` its
``value`` attribute. When both exist, ``node.attr("name")`` reaches the attribute.

An attribute is a plain string, so navigation stops there: ``code.code.x`` is undefined, not empty.

The names of the methods and properties below win over element names: ``node.first`` is the method. Reach an
element called ``first``, ``all``, ``tag``... with ``node["first"]`` (no C-CDA element is named like any of them).
The exception is ``section``: ``node.section`` is the first ``<section>`` child like any other name, and can also
be called with a template id (see ``section(oid)`` below), so both ``component.section.title`` and
``doc.section("2.16...")`` work.

In Python code, use the subscript form throughout: ``doc["recordTarget"]["patientRole"]``.

Methods and properties
----------------------
``node.all("entry")``
    every child element with that name, as a list (``[]`` if none); ``node.all()`` lists all child elements::

        {% for entry in section.all("entry") %} ... {% endfor %}
        {% for name in patient.all("name") %}{{ name.given }}{% endfor %}

``node.first("recordTarget/patientRole/patient/name")``
    the first element, in document order, at the end of a slash-separated path of names (``*`` matches any
    element); an empty node if there is none.
``node.find_all("component/structuredBody/component/section")``
    every element at the end of the path, in document order (each step fans out over all matches).
``node.by_template("2.16.840.1.113883.10.20.22.4.7")``
    every element below ``node`` (any depth) with a child ``<templateId root="...">`` equal to the oid::

        {% for allergy in doc.by_template("2.16.840.1.113883.10.20.22.4.7") %} ... {% endfor %}

``node.section("2.16.840.1.113883.10.20.22.2.6.1")``
    the first ``<section>`` below ``node`` whose templateId root is exactly that oid (C-CDA publishes sections both
    as ``...2.6`` and ``...2.6.1``: ask for the one your documents carry); an empty node if none.
``node.attr("codeSystem")``
    an attribute as a string, ``""`` if missing (``node.attr("xsi:type")`` also works). ``node.attrs`` is a dict
    of all attributes by name.
``node.xpath("cda:entry/cda:act/cda:id/@root")``
    an XPath 1.0 query relative to the node, with the prefixes ``cda`` (urn:hl7-org:v3), ``sdtc`` and ``xsi``
    predefined. Elements come back as nodes, strings as ``str``, numbers as ``float``, booleans as ``bool``; a
    node-set is a list. C-CDA elements live in the ``cda`` namespace, so unprefixed XPath names find nothing; a
    path starting with ``/`` or ``//`` searches the whole document, not just below the node. On an empty node the
    result is ``[]``. A malformed expression is FS-RND-002::

        {{ doc.xpath("count(//cda:section)") }}                          -> 7.0
        {% for id in entry.xpath("cda:act/cda:id") %}{{ id.root }}{% endfor %}
``node.tag``
    the element's name without namespace (``"observation"``).
``node.exists``
    ``True`` for a real element, ``False`` for an empty node.
``node.parent``
    the parent element (empty for the document root).
``node.xml``
    the element serialized as XML text, e.g. to carry a section's narrative into ``Composition.section.text``.
``{{ node }}`` / ``node|string``
    the element's text content with whitespace runs collapsed to one space and ends trimmed::

        {{ patient.name }}                                              -> Isabella Jones

``node == "text"`` compares that text, and so does ``node == other_node``. ``node|length`` counts child elements
and ``{% for child in node %}`` iterates them.

Security
--------
Documents carrying a DOCTYPE (and so any DTD, ENTITY or parameter-entity declaration) are refused with FS-SRC-031;
nothing is ever fetched from the network or the file system. Malformed XML is FS-SRC-030 with the line and column.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import lru_cache

from lxml import etree

from mappings.engine.errors import ErrorCode, MappingError
from mappings.engine.missing import note_missing_xml
from mappings.engine.xmltree import attribute, children_named, first_child

__all__ = ["NAMESPACES", "XmlNode", "parse_xml"]

NAMESPACES = {
    "cda": "urn:hl7-org:v3",
    "sdtc": "urn:hl7-org:sdtc",
    "xsi": "http://www.w3.org/2001/XMLSchema-instance",
}

# A DOCTYPE can only sit in the prolog, which may hold any amount of whitespace, comments and processing
# instructions; skipping exactly those finds it however much padding precedes it, and never looks into the body
# (where a CDATA narrative may legitimately quote "<!DOCTYPE html>"). `_prolog_end` skips them with `find` (what
# the regex `(?:[ \t\r\n]+|<\?.*?\?>|<!--.*?-->)*` matches: a lazy `.*?` cost a regex step per character of a
# C-CDA's long header comment).
_SPACES_BYTES = re.compile(rb"[ \t\r\n]*")
_SPACES_TEXT = re.compile(r"[ \t\r\n]*")

# Byte patterns that announce an encoding where "<!" is not the two bytes b"<!": the scan must decode first.
_WIDE_ENCODINGS = (
    (b"\x00\x00\xfe\xff", "utf-32-be"),
    (b"\xff\xfe\x00\x00", "utf-32-le"),
    (b"\xfe\xff", "utf-16-be"),
    (b"\xff\xfe", "utf-16-le"),
    (b"\x00\x00\x00<", "utf-32-be"),
    (b"<\x00\x00\x00", "utf-32-le"),
    (b"\x00<\x00", "utf-16-be"),
    (b"<\x00", "utf-16-le"),
)

_XML_SPACE = re.compile(r"[ \t\r\n]+")

# One compiled query each: templates call these inside loops over every entry of a document.
_BY_TEMPLATE = etree.XPath("descendant::*[*[local-name()='templateId'][@root=$oid]]", regexp=False, smart_strings=False)
_SECTION = etree.XPath(
    "(descendant::*[local-name()='section'][*[local-name()='templateId'][@root=$oid]])[1]",
    regexp=False,
    smart_strings=False,
)


def parse_xml(data: bytes | str, *, encoding: str | None = None) -> XmlNode:
    """The document's root element, parsed without DTDs, entities, network or file access.

    `encoding`: what bytes are known to be (the caller decoded them so), which wins over the encoding the XML
    declaration names, as for a str. Raises MappingError FS-SRC-031 if the document declares a DOCTYPE, FS-SRC-030
    if it is not well-formed.
    """
    if isinstance(data, str):
        prolog_declares_dtd = _declares_dtd_text(data)
        try:
            raw = data.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise MappingError(ErrorCode.XML_INVALID, f"XML text is not valid Unicode: {exc.reason}") from None
        # The text is already decoded; an encoding="..." in its declaration describes bytes it no longer has.
        encoding = "utf-8"
    elif isinstance(data, (bytes, bytearray, memoryview)):
        raw = bytes(data)
        prolog_declares_dtd = _declares_dtd_bytes(raw)
    else:
        raise TypeError(f"parse_xml needs bytes or str, not {type(data).__name__}")
    if prolog_declares_dtd:
        raise MappingError(ErrorCode.XML_DTD_REFUSED, _DTD_REFUSED)

    parser = etree.XMLParser(
        encoding=encoding,
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )
    try:
        root = etree.fromstring(raw, parser)
    except etree.XMLSyntaxError as exc:
        raise MappingError(ErrorCode.XML_INVALID, _describe_syntax_error(exc, parser)) from None
    except (etree.LxmlError, ValueError) as exc:
        raise MappingError(ErrorCode.XML_INVALID, f"XML could not be parsed: {exc}") from None

    # The prolog scan is the gate; this is the backstop for encodings it cannot read (EBCDIC and the like).
    docinfo = root.getroottree().docinfo
    if (
        docinfo.doctype
        or docinfo.internalDTD is not None
        or docinfo.externalDTD is not None
        or docinfo.system_url
        or docinfo.public_id
    ):
        raise MappingError(ErrorCode.XML_DTD_REFUSED, _DTD_REFUSED)
    return XmlNode(root)


def parse_xml_element(data: bytes | str) -> etree._Element:
    """The root as an lxml element, with parse_xml's protections (FHIR XML reads the tree itself: formats/xml.py)."""
    return parse_xml(data)._el


_DTD_REFUSED = (
    "XML with a DOCTYPE (DTD or ENTITY declarations) is refused for security; remove the <!DOCTYPE ...> declaration"
)


def _declares_dtd_bytes(raw: bytes) -> bool:
    head = raw[:4]
    for signature, codec in _WIDE_ENCODINGS:
        if head.startswith(signature):
            return _declares_dtd_text(raw.decode(codec, errors="replace"))
    start = 3 if raw.startswith(b"\xef\xbb\xbf") else 0
    end = _prolog_end(raw, start, _SPACES_BYTES, (b"<?", b"?>", b"<!--", b"-->"))
    # "<!--" here is a comment left open and "<![" a stray CDATA: malformed, for the parser to report.
    return raw.startswith(b"<!", end) and not raw.startswith((b"<!--", b"<!["), end)


def _declares_dtd_text(text: str) -> bool:
    start = 1 if text.startswith("\ufeff") else 0
    end = _prolog_end(text, start, _SPACES_TEXT, ("<?", "?>", "<!--", "-->"))
    return text.startswith("<!", end) and not text.startswith(("<!--", "<!["), end)


def _prolog_end(data: bytes | str, start: int, spaces: re.Pattern, marks: tuple) -> int:
    """Where the whitespace, processing instructions and comments from `start` end (an unclosed one ends them)."""
    pi_open, pi_close, comment_open, comment_close = marks
    position = start
    while True:
        position = spaces.match(data, position).end()
        if data.startswith(pi_open, position):
            close = data.find(pi_close, position + 2)
        elif data.startswith(comment_open, position):
            close = data.find(comment_close, position + 4)
            close = close + 1 if close >= 0 else close  # "-->" is one longer than "?>"
        else:
            return position
        if close < 0:
            return position
        position = close + 2


def _describe_syntax_error(exc: etree.XMLSyntaxError, parser: etree.XMLParser) -> str:
    # The parser's own log, not exc.error_log: that one is per thread and still holds earlier documents' errors.
    # Its first error is the cause; later ones are usually the parser tripping over the consequences.
    entries = [entry for entry in parser.error_log if entry.level >= etree.ErrorLevels.ERROR]
    if entries:
        first = entries[0]
        message, line, column = first.message, first.line, first.column
    else:
        message = exc.msg or "not well-formed"
        line, column = exc.position
    return f"XML is not well-formed at line {line}, column {column}: {message.strip()}"


@lru_cache(maxsize=1024)
def _tag_pattern(name: str) -> str | None:
    """The lxml tag filter for a name as templates write it, or None if it can match nothing (cached: a template
    reads the same few dozen names on every entry)."""
    if name == "*":
        return "*"
    prefix, colon, local = name.rpartition(":")
    if not local or "{" in local or "}" in local:
        return None
    if not colon:
        return "{*}" + local
    uri = NAMESPACES.get(prefix)
    return None if uri is None else f"{{{uri}}}{local}"


def _attribute(el: etree._Element, name: str) -> str | None:
    """The attribute `name` as XmlNode[name] reads it (an unprefixed name in any namespace), None if missing."""
    plan = _NAMES.get(name)
    _, key, suffix, local = plan if plan is not None else _name_plan(name)
    if key is None:
        return None
    return el.get(key) if suffix is None else attribute(el, local, key)


# What XmlNode[name] does with a name, decided once per name (a template reads the same few dozen names on every
# entry): the child tag filter (None: no element can have that name), the attribute key to try (None: none can), for
# an unprefixed name the suffix that finds it in any namespace and its UTF-8 bytes (xmltree.py finds children and
# attributes by them). Names lxml refuses are settled here, once.
_NAMES: dict[str, tuple[str | None, str | None, str | None, bytes | None]] = {}
_PROBE = etree.fromstring("<probe><child/></probe>")  # with a child: lxml checks a tag filter only then


def _name_plan(name: str) -> tuple[str | None, str | None, str | None, bytes | None]:
    if not isinstance(name, str):
        # Jinja turns this into an undefined value; an index into a node would silently mean "nth child",
        # which is not what node.entry[0] reads as. Lists come from node.all("entry").
        raise TypeError("XML nodes are looked up by name; use node.all(name)[i] for the i-th one")
    pattern = _tag_pattern(name)
    if pattern is not None:
        try:
            _PROBE.iterchildren(pattern)
        except ValueError:  # a name lxml rejects as a tag can name no element
            pattern = None
    prefix, colon, local = name.rpartition(":")
    if colon:
        uri = NAMESPACES.get(prefix)
        key, suffix = (None if uri is None else f"{{{uri}}}{local}"), None
    else:
        key, suffix = name, "}" + name
    if key is not None:
        try:
            _PROBE.get(key)
        except ValueError:  # lxml refuses names no XML attribute can have ("", "{", control characters)
            key = suffix = None
    utf8 = None if colon else name.encode("utf-8", "surrogatepass")
    plan = (pattern, key, suffix, utf8)
    if len(_NAMES) < 4096:  # names computed by a template could be endless
        _NAMES[name] = plan
    return plan


def _children(el: etree._Element, name: str) -> list[etree._Element]:
    plan = _NAMES.get(name) if type(name) is str else None
    pattern, _, _, local = plan if plan is not None else _name_plan(str(name))
    if pattern is None:
        return []
    return list(el.iterchildren(pattern)) if local is None else children_named(el, local, pattern)


def _walk(el: etree._Element, steps: list[str]) -> Iterator[etree._Element]:
    # Depth-first over the steps yields matches in document order, and lets first() stop at the first one.
    if not steps:
        yield el
        return
    rest = steps[1:]
    for child in _children(el, steps[0]):
        yield from _walk(child, rest)


def _steps(path: str) -> list[str]:
    return [step for step in str(path).split("/") if step]


@lru_cache(maxsize=256)
def _compiled_xpath(expr: str) -> etree.XPath:
    # smart_strings=False: lxml's default string results carry getparent(), which would hand templates the raw,
    # mutable lxml tree. regexp=False: no EXSLT regular expressions (a catastrophic-backtracking risk).
    return etree.XPath(expr, namespaces=NAMESPACES, regexp=False, smart_strings=False)


def _from_xpath(value: object) -> object:
    if isinstance(value, list):
        return [_from_xpath(item) for item in value]
    if etree.iselement(value):
        return XmlNode(value)
    if isinstance(value, (str, bool, float, int)):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, tuple):  # namespace nodes come back as (prefix, uri)
        return tuple(str(part) for part in value)
    return str(value)


class XmlNode:
    """One element of a parsed XML document (or an empty stand-in for a missing one), as templates see it.

    The public names here are the whole template API (see the module docstring); they are chosen not to collide
    with C-CDA element and attribute names, which reach ``__getitem__`` through Jinja's attribute fallback.
    """

    __slots__ = ("_el",)

    def __init__(self, element: etree._Element | None = None) -> None:
        self._el = element

    # -- lookup by name ---------------------------------------------------------------------------------------

    def __getitem__(self, name: str) -> XmlNode | str:
        try:
            pattern, key, suffix, local = _NAMES[name]
        except (KeyError, TypeError):
            pattern, key, suffix, local = _name_plan(name)  # a name not seen before; TypeError for one not a string
        el = self._el
        if el is None:
            return _EMPTY
        # Most reads are attributes of a leaf (code.code, id.root): without children, no child to look for.
        if pattern is not None and len(el):
            child = first_child(el, local, pattern) if local is not None else next(el.iterchildren(pattern), None)
            if child is not None:
                return XmlNode(child)
        if key is not None:
            # `type` also finds `xsi:type`: an unprefixed name is an attribute of any namespace
            value = el.get(key) if suffix is None else attribute(el, local, key)
            if value is not None:
                return value
        note_missing_xml(el, name)  # warns if the name is a misspelling of one the element has
        return _EMPTY

    def all(self, name: str | None = None) -> list[XmlNode]:
        """Child elements with that name (all child elements without one)."""
        el = self._el
        if el is None:
            return []
        children = el.iterchildren(etree.Element) if name is None else _children(el, name)
        return [XmlNode(child) for child in children]

    def first(self, path: str) -> XmlNode:
        """The first element, in document order, matching a slash-separated path of names."""
        if self._el is None:
            return _EMPTY
        match = next(_walk(self._el, _steps(path)), None)
        return _EMPTY if match is None else XmlNode(match)

    def find_all(self, path: str) -> list[XmlNode]:
        """Every element matching a slash-separated path of names, in document order."""
        if self._el is None:
            return []
        return [XmlNode(match) for match in _walk(self._el, _steps(path))]

    def by_template(self, oid: str) -> list[XmlNode]:
        """Descendants having a child templateId whose root is exactly this oid."""
        if self._el is None:
            return []
        return [XmlNode(match) for match in _BY_TEMPLATE(self._el, oid=str(oid))]

    @property
    def section(self) -> _SectionNode:
        """The first <section> child, which can also be called as section(oid) to search by template id."""
        el = self._el
        child = None if el is None else first_child(el, b"section", "{*}section")
        return _SectionNode(child, el)

    def attr(self, name: str) -> str:
        """An attribute's value, "" if it is missing."""
        if self._el is None:
            return ""
        value = _attribute(self._el, str(name))
        return "" if value is None else value

    @property
    def attrs(self) -> dict[str, str]:
        el = self._el
        if el is None:
            return {}
        # Namespaced first so that a plain attribute wins a name clash (type vs xsi:type), as in attr().
        ordered = sorted(el.attrib.items(), key=lambda item: not item[0].startswith("{"))
        return {key.rpartition("}")[2]: value for key, value in ordered}

    def xpath(self, expr: str) -> list | str | float | bool:
        """An XPath 1.0 query with the cda, sdtc and xsi prefixes defined; elements come back as nodes."""
        try:
            compiled = _compiled_xpath(expr)
            if self._el is None:
                return []
            result = compiled(self._el)
        except (etree.XPathError, TypeError, ValueError) as exc:
            raise MappingError(ErrorCode.RND_FILTER_INPUT, f"invalid XPath {expr!r}: {exc}") from None
        return _from_xpath(result)

    # -- the element itself -----------------------------------------------------------------------------------

    @property
    def tag(self) -> str:
        return "" if self._el is None else self._el.tag.rpartition("}")[2]

    @property
    def exists(self) -> bool:
        return self._el is not None

    @property
    def parent(self) -> XmlNode:
        parent = None if self._el is None else self._el.getparent()
        return _EMPTY if parent is None else XmlNode(parent)

    @property
    def xml(self) -> str:
        if self._el is None:
            return ""
        return etree.tostring(self._el, encoding="unicode", with_tail=False)

    def __str__(self) -> str:
        el = self._el
        if el is None:
            return ""
        text = "".join(el.itertext()) if len(el) else el.text  # a leaf's text without an iterator
        if not text:
            return ""
        # XML's own whitespace only: a no-break space in a name or narrative is content, not layout. Most texts
        # (a code's display, a name part) have no run to collapse: the regex only where there is one.
        if "  " in text or "\n" in text or "\t" in text or "\r" in text:
            text = _XML_SPACE.sub(" ", text)
        return text.strip(" ")

    def __bool__(self) -> bool:
        return self._el is not None

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (XmlNode, str)):
            return str(self) == str(other)
        return NotImplemented

    def __hash__(self) -> int:
        # Equal objects must hash equal, and a node equals the string of its text.
        return hash(str(self))

    def __iter__(self) -> Iterator[XmlNode]:
        if self._el is None:
            return iter(())
        return (XmlNode(child) for child in self._el.iterchildren(etree.Element))

    def __len__(self) -> int:
        if self._el is None:
            return 0
        return sum(1 for _ in self._el.iterchildren(etree.Element))

    def __repr__(self) -> str:
        return f"<XmlNode {self.tag}>" if self._el is not None else "<XmlNode (empty)>"


class _SectionNode(XmlNode):
    """``node.section``: the <section> child as a node, and callable as ``section(oid)`` to search below ``node``.

    C-CDA templates both walk ``component.section`` and look sections up by template id; one name serves both.
    """

    __slots__ = ("_scope",)

    def __init__(self, element: etree._Element | None, scope: etree._Element | None) -> None:
        super().__init__(element)
        self._scope = scope

    def __call__(self, oid: str) -> XmlNode:
        if self._scope is None:
            return _EMPTY
        found = _SECTION(self._scope, oid=str(oid))
        return XmlNode(found[0]) if found else _EMPTY


_EMPTY = XmlNode(None)
