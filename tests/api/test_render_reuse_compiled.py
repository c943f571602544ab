"""A preview of unsaved text reuses the compiled code of an earlier text of the same shape, literal text aside
(mappings/engine/reuse_compiled.py). Whatever it makes must be what a full compile makes: the same Python code,
instruction by instruction, line table included, for the demo templates under many one-character edits (edits inside
tags and expressions too, which change the shape or break the template), the same errors at the same lines, and
hostile templates refused the same way."""

import dis
import random
from types import CodeType

import pytest
from django.conf import settings

from mappings import caches
from mappings.engine import MappingError, compile_mapping, run_mapping
from mappings.engine.environment import COMPILED_CODE, MARKER, CompiledCodeCache, build_environment
from mappings.engine.reuse_compiled import _PREFIX, SKELETONS, TRACED_SKELETONS, prime_compiled_code, prime_traced_code
from mappings.examples import list_examples
from tests.api.conftest import ROOT
from tests.engine.test_hostile_templates import REFUSED_AT_COMPILE, REFUSED_AT_RUN

NAME = "template.j2"
DEMO = "hl7v2-adt-a01"
DEMOS = sorted(path.parent.name for path in (ROOT / "examples").glob("*/template.j2"))
# What an analyst types: letters and spaces, JSON punctuation, and what opens or closes a tag.
KEYS = ["a", "Z", "7", " ", "\n", '"', ",", ":", "{", "}", "[", "%", "#", "-", "\\", "'", "é", "\r\n", "\r"]


def canonical(code: CodeType, places: list | None = None) -> list:
    """Everything the code does: its instructions with their resolved arguments (constants by value, nested code
    recursively), names, arguments and line table. Indices into co_consts are left out: they differ when two equal
    pieces of literal text share one constant in a full compile. Traced code: each line marker as the place (template,
    line) it stands for in `places`, not as its number, which depends on what was compiled before."""
    found: list = [
        code.co_name,
        code.co_flags,
        code.co_argcount,
        code.co_kwonlyargcount,
        code.co_names,
        code.co_varnames,
        code.co_freevars,
        code.co_cellvars,
        code.co_filename,
        code.co_firstlineno,
        list(code.co_lines()),
    ]
    for instruction in dis.get_instructions(code):
        value = instruction.argval
        if isinstance(value, CodeType):
            value = canonical(value, places)
        elif isinstance(value, str) and places is not None:
            value = MARKER.sub(lambda marker: f"<{places[int(marker.group(1))]}>", value)
        found.append((instruction.opname, repr(value)))
    return found


def environment(*, tracing: bool = False):
    env = build_environment({}, strict=False, max_value_bytes=1000, lookup_tables={}, timezone="UTC", tracing=tracing)
    env.bytecode_cache = CompiledCodeCache() if tracing else COMPILED_CODE
    return env


def full_compile(text: str, *, tracing: bool = False) -> object:
    """The code a plain compile makes, or the error it raises (type, message, line)."""
    env = environment(tracing=tracing)
    try:
        return canonical(env.compile(text, NAME, NAME), env.marker_places if tracing else None)
    except Exception as error:  # noqa: BLE001 — compared as a value
        return (type(error).__name__, str(error), getattr(error, "lineno", None) or getattr(error, "line", None))


def cached_code(text: str, cache: CompiledCodeCache = COMPILED_CODE) -> CodeType | None:
    class Holder:
        imports: dict = {}

    return cache.get_bucket(Holder(), NAME, NAME, text).code


def run(text: str) -> dict | None:
    return run_mapping(compile_mapping(text), "{}", validate=False).output


def one_key_edits(text: str, count: int, seed: int) -> list[str]:
    """`count` texts, each one key away from `text`: a key typed at a random place, or one deleted."""
    rng = random.Random(seed)
    edits = []
    for _ in range(count):
        place = rng.randrange(len(text))
        if rng.random() < 0.25:
            edits.append(text[:place] + text[place + 1 :])
        else:
            edits.append(text[:place] + rng.choice(KEYS) + text[place:])
    return edits


@pytest.fixture(autouse=True)
def _empty_caches():
    caches.clear()
    yield
    caches.clear()


