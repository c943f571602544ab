"""Calls the generated code makes without the environment (engine/template_rewrites.py `visit_Call`): methods of source
nodes, a dict's read-only methods and the studio's functions give what `environment.call` gave, on the corpus and on
tricky calls; anything else (a shadowed name, a key named like a method, a method of another type, internals) still
takes the environment, so the sandbox sees it."""

import os
from pathlib import Path

import pytest
from jinja2.compiler import CodeGenerator

from mappings.engine import compile_mapping, run_mapping
from mappings.engine.environment import build_environment
from mappings.engine.hl7v2 import parse_hl7v2
from mappings.engine.limits import Limits, current_budget, end_budget, start_budget
from mappings.engine.template_rewrites import DIRECT_METHODS, MappingCodeGenerator
from mappings.engine.xmlsource import parse_xml

CORPUS = Path(os.environ.get("FHIR_STUDIO_CORPUS_DIR", Path(__file__).parents[3] / "shared" / "corpus"))
CCDA = sorted((CORPUS / "fhir-converter" / "ccda").glob("*.ccda"))
HL7V2 = sorted((CORPUS / "fhir-converter" / "hl7v2").glob("*.hl7"))[:40]

# Every kind of call the fast paths take, and some they must not; printed with `~` so that any value prints.
CCDA_CALLS = (
    "{% for s in msg.find_all('component/structuredBody/component/section') %}"
    "{{ s.all('templateId') | map(attribute='root') | join(',') }};{{ s.all('entry') | length }};"
    "{{ s.by_template('2.16.840.1.113883.10.20.22.4.4') | length }};{{ s.first('entry/act/code').attr('code') }};"
    "{{ s.all() | length }};{{ s.xpath('count(.//*)') }};{{ s.code.attr('nope') }}|{% endfor %}"
    "{{ msg.recordTarget.patientRole.all('id') | map(attribute='root') | join(',') }}"
    "{{ fhir_id('Patient', msg.recordTarget.patientRole.id.root) }}"
    "{{ reference('Patient', msg.recordTarget.patientRole.id.extension) }}"
)
HL7V2_CALLS = (
    "{% for seg in msg.all('OBX') %}{{ seg[5].rep(1) }}~{{ seg[3].rep(2)[1] }};{% endfor %}"
    "{% for g in msg.group('OBR', 'OBX', 'NTE') %}{{ g.all('OBX') | length }}/{{ g.head[4][1] }};{% endfor %}"
    "{{ msg.get('PID-5.1') }}|{{ msg.get('PID-3(2).1') }}|{{ msg.all('ZZZ') | length }}"
    "{{ fhir_id('Patient', msg.PID[3][1], msg.PID[5]) }}{{ identifier(msg.PID[3][1], 'urn:x') }}"
)
TRICKY = (
    '{% set d = {"a": 1, "all": "key", "get": "key"} %}'
    "{{ d.get('a') }}{{ d.get('z', 2) }}{{ d.items() | list }}{{ d.keys() | list }}{{ d.values() | list }}"
    "{{ d.all }}{% for i in [1, 2] %}{{ d.get('a') }}{{ fhir_id('X', i)[:6] }}{{ coding(i, 'urn:s') }}{% endfor %}"
    "{% set rows = [] %}{{ rows.append(1) or '' }}{{ rows | length }}{{ 'a,b'.split(',') }}"
    "{{ namespace(all=3).all }}{{ urn_uuid('x') }}"
)


def _reference_environment():
    """The environment as it was: every call through `environment.call` (Jinja's own `visit_Call`), no shared code."""

    class Reference(MappingCodeGenerator):
        visit_Call = CodeGenerator.visit_Call  # noqa: N815 — Jinja's visitor naming

    env = build_environment({}, strict=False, max_value_bytes=10**6, lookup_tables={}, timezone="UTC")
    env.code_generator_class = Reference
    env.bytecode_cache = None
    return env


def _render_both(source: str, **values) -> tuple[str, str]:
    fast = build_environment({}, strict=False, max_value_bytes=10**6, lookup_tables={}, timezone="UTC")
    token = start_budget(Limits())
    try:
        return fast.from_string(source).render(**values), _reference_environment().from_string(source).render(**values)
    finally:
        end_budget(token)


@pytest.mark.parametrize("path", CCDA, ids=lambda path: path.name)
def test_xml_node_methods_give_what_the_environment_gave_on_the_corpus(path: Path) -> None:
    fast, reference = _render_both(CCDA_CALLS, msg=parse_xml(path.read_bytes()))
    assert fast == reference


