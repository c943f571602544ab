"""HL7 v2 (ER7) parsing and the template API over it: navigation, escapes, nulls, errors, and the whole corpus."""

from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest
from jinja2 import StrictUndefined
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment

from mappings.engine import hl7v2, hl7v2_text
from mappings.engine.accelerated import source_path
from mappings.engine.errors import ErrorCode, MappingError
from mappings.engine.hl7v2 import Component, Field, Group, Message, Repetition, Segment, SubComponent, parse_hl7v2

CORPUS = Path(os.environ.get("FHIR_STUDIO_CORPUS_DIR", Path(__file__).resolve().parents[3] / "shared" / "corpus"))
CONVERTER_FILES = sorted((CORPUS / "fhir-converter" / "hl7v2").glob("*.hl7"))
MORE_FILES = sorted((CORPUS / "more" / "hl7v2").glob("*.hl7"))

# Strict undefined, as the engine renders: a name that resolves to nothing fails loudly.
ENV = SandboxedEnvironment(undefined=StrictUndefined)

MSH = "MSH|^~\\&|APP|FAC|RAPP|RFAC|20240101120000||ADT^A01^ADT_A01|CTRL-1|P|2.5.1"
PID = "PID|1||A1^^^AUTH&1.2.3&ISO^MR~A2^^^OTHER^SS||Smith^John^Q~Doe^Jane||19800102|M"


def hl7(*segments: str, sep: str = "\r") -> str:
    return sep.join(segments)


def read(path: Path) -> str:
    return path.read_bytes().decode("utf-8-sig", errors="replace")


def value(field_text: str, msh: str = MSH) -> str:
    """The decoded value of OBX-5 when it is sent as `field_text`."""
    return str(parse_hl7v2(hl7(msh, f"OBX|1|TX|||{field_text}")).OBX[5])


def error_of(text: str) -> MappingError:
    with pytest.raises(MappingError) as caught:
        parse_hl7v2(text)
    return caught.value


# --- segment separators, BOM, blank lines -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        hl7(MSH, PID, "PV1|1|I", sep="\r"),
        hl7(MSH, PID, "PV1|1|I", sep="\n"),
        hl7(MSH, PID, "PV1|1|I", sep="\r\n"),
        MSH + "\r\n" + PID + "\r" + "PV1|1|I" + "\n",
        hl7(MSH, "", PID, "", "", "PV1|1|I", "", sep="\r\n"),
        hl7(MSH, "   ", PID, "\t", "PV1|1|I", sep="\n"),
        "\ufeff" + hl7(MSH, PID, "PV1|1|I"),
        "\ufeff\r\n\r\n  " + hl7(MSH, PID, "PV1|1|I", sep="\n") + "\n\n",
        "\x0b" + hl7(MSH, PID, "PV1|1|I") + "\r\x1c\r",
    ],
    ids=["cr", "lf", "crlf", "mixed", "blank-lines", "whitespace-lines", "bom", "bom-and-blank-start", "mllp-framing"],
)
def test_it_splits_segments_on_any_line_break(text):
    msg = parse_hl7v2(text)
    assert msg.names == ["MSH", "PID", "PV1"]
    assert msg.PID[5][1] == "Smith"
    assert msg.PV1[2] == "I"
    assert msg.MSH[3] == "APP"


def test_it_keeps_an_indented_segment():
    msg = parse_hl7v2(hl7(MSH, "  PID|1||X"))
    assert msg.PID.raw == "PID|1||X"
    assert msg.PID[3] == "X"


def test_it_parses_a_message_with_only_msh():
    msg = parse_hl7v2("MSH|^~\\&|APP")
    assert msg.names == ["MSH"]
    assert len(msg) == 1
    assert msg.MSH[3] == "APP"
    assert not msg.PID
    assert msg.version == ""
    assert msg.type == ""


def test_it_drops_a_batch_envelope_around_one_message():
    msg = parse_hl7v2(hl7("FHS|^~\\&|FILE", "BHS|^~\\&|BATCH", MSH, PID, "BTS|1", "FTS|1", sep="\r\n"))
    assert msg.names == ["MSH", "PID"]
    assert msg.control_id == "CTRL-1"


