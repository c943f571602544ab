"""FHIR RDF Turtle (R4 rules): the graph we write for the spec's own example equals the spec's graph, the literals
carry the XSD types R4 gives them, and bad Turtle is a clear error."""

from pathlib import Path

import pytest
from lxml import etree
from rdflib import RDF, Graph, Literal, Namespace, URIRef
from rdflib.compare import graph_diff, isomorphic, to_isomorphic

from mappings.engine import MappingError
from mappings.engine.formats import dumps, parse, serialize

REFERENCE = Path(__file__).parent / "fixtures" / "patient-example-r4.ttl"
FHIR = Namespace("http://hl7.org/fhir/")
XSD = Namespace("http://www.w3.org/2001/XMLSchema#")
OWL = Namespace("http://www.w3.org/2002/07/owl#")


def graph(text: str) -> Graph:
    return Graph().parse(data=text, format="turtle")


def reference_graph() -> Graph:
    found = graph(REFERENCE.read_text())
    for header in list(found.subjects(RDF.type, OWL.Ontology)):  # the file's ontology header, not the resource
        found.remove((header, None, None))
    return found


def test_it_writes_the_spec_example_as_the_spec_does() -> None:
    patient = parse(REFERENCE.read_text(), "ttl")
    ours = graph(serialize(patient, "ttl", base="http://hl7.org/fhir"))
    expected = reference_graph()
    _, only_expected, only_ours = graph_diff(to_isomorphic(expected), to_isomorphic(ours))
    assert isomorphic(expected, ours), (sorted(only_expected)[:5], sorted(only_ours)[:5])


def test_it_reads_the_spec_example_into_fhir_json() -> None:
    patient = parse(REFERENCE.read_text(), "ttl")
    assert patient["resourceType"] == "Patient"
    assert patient["id"] == "example"
    assert [name.get("family") for name in patient["name"]] == ["Chalmers", None, "Windsor"]
    assert patient["name"][0]["given"] == ["Peter", "James"]
    assert patient["telecom"][1]["rank"] == 1
    assert patient["active"] is True
    assert patient["deceasedBoolean"] is False
    assert patient["name"][2]["period"] == {"end": "2002"}
    assert patient["_birthDate"]["extension"][0]["valueDateTime"] == "1974-12-25T14:35:45-05:00"
    assert patient["contact"][0]["name"]["_family"]["extension"][0]["valueString"] == "VV"
    assert patient["managingOrganization"] == {"reference": "Organization/1"}
    assert patient["text"]["div"].startswith('<div xmlns="http://www.w3.org/1999/xhtml">\n\t\t\t<table>')


@pytest.mark.parametrize(
    ("element", "value", "datatype"),
    [
        ("birthDate", "1974-12-25", XSD.date),
        ("birthDate", "1974-12", XSD.gYearMonth),
        ("birthDate", "1974", XSD.gYear),
        ("deceasedDateTime", "2020-01-02T03:04:05Z", XSD.dateTime),
        ("deceasedDateTime", "2020-01-02", XSD.date),
        ("active", True, XSD.boolean),
        ("multipleBirthInteger", 2, XSD.integer),
        ("gender", "male", None),
    ],
)
def test_it_types_primitive_values_as_r4_does(element: str, value: object, datatype: URIRef | None) -> None:
    found = graph(serialize({"resourceType": "Patient", element: value}, "ttl"))
    literal = next(found.objects(next(found.objects(None, FHIR[f"Patient.{element}"])), FHIR.value))
    assert literal.datatype == datatype
    assert str(literal) == ("true" if value is True else str(value))


def test_it_numbers_list_items_and_marks_the_root() -> None:
    found = graph(serialize({"resourceType": "Patient", "name": [{"family": "A"}, {"family": "B"}]}, "ttl"))
    root = next(found.subjects(FHIR.nodeRole, FHIR.treeRoot))
    assert (root, RDF.type, FHIR.Patient) in found
    indexes = sorted(int(found.value(name, FHIR["index"])) for name in found.objects(root, FHIR["Patient.name"]))
    assert indexes == [0, 1]


