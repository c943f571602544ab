"""run_mapping(..., locate_issues=True): validation issues and merge warnings point at the template line that wrote
their element, through everything post-processing did (stray commas, pruning, merged Bundle entries)."""

import json
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from django.conf import settings

from mappings.engine import ErrorCode, MappingError, compile_mapping, run_mapping
from mappings.engine import locate as locate_module
from mappings.engine import pipeline as pipeline_module
from mappings.engine.locate import Layout, locate_errors, parse_expression, parse_positions
from mappings.examples import list_examples


def line_of(text: str, piece: str) -> int:
    """The 1-based line of the one line of `text` containing `piece`."""
    lines = [number for number, line in enumerate(text.splitlines(), start=1) if piece in line]
    assert len(lines) == 1, f"{piece!r} is on lines {lines}"
    return lines[0]


def located(result) -> list[tuple[str, str, str | None, int | None]]:
    return [(error.code, error.expression[0], error.template, error.line) for error in result.errors]


# --- real templates, end to end -----------------------------------------------------------------------------------

GENDER = """{
  "resourceType": "Patient",
  "id": "p1",
  "gender": {{ msg.sex | tojson }},
  "birthDate": "1980-01-01"
}"""

PERSON_SNIPPET = """{#- A Patient from a person record. -#}
{%- macro patient(person) -%}
{"resourceType": "Patient",
 "id": "{{ person.id }}",
 "gender": "{{ person.sex }}"}
{%- endmacro -%}"""

WITH_SNIPPET = """{%- import "snippets/common/person.j2" as people -%}
{{ people.patient(msg) }}"""

# Entry 2 repeats entry 1 (same resourceType and id) and is merged away, so output entry[1] is rendered entry 3.
DUPLICATE_ENTRY = """{"resourceType": "Bundle", "type": "transaction",
 "entry": [
  {"resource": {"resourceType": "Patient", "id": "a",
     "gender": "male"}},
  {"resource": {"resourceType": "Patient", "id": "a",
     "gender": "male"}},
  {"resource": {"resourceType": "Patient", "id": "b",
     "gender": "{{ msg.sex }}"}},
 ]
}"""

# Every item before the bad one is pruned (empty), so the output's name[0].given[1] is rendered name[2].given[2].
PRUNED_ITEMS = """{"resourceType": "Patient", "id": "p",
 "name": [
   {"family": "{{ msg.none }}"},
   {"given": ["", "  "]},
   {"family": "Lee",
    "given": [
      "{{ msg.none }}",
      "Ann",
      {{ msg.bad | tojson }}
    ]}
 ]
}"""

MISSING_CODE = """{
  "resourceType": "Observation",
  "status": "final",
  "valueString": "x"
}"""

EMPTY_CODE = """{
  "resourceType": "Observation",
  "status": "final",
  "code": {"text": "{{ msg.none }}"},
  "valueString": "x"
}"""

OBSERVATION_SNIPPET = """{%- macro observation(id) -%}
{"resourceType": "Observation",
 "id": "{{ id }}",
 "status": "final"}
{%- endmacro -%}"""

MISSING_IN_SNIPPET = """{%- import "snippets/common/obs.j2" as obs -%}
{"resourceType": "Bundle", "type": "collection",
 "entry": [{"resource": {{ obs.observation("o1") }}}]}"""

CHOICE_TYPE = """{"resourceType": "Observation", "status": "final", "code": {"text": "t"},
 "valueQuantity": {"unit": "mg",
   "value": {{ msg.amount | tojson }}}}"""

# Only the merged-away duplicate writes birthDate: the element is in the output, written at the duplicate's line.
FROM_DUPLICATE = """{"resourceType": "Bundle", "type": "collection",
 "entry": [
  {"resource": {"resourceType": "Patient", "id": "a", "gender": "male"}},
  {"resource": {"resourceType": "Patient", "id": "a",
     "birthDate": "{{ msg.dob }}"}}
 ]}"""

