"""What the cheaper runtime paths of issue 14 must keep: a call-only recursion still stops at the time limit though
the clock is read every 16th call, and fhir_id's inlined text of each part gives the ids it gave before."""

import hashlib

from jinja2 import Undefined
from markupsafe import Markup

from mappings.engine import Limits, compile_mapping, run_mapping
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


def test_calls_are_counted_and_the_clock_read_every_sixteenth() -> None:
    token = start_budget(Limits(render_timeout_ms=0))  # past its deadline from the start
    try:
        budget = current_budget()
        env, rows = compile_mapping("{}").environment, []
        for _ in range(15):
            env.call(None, rows.append, 1)  # a call the sandbox allows; the clock is not read yet
        assert budget.calls == 15
        try:
            env.call(None, rows.append, 1)
        except Exception as exc:  # noqa: BLE001 — the 16th call reads the clock and stops the run
            assert getattr(exc, "code", None) == "FS-LIM-002"
        else:
            raise AssertionError("the 16th call did not read the clock")
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
