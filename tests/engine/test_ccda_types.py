"""C-CDA data types → FHIR data types as filters (filters/ccda_types.py): a table per type, the lookup tables they
read, their registration, and a comparison with the macros they replaced on generated elements."""

import random
import zlib
from pathlib import Path

import orjson
import pytest
from django.conf import settings

from mappings.engine import compile_mapping, run_mapping, template_references
from mappings.engine.errors import MappingError
from mappings.engine.filters import FILTERS, TABLES_READ, documentation
from mappings.engine.postprocess import parse_output, prune
from mappings.engine.xmlsource import parse_xml
from mappings.examples import find_example

TABLES = find_example(settings.FHIR_STUDIO["EXAMPLES_DIR"], "ccda-ccd").lookup_tables
REFERENCE = (Path(__file__).parent / "fixtures" / "ccda_datatype_macros.j2").read_text()
COMPILED = compile_mapping(
    '{% import "snippets/reference.j2" as ref %}{}',
    snippets={"snippets/reference.j2": REFERENCE},
    lookup_tables=TABLES,
)
ENV = COMPILED.environment
CDA = 'xmlns="urn:hl7-org:v3" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"'
LOINC = "http://loinc.org"


def element(xml: str):
    """The first child of a CDA document holding `xml`, as a template reads it."""
    root = parse_xml(f"<ClinicalDocument {CDA}>{xml}</ClinicalDocument>")
    return next(iter(root))


def call(name: str, xml: str, *args, **kwargs):
    return FILTERS[name](ENV, element(xml), *args, **kwargs)


# --- one table per type ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("xml", "expected"),
    [
        (
            '<id root="2.16.840.1.113883.19.5" extension="998991"/>',
            {"value": "998991", "system": "urn:oid:2.16.840.1.113883.19.5"},
        ),
        (
            '<id root="2.16.840.1.113883.4.6" extension="111"/>',
            {"value": "111", "system": "http://hl7.org/fhir/sid/us-npi"},
        ),
        (
            '<id root="2.16.840.1.113883.19.5"/>',
            {"value": "urn:oid:2.16.840.1.113883.19.5", "system": "urn:ietf:rfc:3986"},
        ),
        (
            '<id root="e2e47a8c-1cd3-4b5a-9a3d-2a1d5a2b9f10"/>',
            {"value": "urn:uuid:e2e47a8c-1cd3-4b5a-9a3d-2a1d5a2b9f10", "system": "urn:ietf:rfc:3986"},
        ),
        ('<id nullFlavor="UNK"/>', None),
        ("<id/>", None),
    ],
)
def test_it_turns_an_ii_into_an_identifier(xml, expected) -> None:
    assert call("identifier_from_ii", xml) == expected


def test_it_turns_a_cd_into_a_codeable_concept_with_its_translations() -> None:
    xml = (
        '<code code="8480-6" codeSystem="2.16.840.1.113883.6.1" displayName=" Systolic BP ">'
        '<translation code="271649006" codeSystem="2.16.840.1.113883.6.96"/><translation nullFlavor="OTH"/></code>'
    )
    assert call("concept_from_cd", xml) == {
        "coding": [
            {"system": LOINC, "code": "8480-6", "display": "Systolic BP"},
            {"system": "http://snomed.info/sct", "code": "271649006"},
        ],
        "text": "Systolic BP",
    }
    assert call("concept_from_cd", "<code><originalText>Aspirin <b>81</b></originalText></code>") == {
        "text": "Aspirin 81"
    }
    assert call("concept_from_cd", '<code nullFlavor="UNK"/>') is None
    assert call("concept_from_cd", '<code nullFlavor="UNK"/>', "Penicillin") == {"text": "Penicillin"}
    assert call("concept_from_cd", '<code nullFlavor="UNK"/>', required=True)["coding"][0]["code"] == "unknown"
    assert call(
        "coding_from_cd", '<value code="2106-3" codeSystem="2.16.840.1.113883.6.238" displayName="White"/>'
    ) == {
        "system": "urn:oid:2.16.840.1.113883.6.238",
        "code": "2106-3",
        "display": "White",
    }