# One id is hashed from a macro's output, the other from the payload: equal, so the entries merge. Rendered with line
# markers, the macro's output (so its id) differs and they would not: the merge is replayed on the real rendered text.
HASHED_ID = """{%- macro key() %}
{{ msg.mrn }}
{% endmacro -%}
{"resourceType": "Bundle", "type": "collection",
 "entry": [
  {"resource": {"resourceType": "Patient", "id": "{{ fhir_id('Patient', key() | trim) }}", "gender": "male"}},
  {"resource": {"resourceType": "Patient", "id": "{{ fhir_id('Patient', msg.mrn) }}",
     "gender": "male"}},
  {"resource": {"resourceType": "Patient", "id": "other",
     "gender": "{{ msg.sex }}"}}
 ]}"""

# A helper that gave nothing leaves `"code": ,`: the member is dropped, and the required element it should have been
# is placed at its own key; the elements after it are still found.
HELPER_GAVE_NOTHING = """{"resourceType": "Observation",
 "code": {{ codeable_concept(msg.none) }},
 "subject": {{ reference("Patient", msg.none) }}
 ,
 "status": {{ msg.status | tojson }}}"""

CASES = [
    pytest.param(
        HELPER_GAVE_NOTHING, {}, {}, "FS-VAL-006", "Observation.code", "template.j2", '"code"', id="no-value-member"
    ),
    pytest.param(
        HELPER_GAVE_NOTHING,
        {},
        {"status": 5},
        "FS-VAL-001",
        "Observation.status",
        "template.j2",
        "msg.status",
        id="after-members-without-value",
    ),
    pytest.param(GENDER, {}, {"sex": "M"}, "FS-VAL-005", "Patient.gender", "template.j2", "msg.sex", id="gender"),
    pytest.param(
        WITH_SNIPPET,
        {"snippets/common/person.j2": PERSON_SNIPPET},
        {"id": "p1", "sex": "F"},
        "FS-VAL-005",
        "Patient.gender",
        "snippets/common/person.j2",
        '"gender"',
        id="in-snippet",
    ),
    pytest.param(
        DUPLICATE_ENTRY,
        {},
        {"sex": "M"},
        "FS-VAL-005",
        "Bundle.entry[1].resource.gender",
        "template.j2",
        "msg.sex",
        id="after-merged-duplicate",
    ),
    pytest.param(
        PRUNED_ITEMS,
        {},
        {"bad": 5},
        "FS-VAL-001",
        "Patient.name[0].given[1]",
        "template.j2",
        "msg.bad",
        id="after-pruned-items",
    ),
    pytest.param(
        MISSING_CODE, {}, {}, "FS-VAL-006", "Observation.code", "template.j2", '"resourceType"', id="missing-required"
    ),
    pytest.param(
        EMPTY_CODE, {}, {}, "FS-VAL-006", "Observation.code", "template.j2", '"code"', id="written-empty-and-pruned"
    ),
    pytest.param(
        MISSING_IN_SNIPPET,
        {"snippets/common/obs.j2": OBSERVATION_SNIPPET},
        {},
        "FS-VAL-006",
        "Bundle.entry[0].resource.code",
        "snippets/common/obs.j2",
        '"resourceType"',
        id="missing-required-in-snippet-resource",
    ),
    pytest.param(
        CHOICE_TYPE,
        {},
        {"amount": "lots"},
        "FS-VAL-001",
        "Observation.valueQuantity.value",
        "template.j2",
        "msg.amount",
        id="choice-type",
    ),
    pytest.param(
        FROM_DUPLICATE,
        {},
        {"dob": "2023-02-30"},
        "FS-VAL-003",
        "Bundle.entry[0].resource.birthDate",
        "template.j2",
        "msg.dob",
        id="element-from-merged-duplicate",
    ),
    pytest.param(
        HASHED_ID,
        {},
        {"mrn": "7", "sex": "X"},
        "FS-VAL-005",
        "Bundle.entry[1].resource.gender",
        "template.j2",
        "msg.sex",
        id="traced-text-differs",
    ),
]


@pytest.mark.parametrize(("template", "snippets", "payload", "code", "expression", "where", "piece"), CASES)
def test_it_points_an_issue_at_the_line_that_wrote_its_element(
    template, snippets, payload, code, expression, where, piece
) -> None:
    compiled = compile_mapping(template, snippets=snippets)
    result = run_mapping(compiled, json.dumps(payload), locate_issues=True)
    issue = next(error for error in result.errors if error.code == code and error.expression == [expression])
    assert (issue.template, issue.line) == (where, line_of(compiled.sources[where], piece))
    assert "locate" in result.timings


