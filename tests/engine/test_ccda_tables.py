"""A parsed document's children tables (mappings/engine/xmlsource.py, `_children_table`): the nodes of one document
read an element's children by name from a table made on the first such read. Every answer must be what lxml's own
tag filter gives (`expected_lookup` of test_ccda_lookups), whichever node asks first, in any order, past the tables'
bounds too, and `node.all(name)` must list what the tag filter lists."""

from __future__ import annotations

import random

from lxml import etree

from mappings.engine import xmlsource
from mappings.engine.errors import MappingError
from mappings.engine.filters.ccda_types import _Parts
from mappings.engine.xmlsource import NAMESPACES, XmlNode, parse_xml
from tests.engine.test_ccda_lookups import (
    CCDA_FILES,
    ODD_NAMES,
    assert_same,
    expected_lookup,
    names_for,
    random_document,
)


def expected_all(el: etree._Element, name: str) -> list[etree._Element]:
    """What `node.all(name)` listed before the tables: lxml's tag filter over the children, written out."""
    prefix, colon, local = name.rpartition(":")
    if name == "*":
        pattern = "*"
    elif not local or "{" in local or "}" in local:
        return []
    elif colon:
        if prefix not in NAMESPACES:
            return []
        pattern = f"{{{NAMESPACES[prefix]}}}{local}"
    else:
        pattern = "{*}" + local
    try:
        return list(el.iterchildren(pattern))
    except ValueError:  # a name lxml refuses as a tag
        return []


def documents() -> list[XmlNode]:
    found = []
    for path in CCDA_FILES:
        try:
            found.append(parse_xml(path.read_bytes()))
        except MappingError:
            continue  # the corpus keeps a few malformed documents on purpose
    rng = random.Random(2026)
    return found + [parse_xml(random_document(rng)) for _ in range(200)]


def test_a_documents_nodes_answer_every_name_like_lxml_with_their_shared_tables() -> None:
    rng = random.Random(15)
    checked = tabled = 0
    for root in documents():
        assert root._tables == {}  # made as names are read, not at parse time
        for el in root._el.iter(etree.Element):
            names = names_for(el)
            node = XmlNode(el, root._tables)  # as every node reached from the root holds them
            for name in [*rng.sample(names, len(names)), *names[:3]]:
                assert_same(node[name], expected_lookup(el, name), (el.tag, name))
                assert [one._el for one in node.all(name)] == expected_all(el, name), (el.tag, name)
                checked += 1
        tabled += len(root._tables)
    assert checked > 100_000 and tabled > 2_000


def test_nodes_reached_from_the_root_share_its_tables_and_filters_read_them_too() -> None:
    root = parse_xml(b'<r xmlns="urn:hl7-org:v3"><a><b/><c code="1"/><b x="2"/></a><a/></r>')
    a = root["a"]
    assert a._tables is root._tables and a["b"]._tables is root._tables
    assert [node.tag for node in root.all("a")] == ["a", "a"]
    assert [node.attr("x") for node in a.all("b")] == ["", "2"]
    for reached in (a.first("c"), a.find_all("b")[0], a.parent, next(iter(a)), root.xpath("cda:a")[0], a.section):
        assert reached._tables is root._tables
    parts = _Parts(a)
    assert parts["c"]["code"] == "1" and [one._el for one in parts.all("b")] == [one._el for one in a.all("b")]
    assert root._tables[a._el] is parts._groups  # one table for the element, whoever read it first


def test_past_its_bounds_a_document_reads_through_the_tag_filter(monkeypatch) -> None:
    many = "".join(f'<e n="{index}"/>' for index in range(xmlsource.MAX_TABLE_CHILDREN + 1))
    root = parse_xml(f'<r xmlns="urn:hl7-org:v3"><wide>{many}<x/></wide><a><b/></a><c><b/></c></r>'.encode())
    wide = root["wide"]
    assert wide["e"]["n"] == "0" and wide["x"].tag == "x" and len(wide.all("e")) == xmlsource.MAX_TABLE_CHILDREN + 1
    assert wide._el not in root._tables
    monkeypatch.setattr(xmlsource, "MAX_TABLES", 2)
    for name in ("a", "c"):
        assert root[name]["b"].tag == "b"
    assert len(root._tables) == 2  # the root's and a's; c read through the tag filter
    assert root["c"].all("b")[0].tag == "b" and root["c"]._el not in root._tables


def test_odd_names_and_prefixes_keep_their_meaning_on_a_document() -> None:
    root = parse_xml(
        b'<r xmlns="urn:hl7-org:v3" xmlns:sdtc="urn:hl7-org:sdtc" xmlns:o="urn:other">'
        b"<sdtc:raceCode code='1'/><raceCode code='2'/><o:raceCode code='3'/><x/></r>"
    )
    assert root["raceCode"]["code"] == "1"  # the first, any namespace
    assert root["cda:raceCode"]["code"] == "2" and root["sdtc:raceCode"]["code"] == "1"
    assert [node["code"] for node in root.all("raceCode")] == ["1", "2", "3"]
    assert [node["code"] for node in root.all("cda:raceCode")] == ["2"]
    assert root["*"].tag == "raceCode" and len(root.all("*")) == 4 and len(root.all()) == 4
    for name in ODD_NAMES:
        assert_same(root[name], expected_lookup(root._el, name), name)
