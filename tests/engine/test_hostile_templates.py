"""A template is untrusted code: it must not reach Python internals, the file system or imports, and whatever it
does is stopped by the limits with a coded error instead of hanging or exhausting memory. After each refusal the same
process renders an ordinary mapping as before (the worker stays healthy): in the engine, through the studio API's
render endpoint, and in a real Celery worker running a batch."""

import time

import orjson
import pytest

from mappings.engine import Limits, MappingError, compile_mapping, run_mapping
from tests.api.conftest import api, json_patient, users  # noqa: F401 — the API fixtures, for the preview test
from tests.tasks.test_batches import (  # noqa: F401 — the batch fixtures and helpers, for the worker test
    batch_worker,
    counts,
    download,
    finished,
    jobs_dir,
    start_upload,
    studio,
    wait_for,
)

ORDINARY = '{"resourceType": "Patient", "id": {{ msg.id | tojson }}, "active": {{ (msg.n > 1) | tojson }}}'


def assert_an_ordinary_render_still_works() -> None:
    result = run_mapping(compile_mapping(ORDINARY), '{"id": "p1", "n": 2}')
    assert result.errors == []
    assert result.output == {"resourceType": "Patient", "id": "p1", "active": True}


REFUSED_AT_RUN = [
    ("mro escape", "{{ ''.__class__.__mro__[1].__subclasses__() }}", "FS-RND-003"),
    ("function globals", "{{ cycler.__init__.__globals__ }}", "FS-RND-003"),
    ("template internals", "{{ self._TemplateReference__context }}", "FS-RND-003"),
    ("undefined internals", "{{ missing.__class__ }}", "FS-RND-003"),
    ("format string escape", "{{ '{0.__class__}'.format(1) }}", "FS-RND-003"),
    ("huge range", "{% for i in range(10**9) %}{% endfor %}", "FS-LIM-007"),
    ("huge string", "{{ 'x' * 10**9 }}", "FS-LIM-007"),
    ("huge list", "{{ [1, 2] * 10**9 }}", "FS-LIM-007"),
    ("huge power", "{{ 2 ** 1000000000 }}", "FS-LIM-007"),
    ("center filter", "{{ 'x' | center(10**9) }}", "FS-LIM-007"),
    ("indent filter", "{{ 'x' | indent(10**9) }}", "FS-LIM-007"),
    ("printf width", "{{ '%999999999s' % 'x' }}", "FS-LIM-007"),
    ("format filter width", "{{ '%999999999s' | format('x') }}", "FS-LIM-007"),
    ("str.format width", "{{ '{:>999999999}'.format(1) }}", "FS-LIM-007"),
    ("str.ljust", "{{ 'x'.ljust(10**9) }}", "FS-LIM-007"),
    ("replace blow-up", "{{ ('a' * 1000000) | replace('', 'bb') }}", "FS-LIM-007"),
    (
        "doubling with ~",
        "{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
        "FS-LIM-007",
    ),
    (
        "doubling with +",
        "{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s + ns.s %}{% endfor %}",
        "FS-LIM-007",
    ),
    ("join blow-up", "{{ range(1000000) | join(',' * 1000) }}", "FS-LIM-007"),
    ("self-recursive macro", "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(1) }}", "FS-LIM-006"),
    ("nested loops", "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", "FS-LIM-003"),
    # Python internals by other routes: Jinja's globals, the attr filter, escaped names, format strings
    ("joiner globals", "{{ joiner.__init__.__globals__ }}", "FS-RND-003"),
    ("namespace globals", "{{ namespace.__init__.__globals__['__builtins__'] }}", "FS-RND-003"),
    ("cycler instance method", "{{ cycler(1, 2).next.__self__.__class__ }}", "FS-RND-003"),
    ("attr filter", "{{ () | attr('__class__') | attr('__base__') }}", "FS-RND-003"),
    ("attr filter built name", "{{ cycler | attr('_' ~ '_init_' ~ '_') }}", "FS-RND-003"),
    ("escaped name in attr", "{{ '' | attr('\\x5f\\x5fclass\\x5f\\x5f') }}", "FS-RND-003"),
    ("escaped name as key", "{{ ''['\\x5f\\x5fclass\\x5f\\x5f']['\\x5f\\x5fmro\\x5f\\x5f'] }}", "FS-RND-003"),
    ("format filter argument", "{{ '%s' | format(''.__class__.__mro__) }}", "FS-RND-003"),
    ("format filter mapping", "{{ '%(a)s' | format(a=''.__class__) }}", "FS-RND-003"),
    ("format_map field", "{{ '{x.__class__}'.format_map({'x': 1}) }}", "FS-RND-003"),
    ("macro internals", "{% macro m() %}{% endmacro %}{{ m._func.__globals__ }}", "FS-RND-003"),
    ("loop internals", "{% for x in [1] %}{{ loop.cycle.__func__.__globals__ }}{% endfor %}", "FS-RND-003"),
    ("bound builtin owner", "{{ [].pop.__self__.__class__ }}", "FS-RND-003"),
    # sizes given through an argument instead of in the template text
    ("printf width argument", "{{ '%*s' % (999999999, 'x') }}", "FS-LIM-007"),
    ("printf precision argument", "{{ '%.*f' % (999999999, 1.0) }}", "FS-LIM-007"),
    ("format filter width argument", "{{ '%*s' | format(999999999, 'x') }}", "FS-LIM-007"),
    ("nested format width", "{{ '{0:{1}}'.format(1, 999999999) }}", "FS-LIM-007"),
    ("nested format precision", "{{ '{:.{}f}'.format(1.0, 999999999) }}", "FS-LIM-007"),
    ("slice count", "{{ range(10) | slice(10**9) | list | length }}", "FS-LIM-007"),
    ("batch fill", "{{ ['a'] | batch(10**9, 'x') | list | length }}", "FS-LIM-007"),
    ("wordwrap wrapstring", "{{ ('a' * 1000000) | wordwrap(1, wrapstring='x' * 1000000) }}", "FS-LIM-007"),
    ("str.join of big items", "{{ ('x' * 100000).join(['a'] * 10000) }}", "FS-LIM-007"),
    ("join filter of big items", "{% set big = 'x' * 1000000 %}{{ [big, big, big] | join }}", "FS-LIM-007"),
    # a list repeating one reference is cheap to build but enormous to print or serialise
    ("list of shared lists", "{{ ([[0] * 1000000] * 1000000) | tojson }}", "FS-LIM-007"),
    ("list of shared strings", "{{ ([('x' * 1000000)] * 1000000) | join }}", "FS-LIM-007"),
    (
        "doubling a shared list",
        "{% set ns = namespace(l=['x' * 1000000]) %}{% for i in range(20) %}{% set ns.l = ns.l + ns.l %}{% endfor %}",
        "FS-LIM-007",
    ),
    (
        "self-extending list",
        "{% set l = [1] %}{% for i in range(30) %}{{ l.extend(l) or '' }}{% endfor %}",
        "FS-LIM-007",
    ),
    (
        "append loop of big strings",
        "{% set l = [] %}{% for i in range(100000) %}{{ l.append('x' * 1000000) or '' }}{% endfor %}",
        "FS-LIM-007",
    ),
    (
        "update loop of big strings",
        "{% set d = {} %}{% for i in range(100000) %}{{ d.update({i: 'x' * 1000000}) or '' }}{% endfor %}",
        "FS-LIM-007",
    ),
    (
        "mutually recursive macros",
        "{% macro a(n) %}{{ b(n) }}{% endmacro %}{% macro b(n) %}{{ a(n) }}{% endmacro %}{{ a(1) }}",
        "FS-LIM-006",
    ),
]