def test_it_locates_every_issue_of_a_run_and_reports_them_in_the_operation_outcome() -> None:
    result = run_mapping(compile_mapping(PRUNED_ITEMS.replace('"Lee"', "1")), '{"bad": 5}', locate_issues=True)
    assert located(result) == [
        ("FS-VAL-001", "Patient.name[0].family", "template.j2", line_of(PRUNED_ITEMS, '"Lee"')),
        ("FS-VAL-001", "Patient.name[0].given[1]", "template.j2", line_of(PRUNED_ITEMS, "msg.bad")),
    ]
    issue = result.issues["issue"][1]
    assert issue["diagnostics"] == f"validate stage, at template.j2:{line_of(PRUNED_ITEMS, 'msg.bad')}"
    assert issue["expression"] == ["Patient.name[0].given[1]"]


def test_it_points_a_merge_conflict_at_the_duplicate_that_disagreed() -> None:
    template = """{"resourceType": "Bundle", "type": "collection",
 "entry": [
  {"resource": {"resourceType": "Practitioner", "id": "d", "gender": "male"}},
  {"resource": {"resourceType": "Practitioner", "id": "e", "gender": "female"}},
  {"resource": {"resourceType": "Practitioner", "id": "d",
     "gender": "female"}},
  {"resource": {"resourceType": "Practitioner", "id": "d",
     "gender": "other"}}
 ]}"""
    result = run_mapping(compile_mapping(template), "{}", locate_issues=True)
    assert located(result) == [
        ("FS-PST-003", "Practitioner.gender", "template.j2", 6),
        ("FS-PST-003", "Practitioner.gender", "template.j2", 8),
    ]


def test_it_leaves_issues_without_a_line_and_renders_once_when_not_asked(monkeypatch) -> None:
    def no_tracing(compiled):
        raise AssertionError("the run rendered again with line markers")

    monkeypatch.setattr(pipeline_module, "traced_environment", no_tracing)
    result = run_mapping(compile_mapping(GENDER), '{"sex": "M"}')
    assert located(result) == [("FS-VAL-005", "Patient.gender", None, None)]
    assert "locate" not in result.timings
    clean = run_mapping(compile_mapping(GENDER), '{"sex": "male"}', locate_issues=True)  # asked, but nothing to locate
    assert clean.ok and clean.errors == []
    assert "locate" not in clean.timings


def test_it_renders_once_more_for_all_the_issues_of_a_run(monkeypatch) -> None:
    calls = []
    real = pipeline_module.traced_environment
    monkeypatch.setattr(pipeline_module, "traced_environment", lambda compiled: calls.append(1) or real(compiled))
    result = run_mapping(compile_mapping(PRUNED_ITEMS.replace('"Lee"', "1")), '{"bad": 5}', locate_issues=True)
    assert len(result.errors) == 2 and all(error.line for error in result.errors)
    assert len(calls) == 1


def test_it_keeps_the_issues_unlocated_when_the_traced_render_fails(monkeypatch) -> None:
    def failing(compiled):
        raise MappingError(ErrorCode.LIM_RENDER_TIME, "too slow")

    monkeypatch.setattr(pipeline_module, "traced_environment", failing)
    result = run_mapping(compile_mapping(GENDER), '{"sex": "M"}', locate_issues=True)
    assert located(result) == [("FS-VAL-005", "Patient.gender", None, None)]
    assert result.output["gender"] == "M"


def test_it_keeps_a_line_a_render_warning_already_has() -> None:
    template = '{"resourceType": "Patient",\n "gender": "M",\n "birthDate": "{{ msg.dob | fhir_date }}"}'
    result = run_mapping(compile_mapping(template), '{"dob": "20230230"}', locate_issues=True)
    warning, issue = result.errors
    assert (warning.stage.value, warning.line) == ("render", 3)
    assert (issue.code, issue.line) == ("FS-VAL-005", 2)


