"""The C-CDA choice types as filters (filters/ccda_types.py): `choice_from_ts` (effective[x] from a TS or IVL_TS) and
`value_from_any` (value[x] from a value of any CDA type) print the same member their macros printed, on a table of
cases and on generated elements, compared as text with the macros they replaced
(tests/engine/fixtures/ccda_datatype_macros.j2)."""

import random

import pytest
from django.conf import settings
from markupsafe import Markup

from mappings.engine import compile_mapping, run_mapping
from mappings.engine.errors import MappingError
from mappings.engine.filters.ccda_types import choice_from_ts, value_from_any
from mappings.engine.postprocess import parse_output
from mappings.examples import find_example
from tests.engine.test_ccda_types import CDA, ENV, TABLES, as_pruned, element

OPEN = '<effectiveTime><low value="2012"/></effectiveTime>'  # an interval with a start only
UCUM = "http://unitsofmeasure.org"
CCD = find_example(settings.FHIR_STUDIO["EXAMPLES_DIR"], "ccda-ccd")
REFERENCE = ENV.get_template("snippets/reference.j2").module


def choice(xml: str, name: str = "effective", open_interval_as_period: bool = False) -> str:
    return choice_from_ts(ENV, element(xml), name, open_interval_as_period)


def value(xml: str, name: str = "value") -> str:
    return value_from_any(ENV, element(xml), name)


@pytest.mark.parametrize(
    ("xml", "open_interval_as_period", "expected"),
    [
        ('<effectiveTime value="20120806"/>', False, '"effectiveDateTime": "2012-08-06",'),
        ('<effectiveTime><low value="2012"/></effectiveTime>', False, '"effectiveDateTime": "2012",'),
        (
            '<effectiveTime><low value="2012"/></effectiveTime>',
            True,
            '"effectivePeriod": {"start": "2012", "end": null},',
        ),
        (
            '<effectiveTime><low value="2012"/><high value="2013"/></effectiveTime>',
            False,
            '"effectivePeriod": {"start": "2012", "end": "2013"},',
        ),
        ('<effectiveTime><center value="2014"/></effectiveTime>', False, '"effectiveDateTime": "2014",'),
        ('<effectiveTime nullFlavor="UNK"/>', True, ""),
    ],
)
def test_it_turns_a_ts_or_an_ivl_ts_into_one_member(xml, open_interval_as_period, expected) -> None:
    printed = choice(xml, "effective", open_interval_as_period)
    assert type(printed) is Markup  # printed as it is, not escaped as text
    assert printed == expected


@pytest.mark.parametrize(
    ("xml", "expected"),
    [
        ('<value xsi:type="PQ" value="7.5" unit="mg"/>', '"valueQuantity": {"value":7.5,"unit":"mg",'),
        ('<value xsi:type="CD" code="S" codeSystem="2.16.840.1.113883.6.96"/>', '"valueCodeableConcept": {"coding"'),
        ('<value xsi:type="ST">Positive</value>', '"valueString": "Positive",'),
        ('<value xsi:type="ED" representation="B64">AAAA</value>', ""),
        ('<value xsi:type="INT" value="3"/>', '"valueInteger": 3,'),
        ('<value xsi:type="REAL" value="0.5"/>', '"valueQuantity": {"value":0.5},'),
        ('<value xsi:type="BL" value="true"/>', '"valueBoolean": true,'),
        ('<value xsi:type="TS" value="2012"/>', '"valueDateTime": "2012",'),
        ('<value xsi:type="IVL_PQ"><low value="1" unit="mg"/></value>', '"valueRange": {"low": {"value":1,'),
        ('<value xsi:type="IVL_TS"><low value="2012"/></value>', '"valuePeriod": {"start":"2012"},'),
        ('<value xsi:type="RTO_PQ_PQ"><numerator value="1"/></value>', '"valueRatio": {"numerator": {"value":1},'),
        ('<value code="S"/>', '"valueCodeableConcept": {"coding"'),  # untyped: its attributes say what it is
        ('<value xsi:type="XYZ" value="1"/>', ""),
        ('<value xsi:type="PQ" nullFlavor="NA"/>', '"valueQuantity": ,'),  # as the macro printed it: pruned later
    ],
)
def test_it_turns_a_value_of_any_type_into_one_member(xml, expected) -> None:
    printed = value(xml)
    assert type(printed) is Markup
    assert printed.startswith(expected) if expected else printed == ""


def test_the_member_name_is_printed_as_any_value_is() -> None:
    assert choice('<effectiveTime value="2012"/>', 'a"b') == '"a\\"bDateTime": "2012",'
    assert value('<value xsi:type="BL" value="false"/>', "") == '"Boolean": false,'


def test_they_refuse_a_value_that_is_not_an_xml_element_and_print_nothing_for_none() -> None:
    for function in (choice_from_ts, value_from_any):
        with pytest.raises(MappingError) as raised:
            function(ENV, {"value": "2012"}, "effective")
        assert raised.value.code == "FS-RND-002"
        assert function(ENV, None, "effective") == ""