@pytest.mark.parametrize(("case", "template", "code"), REFUSED_AT_RUN, ids=[case[0] for case in REFUSED_AT_RUN])
def test_it_stops_hostile_templates_with_a_coded_error(case: str, template: str, code: str) -> None:
    started = time.perf_counter()
    result = run_mapping(compile_mapping(template), "{}")
    assert result.output is None
    assert [error.code for error in result.errors] == [code]
    assert result.errors[0].line == 1
    assert time.perf_counter() - started < 10  # stopped by a limit, not by exhausting the machine
    assert_an_ordinary_render_still_works()


REFUSED_AT_COMPILE = [
    ("include a system file", '{% include "/etc/passwd" %}', "FS-TPL-002"),
    ("import a python module", '{% import "os" as os %}', "FS-TPL-002"),
    ("dynamic include", "{% set name = '/etc/passwd' %}{% include name %}", "FS-TPL-004"),
    ("extends a file", '{% extends "../settings.py" %}', "FS-TPL-002"),
    ("nondeterministic filter", "{{ [1, 2] | random }}", "FS-TPL-001"),
    ("include a parent path", '{% include "../template.j2" %}', "FS-TPL-002"),
    ("include through the snippet folder", '{% include "snippets/../../etc/passwd" %}', "FS-TPL-002"),
    ("import an absolute path", '{% import "/etc/passwd" as p %}', "FS-TPL-002"),
    ("from-import a parent path", '{% from "../settings.py" import SECRET_KEY %}', "FS-TPL-002"),
    ("include a list of names", '{% include ["/etc/passwd", "snippets/s.j2"] %}', "FS-TPL-004"),
]