def test_it_shares_traced_code_between_runs_and_starts_a_new_generation_when_full(monkeypatch) -> None:
    compiled = compile_mapping(WITH_SNIPPET, snippets={"snippets/common/person.j2": PERSON_SNIPPET})
    first = locate_module.traced_environment(compiled)
    places = len(first.marker_places)
    second = locate_module.traced_environment(compiled)
    assert second.marker_places is first.marker_places and len(second.marker_places) == places  # nothing recompiled
    monkeypatch.setattr(locate_module, "MAX_PLACES", 0)
    third = locate_module.traced_environment(compiled)
    assert third.marker_places is not first.marker_places
    result = run_mapping(compiled, '{"id": "p", "sex": "F"}', locate_issues=True)
    assert located(result) == [("FS-VAL-005", "Patient.gender", "snippets/common/person.j2", 5)]


# --- the demo mappings ----------------------------------------------------------------------------------------------

EXAMPLES = list_examples(settings.FHIR_STUDIO["EXAMPLES_DIR"])


@pytest.mark.parametrize(
    ("example", "case"),
    [pytest.param(example, case, id=f"{example.name}/{case.name}") for example in EXAMPLES for case in example.cases],
)
def test_it_changes_nothing_else_in_a_demo_run(example, case) -> None:
    compiled, now = example.compile(), datetime(2024, 5, 1, 12, tzinfo=UTC)
    plain = run_mapping(compiled, case.payload(), now=now)
    traced = run_mapping(compiled, case.payload(), now=now, locate_issues=True)
    assert traced.output == plain.output

    def unlocated(error) -> dict:  # demo runs have validation warnings: the traced run points them at lines
        return {key: value for key, value in error.as_dict().items() if key not in ("template", "line", "column")}

    assert [unlocated(error) for error in traced.errors] == [unlocated(error) for error in plain.errors]


@pytest.mark.parametrize(
    ("name", "snippet", "old", "new", "expression"),
    [
        (
            "hl7v2-adt-a01",
            "snippets/hl7v2/resources.j2",
            '"gender": "{{ pid[8] and pid[8] | translate_code(\'administrative-gender\') }}"',
            '"gender": "{{ pid[8] }}"',
            "Bundle.entry[0].resource.gender",
        ),
        (
            "ccda-ccd",
            "snippets/ccda/resources.j2",
            '"birthDate": {{ person.birthTime.value | fhir_date | tojson }}',
            '"birthDate": "2020-02-31"',
            "Bundle.entry[0].resource.birthDate",
        ),
    ],
)
def test_it_locates_an_issue_a_demo_snippet_would_cause(name, snippet, old, new, expression) -> None:
    example = next(example for example in EXAMPLES if example.name == name)
    assert old in example.snippets[snippet]
    broken = replace(example, snippets={**example.snippets, snippet: example.snippets[snippet].replace(old, new)})
    result = run_mapping(broken.compile(), broken.cases[0].payload(), locate_issues=True)
    issues = [error for error in result.errors if error.expression == [expression]]
    assert issues
    assert {(error.template, error.line) for error in issues} == {(snippet, line_of(broken.snippets[snippet], new))}


# --- following an expression through the rendered text --------------------------------------------------------------

RENDERED = """{"resourceType": "Bundle", "type": "collection",
"entry": [
 {"resource": {"resourceType": "Patient", "id": "a",
   "name": [{"family": ""},, {"family": "Lee",
     "given": ["", "Ann", 5]}],
   "_gender": {"extension": [{"url": "u", "valueString": "v"}]}}},
 {"resource": {"resourceType": "Patient", "id": "a",
   "birthDate": "2020-02-30"}},
 {"resource": {"resourceType": "Observation",
   "status": "",
   "valueQuantity": {"value": "x"}}},
 null,
 {"resource": {"resourceType": "Practitioner", "id": "d", "gender": "male",
   "_birthDate": {"id": "x"}}},
 {"resource": {"resourceType": "Practitioner", "id": "d",
   "gender": "female"}},
]}"""


def spans_for(text: str) -> list[tuple[int, str, int]]:
    """A marker at the start of every line, as the traced render would give."""
    spans, offset = [], 0
    for number, line in enumerate(text.split("\n"), start=1):
        spans.append((offset, "t.j2", number))
        offset += len(line) + 1
    return spans


