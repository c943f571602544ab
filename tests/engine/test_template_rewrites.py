"""Direct reads in the generated code (engine/template_rewrites.py): a constant index on an HL7 v2 node and a present
key of a plain dict are read without calling the environment, and give what the environment's lookup gave; anything
else (lists, strings, undefined values, dict methods, names starting with `_`, missing keys) still goes through the
environment, so the sandbox and the missing-key check see it."""

import pytest
from jinja2.exceptions import SecurityError
from markupsafe import Markup

from mappings.engine import compile_mapping, run_mapping
from mappings.engine.environment import build_environment
from mappings.engine.hl7v2 import parse_hl7v2
from mappings.engine.xmlsource import parse_xml

ADT = "MSH|^~\\&|A|B|C|D|20260101||ADT^A01|1|P|2.5\rPID|1||7^^^H&1.2&ISO~8^^^K||Doe^Jane||19700101\r"


def _environment():
    return build_environment({}, strict=False, max_value_bytes=10**6, lookup_tables={}, timezone="UTC")


def _counted(env, names: tuple[str, ...]) -> dict[str, int]:
    """Count the environment's lookups by name: the generated code calls them as `environment.getitem(…)`."""
    counts = dict.fromkeys(names, 0)
    for name in names:
        original = getattr(env, name)

        def counting(*args, _original=original, _name=name, **kwargs):
            counts[_name] += 1
            return _original(*args, **kwargs)

        setattr(env, name, counting)
    return counts


def test_hl7v2_reads_by_a_constant_index_skip_the_environment() -> None:
    env = _environment()
    counts = _counted(env, ("getitem", "quiet_item", "getattr"))
    pid = parse_hl7v2(ADT)["PID"]
    template = env.from_string("{{ pid[3][4][2] }}|{% if pid[5][2] %}{{ pid[5][2] }}{% endif %}|{{ pid[7] }}")
    assert template.render(pid=pid) == "1.2|Jane|19700101"
    assert counts == {"getitem": 0, "quiet_item": 0, "getattr": 0}


def test_dict_keys_skip_the_environment_and_everything_else_takes_it() -> None:
    env = _environment()
    counts = _counted(env, ("getitem", "getattr"))
    template = env.from_string('{{ row.obx }}{{ row["obx"] }}{{ row[1] }}')
    assert template.render(row={"obx": "a", 1: "b"}) == "aab"
    assert counts == {"getitem": 1, "getattr": 0}  # an int key of a dict: the environment's
    counts.update(getitem=0, getattr=0)
    other = env.from_string("{{ items[0] }}{{ text[1] }}{{ row.items() | length }}{{ row._x }}{{ row.nope }}")
    assert other.render(items=["x"], text="yz", row={"_x": "u"}) == "xz1u"
    assert counts == {"getitem": 2, "getattr": 2}  # row.items(): a dict's read-only method, called directly


@pytest.mark.parametrize(
    ("expression", "printed"),
    [
        ("msg.PID[3][1]", "7"),
        ("msg.PID[3][4][2]", "1.2"),
        ("msg.PID[99][1]", ""),  # past the end: an empty node, as before
        ("msg.PID[5][2][1][1]", "Jane"),
        ("msg.PID[3].rep(2)[1]", "8"),
        ("{'a': {'b': 'c'}}.a.b", "c"),
        ("{'a': {'b': 'c'}}['a']['b']", "c"),
        ("{'items': 'key'}['items']", "key"),
        ("[1, 2][1]", "2"),
        ("[1, 2][5] is defined", "false"),
        ("'abc'[0]", "a"),
        ("none[1] is defined", "false"),
        ("msg.PID[3][1] if msg.PID[3][1] else 'x'", "7"),
        ("(msg.NK1 or {})['x'] is defined", "false"),
    ],
)
def test_direct_reads_print_what_the_environment_printed(expression: str, printed: str) -> None:
    template = '{"resourceType": "Basic", "id": "x", "text": "{{ ' + expression + ' }}"}'
    result = run_mapping(compile_mapping(template), ADT, source_format="hl7v2", validate=False)
    assert result.ok, [error.as_dict() for error in result.errors]
    assert result.output.get("text", "") == printed


