"""xmltree.py (an element's children and attributes by local name) answers as lxml's own calls do: on every element
of the corpus's C-CDA documents and on hand-written edges (namespaces, comments and processing instructions among the
children, a name in two namespaces, empty and escaped attribute values, non-ASCII names). Compiled, the functions walk
libxml2's lists in C (CI runs compiled, with FHIR_STUDIO_REQUIRE_ACCELERATED); as plain Python they are lxml's
iterators; the references here are lxml's calls written out, so both ways are held to them."""

import pytest
from lxml import etree

from mappings.engine import accelerated
from mappings.engine.xmlsource import parse_xml
from mappings.engine.xmltree import attribute, children_by_name, children_named, first_child

EDGES = b"""<?xml version="1.0" encoding="UTF-8"?>
<doc xmlns="urn:hl7-org:v3" xmlns:sdtc="urn:hl7-org:sdtc" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
     xmlns:o="urn:other">
  <code code="1" xsi:type="CD" o:code="2" empty="" escaped="a &amp; b &lt;c&gt; &#233;&#x20;d"/>
  <?pi text?>
  <!-- a comment between children -->
  <o:code code="3"/>
  <sdtc:raceCode code="4"/>
  <plain xmlns="">text<b>bold</b>tail</plain>
  <caf\xc3\xa9 \xc3\xa9t\xc3\xa9="summer"/>
  <code code="5" o:type="x" type="y">second</code>
  <value xsi:type="PQ" o:type="z"/>
</doc>"""
NAMES = ["code", "raceCode", "plain", "b", "café", "été", "value", "type", "empty", "escaped", "xsi", "nothing", "doc"]
NAMES += ["text", "comment", "pi"]  # libxml2's names of text, comment and PI nodes: never an element's


def _elements(corpus_dir) -> list:
    roots = [etree.fromstring(EDGES), etree.fromstring(EDGES, etree.XMLParser(resolve_entities=False))]
    for path in sorted((corpus_dir / "fhir-converter" / "ccda").glob("*.ccda"))[:6]:
        roots.append(parse_xml(path.read_bytes())._el)
    return [el for root in roots for el in root.iter(etree.Element)]


def _names(el) -> list[str]:
    """The local names of the element's children and attributes, and NAMES: hits and misses."""
    found = {child.tag.rpartition("}")[2] for child in el.iterchildren(etree.Element)}
    found.update(key.rpartition("}")[2] for key in el.keys())  # noqa: SIM118 — `in el` would be the children
    return sorted(found) + NAMES


def _attribute_by_lxml(el, name: str):
    value = el.get(name)
    if value is not None:
        return value
    for key in el.keys():  # noqa: SIM118
        if key.endswith("}" + name):
            return el.get(key)
    return None


def test_children_and_attributes_answer_as_lxml_does(corpus_dir) -> None:
    elements = _elements(corpus_dir)
    assert len(elements) > 2000
    children_found = attributes_found = 0
    for el in elements:
        grouped = {}
        for child in el.iterchildren(etree.Element):
            grouped.setdefault(child.tag.rpartition("}")[2], []).append(child)
        assert children_by_name(el) == grouped
        for name in _names(el):
            local, pattern = name.encode(), "{*}" + name
            expected = list(el.iterchildren(pattern))
            assert children_named(el, local, pattern) == expected, (el.tag, name)
            assert first_child(el, local, pattern) is (expected[0] if expected else None), (el.tag, name)
            value = _attribute_by_lxml(el, name)
            assert attribute(el, local, name) == value, (el.tag, name)
            children_found += bool(expected)
            attributes_found += value is not None
    assert children_found > 1000 and attributes_found > 1000


def test_the_edges_read_as_lxml_reads_them() -> None:
    root = etree.fromstring(EDGES)
    code = first_child(root, b"code", "{*}code")
    assert code.get("code") == "1"  # the first <code> in document order, namespace aside
    assert [el.get("code") for el in children_named(root, b"code", "{*}code")] == ["1", "3", "5"]
    assert attribute(code, b"code", "code") == "1"  # the attribute without a namespace wins over o:code
    assert attribute(code, b"type", "type") == "CD"  # xsi:type, the only `type`
    assert attribute(code, b"empty", "empty") == ""
    assert attribute(code, b"escaped", "escaped") == "a & b <c> é d"
    second = children_named(root, b"code", "{*}code")[2]
    assert attribute(second, b"type", "type") == "y"  # un-namespaced first, wherever it stands
    value = first_child(root, b"value", "{*}value")
    assert attribute(value, b"type", "type") == "PQ"  # of two namespaced ones, the first in the document
    assert attribute(first_child(root, "café".encode(), "{*}café"), "été".encode(), "été") == "summer"
    assert first_child(root, b"nothing", "{*}nothing") is None
    assert first_child(root, b"*", "*") is code  # "*": any element (not the PI or comment around them)
    assert len(children_named(root, b"*", "*")) == 7
    assert children_named(first_child(root, b"plain", "{*}plain"), b"b", "{*}b")[0].text == "bold"
    assert list(children_by_name(root)) == ["code", "raceCode", "plain", "café", "value"]
    built = etree.Element("built", {"empty": "", "{urn:other}type": "t"})  # made by lxml, not by the parser
    assert (attribute(built, b"empty", "empty"), attribute(built, b"type", "type")) == ("", "t")


def test_compiled_code_reads_without_lxml_iterators(monkeypatch) -> None:
    """Compiled, a child is found without lxml's tag matcher: a pattern lxml would refuse is never handed to it."""
    from mappings.engine import xmltree

    if not accelerated.loaded_compiled().get("mappings.engine.xmltree"):
        pytest.skip("xmltree runs as plain Python here (FHIR_STUDIO_PURE_PYTHON or no build)")
    root = etree.fromstring(EDGES)
    assert xmltree.first_child(root, b"plain", "{not a pattern").tag == "plain"
    assert len(xmltree.children_named(root, b"code", "{not a pattern")) == 3