TS_PARTS = [
    "<low value='20070103'/>",
    "<low nullFlavor='UNK'/>",
    "<low value=''/>",
    "<high value='200701031030-0500'/>",
    "<high value='20201399'/>",
    "<high nullFlavor='NA'/>",
    "<center value='2012'/>",
    "<value value='2011'/>",  # a child element named value wins over the attribute
]
TS_VALUES = ["20070103", "200701031030-0500", "20201399", "", " ", "2012"]
TYPES = ["PQ", "pq", "CD", "CE", "CV", "CO", "CS", "ST", "ED", "INT", "REAL", "BL", "TS", "IVL_PQ", "IVL_TS"]
TYPES += ["RTO", "RTO_PQ_PQ", "RTO_INT_INT", "RTO_MO_PQ", "XYZ", ""]
VALUE_ATTRIBUTES = {
    "code": ["S", "", "8480-6"],
    "codeSystem": ["2.16.840.1.113883.6.1", "1.2.3", ""],
    "displayName": ["Positive", ""],
    "value": ["7.5", "3", "true", "0", "x", "", "2012", "-2"],
    "unit": ["mg", "1", ""],
    "representation": ["B64", "TXT"],
    "nullFlavor": ["NA", "UNK"],
}
VALUE_PARTS = [
    "<low value='1' unit='mg'/>",
    "<high value='2.5' unit='mg'/>",
    "<low value='2012'/>",
    "<high value='201301011200'/>",
    "<numerator value='1' unit='mg'/>",
    "<denominator value='5' unit='mL'/>",
    "<originalText>Aspirin</originalText>",
    "<translation code='1' codeSystem='2.16.840.1.113883.6.1'/>",
]


def generated_times(rng: random.Random, count: int) -> list[str]:
    times = []
    for _ in range(count):
        attrs = f'value="{rng.choice(TS_VALUES)}"' if rng.random() < 0.4 else ""
        if rng.random() < 0.1:
            attrs += ' nullFlavor="UNK"'
        body = "".join(rng.sample(TS_PARTS, rng.choice([0, 1, 2, 3])))
        times.append(f"<effectiveTime {attrs}>{body}</effectiveTime>")
    return times


def generated_values(rng: random.Random, count: int) -> list[str]:
    values = []
    for _ in range(count):
        attrs = f'xsi:type="{rng.choice(TYPES)}"' if rng.random() < 0.85 else ""
        for name, choices in VALUE_ATTRIBUTES.items():
            if rng.random() < 0.35:
                attrs += f' {name}="{rng.choice(choices)}"'
        body = "".join(rng.sample(VALUE_PARTS, rng.choice([0, 0, 1, 2, 3])))
        if rng.random() < 0.2:
            body += rng.choice(["Positive", " ", 'a "quoted" <text>'.replace("<", "&lt;")])
        values.append(f"<value {attrs}>{body}</value>")
    return values


@pytest.mark.parametrize("open_interval_as_period", [False, True])
def test_choice_from_ts_prints_what_its_macro_printed_on_generated_elements(open_interval_as_period) -> None:
    for index, xml in enumerate(generated_times(random.Random(14), 400)):
        node = element(xml)
        old = str(REFERENCE.choice_from_ts("effective", node, open_interval_as_period))
        assert choice_from_ts(ENV, node, "effective", open_interval_as_period) == old, (index, xml)


def as_object(member: str) -> bytes:
    """A printed member as post-processing reads it (stray commas, members that printed nothing), pruned."""
    return as_pruned(parse_output("{" + str(member) + "}"))


def test_value_from_any_prints_what_its_macro_printed_on_generated_elements() -> None:
    # Compared as post-processing reads them: the macro's old data-type macros spaced their JSON differently.
    for index, xml in enumerate(generated_values(random.Random(15), 600)):
        node = element(xml)
        new = value_from_any(ENV, node, "value")
        assert as_object(new) == as_object(REFERENCE.value_from_any("value", node)), (index, xml)


def test_a_template_calling_the_snippet_macros_prints_what_the_filters_print() -> None:
    template = (
        '{% import "snippets/ccda/datatypes.j2" as dt %}'
        '{"resourceType": "Observation", "status": "final", "code": {"text": "x"},\n'
        "{{ dt.choice_from_ts('effective', msg.effectiveTime) }} {{ dt.value_from_any('value', msg.value) }}\n"
        "{{ msg.effectiveTime | choice_from_ts('issued-not') }}}"
    )
    document = (
        f'<observation {CDA}><effectiveTime><low value="2012"/><high value="2013"/></effectiveTime>'
        '<value xsi:type="PQ" value="7" unit="mg"/></observation>'
    )
    compiled = compile_mapping(template, source_format="xml", snippets=CCD.snippets, lookup_tables=TABLES)
    result = run_mapping(compiled, document, validate=False)
    assert result.output["effectivePeriod"] == {"start": "2012", "end": "2013"}
    assert result.output["valueQuantity"] == {"value": 7, "unit": "mg", "system": UCUM, "code": "mg"}
    assert result.output["issued-notPeriod"] == {"start": "2012", "end": "2013"}
