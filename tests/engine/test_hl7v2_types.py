"""HL7 v2 data types → FHIR data types as filters (filters/hl7v2_types.py): a table per type, the lookup tables they
read, their registration, and a comparison with the macros they replaced on generated fields."""

import random
import zlib
from pathlib import Path

import orjson
import pytest
from django.conf import settings

from mappings.engine import compile_mapping, run_mapping, template_references
from mappings.engine.errors import MappingError
from mappings.engine.filters import FILTERS, TABLES_READ, documentation
from mappings.engine.hl7v2 import parse_hl7v2
from mappings.engine.postprocess import parse_output, prune
from mappings.examples import find_example

TABLES = find_example(settings.FHIR_STUDIO["EXAMPLES_DIR"], "hl7v2-adt-a01").lookup_tables
REFERENCE = (Path(__file__).parent / "fixtures" / "hl7v2_datatype_macros.j2").read_text()
COMPILED = compile_mapping(
    '{% import "snippets/reference.j2" as ref %}{}',
    snippets={"snippets/reference.j2": REFERENCE},
    lookup_tables=TABLES,
)
ENV = COMPILED.environment
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"


def field(text: str):
    """ZZZ-1 holding `text`, as a template reads it."""
    return parse_hl7v2(f"MSH|^~\\&|A|B|C|D|20240101||ADT^A01|1|P|2.5\rZZZ|{text}")["ZZZ"][1]


def call(name: str, source: str, *args, **kwargs):
    return FILTERS[name](ENV, field(source), *args, **kwargs)


# --- one table per type ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kwargs", "expected"),
    [
        (
            "12345^^^MRN&1.2.840.1&ISO^MR",
            {},
            {"value": "12345", "type": {"coding": [{"system": V2_0203, "code": "MR"}]}, "system": "urn:oid:1.2.840.1"},
        ),
        (
            "V1^^^^^^20200101^20201231",
            {"use": "old"},
            {"use": "old", "value": "V1", "period": {"start": "2020-01-01", "end": "2020-12-31"}},
        ),
        ("999", {"type_code": "VN"}, {"value": "999", "type": {"coding": [{"system": V2_0203, "code": "VN"}]}}),
        ("1^^^&AB12CD&UUID", {}, {"value": "1", "system": "urn:uuid:ab12cd"}),
        ("1^^^&http://example.org/mrn", {}, {"value": "1", "system": "http://example.org/mrn"}),
        ("1^^^NPI", {}, {"value": "1", "system": "http://hl7.org/fhir/sid/us-npi"}),
        ("1^^^Good Hospital", {}, {"value": "1", "system": "urn:id:Good%20Hospital"}),
        ("12\\S\\34^^^A\\T\\B", {}, {"value": "12^34", "system": "urn:id:A%26B"}),  # escaped separators, decoded
        ("", {}, None),
        ("^^^MRN^MR", {}, None),  # no CX-1: no identifier
        ('""', {}, None),  # the HL7 null
        ("  ^^^^ ", {}, {"type": {"coding": [{"system": V2_0203}]}}),  # whitespace-only parts are left out
    ],
)
def test_it_turns_a_cx_into_an_identifier(text, kwargs, expected) -> None:
    assert call("identifier_from_cx", text, **kwargs) == expected


def test_a_field_reads_its_first_repetition_and_iterating_gives_each() -> None:
    pid3 = field("1^^^A~2^^^B")
    assert FILTERS["identifier_from_cx"](ENV, pid3)["value"] == "1"
    assert [FILTERS["identifier_from_cx"](ENV, cx)["system"] for cx in pid3] == ["urn:id:A", "urn:id:B"]