def test_it_turns_a_pn_an_ad_and_a_tel_into_fhir_types() -> None:
    name = '<name use="L SRCH"><given>Eve</given><given/><family>Betterhalf</family><family>Roe</family></name>'
    assert call("human_name_from_pn", name) == {"use": "official", "family": "Betterhalf Roe", "given": ["Eve"]}
    assert call("human_name_from_pn", "<name>Dr. Henry Seven</name>") == {"text": "Dr. Henry Seven"}
    assert call("human_name_from_pn", '<name nullFlavor="UNK"/>') is None
    address = (
        '<addr use="HP"><streetAddressLine>1357 Amber Drive</streetAddressLine><city>Beaverton</city>'
        "<state>OR</state><postalCode>97867</postalCode><county>Washington</county><country>US</country></addr>"
    )
    assert call("address_from_ad", address) == {
        "use": "home",
        "line": ["1357 Amber Drive"],
        "city": "Beaverton",
        "district": "Washington",
        "state": "OR",
        "postalCode": "97867",
        "country": "US",
    }
    assert call("contact_point_from_tel", '<telecom use="HP" value="tel: +1(555)555-2003"/>') == {
        "system": "phone",
        "value": "+1(555)555-2003",
        "use": "home",
    }
    assert call("contact_point_from_tel", '<telecom value="mailto://eve@example.org"/>') == {
        "system": "email",
        "value": "eve@example.org",
    }
    assert call("contact_point_from_tel", '<telecom value="http://example.org"/>')["value"] == "http://example.org"
    assert call("contact_point_from_tel", '<telecom nullFlavor="UNK"/>') is None


def test_it_turns_an_ivl_ts_into_a_period_and_a_pq_into_a_quantity() -> None:
    interval = '<effectiveTime><low value="20070103"/><high value="200701031030-0500"/></effectiveTime>'
    assert call("period_from_ivl_ts", interval) == {"start": "2007-01-03", "end": "2007-01-03T10:30:00-05:00"}
    assert call("period_from_ivl_ts", '<effectiveTime value="2012"/>') == {"start": "2012"}
    assert call("quantity_from_pq", '<doseQuantity value="2" unit="mg"/>') == {
        "value": 2,
        "unit": "mg",
        "system": "http://unitsofmeasure.org",
        "code": "mg",
    }
    assert call("quantity_from_pq", '<doseQuantity value="1" unit="1"/>') == {"value": 1}
    assert call("quantity_from_pq", '<doseQuantity nullFlavor="UNK"/>') is None


@pytest.mark.parametrize("name", ["identifier_from_ii", "concept_from_cd", "human_name_from_pn", "quantity_from_pq"])
def test_it_refuses_a_value_that_is_not_an_xml_element(name) -> None:
    with pytest.raises(MappingError) as raised:
        FILTERS[name](ENV, {"root": "1.2.3"})
    assert raised.value.code == "FS-RND-002"
    assert FILTERS[name](ENV, None) is None


def test_a_template_prints_the_value_as_json_and_nothing_for_a_missing_element() -> None:
    template = (
        '{"resourceType": "Observation", "status": "final",'
        '"identifier": [{% for ii in msg.all("id") %}{{ ii | identifier_from_ii }},{% endfor %}],'
        '"code": {{ msg.code | concept_from_cd(required=True) }}, "valueQuantity": {{ msg.value | quantity_from_pq }},'
        '"effectivePeriod": {{ msg.effectiveTime | period_from_ivl_ts }}}'
    )
    document = (
        f'<observation {CDA}><id root="1.2.3" extension="9"/><id nullFlavor="NI"/>'
        '<code code="1-8" codeSystem="2.16.840.1.113883.6.1"/></observation>'
    )
    result = run_mapping(compile_mapping(template, source_format="xml", lookup_tables=TABLES), document)
    assert result.ok, result.errors
    assert result.output == {
        "resourceType": "Observation",
        "status": "final",
        "identifier": [{"value": "9", "system": "urn:oid:1.2.3"}],
        "code": {"coding": [{"system": LOINC, "code": "1-8"}]},
    }


def test_a_bad_date_inside_a_type_warns_at_the_line_that_called_the_filter() -> None:
    template = (
        '{"resourceType": "Encounter", "status": "finished", "class": {"code": "AMB"},\n'
        '"period": {{ msg.effectiveTime | period_from_ivl_ts }}}'
    )
    document = f'<encounter {CDA}><effectiveTime><low value="20201399"/></effectiveTime></encounter>'
    result = run_mapping(compile_mapping(template, source_format="xml"), document, validate=False)
    assert "period" not in result.output
    [warning] = result.errors
    assert (warning.code, warning.severity, warning.line) == ("FS-RND-002", "warning", 2)


# --- registration: documented, completed, and the tables they read ----------------------------------------------


def test_they_are_documented_filters_like_the_others() -> None:
    docs = {row["name"]: row["doc"] for row in documentation() if row["kind"] == "filter"}
    for name in (
        "identifier_from_ii",
        "concept_from_cd",
        "coding_from_cd",
        "human_name_from_pn",
        "address_from_ad",
        "contact_point_from_tel",
        "period_from_ivl_ts",
        "quantity_from_pq",
        "system_from_oid",
    ):
        assert name in ENV.filters
        assert docs[name]