@pytest.mark.parametrize("demo", DEMOS)
def test_it_makes_the_code_a_full_compile_makes_for_every_one_key_edit(demo: str) -> None:
    text = (ROOT / "examples" / demo / "template.j2").read_text()
    assert prime_compiled_code(text)  # the demo compiles: its skeleton too
    reused = 0
    for edited in one_key_edits(text, 60, seed=len(demo)):
        compiles_before = SKELETONS.compiles
        primed = prime_compiled_code(edited)
        expected = full_compile(edited)
        if primed:
            assert canonical(cached_code(edited)) == expected
            reused += SKELETONS.compiles == compiles_before
        else:
            assert isinstance(expected, tuple), "a text that compiles must be primed"  # an error: compiled normally
    assert reused >= 5  # keys in literal text (an eighth to a half of them, by demo) reuse the skeleton
    windows = text.replace("\n", "\r\n")  # saved from another editor: literal text is written with \n
    assert prime_compiled_code(windows)
    assert canonical(cached_code(windows)) == full_compile(windows)


# Every construct that holds literal text: blocks that buffer it, escape it, filter it, pass it to a caller, or keep
# tags in it as text; whitespace control on both sides.
CONSTRUCTS = """{#- a comment -#}
{%- macro item(value) -%}["item", {{ value | tojson }}, {{ caller() }}]{%- endmacro -%}
{%- set kept -%}kept text{%- endset -%}
{"resourceType": "Basic", "id": "text-1",
 "a": {% filter lower %}"UPPER Text"{% endfilter %},
 "b": {% autoescape true %}"<b> & {{ '<i>' }}"{% endautoescape %},
 "c": {% call item("x") %}"called text"{% endcall %},
 "d": "{% raw %}{{ not a tag }}{% endraw %}",
 "e": "{{ kept }}",
 "f": [{% for n in [1, 2] %}"n{{ n }} text",   {% endfor %}"end"],
 "g": "{{ "folded" }}  {{- " joined" }}"
}
"""


def test_it_makes_the_code_a_full_compile_makes_for_every_construct_that_holds_literal_text() -> None:
    assert prime_compiled_code(CONSTRUCTS)
    output = run(CONSTRUCTS)
    assert (
        output["a"] == "upper text"
        and output["d"] == "{{ not a tag }}"
        and output["f"] == ["n1 text", "n2 text", "end"]
    )
    reused = 0
    for edited in one_key_edits(CONSTRUCTS, 80, seed=3):
        compiles_before = SKELETONS.compiles
        expected = full_compile(edited)
        if prime_compiled_code(edited):
            assert canonical(cached_code(edited)) == expected
            reused += SKELETONS.compiles == compiles_before
        else:
            assert isinstance(expected, tuple)
    assert reused >= 10


@pytest.mark.parametrize("demo", ["hl7v2-adt-a01", "ccda-ccd"])
def test_traced_code_is_what_a_full_traced_compile_makes(demo: str) -> None:
    """The runs that find the template line of a JSON error or a validation issue compile the root with line markers
    (engine/locate.py): the same reuse, one sentinel per marked line."""
    text = (ROOT / "examples" / demo / "template.j2").read_text()
    env = environment(tracing=True)
    assert prime_traced_code(env, text)
    reused = 0
    for edited in [*one_key_edits(text, 40, seed=7), text.replace("\n", "\n\n", 1), text + "\n\n"]:
        compiles_before = TRACED_SKELETONS.compiles
        expected = full_compile(edited, tracing=True)
        if prime_traced_code(env, edited):
            assert canonical(cached_code(edited, env.bytecode_cache), env.marker_places) == expected
            reused += TRACED_SKELETONS.compiles == compiles_before
        else:
            assert isinstance(expected, tuple)
    assert reused >= 5
    other = environment(tracing=True)  # another list of places (a new generation of traced code): new skeletons
    assert prime_traced_code(other, text + " ")
    assert canonical(cached_code(text + " ", other.bytecode_cache), other.marker_places) == full_compile(
        text + " ", tracing=True
    )


def test_keys_typed_after_a_comma_are_traced_to_their_line_with_reused_code() -> None:
    """End to end through engine/locate.py: the JSON error of each text is traced to its line by reused code."""
    adt = next(example for example in list_examples(settings.FHIR_STUDIO["EXAMPLES_DIR"]) if example.name == DEMO)
    payload = adt.cases[0].payload()

    def located(template: str) -> list[tuple[str, str | None, int | None]]:
        compiled = compile_mapping(template, snippets=adt.snippets, lookup_tables=adt.lookup_tables)
        result = run_mapping(compiled, payload, source_format="hl7v2", locate_issues=True)
        return [(error.code, error.template, error.line) for error in result.errors]

    text = adt.template.replace('"transaction",', '"transaction",x', 1)
    line = text[: text.index('"transaction",x')].count("\n") + 1
    typed = [text.replace(",x", ",x" + "abc"[:count], 1) for count in range(4)]
    reused = [located(template) for template in typed]
    assert TRACED_SKELETONS.compiles == 1  # four texts of one shape: one traced skeleton
    assert all(errors[0] == ("FS-PST-001", NAME, line) for errors in reused)
    caches.clear()
    assert located(typed[-1]) == reused[-1]  # the same with every cache emptied (its own skeleton)


