"""template_references: the snippets and lookup tables a template names, read from Jinja's syntax tree — and the
places where a table is named by an expression, which only a run can resolve."""

import inspect

import pytest
from django.conf import settings

from mappings.engine import MappingError, clear_caches, closure_references, compile_mapping, template_references
from mappings.engine.filters import FILTERS
from mappings.engine.references import TABLE_FILTERS, TABLE_KEYWORD, _parsed_references
from mappings.examples import list_examples

CASES = [
    # (id, template, snippets, tables, dynamic places)
    ("import", '{% import "snippets/a.j2" as a %}', ["snippets/a.j2"], [], []),
    ("from-import", '{% from "snippets/a.j2" import x, y as z %}', ["snippets/a.j2"], [], []),
    ("include", '{% include "snippets/part.j2" %}', ["snippets/part.j2"], [], []),
    ("extends", '{% extends "snippets/base.j2" %}', ["snippets/base.j2"], [], []),
    (
        "in order of first use, once each",
        '{% import "snippets/b.j2" as b %}{% import "snippets/a.j2" as a %}{% include "snippets/b.j2" %}',
        ["snippets/b.j2", "snippets/a.j2"],
        [],
        [],
    ),
    (
        "inside macros, loops and conditions",
        '{% macro m() %}{% for x in y %}{% if x %}{% include "snippets/deep.j2" %}{% endif %}{% endfor %}'
        "{% endmacro %}",
        ["snippets/deep.j2"],
        [],
        [],
    ),
    ("a name that is no literal is not listed", "{% include name %}{% import names[0] as n %}", [], [], []),
    ("translate literal", '{{ code | translate("gender") }}', [], ["gender"], []),
    ("translate_code literal", '{{ code | translate_code("gender", "http://sys") }}', [], ["gender"], []),
    ("by keyword", '{{ code | translate(table="gender") }}', [], ["gender"], []),
    ("filter block", '{% filter translate_code("gender") %}M{% endfilter %}', [], ["gender"], []),
    ("through map", '{{ codes | map("translate", "section-kinds") | list }}', [], ["section-kinds"], []),
    ("in a set", '{% set g = code | translate_code("a") or other | translate("b") %}', [], ["a", "b"], []),
    (
        "translate via variable",
        "{% macro c(code, table) %}\n{{ code | translate(table) }}\n{% endmacro %}",
        [],
        [],
        [2],
    ),
    ("map via variable", '\n\n{{ codes | map("translate_code", kinds[0]) | list }}', [], [], [3]),
    ("an expression", '{{ code | translate("v2-" ~ number) }}', [], [], [1]),
    ("spread arguments", "{{ code | translate(*args) }}", [], [], [1]),
    ("not a table: str.translate and v2_table", '{{ "ab".translate(x) }}{{ "0001" | v2_table }}', [], [], []),
    (
        "snippets and tables together, lines of each dynamic use",
        '{% import "snippets/a.j2" as a %}\n{{ x | translate("t1") }}\n{{ x | translate(t) }}\n{{ y | translate(u) }}',
        ["snippets/a.j2"],
        ["t1"],
        [3, 4],
    ),
]


@pytest.mark.parametrize(
    ("template", "snippets", "tables", "lines"), [case[1:] for case in CASES], ids=[c[0] for c in CASES]
)
def test_it_finds_what_a_template_refers_to(template: str, snippets: list, tables: list, lines: list) -> None:
    found = template_references(template, "t.j2")
    assert list(found.snippets) == snippets
    assert list(found.tables) == tables
    assert list(found.dynamic_tables) == [("t.j2", line) for line in lines]
    assert found.complete


def test_a_syntax_error_is_fs_tpl_001_at_its_line_as_compiling_reports_it() -> None:
    broken = '{% import "snippets/a.j2" as a %}\n{{ x | translate("t") }}\n{% for x in %}'
    with pytest.raises(MappingError) as caught:
        template_references(broken, "broken.j2")
    with pytest.raises(MappingError) as compiled:
        compile_mapping(broken, name="broken.j2")
    error = caught.value
    assert (error.code, error.template, error.line) == ("FS-TPL-001", "broken.j2", 3)
    assert (error.code, error.template, error.line, error.message) == (
        compiled.value.code,
        compiled.value.template,
        compiled.value.line,
        compiled.value.message,
    )