def test_it_turns_an_ei_and_an_xcn_into_identifiers() -> None:
    assert call("identifier_from_ei", "ORD1^LAB^1.2.3^ISO", "PLAC") == {
        "value": "ORD1",
        "type": {"coding": [{"system": V2_0203, "code": "PLAC"}]},
        "system": "urn:oid:1.2.3",
    }
    assert call("identifier_from_ei", "^LAB") is None
    assert call("identifier_from_xcn", "1234^Jones^Ann^^^^^^NPI^^^^DN") == {
        "value": "1234",
        "system": "http://hl7.org/fhir/sid/us-npi",
        "type": {"coding": [{"system": V2_0203, "code": "DN"}]},
    }


@pytest.mark.parametrize(
    ("text", "use", "expected"),
    [
        (
            "Smith&Sm^John^Q^Jr^Dr^^L",
            None,
            {"use": "official", "family": "Smith", "given": ["John", "Q"], "prefix": ["Dr"], "suffix": ["Jr"]},
        ),
        ("Doe^Jane^^^^^U", "old", {"use": "old", "family": "Doe", "given": ["Jane"]}),  # U maps to nothing
        ("O\\T\\Brien^Sean", None, {"family": "O&Brien", "given": ["Sean"]}),
        ("^Cher", None, {"given": ["Cher"]}),
        (
            "Lee^^^^^^^^^20000101&20101231",
            None,
            {"family": "Lee", "period": {"start": "2000-01-01", "end": "2010-12-31"}},
        ),
        ("^^Q", None, None),  # neither family nor given
        ("", "usual", None),
    ],
)
def test_it_turns_an_xpn_into_a_human_name(text, use, expected) -> None:
    assert call("human_name_from_xpn", text, use) == expected


def test_it_turns_an_xcn_into_a_human_name() -> None:
    assert call("human_name_from_xcn", "77^Jones&J^Ann^B^III^Dr^^^^L") == {
        "use": "official",
        "family": "Jones",
        "given": ["Ann", "B"],
        "prefix": ["Dr"],
        "suffix": ["III"],
    }
    assert call("human_name_from_xcn", "77") is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "123 Main St&Main St&123^Apt 4^Springfield^IL^62701^USA^M^^Sangamon",
            {
                "type": "postal",
                "line": ["123 Main St Main St 123", "Apt 4"],
                "city": "Springfield",
                "district": "Sangamon",
                "state": "IL",
                "postalCode": "62701",
                "country": "USA",
            },
        ),
        ("1 Elm^^Paris^^^FR^H", {"use": "home", "line": ["1 Elm"], "city": "Paris", "country": "FR"}),
        ("^^^^^^^^^^^^20200101^20210101", None),  # only a period: no address
        ("^^Rome^^^^^^^^^^19990101", {"city": "Rome", "period": {"start": "1999-01-01"}}),
        ("", None),
    ],
)
def test_it_turns_an_xad_into_an_address(text, expected) -> None:
    assert call("address_from_xad", text) == expected


@pytest.mark.parametrize(
    ("text", "use", "expected"),
    [
        ("(555)555-1234^PRN^PH", None, {"system": "phone", "value": "(555)555-1234", "use": "home"}),
        ("^NET^Internet^ann@example.org", "home", {"system": "email", "value": "ann@example.org", "use": "home"}),
        ("^^^ann@example.org", None, {"system": "email", "value": "ann@example.org"}),
        ("^^CP^^1^555^5551234^12", "work", {"system": "phone", "value": "+1 (555) 5551234 ext. 12", "use": "mobile"}),
        (
            "5551234^WPN^FX^^^^^^^^^^20200101^^^^^2",
            None,
            {"system": "fax", "value": "5551234", "use": "work", "rank": 2, "period": {"start": "2020-01-01"}},
        ),
        ("5551234^^ZZ^^^^^^^^^^^^^^^0", None, {"system": "other", "value": "5551234"}),  # rank 0 is no rank
        ("^PRN^PH", None, None),  # no number
        ("", None, None),
    ],
)
def test_it_turns_an_xtn_into_a_contact_point(text, use, expected) -> None:
    assert call("telecom_from_xtn", text, use) == expected