@pytest.mark.parametrize(
    "text",
    [
        hl7(MSH, PID, MSH.replace("CTRL-1", "CTRL-2"), PID),
        hl7("BHS|^~\\&|BATCH", MSH, PID, MSH.replace("CTRL-1", "CTRL-2"), "BTS|2", sep="\n"),
    ],
    ids=["bare", "in-an-envelope"],
)
def test_it_refuses_a_payload_holding_several_messages(text):
    error = error_of(text)
    assert error.code == "FS-SRC-013"
    assert "holds 2 HL7 v2 messages (control ids CTRL-1, CTRL-2)" in error.message


def test_it_does_not_count_msh_inside_a_field_as_a_message():
    msg = parse_hl7v2(hl7(MSH, "NTE|1||MSH|x", "NTE|2||MSH"))
    assert msg.names == ["MSH", "NTE", "NTE"]


# --- encoding characters -----------------------------------------------------------------------------------------


def test_it_reads_custom_encoding_characters_from_msh():
    # field #, component $, repetition %, escape @, sub-component !; the usual |^~\& are plain text here
    text = hl7("MSH#$%@!#APP#FAC", "PID#1##A1$$$AUTH!1.2.3!ISO$MR%A2#|^~\\&#Smith$John@S@Jr%Doe", sep="\n")
    msg = parse_hl7v2(text)
    assert msg.separators == {
        "field": "#",
        "component": "$",
        "repetition": "%",
        "escape": "@",
        "subcomponent": "!",
        "truncation": "",
    }
    assert msg.MSH[1] == "#"
    assert msg.MSH[2] == "$%@!"
    assert msg.MSH[3] == "APP"
    assert msg.PID[3][1] == "A1"
    assert msg.PID[3][4][2] == "1.2.3"
    assert msg.PID[3].rep(2)[1] == "A2"
    assert msg.PID[4] == "|^~\\&"
    assert msg.PID[5][2] == "John$Jr"
    assert msg.PID[5].rep(2)[1] == "Doe"


def test_it_accepts_a_fifth_truncation_character():
    msg = parse_hl7v2(hl7("MSH|^~\\&#|APP", r"OBX|1|TX|||cut\P\here"))
    assert msg.MSH[2] == "^~\\&#"
    assert msg.separators["truncation"] == "#"
    assert msg.OBX[5] == "cut#here"


@pytest.mark.parametrize(
    ("index", "expected"),
    [(1, "|"), (2, "^~\\&"), (3, "APP"), (4, "FAC"), (9, "ADT"), (10, "CTRL-1"), (12, "2.5.1")],
)
def test_it_numbers_msh_fields_like_the_spec(index, expected):
    msh = parse_hl7v2(MSH).MSH
    assert msh[index] == expected
    assert len(msh) == 12


def test_it_keeps_msh2_literal():
    msh2 = parse_hl7v2(MSH).MSH[2]
    assert msh2.raw == "^~\\&"
    assert str(msh2[1]) == "^~\\&"  # not split at ^ or ~ nor read as an escape
    assert len(msh2) == 1


# --- fields, repetitions, components, sub-components -----------------------------------------------------------


def test_it_navigates_fields_components_and_subcomponents():
    pid = parse_hl7v2(hl7(MSH, PID)).PID
    assert pid.name == "PID"
    assert len(pid) == 8
    assert pid[5].raw == "Smith^John^Q~Doe^Jane"
    assert str(pid[5]) == "Smith"  # a node's value is its first leaf
    assert pid[5][2] == "John"  # component 2 of the first repetition
    assert pid[3][4].raw == "AUTH&1.2.3&ISO"
    assert pid[3][4] == "AUTH"
    assert pid[3][4][2] == "1.2.3"
    assert pid[3][4][3] == "ISO"
    assert pid[3][4][2][1] == "1.2.3"  # a sub-component is its own first part
    assert pid[8] == "M"
    assert pid[8][1] == "M"