def test_a_broken_template_reports_the_error_and_line_a_full_compile_reports() -> None:
    text = (ROOT / "examples/hl7v2-adt-a01/template.j2").read_text()
    lines = text.split("\n")
    broken = [
        "\n".join([*lines[:9], lines[9] + " {% if %}", *lines[10:]]),  # a tag with no condition, line 10
        "\n".join([*lines[:11], lines[11] + " {{ msg.PID[ }}", *lines[12:]]),  # an unclosed subscript, line 12
        "\n".join([*lines[:14], lines[14] + " {% endfor %}", *lines[15:]]),  # a stray end tag, line 15
        text + "\n{% for x in y %}",  # never closed
    ]
    assert prime_compiled_code(text)
    for attempt in range(2):  # the second time, each refused shape is remembered: the same error, no skeleton compile
        compiles = SKELETONS.compiles
        for edited in broken:
            assert not prime_compiled_code(edited)
            with pytest.raises(MappingError) as caught:
                compile_mapping(edited)
            expected = full_compile(edited)
            assert (caught.value.code, caught.value.line) == ("FS-TPL-001", expected[2])
            assert caught.value.line in (10, 12, 15, len(lines) + 1)
        assert attempt == 0 or SKELETONS.compiles == compiles


HOSTILE = [(case, template) for case, template, _ in REFUSED_AT_RUN] + [
    (case, template) for case, template, _ in REFUSED_AT_COMPILE
]


@pytest.mark.parametrize(("case", "template"), HOSTILE, ids=[case for case, _ in HOSTILE])
def test_hostile_templates_are_refused_the_same_way_through_reused_code(case: str, template: str) -> None:
    def outcome(text: str) -> tuple:
        try:
            result = run_mapping(compile_mapping(text), "{}")
        except MappingError as error:
            return ("compile", error.code, error.line)
        return ("run", [(error.code, error.line) for error in result.errors], result.output)

    prime_compiled_code('{"first": 1}' + template)
    compiles = SKELETONS.compiles
    reused_text = '{"second": 22}' + template
    prime_compiled_code(reused_text)
    reused = outcome(reused_text)
    caches.clear()  # the same text compiled the normal way
    assert reused == outcome(reused_text)
    assert reused[0] == "compile" or reused[1][0][0] in ("FS-RND-003", "FS-LIM-003", "FS-LIM-006", "FS-LIM-007")
    assert compiles <= 1  # one skeleton for the shape, or none when it does not compile


def test_a_text_holding_the_sentinel_prefix_is_compiled_normally() -> None:
    text = '{"resourceType": "Basic", "a": {{ "' + _PREFIX + '0\x1a" | tojson }}, "b": {{ 1 + 1 }}}'
    assert not prime_compiled_code(text)
    assert run(text) == {"resourceType": "Basic", "a": _PREFIX + "0\x1a", "b": 2}


def test_equal_pieces_of_text_and_escapes_come_out_as_typed() -> None:
    # Two equal pieces: a full compile keeps one constant for both, the skeleton one sentinel each.
    shape = '{"resourceType": "Basic", "a": [{% if 1 %}"X"{% endif %}{% if 1 %}, {% endif %}{% if 1 %}"X"{% endif %}]}'
    prime_compiled_code(shape)
    texts = [shape.replace("X", piece, 2) for piece in ["same", "\\\\", "\\u00e9 é", "'q'", "$1 \\1 \\g<0>", "%s {0}"]]
    reused = []
    for text in texts:
        assert prime_compiled_code(text)
        assert canonical(cached_code(text)) == full_compile(text)
        reused.append(run(text))
    assert SKELETONS.compiles == 1
    caches.clear()
    assert reused == [run(text) for text in texts]
    assert [output["a"] for output in reused[:2]] == [["same", "same"], ["\\", "\\"]]
