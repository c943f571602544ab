"""The engine's short cuts through Jinja's runtime (environment.py `MappingEnvironment.call`, `loop_guard`; the HL7 v2
and XML accessors; post-processing's clean-up) give what the long way gave: every way of calling a macro, the
studio's own functions and source-node methods, loops over HL7 v2 nodes charged to the budget, and the sandbox
still asked about everything else."""

import pytest

from mappings.engine import Limits, compile_mapping, run_mapping
from mappings.engine.postprocess import postprocess

ADT = "MSH|^~\\&|A|B|C|D|20260101||ADT^A01|1|P|2.5\rPID|1||1^^^H~2^^^H~3^^^H||Doe^Jane~Roe^Ann\r"
MACROS = (
    '{%- macro pair(a, b="dflt") -%}{{ a }}-{{ b }}{%- endmacro -%}'
    "{%- macro wrap(x) -%}<{{ caller() }}{{ x }}>{%- endmacro -%}"
    "{%- macro many(a) -%}{{ a }}{{ varargs | join('+') }}{{ kwargs | dictsort | join('') }}{%- endmacro -%}"
)


def _text(template: str, payload: str = "{}", **options) -> str:
    """What the template printed, as one JSON string: the template writes `{"resourceType": "Basic", "id": …}`."""
    result = run_mapping(
        compile_mapping('{"resourceType": "Basic", "id": "x", "text": ' + template + "}"),
        payload,
        validate=False,
        **options,
    )
    assert result.ok, [error.as_dict() for error in result.errors]
    return result.output["text"]


@pytest.mark.parametrize(
    ("call", "printed"),
    [
        ("pair(1)", "1-dflt"),  # a default filled in by the macro's own code
        ("pair(1, 2)", "1-2"),
        ("pair(1, b=3)", "1-3"),  # keyword arguments: Jinja's own path
        ("pair(b=4, a=5)", "5-4"),
        ("many(1, 2, 3)", "12+3"),  # varargs
        ("many(1, k=2)", "1('k', 2)"),  # kwargs
    ],
)
def test_it_calls_macros_with_every_kind_of_argument(call: str, printed: str) -> None:
    assert _text('"' + MACROS + "{{ " + call + ' }}"') == printed


def test_it_calls_a_macro_that_takes_a_caller() -> None:
    assert _text('"' + MACROS + '{% call wrap(7) %}in{% endcall %}"') == "<in7>"


def test_it_calls_macros_and_functions_inside_loops_with_the_loop_variables() -> None:
    template = '"' + MACROS + '{% for i in [1, 2] %}{{ pair(i) }}{{ fhir_id("A", i)[:4] }};{% endfor %}"'
    assert _text(template) == "1-dfltf022;2-dflt309a;"


def test_it_refuses_too_many_arguments_to_a_macro_as_jinja_does() -> None:
    result = run_mapping(compile_mapping(MACROS + '{"resourceType": "Basic", "x": "{{ pair(1, 2, 3) }}"}'), "{}")
    assert [error.code for error in result.errors] == ["FS-RND-006"]
    assert result.errors[0].message == "TypeError: macro 'pair' takes not more than 2 argument(s)"


def test_it_calls_methods_of_source_nodes() -> None:
    template = "\"{% for seg in msg.all('PID') %}{{ seg[5].rep(2)[1] }}{% endfor %}\""
    assert _text(template, ADT, source_format="hl7v2") == "Roe"


def test_it_still_checks_calls_it_does_not_own() -> None:
    result = run_mapping(compile_mapping('{"resourceType": "Basic", "x": "{{ \'{:>999999999}\'.format(1) }}"}'), "{}")
    assert [error.code for error in result.errors] == ["FS-LIM-007"]


def test_it_charges_each_repetition_of_an_hl7_field_to_the_loop_budget() -> None:
    template = '{"resourceType": "Basic", "x": "{% for cx in msg.PID[3] %}{{ cx[1] }}{% endfor %}"}'
    compiled = compile_mapping(template, source_format="hl7v2")
    assert run_mapping(compiled, ADT, limits=Limits(max_loop_iterations=3), validate=False).output["x"] == "123"
    result = run_mapping(compiled, ADT, limits=Limits(max_loop_iterations=2))
    assert [error.code for error in result.errors] == ["FS-LIM-003"]