def test_hl7v2_methods_give_what_the_environment_gave_on_the_corpus() -> None:
    assert HL7V2
    for path in HL7V2:
        msg = parse_hl7v2(path.read_bytes().decode("utf-8", "replace"))
        fast, reference = _render_both(HL7V2_CALLS, msg=msg)
        assert fast == reference, path.name


def test_dict_methods_and_functions_give_what_the_environment_gave() -> None:
    fast, reference = _render_both(TRICKY)
    assert fast == reference
    assert fast.startswith('12[["a",1],["all","key"],["get","key"]]')  # get is the method, not the key


def test_only_source_nodes_and_dicts_have_methods_called_directly() -> None:
    assert {kind.__name__ for kind in DIRECT_METHODS} == {
        "Message",
        "Group",
        "Field",
        "XmlNode",
        "_SectionNode",
        "dict",
    }
    assert DIRECT_METHODS[dict] == {"get", "items", "keys", "values"}  # no method that changes the dict
    assert all(name[:1] != "_" for names in DIRECT_METHODS.values() for name in names)


def test_a_shadowed_function_name_takes_the_environment() -> None:
    template = (
        '{% macro fhir_id(x) %}m{{ x }}{% endmacro %}{% set reference = "text" %}'
        '{"resourceType": "Basic", "id": "{{ fhir_id(1) }}", "text": "{{ reference }}"}'
    )
    assert run_mapping(compile_mapping(template), "{}", validate=False).output == {
        "resourceType": "Basic",
        "id": "m1",
        "text": "text",
    }
    called = compile_mapping('{% set fhir_id = "s" %}{"resourceType": "Basic", "id": "{{ fhir_id(1) }}"}')
    assert [error.code for error in run_mapping(called, "{}").errors] == ["FS-RND-006"]  # calling text: a TypeError


def test_methods_of_other_types_and_internals_still_go_through_the_sandbox() -> None:
    for expression, code in (
        ("'{:>999999999}'.format(1)", "FS-LIM-007"),  # a str method: the size check still runs
        ("msg.all.__self__", "FS-RND-003"),
        ("msg.__class__.all(msg, 'x')", "FS-RND-003"),
        ("{}.__class__.get({}, 'x')", "FS-RND-003"),
    ):
        template = '{"resourceType": "Basic", "id": "x", "text": "{{ ' + expression + ' }}"}'
        result = run_mapping(compile_mapping(template, source_format="hl7v2"), parse_hl7v2_text(), validate=False)
        assert [error.code for error in result.errors] == [code], expression


def parse_hl7v2_text() -> str:
    return "MSH|^~\\&|A|B|C|D|20260101||ADT^A01|1|P|2.5\rPID|1||7^^^H||Doe^Jane\r"


MACROS = (
    '{%- macro pair(a, b="d") -%}{{ a }}-{{ b }}{%- endmacro -%}'
    "{%- macro wrap(x) -%}<{{ caller() }}{{ x }}>{%- endmacro -%}"
    "{%- macro many(a) -%}{{ a }}{{ varargs | join('+') }}{{ kwargs | dictsort | join('') }}{%- endmacro -%}"
    "{%- macro down(n) -%}{% if n %}{{ n }}{{ down(n - 1) }}{% endif %}{%- endmacro -%}"
)


@pytest.mark.parametrize(
    "call",
    [
        "{{ pair(1, 2) }}",  # by position, all arguments: straight to the macro's code
        "{{ pair(1) }}",  # fewer: the environment's path fills the default
        "{{ pair(1, b=3) }}{{ pair(b=4, a=5) }}",
        "{{ many(1, 2, 3) }}{{ many(1, k=2) }}",
        "{% call wrap(7) %}in{% endcall %}",
        "{% for i in [1, 2] %}{{ pair(i, loop.index) }}{{ down(i) }}{% endfor %}",
        "{{ down(3) ~ pair('\"', 1) }}{{ [pair(1, 2)] | join }}{{ pair(1, 2) | length }}",
    ],
)
def test_macros_give_what_the_environment_gave(call: str) -> None:
    fast, reference = _render_both(MACROS + call)
    assert fast == reference


def test_a_macro_called_directly_counts_its_call_and_gives_markup() -> None:
    env = build_environment({}, strict=False, max_value_bytes=10**6, lookup_tables={}, timezone="UTC")
    template = env.from_string(MACROS + "{% set x = pair('\"', down(5)) %}{{ x }}")
    token = start_budget(Limits())
    try:
        assert template.render() == '\\"-54321'  # the macro's text, printed as it is: not escaped twice
        assert current_budget().calls == 7  # pair, down(5) … down(0)
    finally:
        end_budget(token)