@pytest.mark.parametrize(("case", "template", "code"), REFUSED_AT_COMPILE, ids=[case[0] for case in REFUSED_AT_COMPILE])
def test_it_refuses_templates_that_reach_outside_the_snippet_library(case: str, template: str, code: str) -> None:
    with pytest.raises(MappingError) as caught:
        compile_mapping(template, snippets={"snippets/s.j2": "{% macro m() %}{}{% endmacro %}"})
    assert caught.value.code == code
    assert caught.value.template == "template.j2"
    assert_an_ordinary_render_still_works()


def test_it_refuses_snippets_that_import_each_other_in_a_cycle() -> None:
    snippets = {
        "snippets/a.j2": '{% import "snippets/b.j2" as b %}',
        "snippets/b.j2": '{% import "snippets/a.j2" as a %}',
    }
    with pytest.raises(MappingError) as caught:
        compile_mapping('{% import "snippets/a.j2" as a %}{}', snippets=snippets)
    assert caught.value.code == "FS-TPL-003"
    assert "snippets/a.j2 → snippets/b.j2 → snippets/a.j2" in caught.value.message


def test_it_refuses_snippet_imports_nested_deeper_than_the_limit() -> None:
    snippets = {f"snippets/s{n}.j2": f'{{% import "snippets/s{n + 1}.j2" as x %}}' for n in range(5)}
    snippets["snippets/s5.j2"] = "{% macro m() %}{}{% endmacro %}"
    compile_mapping('{% import "snippets/s0.j2" as s %}', snippets=snippets, limits=Limits(max_include_depth=10))
    with pytest.raises(MappingError) as caught:
        compile_mapping('{% import "snippets/s0.j2" as s %}', snippets=snippets, limits=Limits(max_include_depth=3))
    assert caught.value.code == "FS-LIM-005"


def test_it_stops_a_render_that_runs_past_the_time_limit() -> None:
    template = "{% for i in range(200000) %}{{ i | string | reverse | list | join }}{% endfor %}"
    limits = Limits(render_timeout_ms=50, max_loop_iterations=10**6)
    started = time.perf_counter()
    result = run_mapping(compile_mapping(template), "{}", limits=limits)
    assert [error.code for error in result.errors] == ["FS-LIM-002"]
    assert time.perf_counter() - started < 5


def test_it_stops_output_that_grows_past_the_output_limit() -> None:
    template = "{% for i in range(100000) %}{{ 'abcdefghij' * 100 }}{% endfor %}"
    result = run_mapping(compile_mapping(template), "{}", limits=Limits(max_output_bytes=100_000))
    assert [error.code for error in result.errors] == ["FS-LIM-004"]