def test_a_template_using_one_refers_to_the_lookup_tables_it_reads() -> None:
    assert TABLES_READ["concept_from_cd"] == ("ccda-code-systems",)
    assert template_references("{{ x | contact_point_from_tel }}").tables == (
        "ccda-telecom-system",
        "ccda-telecom-use",
    )
    assert template_references("{{ x | human_name_from_pn }}").tables == ("ccda-name-use",)
    assert template_references("{{ x | identifier_from_ii }}").tables == ()


# --- the same answers as the macros they replaced ----------------------------------------------------------------

ATTRIBUTES = {
    "root": ["2.16.840.1.113883.19.5", "e2e47a8c-1cd3-4b5a-9a3d-2a1d5a2b9f10", " 1.2.3 ", "", "http://x.org"],
    "extension": ["998991", " ", "", "a b"],
    "nullFlavor": ["UNK", "NI", ""],
    "code": ["8480-6", "", " ", "S"],
    "codeSystem": ["2.16.840.1.113883.6.1", "2.16.840.1.113883.6.96", "1.2.3.4", "", "urn:x:y"],
    "displayName": ["Systolic", " padded ", ""],
    "use": ["L", "HP WP", "SRCH L", "XX", "", "MC"],
    "value": [
        "tel: +1(555)555-1004",
        "mailto://a@b.org",
        "http://example.org",
        "5551234",
        "fax:555",
        "x:",
        "7.5",
        "20070103",
        "200701031030-0500",
        "20201399",
        "1",
    ],
    "unit": ["mg", "1", "", "mm[Hg]"],
}
CHILDREN = {
    "originalText": ["Aspirin", "", "<reference value='#x'/>"],
    "translation": ["<translation code='1' codeSystem='2.16.840.1.113883.6.1'/>", "<translation nullFlavor='OTH'/>"],
    "given": ["Eve", "", " "],
    "family": ["Roe", "Betterhalf", ""],
    "prefix": ["Dr."],
    "suffix": ["Jr"],
    "streetAddressLine": ["1 Main St", ""],
    "city": ["Beaverton", ""],
    "county": ["Washington"],
    "state": ["OR"],
    "postalCode": ["97867"],
    "country": ["US"],
    "low": ["<low value='20070103'/>", "<low nullFlavor='UNK'/>"],
    "high": ["<high value='200701031030-0500'/>", "<high value='20201399'/>"],
    "center": ["<center value='2012'/>"],
}
TYPES = {  # filter → (attributes it reads, children it reads, argument sets)
    "identifier_from_ii": (["root", "extension", "nullFlavor"], [], [(), ("official",)]),
    "concept_from_cd": (
        ["code", "codeSystem", "displayName", "nullFlavor"],
        ["originalText", "translation"],
        [(), ("Fallback",), (None, True)],
    ),
    "coding_from_cd": (["code", "codeSystem", "displayName"], [], [()]),
    "human_name_from_pn": (["use", "nullFlavor"], ["given", "family", "prefix", "suffix"], [()]),
    "address_from_ad": (
        ["use", "nullFlavor"],
        ["streetAddressLine", "city", "county", "state", "postalCode", "country"],
        [()],
    ),
    "contact_point_from_tel": (["value", "use", "nullFlavor"], [], [()]),
    "period_from_ivl_ts": (["value"], ["low", "high", "center"], [()]),
    "quantity_from_pq": (["value", "unit"], [], [()]),
}


def generated_elements(seed: int, attributes: list[str], children: list[str], count: int) -> list[str]:
    rng = random.Random(seed)
    elements = []
    for _ in range(count):
        attrs = " ".join(f'{name}="{rng.choice(ATTRIBUTES[name])}"' for name in attributes if rng.random() < 0.6)
        body = ""
        for name in children:
            for _ in range(rng.choice([0, 0, 1, 2])):
                content = rng.choice(CHILDREN[name])
                body += content if content.startswith("<") else f"<{name}>{content}</{name}>"
        if rng.random() < 0.1:
            body = rng.choice(["Plain text", " ", ""])
        elements.append(f"<x {attrs}>{body}</x>")
    return elements


def as_pruned(value: object) -> bytes:
    return orjson.dumps(prune(value))


@pytest.mark.parametrize("name", list(TYPES))
def test_each_filter_gives_what_its_macro_gave_on_generated_elements(name) -> None:
    attributes, children, argument_sets = TYPES[name]
    macro = getattr(ENV.get_template("snippets/reference.j2").module, name)
    for index, xml in enumerate(generated_elements(zlib.crc32(name.encode()), attributes, children, 300)):
        node = element(xml)
        for args in argument_sets:
            old = parse_output(str(macro(node, *args)))  # as post-processing reads it: stray commas too
            new = FILTERS[name](ENV, node, *args)
            assert as_pruned(new) == as_pruned(old), (index, xml, args)