@pytest.mark.parametrize(
    ("expression", "piece"),  # piece: text on the expected line, or the line number
    [
        ("Bundle", '"type": "collection"'),
        ("Bundle.type", '"type": "collection"'),
        ("Bundle.entry", '"entry": ['),
        ("Bundle.entry[0]", 3),
        ("Bundle.entry[0].resource", 3),  # a resource: its "resourceType" key
        ("Bundle.entry[0].resource.id", 3),
        ("Bundle.entry[0].resource.name[0].family", '"family": "Lee"'),
        ("Bundle.entry[0].resource.name[0].given[1]", '"Ann", 5'),
        ("Bundle.entry[0].resource.birthDate", '"2020-02-30"'),  # written only by the merged-away duplicate
        ("Bundle.entry[0].resource.gender", '"_gender"'),  # only its extension was written
        ("Bundle.entry[0].resource.telecom[0].value", 3),  # never written: the resource
        ("Bundle.entry[1].resource", '"Observation"'),
        ("Bundle.entry[1].resource.status", '"status": ""'),  # written empty, pruned: its own key
        ("Bundle.entry[1].resource.code", '"Observation"'),
        ("Bundle.entry[1].resource.valueQuantity.value", '"value": "x"'),
        ("Bundle.entry[2].resource.gender", '"gender": "male"'),  # past the pruned null entry
        ("Bundle.entry[2].resource.birthDate", '"_birthDate"'),
        ("Bundle.entry[2].resource.name.where(use='official').family", '"gender": "male"'),
        ("Bundle.entry[0].resource.name.given", '"given"'),  # no index: the first item that has it
        ("Bundle.entry[0].resource.name.family.extension('u')", '"family": "Lee"'),
        ("Bundle.entry[3].resource", '"entry": ['),  # no such output entry: the array
        ("Bundle.entry[0].resource.name[0].given[0].value", '"Ann", 5'),  # inside a string: the string
        ("Practitioner.gender", '"gender": "female"'),  # a merge conflict
    ],
)
def test_it_follows_an_expression_the_way_postprocessing_shaped_the_output(expression, piece) -> None:
    line = piece if isinstance(piece, int) else line_of(RENDERED, piece)
    error = MappingError(ErrorCode.VAL_STRUCTURE, "x", expression=[expression])
    locate_errors([error], RENDERED, RENDERED, spans_for(RENDERED))
    assert (error.template, error.line) == ("t.j2", line)


@pytest.mark.parametrize(
    "expression",
    [
        "",
        ".",
        "[0]",
        "Bundle..entry",
        "Bundle.entry[",
        "Bundle.entry[x]",
        "Bundle.entry[-1]",
        "Bundle.entry[99999999999999].resource",
        "bundle.entry[0]",
        "Observation.code",  # another resource type than the output's, not a merge warning
        "Patient.gender",  # a resource type in the Bundle, but no merge conflict there
        "Bundle.entry[0].resource.name[0].given[1].id.extension[0]",  # through a scalar
        "Bundle.entry[0].resource.name[0].family[0]",  # an index on a scalar
        "Bundle.where(true)",
        "Bundle.entry.resource.ofType(Patient).name",
        "(Bundle.entry)",
        "Bundle.entry[0].resource.name[0]\x00",
        "💥.gender",
    ],
)
def test_it_leaves_an_expression_it_cannot_follow_unlocated_or_at_an_ancestor(expression) -> None:
    error = MappingError(ErrorCode.VAL_STRUCTURE, "x", expression=[expression])
    locate_errors([error], RENDERED, RENDERED, spans_for(RENDERED))
    assert error.line is None or 1 <= error.line <= RENDERED.count("\n") + 1