def test_it_iterates_repetitions_components_and_subcomponents():
    pid = parse_hl7v2(hl7(MSH, PID)).PID
    reps = list(pid[3])
    assert [type(rep) for rep in reps] == [Repetition, Repetition]
    assert [rep[1] for rep in reps] == ["A1", "A2"]
    assert pid[3].reps == reps
    assert len(pid[3]) == 2
    assert pid[3].rep(2)[4] == "OTHER"
    assert not pid[3].rep(3)
    components = list(reps[0])
    assert [type(c) for c in components] == [Component] * 5
    assert [str(c) for c in components] == ["A1", "", "", "AUTH", "MR"]
    subs = list(reps[0][4])
    assert [type(s) for s in subs] == [SubComponent] * 3
    assert [str(s) for s in subs] == ["AUTH", "1.2.3", "ISO"]
    assert [str(s) for s in subs[0]] == ["AUTH"]
    assert [type(f) for f in pid] == [Field] * 8
    assert [f.raw for f in pid][:2] == ["1", ""]


def test_it_reads_every_position_at_every_level_as_iterating_gives_it():
    # node[n] is inlined per node kind (hl7v2.py); iterating and rep() take the general path, so they are the oracle.
    field = parse_hl7v2(hl7(MSH, 'PID|1||a&b&&c^^d\\T\\e^""~f^g&h||')).PID[3]
    for n in range(0, 6):
        expected = list(field.rep(1))[n - 1].raw if 0 < n <= len(list(field.rep(1))) else ""
        assert field[n].raw == field[str(n)].raw == field.rep(1)[n].raw == expected
        assert type(field[n]) is Component
        for rep in field:
            components = list(rep)
            assert rep[n].raw == (components[n - 1].raw if 0 < n <= len(components) else "")
            for component in components:
                subs = list(component)
                assert component[n].raw == (subs[n - 1].raw if 0 < n <= len(subs) else "")
                assert type(component[n]) is SubComponent
                for sub in subs:
                    assert sub[n].raw == (sub.raw if n == 1 else "")
    assert field[3] == "d&e" and field[2][1] == "" and field[1][4][1] == "c" and field[4] == ""
    assert parse_hl7v2(hl7(MSH, "PID|1||")).PID[3][1].raw == ""


@pytest.mark.parametrize("index", [5, "5", " 5"])
def test_it_accepts_digit_strings_as_positions(index):
    pid = parse_hl7v2(hl7(MSH, PID)).PID
    assert pid[index][index] == ""
    assert pid[index][2] == "John"
    assert pid[3].rep(str(2))[1] == "A2"


def test_it_refuses_non_numeric_positions_so_templates_see_undefined():
    pid = parse_hl7v2(hl7(MSH, PID)).PID
    with pytest.raises(KeyError):
        pid["name"]
    with pytest.raises(KeyError):
        pid[5]["x"]


@pytest.mark.parametrize(
    "path",
    [
        lambda m: m.ZZZ,
        lambda m: m.ZZZ[5],
        lambda m: m.ZZZ[5][1][2],
        lambda m: m["ZZZ"][5][1][2][1],
        lambda m: m.PID[99],
        lambda m: m.PID[99][3][2],
        lambda m: m.PID[5][9],
        lambda m: m.PID[5][1][7],
        lambda m: m.PID[5].rep(5)[1],
        lambda m: m.PID[0],
        lambda m: m.PID[-1],
        lambda m: m.PID[2][1],
    ],
)
def test_it_returns_an_empty_node_for_anything_missing(path):
    node = path(parse_hl7v2(hl7(MSH, PID)))
    assert str(node) == ""
    assert not node
    assert node == ""
    assert not node.is_null


def test_it_gives_absent_segments_no_name_and_no_fields():
    missing = parse_hl7v2(MSH).ZPD
    assert missing.name == ""
    assert len(missing) == 0
    assert list(missing) == []
    assert list(missing[3]) == []