def test_a_misspelt_key_on_a_direct_read_still_warns() -> None:
    template = (
        '{"resourceType": "Basic", "id": "x", "text": "{{ msg.a.b }}{{ msg.a.brithDate }}",\n'
        '"language": "{{ msg.a["birth date"] }}"}'
    )
    result = run_mapping(
        compile_mapping(template), '{"a": {"b": "x", "birthDate": ""}}', source_format="json", validate=False
    )
    assert [(error.code, error.line) for error in result.errors] == [("FS-RND-007", 1), ("FS-RND-007", 2)]


def test_internals_are_still_refused_on_every_type_read_directly() -> None:
    for expression in ("{}.__class__", "{}['__class__']", "msg.PID.__class__", "msg.PID[3]._raw"):
        template = '{"resourceType": "Basic", "id": "x", "text": "{{ ' + expression + ' }}"}'
        result = run_mapping(compile_mapping(template), ADT, source_format="hl7v2", validate=False)
        assert [error.code for error in result.errors] == ["FS-RND-003"], expression


def test_printed_markup_skips_finalize_and_everything_else_takes_it() -> None:
    env = _environment()
    counts = _counted(env, ("finalize",))
    template = env.from_string(
        '{% macro m(x) %}{"a": {{ x | tojson }}}{% endmacro %}{{ m("q\\"") }}|{{ text }}|{{ row }}|{{ n }}|{{ none }}'
    )
    printed = template.render(text='say "hi"', row={"k": [1]}, n=7)
    assert printed == '{"a": "q\\""}|say \\"hi\\"|{"k":[1]}|7|'
    assert counts == {"finalize": 4}  # the macro's result and the tojson inside it are Markup: printed as they are
    assert all(type(chunk) in (str, Markup) for chunk in template.generate(text="", row={}, n=1))


def test_xml_node_names_skip_the_environment_and_its_api_and_internals_take_it() -> None:
    env = _environment()
    counts = _counted(env, ("getattr", "quiet_attr", "getitem"))
    doc = parse_xml(b'<a xmlns="urn:hl7-org:v3"><code code="X"/><b><c>t</c></b></a>')
    template = env.from_string(
        '{{ doc.code.code }}|{% if doc.b.c %}{{ doc.b.c }}{% endif %}|{{ doc.none.code }}|{{ doc["code"]["code"] }}'
    )
    assert template.render(doc=doc) == "X|t||X"
    assert counts == {"getattr": 0, "quiet_attr": 0, "getitem": 0}
    assert env.from_string("{{ doc.all('code') | length }}|{{ doc.b.tag }}").render(doc=doc) == "1|b"
    assert counts == {"getattr": 1, "quiet_attr": 0, "getitem": 0}  # its API: methods called directly, the rest not
    with pytest.raises(SecurityError):
        env.from_string("{{ doc._el }}").render(doc=doc)


def test_a_snippets_macros_are_read_directly_and_its_internals_still_refused() -> None:
    snippets = {"snippets/s.j2": '{% macro m(x) %}"{{ x }}"{% endmacro %}{% set hidden = 1 %}'}
    compiled = compile_mapping(
        '{% import "snippets/s.j2" as s %}{"resourceType": "Basic", "id": {{ s.m("a") }}, "text": "{{ s.nope }}"}',
        snippets=snippets,
    )
    counts = _counted(compiled.environment, ("getattr",))
    result = run_mapping(compiled, "{}", validate=False)
    assert result.output == {"resourceType": "Basic", "id": "a"}
    assert counts == {"getattr": 1}  # s.nope, which is not there: the environment's, which makes it undefined
    refused = compile_mapping('{% import "snippets/s.j2" as s %}{{ s._body_stream }}', snippets=snippets)
    assert run_mapping(refused, "{}").errors[0].code == "FS-RND-003"  # the sandbox refused it