@pytest.mark.parametrize(
    ("expression", "parsed"),
    [
        ("Patient", ("Patient", [])),
        ("Patient.name[0].given[1]", ("Patient", [("name", 0), ("given", 1)])),
        ("Patient._birthDate", ("Patient", [("_birthDate", None)])),
        ("Observation.valueQuantity.value", ("Observation", [("valueQuantity", None), ("value", None)])),
        ("Patient.name.where(use = 'official').family", ("Patient", [("name", None)])),
        ("Patient.extension('http://x').valueString", ("Patient", [])),
        ("Patient.name[x]", ("Patient", [("name", None)])),
        ("[0].name", None),
        ("", None),
    ],
)
def test_it_reads_the_fhirpath_validation_writes_and_stops_at_what_it_does_not_know(expression, parsed) -> None:
    assert parse_expression(expression) == parsed


@pytest.mark.parametrize(
    ("text", "parses"),
    [
        ('{"a": 1}', True),
        ('{"a": [1, 2,], "b": {"c": true,},}', True),  # trailing commas
        ('{,"a": [,1,,2], , "b": null}', True),  # leading and doubled commas, as the post-processor blanks them
        (' \n{"a": "x\\"y\\u00e9,"} \n', True),
        ('{"a": -1.5e3, "b": false, "c": 0}', True),
        ('{"code": , "a": [{"b": }], "c":\n}', True),  # members whose value printed nothing, as blanked
        ('{"a": 1 "b": 2}', False),  # a missing comma is not tolerated
        ('{"a": "b": }', False),  # a value is not a key
        ('{"a": 1, : }', False),
        ('{"a" 1}', False),
        ('{"a": 1} {"b": 2}', False),
        ('{"a": "unterminated}', False),
        ('{"a": tru}', False),
        ("", False),
        ("[" * 1000 + "]" * 1000, False),  # deeper than MAX_DEPTH: refused, not a RecursionError
    ],
)
def test_it_parses_rendered_output_with_the_commas_the_post_processor_tolerates(text, parses) -> None:
    assert (parse_positions(text) is not None) == parses


def test_it_keeps_the_offset_of_every_key_and_item_and_what_survived_pruning() -> None:
    text = '{"a": ["", "x", {}], "b": {"c": " "}, "d": 0, "a": [1]}'
    root = parse_positions(text)
    assert text[root.member("b")[0] :].startswith('"b"')
    assert text[root.member("a")[0] :].startswith('"a": [1]')  # a repeated name: the last one, as orjson keeps
    assert not root.member("b")[1].alive and root.member("d")[1].alive
    items = parse_positions('["", "x", {}, null, [[]], 1]').value
    assert [item.alive for item in items] == [False, True, False, False, False, True]
    assert [item.start for item in items] == [1, 5, 10, 14, 20, 26]


def test_a_member_without_a_value_is_dead_at_its_key_and_never_replaces_an_earlier_one() -> None:
    text = '{"a": 1, "a": , "b": , "c": {"d": }}'
    root = parse_positions(text)
    assert root.member("a")[1].value == 1 and root.member("a")[1].alive
    assert text[root.member("b")[0] :].startswith('"b": ,') and not root.member("b")[1].alive
    assert not root.member("c")[1].alive  # an object of nothing but empty members is pruned, as post-processing does


def test_it_leaves_issues_unlocated_when_the_output_is_too_large_to_parse_here(monkeypatch) -> None:
    monkeypatch.setattr(locate_module, "MAX_CHARS", 100)
    error = MappingError(ErrorCode.VAL_STRUCTURE, "x", expression=["Bundle.type"])
    locate_errors([error], RENDERED, RENDERED, spans_for(RENDERED))
    assert error.line is None


def test_it_replays_the_merge_of_bundle_entries() -> None:
    layout = Layout(parse_positions(RENDERED))
    assert layout.merged == [0, 2, 4]  # entry 1 merged into 0, the null entry pruned, entry 5 merged into 4
    assert layout.duplicates == {0: [1], 4: [5]}


def test_it_still_locates_a_json_error_when_the_traced_code_comes_from_the_cache() -> None:
    template = '{"resourceType": "Patient",\n "gender": "male"\n "birthDate": "2000-01-01"}'  # line 2 lacks its comma
    for _ in range(2):  # the second run reuses the first one's traced code
        [error] = run_mapping(compile_mapping(template), "{}", locate_issues=True).errors
        assert (error.code, error.template, error.line) == ("FS-PST-001", "template.j2", 3)