# --- nulls, emptiness, comparison --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "text", "truthy", "null"),
    [
        ('""', "", False, True),
        ("", "", False, False),
        ("^^", "", False, False),
        ('""^""', "", False, False),
        ('""~X', "", True, False),
        ("^X", "", True, False),
        ("X", "X", True, False),
        ('"quoted"', '"quoted"', True, False),
        ("0", "0", True, False),
    ],
)
def test_it_tells_null_from_empty(raw, text, truthy, null):
    field = parse_hl7v2(hl7(MSH, f"PID|1|{raw}|")).PID[2]
    assert str(field) == text
    assert bool(field) is truthy
    assert field.is_null is null
    assert field.raw == raw


def test_it_reads_a_null_component_and_subcomponent():
    pid = parse_hl7v2(hl7(MSH, 'PID|1||A&""^""')).PID
    assert pid[3][2].is_null
    assert not pid[3][2]
    assert pid[3][1][2].is_null
    assert str(pid[3][1][2]) == ""
    assert pid[3][1][1] == "A"
    assert not pid[3][1].is_null


def test_it_compares_and_hashes_nodes_as_their_text():
    msg = parse_hl7v2(hl7(MSH, PID, "PV1|1|M"))
    assert msg.PID[8] == "M"
    assert msg.PID[8] != "F"
    assert msg.PID[8] in ["F", "M"]
    assert {"M": "male"}[msg.PID[8]] == "male"
    assert msg.PID[8] in {"M"}
    assert msg.PID[8] == msg.PV1[2]
    assert msg.PID[8] != 1


def test_it_converts_nodes_to_numbers():
    pid = parse_hl7v2(hl7(MSH, "PID|42|3.5")).PID
    assert int(pid[1]) == 42
    assert float(pid[2]) == 3.5


# --- escape sequences --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sent", "decoded"),
    [
        (r"a\F\b", "a|b"),
        (r"a\S\b", "a^b"),
        (r"a\T\b", "a&b"),
        (r"a\R\b", "a~b"),
        (r"a\E\b", "a\\b"),
        (r"C\E\F\E\x", "C\\F\\x"),  # an escaped escape does not start a sequence
        (r"line1\X0D0A\line2", "line1\r\nline2"),
        (r"caf\XC3A9\ ok", "café ok"),  # UTF-8 bytes
        (r"caf\XE9\ ok", "café ok"),  # not UTF-8: Latin-1
        (r"a\X\b", "ab"),
        (r"one\.br\two", "one\ntwo"),
        (r"one\.sp\two", "one\ntwo"),
        (r"one\.sp2\two", "one\n\ntwo"),
        (r"\.in+4\indented", "indented"),
        (r"\H\bold\N\ text", "bold text"),
        (r"a\C2842\b", "ab"),
        (r"a\M2442\b", "ab"),
        (r"a\P\b", r"a\P\b"),  # no truncation character declared: kept
        (r"C:\temp\new", r"C:\temp\new"),  # not an escape sequence: kept as sent
        (r"trailing\ ", "trailing\\ "),
        (r"odd\X0\hex", r"odd\X0\hex"),
        ("plain", "plain"),
    ],
)
def test_it_decodes_escape_sequences(sent, decoded):
    assert value(sent) == decoded


def test_it_decodes_escapes_with_custom_characters():
    msh = "MSH#$%@!#APP"
    msg = parse_hl7v2(hl7(msh, "OBX#1#TX###x@F@y@S@z@T@w@R@v@E@u\\F\\"))
    assert msg.OBX[5] == "x#y$z!w%v@u\\F\\"


def test_it_keeps_raw_text_undecoded():
    msg = parse_hl7v2(hl7(MSH, r"OBX|1|TX|||a\F\b^c\.br\d"))
    assert msg.OBX[5].raw == r"a\F\b^c\.br\d"
    assert msg.OBX[5][2] == "c\nd"


# --- Z-segments, lookup, groups, paths ---------------------------------------------------------------------------


def test_it_treats_z_segments_as_segments():
    msg = parse_hl7v2(hl7(MSH, PID, "ZPD|1|custom^value", "Z01|x"))
    assert msg.names == ["MSH", "PID", "ZPD", "Z01"]
    assert msg.ZPD[2][2] == "value"
    assert msg["Z01"][1] == "x"