def test_it_names_the_root_and_links_references_when_given_a_base() -> None:
    observation = {
        "resourceType": "Observation",
        "id": "o1",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "1554-5"}]},
        "subject": {"reference": "Patient/p1"},
        "performer": [{"reference": "https://other.example/fhir/Practitioner/9"}, {"reference": "#contained"}],
    }
    found = graph(serialize(observation, "ttl", base="https://studio.example/fhir/demo/"))
    root = URIRef("https://studio.example/fhir/demo/Observation/o1")
    assert (root, FHIR.nodeRole, FHIR.treeRoot) in found
    subject = found.value(root, FHIR["Observation.subject"])
    assert found.value(subject, FHIR.link) == URIRef("https://studio.example/fhir/demo/Patient/p1")
    assert (URIRef("https://studio.example/fhir/demo/Patient/p1"), RDF.type, FHIR.Patient) in found
    links = {found.value(p, FHIR.link) for p in found.objects(root, FHIR["Observation.performer"])}
    assert links == {URIRef("https://other.example/fhir/Practitioner/9"), None}
    coding = found.value(found.value(root, FHIR["Observation.code"]), FHIR["CodeableConcept.coding"])
    assert found.value(found.value(coding, FHIR["Coding.system"]), FHIR.value) == Literal("http://loinc.org")
    assert parse(serialize(observation, "ttl", base="https://studio.example/fhir/demo"), "ttl") == observation


def test_it_uses_a_blank_node_root_without_a_base() -> None:
    text = serialize({"resourceType": "Patient", "id": "p1"}, "ttl")
    root = next(graph(text).subjects(FHIR.nodeRole, FHIR.treeRoot))
    assert not isinstance(root, URIRef)


def test_it_keeps_strings_with_quotes_newlines_and_unicode() -> None:
    patient = {"resourceType": "Patient", "name": [{"text": 'Dr. "Jim" \\ O\'Neil\nline two\ttab é 漢字'}]}
    assert parse(serialize(patient, "ttl"), "ttl") == patient


def test_it_follows_resources_placed_at_their_own_iri_as_the_spec_examples_do() -> None:
    text = """@prefix fhir: <http://hl7.org/fhir/> .
    <http://x/Bundle/b> a fhir:Bundle; fhir:nodeRole fhir:treeRoot;
      fhir:Bundle.type [ fhir:value "collection" ];
      fhir:Bundle.entry [ fhir:index 0; fhir:Bundle.entry.fullUrl [ fhir:value "http://x/Patient/1" ];
                          fhir:Bundle.entry.resource <http://x/Patient/1> ] .
    <http://x/Patient/1> a fhir:Patient; fhir:Resource.id [ fhir:value "1" ] ."""
    bundle = parse(text, "ttl")
    assert bundle["entry"] == [{"fullUrl": "http://x/Patient/1", "resource": {"resourceType": "Patient", "id": "1"}}]


@pytest.mark.parametrize(
    ("text", "code", "fragment"),
    [
        ("@prefix fhir: <http://hl7.org/fhir/> . [ a fhir:Patient ", "FS-SRC-051", "Turtle"),
        ("this is not turtle at all", "FS-SRC-051", "Turtle"),
        ("@prefix fhir: <http://hl7.org/fhir/> . [ a fhir:Patient ] .", "FS-SRC-050", "treeRoot"),
        (
            "@prefix fhir: <http://hl7.org/fhir/> . [ a fhir:Unicorn; fhir:nodeRole fhir:treeRoot ] .",
            "FS-SRC-050",
            "ResourceType",
        ),
        (
            "@prefix fhir: <http://hl7.org/fhir/> . [ a fhir:Patient; fhir:nodeRole fhir:treeRoot; "
            'fhir:Patient.nickname [ fhir:value "x" ] ] .',
            "FS-SRC-050",
            "Patient.nickname",
        ),
        (
            "@prefix fhir: <http://hl7.org/fhir/> . [ a fhir:Patient; fhir:nodeRole fhir:treeRoot; "
            'fhir:Patient.name [ fhir:HumanName.family [ fhir:value "x" ] ] ] .',
            "FS-SRC-050",
            "fhir:index",
        ),
        (
            "@prefix fhir: <http://hl7.org/fhir/> . [ a fhir:Patient; fhir:nodeRole fhir:treeRoot; "
            'fhir:Patient.active [ fhir:value "maybe" ] ] .',
            "FS-SRC-050",
            "boolean",
        ),
    ],
)
def test_it_refuses_bad_turtle_with_a_clear_error(text: str, code: str, fragment: str) -> None:
    with pytest.raises(MappingError) as caught:
        parse(text, "ttl")
    assert caught.value.code == code
    assert fragment in caught.value.message


def test_it_round_trips_the_spec_example_through_xml_too() -> None:
    patient = parse(REFERENCE.read_text(), "ttl")
    back = parse(serialize(patient, "xml"), "xml")
    # The narrative is the same XHTML, written again by the XML library: `&quot;Jim&quot;` in text comes back as
    # `"Jim"`, which XML reads identically (its canonical form is equal); everything else is equal byte for byte.
    assert canonical_xhtml(back["text"].pop("div")) == canonical_xhtml(patient["text"].pop("div"))
    assert dumps(back) == dumps(patient)


def canonical_xhtml(div: str) -> bytes:
    return etree.tostring(etree.fromstring(div), method="c14n")