def test_it_reads_a_child_element_before_an_attribute_of_the_same_name_and_attributes_of_leaves() -> None:
    xml = '<doc xmlns="urn:hl7-org:v3"><a code="attr"><code code="leaf"/></a><b code="only"/></doc>'
    template = '"{{ msg.a.code.code }}/{{ msg.b.code }}/{{ msg.b.missing }}"'
    assert _text(template, xml, source_format="xml") == "leaf/only/"


def test_it_reads_output_with_stray_commas_and_empty_members_alike() -> None:
    with_both = '{"resourceType": "Basic", "a": , "b": [1, 2,], "c": {"d": }, }'
    only_commas = '{"resourceType": "Basic", "b": [1, 2,], }'
    assert postprocess(with_both)[0] == postprocess(only_commas)[0] == {"resourceType": "Basic", "b": [1, 2]}


def test_it_calls_without_the_sandbox_only_callables_that_take_no_context_and_are_not_marked_unsafe() -> None:
    from mappings.engine.environment import TRUSTED_METHOD_OWNERS, build_environment

    env = build_environment({}, strict=False, max_value_bytes=100, lookup_tables={}, timezone="UTC")
    methods = [getattr(kind, name) for kind in TRUSTED_METHOD_OWNERS for name in dir(kind) if name[:1] != "_"]
    for function in [*env.plain_calls, *(method for method in methods if callable(method))]:
        assert env.is_safe_callable(function)
        assert getattr(function, "jinja_pass_arg", None) is None or function in env.environment_calls


def test_it_blanks_the_commas_one_pattern_for_all_three_kinds_found() -> None:
    """remove_stray_commas searches with three patterns (faster); the commas it blanks are those the single pattern it
    replaced finds outside strings, on random texts of brackets, commas, quotes and spaces."""
    import random
    import re

    from mappings.engine.postprocess import _Strings, remove_stray_commas

    single = re.compile(r",(?=\s*[\]},])|[\[{][\s,]*,")
    rng = random.Random(14)
    for _ in range(3000):
        text = "".join(rng.choice('[]{},,"  \n\\a') for _ in range(rng.randint(0, 30)))
        strings = _Strings(text)
        offsets = [i for m in single.finditer(text) for i, c in enumerate(m.group(), m.start()) if c == ","]
        expected = list(text)
        for offset in offsets:
            if not strings.holds(offset):
                expected[offset] = " "
        assert remove_stray_commas(text) == "".join(expected), text


def test_it_calls_list_and_dict_methods_inside_loops() -> None:
    template = (
        '"{% set rows = [] %}{% set seen = {} %}{% for i in [1, 2, 3] %}{{ rows.append(i * 2) or "" }}'
        '{{ seen.update({i: rows[-1]}) or "" }}{% endfor %}{{ rows | join("+") }}/{{ seen.get(3) }}"'
    )
    assert _text(template) == "2+4+6/6"


def test_it_reads_keys_of_dicts_namespaces_and_the_loop_as_attributes() -> None:
    template = (
        '"{% set row = {"obx": "a", "_x": "b", "items": "c"} %}{% set ns = namespace(dose="d") %}'
        "{% for i in [1, 2] %}{{ loop.index }}{% endfor %}{{ row.obx }}{{ row._x }}{{ row.items() | length }}"
        '{{ ns.dose }}{{ row.nothing is defined }}{{ ns.nothing is defined }}"'
    )
    assert _text(template) == "12ab3dfalsefalse"


def test_it_still_refuses_internals_of_dicts_and_namespaces() -> None:
    for expression in ("{}.__class__", "namespace().__class__", "namespace()._Namespace__attrs"):
        result = run_mapping(compile_mapping('{"resourceType": "Basic", "x": "{{ ' + expression + ' }}"}'), "{}")
        assert [error.code for error in result.errors] == ["FS-RND-003"], expression