@pytest.mark.parametrize(
    ("text", "kwargs", "expected"),
    [
        (
            "I10^Hypertension^I10C^401.9^HTN^I9C",
            {},
            {
                "coding": [
                    {"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "I10", "display": "Hypertension"},
                    {"system": "http://hl7.org/fhir/sid/icd-9-cm", "code": "401.9", "display": "HTN"},
                ],
                "text": "Hypertension",
            },
        ),
        (
            "1554-5^GLUCOSE^POST 12H CFST:MCNC",
            {},
            {"coding": [{"code": "1554-5", "display": "GLUCOSE"}], "text": "GLUCOSE"},
        ),  # free text is no system
        (
            "A^^^^^^v2^^Original",
            {"default_system": "http://d"},
            {"coding": [{"system": "http://d", "version": "v2", "code": "A"}], "text": "Original"},
        ),
        ("", {"text": "Only text"}, {"text": "Only text"}),
        ("^^^^^^^^", {}, None),
        ("\\X41\\1^Caf\\XC3A9\\", {}, {"coding": [{"code": "A1", "display": "Café"}], "text": "Café"}),
    ],
)
def test_it_turns_a_cwe_into_a_codeable_concept(text, kwargs, expected) -> None:
    assert call("codeable_concept_from_cwe", text, **kwargs) == expected


def test_it_turns_a_cwe_into_one_coding() -> None:
    assert call("coding_from_cwe", "M^Married^HL70002") == {
        "system": "http://terminology.hl7.org/CodeSystem/v2-0002",
        "code": "M",
        "display": "Married",
    }
    assert call("coding_from_cwe", "S^Single", "http://d") == {"system": "http://d", "code": "S", "display": "Single"}
    assert call("coding_from_cwe", "^Only a display") is None


@pytest.mark.parametrize("name", ["identifier_from_cx", "human_name_from_xpn", "codeable_concept_from_cwe"])
def test_it_refuses_a_value_that_is_not_an_hl7_node(name) -> None:
    with pytest.raises(MappingError) as raised:
        FILTERS[name](ENV, {"value": "1"})
    assert raised.value.code == "FS-RND-002"
    assert FILTERS[name](ENV, None) is None


def test_a_template_prints_the_value_as_json_and_nothing_for_an_empty_field() -> None:
    template = (
        '{"resourceType": "Patient", "identifier": [{% for cx in msg.PID[3] %}{{ cx | identifier_from_cx }},'
        '{% endfor %}], "name": [{{ msg.PID[5] | human_name_from_xpn }}], '
        '"maritalStatus": {{ msg.PID[16] | codeable_concept_from_cwe }}}'
    )
    message = "MSH|^~\\&|A|B|C|D|20240101||ADT^A01|1|P|2.5\rPID|1||7^^^A~8^^^B||Roe^Rita|||||||||||"
    compiled = compile_mapping(template, lookup_tables=TABLES, source_format="hl7v2")
    result = run_mapping(compiled, message, validate=False)
    assert result.ok, result.errors
    assert result.output == {
        "resourceType": "Patient",
        "identifier": [{"value": "7", "system": "urn:id:A"}, {"value": "8", "system": "urn:id:B"}],
        "name": [{"family": "Roe", "given": ["Rita"]}],
    }


def test_a_bad_date_inside_a_type_warns_at_the_line_that_called_the_filter() -> None:
    template = '{"resourceType": "Patient",\n"identifier": [{{ msg.PID[3] | identifier_from_cx }}]}'
    message = "MSH|^~\\&|A|B|C|D|20240101||ADT^A01|1|P|2.5\rPID|1||7^^^A^^^20201399"
    result = run_mapping(compile_mapping(template, source_format="hl7v2"), message, validate=False)
    assert result.output["identifier"] == [{"value": "7", "system": "urn:id:A"}]
    [warning] = result.errors
    assert (warning.code, warning.severity, warning.line) == ("FS-RND-002", "warning", 2)


# --- registration: documented, completed, and the tables they read ----------------------------------------------


def test_they_are_documented_filters_like_the_others() -> None:
    docs = {row["name"]: row["doc"] for row in documentation() if row["kind"] == "filter"}
    for name in (
        "identifier_from_cx",
        "human_name_from_xpn",
        "address_from_xad",
        "telecom_from_xtn",
        "codeable_concept_from_cwe",
        "coding_from_cwe",
        "identifier_from_ei",
        "system_from_hd",
    ):
        assert name in ENV.filters
        assert docs[name]


def test_a_template_using_one_refers_to_the_lookup_tables_it_reads() -> None:
    assert TABLES_READ["human_name_from_xpn"] == ("hl7v2-name-use",)
    assert template_references("{{ x | address_from_xad }}").tables == ("hl7v2-address-use", "hl7v2-address-type")
    assert template_references('{{ xs | map("telecom_from_xtn") | list }}').tables == (
        "hl7v2-telecom-system",
        "hl7v2-telecom-use",
    )
    half_written = template_references("{{ x | human_name_from_xpn }}{% if", tolerant=True)
    assert (half_written.tables, half_written.complete) == (("hl7v2-name-use",), False)
    assert template_references("{{ x | identifier_from_cx }}").tables == ()


# --- the same answers as the macros they replaced ----------------------------------------------------------------

PARTS = [
    "",
    "",
    "",
    "A",
    "Smith",
    " ",
    '""',
    "O\\T\\Brien",
    "x\\S\\y",
    "12345",
    "L",
    "M",
    "H",
    "U",
    "PRN",
    "WPN",
    "NET",
    "CP",
    "PH",
    "FX",
    "ISO",
    "UUID",
    "1.2.3",
    "http://x.org/a",
    "Good Hospital",
    "NPI",
    "LN",
    "I10C",
    "20200101",
    "2020013112",
    "20201301",
    "1",
    "-2",
    "a&b&c",
    "&st&12",
    "x@y.org",
    "HL70002",
    "99ZZZ",
]
TYPES = {  # filter → (components to fill, argument sets)
    "identifier_from_cx": (9, [(), ("usual",), (None, "MR")]),
    "identifier_from_ei": (4, [(), ("PLAC",), ("FILL", "official")]),
    "identifier_from_xcn": (14, [()]),
    "human_name_from_xpn": (14, [(), ("old",)]),
    "human_name_from_xcn": (21, [(), ("usual",)]),
    "address_from_xad": (14, [(), ("work",)]),
    "telecom_from_xtn": (18, [(), ("home",)]),
    "coding_from_cwe": (9, [(), ("http://d",)]),
    "codeable_concept_from_cwe": (9, [(), ("Text",), (None, "http://d")]),
}


def generated_fields(seed: int, width: int, count: int) -> list[str]:
    rng = random.Random(seed)
    fields = []
    for _ in range(count):
        reps = [
            "^".join(rng.choice(PARTS) if rng.random() < 0.6 else "" for _ in range(rng.randint(1, width)))
            for _ in range(rng.choice([1, 1, 2]))
        ]
        fields.append("~".join(reps))
    return fields


def as_pruned(value: object) -> bytes:
    return orjson.dumps(prune(value))


@pytest.mark.parametrize("name", list(TYPES))
def test_each_filter_gives_what_its_macro_gave_on_generated_fields(name) -> None:
    width, argument_sets = TYPES[name]
    macro = getattr(ENV.get_template("snippets/reference.j2").module, name)
    for index, text in enumerate(generated_fields(zlib.crc32(name.encode()), width, 300)):
        node = field(text)
        for args in argument_sets:
            for value in [node, *node]:  # the field (its first repetition) and each repetition
                old = parse_output(str(macro(value, *args)))  # as post-processing reads it: stray commas too
                new = FILTERS[name](ENV, value, *args)
                assert as_pruned(new) == as_pruned(old), (index, text, args)
