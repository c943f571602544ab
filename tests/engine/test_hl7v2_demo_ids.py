"""The HL7 v2 demos' Practitioner entries: `practitioner_from_xcn(xcn, practitioner_id)` takes the id its caller
already holds (ids.practitioner), so a clinician printed once is hashed once; without one it computes that same id."""

from django.conf import settings

from mappings.engine import compile_mapping, run_mapping
from mappings.engine.filters import GLOBALS
from mappings.examples import find_example

ADT = find_example(settings.FHIR_STUDIO["EXAMPLES_DIR"], "hl7v2-adt-a01")
MESSAGE = (
    "MSH|^~\\&|A|B|C|D|20260101||ADT^A01|1|P|2.5\rPV1|1|I|||||1234^Welby^Marcus^^^Dr|5678^^^^^^^^NPI||||||||||||V1\r"
)


def _render(template: str) -> tuple[dict, list[tuple]]:
    """The output of `template` (with the demo's snippets) on MESSAGE, and the fhir_id calls it made."""
    calls: list[tuple] = []

    def counted(*parts):
        calls.append(parts)
        return GLOBALS["fhir_id"](*parts)

    compiled = compile_mapping(template, snippets=ADT.snippets, lookup_tables=ADT.lookup_tables, source_format="hl7v2")
    compiled.environment.globals["fhir_id"] = counted
    result = run_mapping(compiled, MESSAGE, validate=False)
    assert result.ok, [error.as_dict() for error in result.errors]
    return result.output, calls


RESOURCE = '{%% import "snippets/hl7v2/resources.j2" as res %%}%s'
IDS = '{%% import "snippets/hl7v2/ids.j2" as ids %%}%s'


def test_it_hashes_a_practitioner_given_its_id_no_more() -> None:
    given, calls = _render(RESOURCE % '{{ res.practitioner_from_xcn(msg.PV1[7], "id-from-the-caller") }}')
    assert given["id"] == "id-from-the-caller"
    assert given["name"] == [{"family": "Welby", "given": ["Marcus"], "prefix": ["Dr"]}]
    assert calls == []


def test_without_an_id_it_computes_the_one_ids_practitioner_gives() -> None:
    computed, calls = _render(RESOURCE % "{{ res.practitioner_from_xcn(msg.PV1[7]) }}")
    expected, _ = _render(IDS % '{"resourceType": "Basic", "id": "{{ ids.practitioner(msg.PV1[7]) }}"}')
    assert computed["id"] == expected["id"]
    assert len(calls) == 1 and calls[0][0] == "Practitioner"


def test_an_xcn_that_names_no_one_is_still_null() -> None:
    bundle = '{"resourceType": "Bundle", "type": "collection", "entry": [{"resource": %s}]}'
    empty, calls = _render(RESOURCE % (bundle % "{{ res.practitioner_from_xcn(msg.PV1[9]) }}"))
    assert "entry" not in empty
    assert calls == []