def test_it_counts_loop_iterations_across_macros_and_snippets() -> None:
    snippets = {"snippets/loop.j2": "{% macro spin(n) %}{% for i in range(n) %}{% endfor %}{% endmacro %}"}
    template = '{% import "snippets/loop.j2" as l %}{% for i in range(50) %}{{ l.spin(100) }}{% endfor %}{}'
    result = run_mapping(compile_mapping(template, snippets=snippets), "{}", limits=Limits(max_loop_iterations=1000))
    assert [error.code for error in result.errors] == ["FS-LIM-003"]
    assert result.errors[0].template == "snippets/loop.j2"


def test_it_offers_no_lipsum_global_to_burn_time_with() -> None:
    result = run_mapping(compile_mapping("{{ lipsum(10**6) }}"), "{}")
    assert result.errors[0].code == "FS-RND-001"
    assert "'lipsum' is undefined" in result.errors[0].message


HL7 = "MSH|^~\\&|A|B|C|D|20240101||ADT^A01|1|P|2.5\rPID|1||123^^^MRN||Doe^Jane"
XML = '<ClinicalDocument xmlns="urn:hl7-org:v3"><code code="34133-9"/></ClinicalDocument>'
# The sandbox reads the engine's own source types (HL7 v2 nodes, XML nodes) and imported snippets on a fast path:
# their internals stay out of reach on it too.
SOURCE_INTERNALS = [
    ("segment class", "{{ msg.PID.__class__.__mro__ }}", HL7, "hl7v2"),
    ("field slots", "{{ msg.PID[3]._raw }}", HL7, "hl7v2"),
    ("node encoding", "{{ msg.PID[5][1]._enc }}", HL7, "hl7v2"),
    ("bound method internals", "{{ msg.all.__func__.__globals__ }}", HL7, "hl7v2"),
    ("message segment list", "{{ msg._segments }}", HL7, "hl7v2"),
    ("xml element", "{{ msg._el }}", XML, "xml"),
    ("xml node class", "{{ msg.code.__class__.__init__.__globals__ }}", XML, "xml"),
    ("xml section call", "{{ msg.section.__call__.__globals__ }}", XML, "xml"),
    ("snippet module internals", "{{ s._body_stream }}", HL7, "hl7v2"),
    ("snippet module class", "{{ s.__class__.__init__.__globals__ }}", HL7, "hl7v2"),
]


@pytest.mark.parametrize(
    ("case", "template", "payload", "source_format"), SOURCE_INTERNALS, ids=[case[0] for case in SOURCE_INTERNALS]
)
def test_it_keeps_the_internals_of_source_nodes_and_snippets_out_of_reach(case, template, payload, source_format):
    snippets = {"snippets/s.j2": "{% macro m() %}{}{% endmacro %}"}
    compiled = compile_mapping(
        '{% import "snippets/s.j2" as s %}' + template, snippets=snippets, source_format=source_format
    )
    result = run_mapping(compiled, payload)
    assert result.output is None
    assert [error.code for error in result.errors] == ["FS-RND-003"]


def test_the_fast_path_gives_what_the_sandbox_gave_for_public_names() -> None:
    template = (
        '{"resourceType": "Basic", "code": {"text": {{ [msg.PID.name, msg.PID[3].raw, msg.type,'
        ' msg.PID[5].reps | length, msg.all("PID") | length, s.answer, msg.ZZZ.name, msg.nosuch is defined]'
        ' | join("|") | tojson }}}}'
    )
    snippets = {"snippets/s.j2": "{% set answer = 42 %}"}
    compiled = compile_mapping('{% import "snippets/s.j2" as s %}' + template, snippets=snippets, source_format="hl7v2")
    result = run_mapping(compiled, HL7, validate=False)
    assert result.output["code"]["text"] == "PID|123^^^MRN|ADT^A01|1|1|42||False"