ORDERS = hl7(
    MSH,
    PID,
    "ORC|NW|O1",
    "OBR|1|O1||CBC",
    "OBX|1|NM|WBC||5.1",
    "NTE|1||note on WBC",
    "OBX|2|NM|RBC||4.2",
    "OBR|2|O2||BMP",
    "OBX|1|NM|NA||140",
    "SPM|1|S1",
    "OBX|2|NM|K||4.0",
)


def test_it_lists_all_segments_of_a_kind():
    msg = parse_hl7v2(ORDERS)
    assert [str(obx[3]) for obx in msg.all("OBX")] == ["WBC", "RBC", "NA", "K"]
    assert msg.all("ZZZ") == []
    assert msg.OBX[3] == "WBC"  # the first one
    assert len(msg.segments) == len(msg) == 11
    assert all(isinstance(s, Segment) for s in msg)
    assert msg.names[:3] == ["MSH", "PID", "ORC"]


def test_it_groups_segments_under_each_head():
    groups = parse_hl7v2(ORDERS).group("OBR", "OBX", "NTE")
    assert len(groups) == 2
    assert all(isinstance(g, Group) for g in groups)
    first, second = groups
    assert first.head[4] == "CBC"
    assert first[0] is first.head
    assert first.names == ["OBR", "OBX", "NTE", "OBX"]
    assert [str(o[5]) for o in first.all("OBX")] == ["5.1", "4.2"]
    assert first.NTE[3] == "note on WBC"
    assert first["OBX"][3] == "WBC"
    assert second.names == ["OBR", "OBX", "OBX"]  # SPM is skipped, the OBX after it still belongs
    assert not second.NTE
    assert len(second.segments) == 3


def test_it_groups_everything_up_to_the_next_head_without_member_names():
    msg = parse_hl7v2(ORDERS)
    assert [g.names for g in msg.group("OBR")] == [["OBR", "OBX", "NTE", "OBX"], ["OBR", "OBX", "SPM", "OBX"]]
    assert msg.group("ZZZ", "OBX") == []


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("PID", PID),
        ("PID-5", "Smith"),
        ("PID.5.1", "Smith"),
        ("PID-5.2", "John"),
        ("PID-5(2)", "Doe"),
        ("PID-5(2).2", "Jane"),
        ("PID-3(2).1", "A2"),
        ("PID-3.4.2", "1.2.3"),
        ("pid-8", "M"),
        ("MSH-1", "|"),
        ("MSH-2", "^~\\&"),
        ("MSH-9.2", "A01"),
        ("OBX-3", "WBC"),
        ("OBX(2)-3", "RBC"),
        ("OBX(4)-5", "4.0"),
        ("OBX(5)-5", ""),
        ("ZZZ-1.2.3", ""),
        ("PID-99", ""),
    ],
)
def test_it_resolves_spec_paths(path, expected):
    msg = parse_hl7v2(ORDERS)
    assert str(msg.get(path)) == expected


@pytest.mark.parametrize("path", ["PID5", "PID-x", "", "PID-5.1.2.3", "PI-5", "PID-5(x)"])
def test_it_rejects_malformed_paths(path):
    with pytest.raises(MappingError) as caught:
        parse_hl7v2(ORDERS).get(path)
    assert caught.value.error is ErrorCode.RND_FILTER_INPUT
    assert "PID-5" in caught.value.message


def test_it_exposes_message_header_values():
    msg = parse_hl7v2(ORDERS)
    assert msg.version == "2.5.1"
    assert msg.type == "ADT^A01"
    assert msg.control_id == "CTRL-1"
    assert msg.raw == ORDERS
    assert isinstance(msg, Message)
    assert parse_hl7v2("MSH|^~\\&|||||||ACK|1|P|2.3").type == "ACK"


