"""Cheaper reads of C-CDA documents must answer exactly as before: XmlNode's name lookup, now planned once per name
(mappings/engine/xmlsource.py, `_name_plan`), must give what lxml's own tag filter and the attribute rules give for
any name in any order; a node's text must be the same collapsed text; and the data-type filters' one-pass reading of
an element's parts (filters/ccda_types.py, `_Parts`) must give what `node[name]` and `node.all(name)` give."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest
from django.conf import settings
from lxml import etree

from mappings.engine import xmlsource
from mappings.engine.errors import MappingError
from mappings.engine.filters.ccda_types import _Parts
from mappings.engine.xmlsource import NAMESPACES, XmlNode, parse_xml

CORPUS = Path(settings.FHIR_STUDIO["CORPUS_DIR"])
CCDA_FILES = sorted((CORPUS / "fhir-converter" / "ccda").glob("*.ccda")) + sorted((CORPUS / "more").rglob("*.xml"))

# Names a template may ask: plain, prefixed with each known prefix, an unknown prefix, wildcards, and names lxml
# refuses as tags or attributes.
ODD_NAMES = ["*", "cda:*", "sdtc:*", "xsi:*", "o:x", "", "a b", "cda:", "::", "{urn:other}x", "x\x01", "?"]


def expected_lookup(el: etree._Element, name: str) -> etree._Element | str | None:
    """What `node[name]` means, written out independently: the first child lxml's tag filter finds for the name,
    else the attribute (a plain name: that attribute, else one of that local name in any namespace; a prefixed
    name: in the prefix's namespace only), else nothing."""
    prefix, colon, local = name.rpartition(":")
    if name == "*":
        pattern = "*"
    elif not local or "{" in local or "}" in local:
        pattern = None
    elif colon:
        pattern = None if prefix not in NAMESPACES else f"{{{NAMESPACES[prefix]}}}{local}"
    else:
        pattern = "{*}" + local
    if pattern is not None:
        try:
            for child in el.iterchildren(pattern):
                return child
        except ValueError:
            pass
    try:
        if colon:
            return None if prefix not in NAMESPACES else el.get(f"{{{NAMESPACES[prefix]}}}{local}")
        value = el.get(name)
    except ValueError:
        return None
    if value is not None:
        return value
    return next((el.get(key) for key in el.keys() if key.endswith("}" + name)), None)  # noqa: SIM118


def assert_same(found: XmlNode | str, expected: etree._Element | str | None, context: object) -> None:
    if expected is None:
        assert found is xmlsource._EMPTY, context
    elif isinstance(expected, str):
        assert isinstance(found, str) and found == expected, context
    else:
        assert isinstance(found, XmlNode) and found._el is expected, context


def names_for(el: etree._Element) -> list[str]:
    locals_ = [child.tag.rpartition("}")[2] for child in el.iterchildren(etree.Element)]
    attributes = [key.rpartition("}")[2] for key in el.keys()]  # noqa: SIM118
    prefixed = [f"{prefix}:{name}" for name in locals_[:4] + attributes[:3] for prefix in NAMESPACES]
    return [*locals_, *attributes, *prefixed, *ODD_NAMES, "nullFlavor", "code", "value", "missing"]


def test_it_answers_every_name_on_every_element_of_the_c_cda_corpus_in_any_order() -> None:
    assert len(CCDA_FILES) >= 10
    rng = random.Random(14)
    checked = 0
    for path in CCDA_FILES:
        try:
            root = parse_xml(path.read_bytes())
        except MappingError:
            continue  # the corpus keeps a few malformed documents on purpose
        for el in root._el.iter(etree.Element):
            names = names_for(el)
            for order in (names, rng.sample(names, len(names))):
                node = XmlNode(el)  # one node asked every name in turn: the first read, then the children's table
                for name in order + order[:3]:  # asked again once the table exists
                    assert_same(node[name], expected_lookup(el, name), (path.name, el.tag, name))
                    checked += 1
    assert checked > 100_000


def random_document(rng: random.Random) -> bytes:
    uris = ["urn:hl7-org:v3", "urn:hl7-org:sdtc", "http://www.w3.org/2001/XMLSchema-instance", "urn:other", ""]
    locals_ = ["x", "y", "code", "value", "none"]

    def element(depth: int) -> str:
        uri, local = rng.choice(uris), rng.choice(locals_)
        attributes, seen = [], set()
        for _ in range(rng.randrange(3)):
            attribute_uri, attribute = rng.choice(uris[2:]), rng.choice(locals_)
            if (attribute_uri, attribute) in seen:
                continue
            seen.add((attribute_uri, attribute))
            if attribute_uri:
                attributes.append(f'xmlns:p{len(attributes)}="{attribute_uri}" p{len(attributes)}:{attribute}="a"')
            else:
                attributes.append(f'{attribute}="b{rng.randrange(9)}"')
        children = "".join(element(depth + 1) for _ in range(rng.randrange(5 if depth < 3 else 1)))
        return f'<{local} xmlns="{uri}" {" ".join(attributes)}>{children}</{local}>'

    return element(0).encode()


def test_it_answers_like_lxml_on_generated_documents_with_mixed_namespaces() -> None:
    rng = random.Random(1414)
    names = ["x", "y", "code", "value", "none", *(f"{p}:{n}" for p in NAMESPACES for n in ("x", "code", "*"))]
    checked = 0
    for _ in range(300):
        root = parse_xml(random_document(rng))
        for el in root._el.iter(etree.Element):
            node = XmlNode(el)
            for name in [*rng.sample(names, len(names)), "*", "x", "cda:*"]:
                assert_same(node[name], expected_lookup(el, name), (etree.tostring(el), name))
                checked += 1
    assert checked > 20_000


@pytest.mark.parametrize("key", [0, 1.5, None, ("code",)])
def test_it_refuses_a_name_that_is_no_string_on_empty_and_real_nodes(key: object) -> None:
    root = parse_xml(b'<r xmlns="urn:hl7-org:v3"><code code="1"/></r>')
    for node in (root, root["code"], xmlsource._EMPTY):
        with pytest.raises(TypeError):
            node[key]


def test_it_refuses_an_unhashable_name() -> None:
    with pytest.raises(TypeError):
        parse_xml(b"<r/>")[["code"]]


def old_text(el: etree._Element) -> str:
    """A node's text before leaves skipped the iterator and texts without a run skipped the regex."""
    return re.sub(r"[ \t\r\n]+", " ", "".join(el.itertext())).strip(" ")


def test_its_text_is_the_collapsed_text_of_every_element_of_the_corpus() -> None:
    checked = 0
    for path in CCDA_FILES:
        try:
            root = parse_xml(path.read_bytes())
        except MappingError:
            continue
        for el in root._el.iter(etree.Element):
            assert str(XmlNode(el)) == old_text(el), (path.name, el.tag)
            checked += 1
    assert checked > 8_000


def test_its_text_collapses_only_xml_whitespace_in_generated_texts() -> None:
    rng = random.Random(7)
    pieces = ["a", "B", " ", "  ", "\t", "\n", "\r\n", "\u00a0", "\u2003", "&amp;", "<i>x</i>", "<b/>", ""]
    for _ in range(3000):
        body = "".join(rng.choice(pieces) for _ in range(rng.randrange(8)))
        el = etree.fromstring(f"<t>{body}</t>")
        assert str(XmlNode(el)) == old_text(el), repr(body)


def test_the_filters_one_pass_reads_give_what_node_lookups_give_on_the_corpus_and_generated_documents() -> None:
    rng = random.Random(21)
    documents = []
    for path in CCDA_FILES:
        try:
            documents.append(parse_xml(path.read_bytes()))
        except MappingError:
            continue
    documents += [parse_xml(random_document(rng)) for _ in range(200)]
    checked = 0
    for root in documents:
        for el in root._el.iter(etree.Element):
            node, parts = XmlNode(el), _Parts(XmlNode(el))
            names = [name for name in names_for(el) if ":" not in name and name not in ODD_NAMES]
            for name in [*names, "nullFlavor", "use", "family", "given", "translation", "originalText", "county"]:
                assert_same(parts[name], expected_lookup(el, name), (el.tag, name))
                assert [one._el for one in parts.all(name)] == [one._el for one in node.all(name)], (el.tag, name)
                checked += 1
            assert parts.count() == len(node)
    assert checked > 50_000
    empty = _Parts(xmlsource._EMPTY)
    assert empty["code"] is xmlsource._EMPTY and empty.all("code") == [] and empty.count() == 0
