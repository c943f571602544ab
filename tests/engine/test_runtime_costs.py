"""What the cheaper runtime paths of issue 14 must keep: a call-only recursion still stops at the time limit though
the clock is read every 16th call, and fhir_id's inlined text of each part gives the ids it gave before."""

import hashlib

import pytest
from jinja2 import Undefined
from markupsafe import Markup

from mappings.engine import Limits, compile_mapping, run_mapping
from mappings.engine.errors import MappingError
from mappings.engine.filters.values import fhir_id
from mappings.engine.hl7v2 import parse_hl7v2
from mappings.engine.limits import current_budget, end_budget, start_budget

# Doubling recursion with no loop: 2**40 macro calls, charged to no loop budget, only to the clock.
DOUBLING = (
    "{% macro m(n) %}{% if n %}{{ m(n - 1) }}{{ m(n - 1) }}{% endif %}{% endmacro %}"
    '{"resourceType": "Basic", "id": "{{ m(40) }}"}'
)


def test_a_recursion_of_calls_without_loops_stops_at_the_time_limit() -> None:
    result = run_mapping(compile_mapping(DOUBLING), "{}", limits=Limits(render_timeout_ms=50))
    assert [error.code for error in result.errors] == ["FS-LIM-002"]


def assert_stops_the_run(action) -> None:
    """`action` reads the clock of a budget past its deadline, and so stops the run with the time limit's code."""
    with pytest.raises(MappingError) as raised:
        action()
    assert raised.value.code == "FS-LIM-002"


def test_calls_are_counted_and_the_clock_read_every_sixteenth() -> None:
    token = start_budget(Limits(render_timeout_ms=0))  # past its deadline from the start
    try:
        budget = current_budget()
        env, rows = compile_mapping("{}").environment, []
        for _ in range(15):
            env.call(None, rows.append, 1)  # a call the sandbox allows; the clock is not read yet
        assert budget.calls == 15
        assert_stops_the_run(lambda: env.call(None, rows.append, 1))  # the 16th call reads the clock
    finally:
        end_budget(token)


def _old_fhir_id(*parts: object) -> str:
    """fhir_id before issue 14's sixth slice: each part through `_text` in a generator."""
    texts = ("" if part is None or isinstance(part, Undefined) else str(part).strip() for part in parts)
    h = hashlib.sha256("|".join(texts).encode()).hexdigest()
    variant = "89ab"[int(h[16], 16) & 3]
    return f"{h[:8]}-{h[8:12]}-5{h[13:16]}-{variant}{h[17:20]}-{h[20:32]}"


def test_fhir_id_gives_the_ids_it_gave_for_every_kind_of_part() -> None:
    pid = parse_hl7v2("MSH|^~\\&|A|B|C|D|20260101||ADT^A01|1|P|2.5\rPID|1|| 7 ^^^H||Doe^Jane\r")["PID"]
    cases = [
        ("Patient", "123"),
        ("Patient", " 123 ", "\tx\n"),
        ("Patient", Markup(" <b> "), None, Undefined()),
        ("Observation", 7, 1.5, True),
        ("Patient", pid[3], pid[3][1], pid[5]),
        ("Patient", "", "a|b"),
    ]
    for parts in cases:
        assert fhir_id(*parts) == _old_fhir_id(*parts), parts


def test_a_loop_charge_reads_the_clock_when_the_count_passes_a_multiple_of_64() -> None:
    token = start_budget(Limits(render_timeout_ms=0))  # past its deadline from the start
    try:
        budget = current_budget()
        budget.charge(2)
        budget.charge(61)  # 63 iterations: the clock is not read yet
        assert budget.iterations == 63
        assert_stops_the_run(lambda: budget.charge(1))  # the 64th iteration reads the clock
    finally:
        end_budget(token)


def test_loops_over_small_hl7_fields_still_stop_at_the_time_limit() -> None:
    template = (
        '{"resourceType": "Basic", "x": "{% for i in range(10**6) %}{% for cx in msg.PID[3] %}'
        '{% for c in cx %}{% endfor %}{% endfor %}{% endfor %}"}'
    )
    compiled = compile_mapping(template, source_format="hl7v2")
    payload = "MSH|^~\\&|A|B|C|D|20260101||ADT^A01|1|P|2.5\rPID|1||1^^^H\r"
    limits = Limits(render_timeout_ms=50, max_loop_iterations=10**8)
    assert [error.code for error in run_mapping(compiled, payload, limits=limits).errors] == ["FS-LIM-002"]


def test_imports_make_a_new_module_exactly_when_jinja_would() -> None:
    from jinja2.environment import Template

    compiled = compile_mapping(
        '{%- import "snippets/x.j2" as x -%}{"resourceType": "Basic", "id": "{{ x.m() }}"}',
        snippets={"snippets/x.j2": "{% macro m() %}{{ extra | default('none') }}{% endmacro %}"},
    )
    snippet = compiled.environment.get_template("snippets/x.j2")
    plain = compiled.template.new_context({"msg": {}})
    assert snippet._get_default_module(plain) is snippet._get_default_module(plain)  # the cached module
    assert Template._get_default_module(snippet, plain) is snippet._get_default_module(plain)
    widened = compiled.environment.get_template(compiled.name, globals={"extra": "given"}).new_context({})
    ours, jinjas = snippet._get_default_module(widened), Template._get_default_module(snippet, widened)
    assert ours is not snippet._get_default_module(plain) and ours.m() == jinjas.m() == "given"


def test_a_macro_called_with_fewer_arguments_inside_a_loop_fills_in_its_defaults() -> None:
    template = (
        '{%- macro pair(a, b="dflt") -%}{{ a }}-{{ b }}{%- endmacro -%}'
        '{"resourceType": "Basic", "x": "{% for i in [1, 2] %}{{ pair(i) }},{{ pair(i, i) }};{% endfor %}"}'
    )
    assert run_mapping(compile_mapping(template), "{}", validate=False).output["x"] == "1-dflt,1-1;2-dflt,2-2;"


def test_a_translated_coding_is_a_copy_of_the_tables() -> None:
    from mappings.engine.lookup import LookupTable

    table = LookupTable.from_dict("t", {"entries": {"M": "male"}, "default": {"code": "unknown"}})
    first = table.translate("m")
    first["code"] = "changed"
    assert table.translate("M") == {"code": "male"} == table.coding("M")
    fallback = table.translate("x")
    fallback["code"] = "changed"
    assert table.translate("y") == {"code": "unknown"} and table.translate("") is None


def test_a_render_context_holds_what_jinjas_held() -> None:
    from jinja2.environment import Template

    template = compile_mapping("{}").template
    template.globals.maps[0]["shadowing"] = "template's own"  # a template global before the environment's
    template.environment.globals["shadowing"] = "environment's"
    for args in [({"msg": 1},), ({"msg": 1, "range": 2},), ({"a": 1}, True), ({"a": 1}, False, {"l_0_b": 2})]:
        ours, jinjas = template.new_context(*args), Template.new_context(template, *args)
        assert ours.parent == jinjas.parent and list(ours.parent) == list(jinjas.parent)
        assert ours.globals_keys == jinjas.globals_keys and ours.vars == jinjas.vars