# --- templates ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ msg.PID[5][1] }}/{{ msg.PID.5.2 }}", "Smith/John"),
        ("{{ msg['PID'][8] == 'M' }}", "True"),
        ("{{ {'M': 'male'}[msg.PID[8]] }}", "male"),
        ("{% for cx in msg.PID[3] %}{{ cx[1] }}:{{ cx[4][2] }};{% endfor %}", "A1:1.2.3;A2:;"),
        ("{{ msg.ZZZ[5][1][2] }}|{{ 'yes' if msg.ZZZ else 'no' }}|{{ msg.PID[99] or 'none' }}", "|no|none"),
        ("{{ msg.PID[3] | length }} {{ msg.PID[1] | int + 1 }}", "2 2"),
        ("{{ msg.get('PID-3(2).1') }} {{ msg.type }} {{ msg.all('OBX') | length }}", "A2 ADT^A01 4"),
        (
            "{% for g in msg.group('OBR', 'OBX') %}{{ g.head[4] }}={{ g.all('OBX')|length }} {% endfor %}",
            "CBC=2 BMP=2 ",
        ),
        ("{{ msg.PID[5].rep(2)[1] }} {{ msg.PID[5].reps | length }} {{ msg.separators.component }}", "Doe 2 ^"),
        ("{{ msg.PID[5] | lower }}", "smith"),
    ],
)
def test_it_reads_naturally_in_a_sandboxed_template(template, expected):
    assert ENV.from_string(template).render(msg=parse_hl7v2(ORDERS)) == expected


@pytest.mark.parametrize(
    "template",
    ["{{ msg._segments }}", "{{ msg.PID._raw }}", "{{ msg.PID[5]._enc }}", "{{ msg.PID[5]._kid(1) }}"],
)
def test_it_hides_internals_from_templates(template):
    with pytest.raises(SecurityError):
        ENV.from_string(template).render(msg=parse_hl7v2(ORDERS))


def test_it_leaves_unknown_attributes_undefined_in_templates():
    with pytest.raises(Exception, match="nmae"):
        ENV.from_string("{{ msg.PID.nmae }}").render(msg=parse_hl7v2(ORDERS))


# --- laziness and purity -----------------------------------------------------------------------------------------


def test_it_splits_fields_only_when_first_read():
    msg = parse_hl7v2(ORDERS)
    assert all(segment._fields is None for segment in msg._segments)
    field = msg.PID[5]
    assert msg.PID._fields is not None
    assert msg.OBR._fields is None
    assert field._kids is None  # repetitions not split yet
    assert msg.PID[5] is field  # cached


def test_it_imports_nothing_but_the_standard_library_and_errors():
    imported = set()
    for module in (hl7v2, hl7v2_text):  # the parser and model, and the ER7 text layer split out of it
        for node in ast.walk(ast.parse(source_path(module.__name__).read_text())):  # not the compiled file
            if isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                imported.add(node.module or "")
    standard = {"__future__", "re", "collections.abc", "functools"}
    assert imported == standard | {"mappings.engine.errors", hl7v2_text.__name__}


# --- errors ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "",
        "  \r\n\t ",
        "\ufeff",
        "PID|1||X",
        "msh|^~\\&|APP",
        "hello world",
        "<ClinicalDocument xmlns='urn:hl7-org:v3'/>",
        '{"resourceType": "Patient"}',
        "\x00\x01\x02\xff\xfe garbage",
        "\ufffd\ufffdMSH|^~\\&",
    ],
)
def test_it_requires_the_message_to_start_with_msh(text):
    error = error_of(text)
    assert error.code == "FS-SRC-010"
    assert error.error is ErrorCode.HL7_NO_MSH
    assert "MSH" in error.message


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        ("MSH", "field separator"),
        ("MSH|", "4 encoding characters"),
        ("MSH|^~\\", "4 encoding characters"),
        ("MSH|^~|&|APP", "4 encoding characters"),
        ("MSH||APP", "4 encoding characters"),
        ("MSH|&&&&|APP", "twice"),
        ("MSH|^^\\&|APP", "twice"),
        ("MSH|^~\\&#X|APP", "truncation"),
        ("MSH|a~\\&|APP", "letters, digits"),
        ("MSH| ~\\&|APP", "letters, digits"),
        ("MSH1^~\\&1APP", "field separator"),
        ("MSH ^~\\& APP", "field separator"),
    ],
)
def test_it_rejects_unusable_encoding_characters(text, hint):
    error = error_of(text + "\rPID|1")
    assert error.code == "FS-SRC-011"
    assert hint in error.message


