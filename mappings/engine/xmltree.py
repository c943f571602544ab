"""An lxml element's children and attributes by local name: through lxml's C API when compiled, lxml's calls
otherwise.

Templates read C-CDA by name (`entry.act.code`), and every such read asks for an element's first child with that
local name in any namespace. lxml answers `el.iterchildren("{*}code")` by building a tag matcher for the name, which
costs about 0.7 µs of the 0.8 µs a read takes (bench/README.md, "Issue 14, thirteenth slice"). Compiled
(mappings/engine/accelerated.py), these functions walk libxml2's child list and compare names in C instead, and hand
back the same lxml element objects. As plain Python they are the lxml calls they replace; the tests compare the two.

`local` is the name's UTF-8 bytes (libxml2 keeps names in UTF-8), b"*" for any element, and `pattern` the same name
as an lxml tag filter ("{*}code", "*"): the plain-Python path uses the pattern, the compiled one the bytes.
"""

from __future__ import annotations

import cython
from lxml import etree

try:  # compiled: lxml's public C API (its headers ship with lxml; scripts/build_accelerated.py points Cython at them)
    from cython.cimports.libc.string import strcmp
    from cython.cimports.lxml.includes import tree
    from cython.cimports.lxml.includes.etreepublic import _Element, elementFactory, import_lxml__etree
except (ImportError, AttributeError):  # plain Python: cython's shadow module has no cimports; the lxml calls below
    pass
else:
    import_lxml__etree()


def first_child(el, local: bytes, pattern: str):
    """The first child element of `el` with that local name, any namespace; None if there is none."""
    if cython.compiled:
        element = cython.declare(_Element, el)
        name = cython.declare(cython.p_const_char, local)
        any_name = cython.declare(cython.bint, local == b"*")
        node = cython.declare(cython.pointer[tree.xmlNode], element._c_node.children)
        while node:
            if node.type == tree.XML_ELEMENT_NODE and (any_name or _named(node, name)):
                return elementFactory(element._doc, node)
            node = node.next
        return None
    for child in el.iterchildren(pattern):
        return child
    return None


def children_named(el, local: bytes, pattern: str) -> list:
    """Every child element of `el` with that local name, any namespace, in document order."""
    if cython.compiled:
        element = cython.declare(_Element, el)
        name = cython.declare(cython.p_const_char, local)
        any_name = cython.declare(cython.bint, local == b"*")
        node = cython.declare(cython.pointer[tree.xmlNode], element._c_node.children)
        found = []
        while node:
            if node.type == tree.XML_ELEMENT_NODE and (any_name or _named(node, name)):
                found.append(elementFactory(element._doc, node))
            node = node.next
        return found
    return list(el.iterchildren(pattern))


@cython.cfunc
@cython.inline
@cython.annotation_typing(True)  # the build's default is off (accelerated.py DIRECTIVES); the C types need it
def _named(node: cython.pointer[tree.xmlNode], name: cython.p_const_char) -> cython.bint:
    return strcmp(cython.cast(cython.p_const_char, node.name), name) == 0


def children_by_name(el) -> dict[str, list]:
    """The child elements of `el` grouped by local name (any namespace), each group in document order."""
    groups: dict[str, list] = {}
    if cython.compiled:
        element = cython.declare(_Element, el)
        node = cython.declare(cython.pointer[tree.xmlNode], element._c_node.children)
        while node:
            if node.type == tree.XML_ELEMENT_NODE:
                local = cython.cast(cython.p_const_char, node.name).decode("utf-8")
                child = elementFactory(element._doc, node)
                if local in groups:
                    groups[local].append(child)
                else:
                    groups[local] = [child]
            node = node.next
        return groups
    for child in el.iterchildren(etree.Element):
        local = child.tag.rpartition("}")[2]
        if local in groups:
            groups[local].append(child)
        else:
            groups[local] = [child]
    return groups


def attribute(el, local: bytes, name: str):
    """The value of `el`'s attribute `name` without a namespace, else of the first one of that local name in any
    namespace (`type` finds `xsi:type`); None if there is neither."""
    if cython.compiled:
        element = cython.declare(_Element, el)
        wanted = cython.declare(cython.p_const_char, local)
        attr = cython.declare(cython.pointer[tree.xmlAttr], element._c_node.properties)
        namespaced = cython.declare(cython.pointer[tree.xmlAttr], cython.NULL)
        while attr:
            if strcmp(cython.cast(cython.p_const_char, attr.name), wanted) == 0:
                if not attr.ns:
                    return _value(el, attr)
                if not namespaced:
                    namespaced = attr
            attr = attr.next
        return _value(el, namespaced) if namespaced else None
    value = el.get(name)
    if value is not None:
        return value
    suffix = "}" + name
    for key in el.keys():  # noqa: SIM118 — `in el` would be the children
        if key.endswith(suffix):
            return el.get(key)
    return None


@cython.cfunc
@cython.annotation_typing(True)  # the build's default is off (accelerated.py DIRECTIVES); the C pointer needs it
def _value(el, attr: cython.pointer[tree.xmlAttr]) -> str:
    """An attribute's text: its one text node read in place, or what lxml reads (character data split in parts)."""
    text = cython.declare(cython.pointer[tree.xmlNode], attr.children)
    if not text:
        return ""  # no text node at all: an empty value
    if text.type == tree.XML_TEXT_NODE and not text.next:
        return cython.cast(cython.p_const_char, text.content).decode("utf-8")
    name = cython.cast(cython.p_const_char, attr.name).decode("utf-8")
    if attr.ns:
        name = "{" + cython.cast(cython.p_const_char, attr.ns.href).decode("utf-8") + "}" + name
    return el.get(name)