# --- the same refusals where templates really run: the studio API's preview and a Celery worker's batch ----------

HOSTILE_APPEND = "{% set l = [] %}{% for i in range(100000) %}{{ l.append('x' * 1000000) or '' }}{% endfor %}{}"
HOSTILE_WIDTH = "{{ '%*s' % (999999999, msg.id) }}"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("template", "code"),
    [(HOSTILE_APPEND, "FS-LIM-007"), (HOSTILE_WIDTH, "FS-LIM-007"), ("{{ ().__class__.__base__ }}", "FS-RND-003")],
    ids=["append loop", "width argument", "mro"],
)
def test_it_refuses_hostile_templates_in_the_editor_preview_and_previews_again(api, json_patient, template, code):  # noqa: F811
    url = "/api/mappings/json-patient/render"
    refused = api["author"].post(url, {"payload": '{"id": "p1"}', "template": template}, format="json")
    assert refused.status_code == 200
    body = refused.json()
    assert body["ok"] is False
    assert [error["code"] for error in body["errors"]] == [code]
    ordinary = api["author"].post(url, {"payload": '{"id": "p1", "n": 2}', "template": ORDINARY}, format="json")
    assert ordinary.status_code == 200
    assert ordinary.json()["output"] == {"resourceType": "Patient", "id": "p1", "active": True}


def test_it_fails_a_hostile_batch_cleanly_and_the_same_worker_converts_the_next(studio, tmp_path) -> None:  # noqa: F811
    from mappings import actions
    from mappings.models import BatchItem, JobStatus

    admin, client = studio["admin"], studio["client"]
    for slug, template in (("hostile", HOSTILE_APPEND), ("ordinary", ORDINARY)):
        mapping = actions.do_create_mapping(
            acting_user=admin, slug=slug, title=slug, source_format="json", template=template
        )
        actions.do_publish_version(mapping, acting_user=admin, message="v1")
    records = b"\n".join(b'{"id": "p%d", "n": %d}' % (n, n) for n in range(4))
    with batch_worker(tmp_path, studio["jobs"], chunk=2) as worker:
        hostile = start_upload(client, {"people.ndjson": records}, mapping="hostile", validate="false")
        failed = wait_for(lambda: finished(hostile["id"]), log=worker.log)
        ordinary = start_upload(client, {"people.ndjson": records}, mapping="ordinary", validate="false")
        converted = wait_for(lambda: finished(ordinary["id"]), log=worker.log)
        assert worker.process.poll() is None  # the one solo worker ran both batches
    assert failed.status == JobStatus.COMPLETED, failed.error
    assert counts(failed.pk) == (0, 4)
    assert set(BatchItem.objects.filter(batch_id=failed.pk).values_list("error_code", flat=True)) == {"FS-LIM-007"}
    assert converted.status == JobStatus.COMPLETED, converted.error
    assert counts(converted.pk) == (4, 0)
    resources = [orjson.loads(line) for line in download(client, converted.pk, "ndjson")]
    assert sorted(resource["id"] for resource in resources) == ["p0", "p1", "p2", "p3"]
    assert {resource["active"] for resource in resources if resource["id"] in ("p2", "p3")} == {True}


def test_it_keeps_a_string_doubled_with_set_in_a_loop_at_its_value_outside_the_loop() -> None:
    # The review's form of exponential growth: Jinja scopes a {% set %} inside a loop to one iteration, so nothing
    # grows; the namespace() form, which does, is stopped at the value limit (REFUSED_AT_RUN, "doubling with ~").
    template = (
        '{% set s = "a" %}{% for i in range(40) %}{% set s = s ~ s %}{% endfor %}'
        '{"resourceType": "Basic", "id": "{{ s | length }}"}'
    )
    result = run_mapping(compile_mapping(template), "{}", validate=False)
    assert result.errors == []
    assert result.output == {"resourceType": "Basic", "id": "1"}
    assert_an_ordinary_render_still_works()