@pytest.mark.parametrize(
    ("text", "line"),
    [
        (hl7(MSH, "P1|x"), 2),
        (hl7(MSH, PID, "pid|1"), 3),
        (hl7(MSH, "PIDX|1"), 2),
        (hl7(MSH, "PI D|1"), 2),
        (hl7(MSH, "OBX 1|x"), 2),
        (hl7(MSH, "OBX|1|TX|||first line", "second line of the same value"), 3),
        (hl7(MSH, PID, "", "", "P\u00c9D|1", sep="\r\n"), 5),
        ("\ufeff\n\n" + hl7(MSH, "1234", sep="\n"), 4),
    ],
)
def test_it_rejects_lines_that_are_not_segments(text, line):
    error = error_of(text)
    assert error.code == "FS-SRC-012"
    assert error.message.startswith(f"Line {line} ")


def test_it_refuses_bytes():
    with pytest.raises(TypeError):
        parse_hl7v2(MSH.encode())  # type: ignore[arg-type]


# --- corpus ------------------------------------------------------------------------------------------------------


def test_it_finds_the_corpus():
    assert len(CONVERTER_FILES) == 139, f"expected the FHIR-Converter HL7 v2 samples under {CORPUS}"
    assert len(MORE_FILES) >= 20


@pytest.mark.parametrize("path", CONVERTER_FILES, ids=lambda p: p.name)
def test_it_parses_every_converter_sample(path):
    text = read(path)
    msg = parse_hl7v2(text)
    assert msg.MSH[9][1]
    assert msg.names[0] == "MSH"
    lines = [line for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n") if line.strip()]
    assert [segment.raw for segment in msg.segments] == [line.removeprefix("\ufeff") for line in lines]


MORE_ERRORS = {
    "cdc-oru-r01-bad-msh2-delimiters.hl7": "FS-SRC-011",  # MSH-2 is '&&&&'
    "cdc-oru-r01-v2.5.1-five-messages-one-file.hl7": "FS-SRC-013",  # five messages: split_messages splits them
}


@pytest.mark.parametrize("path", MORE_FILES, ids=lambda p: p.name)
def test_it_parses_or_clearly_rejects_the_other_samples(path):
    text = read(path)
    if path.name in MORE_ERRORS:
        assert error_of(text).code == MORE_ERRORS[path.name]
        return
    msg = parse_hl7v2(text)
    assert msg.MSH[9][1]
    assert msg.PID or msg.names[1] in ("EVN", "SFT")


def test_it_reads_the_corpus_edge_cases():
    by_name = {path.name: parse_hl7v2(read(path)) for path in MORE_FILES if path.name not in MORE_ERRORS}
    assert by_name["cdc-oru-r01-v2.5.1-five-encoding-chars.hl7"].separators["truncation"] == "#"
    assert by_name["cdc-oru-r01-v2.3-zlr-zsegment.hl7"].ZLR
    assert by_name["cdc-oru-r01-v2.3.z-nonstandard-version.hl7"].version == "2.3.z"
    formatted = [str(obx[5]) for obx in by_name["hl7-mdm-t02-v2.5.1-formatted-text.hl7"].all("OBX")]
    assert any("\n" in text for text in formatted)
    assert not any("\\.br\\" in text for text in formatted)
    escapes = by_name["cdc-oru-r01-v2.5.1-case-notification-escapes.hl7"]
    assert any("|" in str(obx[3][2]) for obx in escapes.all("OBX"))


def test_it_reads_a_doubled_escape_character_in_msh2_as_a_pasted_string_literal():
    msg = parse_hl7v2("MSH|^~\\\\&|APP|FAC\rPID|1||7||Doe^J\\T\\K")
    assert msg.separators["escape"] == "\\"
    assert msg.separators["subcomponent"] == "&"
    assert str(msg.MSH[3]) == "APP"
    assert str(msg.PID[5][2]) == "J&K"