@pytest.mark.parametrize(
    "broken",
    [
        '{% import "snippets/a.j2" as a %}\n{{ x | translate("t") }}\n{% for x in %}',  # a parser error
        '{% import "snippets/a.j2" as a %}\n{{ x | translate("t") }}\n{% if x %}',  # a block left open
        '{% import "snippets/a.j2" as a %}\n{{ x | translate("t") }}\n{{ "unclosed }}',  # a lexer error at the end
    ],
    ids=["parser error", "open block", "lexer error"],
)
def test_tolerant_reads_the_names_of_a_text_that_does_not_parse_and_says_so(broken: str) -> None:
    found = template_references(broken, "broken.j2", tolerant=True)
    assert (found.snippets, found.tables, found.dynamic_tables, found.complete) == (
        ("snippets/a.j2",),
        ("t",),
        (),
        False,
    )


def test_tolerant_reads_map_and_from_import_but_no_dynamic_places() -> None:
    broken = '{% from "snippets/a.j2" import x %}{{ c | map("translate", "k") }}{{ c | translate(v) }}{% endif %}'
    found = template_references(broken, tolerant=True)
    assert (found.snippets, found.tables, found.dynamic_tables) == (("snippets/a.j2",), ("k",), ())


def test_a_text_that_parses_reads_the_same_tolerant_or_not() -> None:
    text = '{% import "snippets/a.j2" as a %}{{ x | translate(t) }}'
    assert template_references(text, tolerant=True) == template_references(text)


def test_the_closure_follows_nested_snippets_once_and_names_each_place() -> None:
    snippets = {
        "snippets/a.j2": '{% import "snippets/b.j2" as b %}{% import "snippets/missing.j2" as m %}',
        "snippets/b.j2": '{% import "snippets/a.j2" as a %}\n{{ x | translate(table) }}{{ x | translate("b") }}',
        "snippets/unused.j2": "{{ x | translate(other) }}",
    }
    found = closure_references('{% import "snippets/a.j2" as a %}{{ y | translate("root") }}', snippets)
    assert list(found) == ["template.j2", "snippets/a.j2", "snippets/b.j2"]  # a cycle ends; a missing name is left out
    assert found["template.j2"].tables == ("root",)
    assert found["snippets/b.j2"].tables == ("b",)
    assert found["snippets/b.j2"].dynamic_tables == (("snippets/b.j2", 2),)


def test_the_table_filters_are_the_filters_that_take_a_table() -> None:
    for name, position in TABLE_FILTERS.items():
        parameters = list(inspect.signature(FILTERS[name]).parameters)
        assert parameters[2 + position] == TABLE_KEYWORD  # after the environment and the filtered value


@pytest.mark.parametrize("example", list_examples(settings.FHIR_STUDIO["EXAMPLES_DIR"]), ids=lambda e: e.name)
def test_it_names_the_snippets_compiling_loads_for_every_example(example) -> None:
    compiled = example.compile()
    found = closure_references(example.template, example.snippets)
    for name, references in found.items():
        assert list(references.snippets) == list(dict.fromkeys(t for t, _ in compiled.environment.imports[name]))
    assert set(found) == set(compiled.environment.imports)  # the templates compiling loaded, no more, no fewer
    for table in (name for references in found.values() for name in references.tables):
        assert table in example.lookup_tables


def test_texts_read_once_are_cached_and_the_engines_clear_caches_forgets_them() -> None:
    text = '{% import "snippets/cached.j2" as c %}'
    first = template_references(text)
    assert template_references(text) is first
    assert _parsed_references.cache_info().currsize
    clear_caches()
    assert _parsed_references.cache_info().currsize == 0
