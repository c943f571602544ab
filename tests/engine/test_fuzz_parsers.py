"""Fuzzing the source parsers with hypothesis: whatever the payload (HL7 v2 with random delimiters, segments and
escapes, CSV, XML, JSON, NDJSON, FHIR), parsing raises nothing but the engine's MappingError, and a run of a template
that walks what was parsed ends with a result (output or coded errors), never an exception.

A fixed budget so the file runs in well under a minute, derandomized so CI sees the same examples every time; the
deeper run (20,000 examples per parser) is bench/fuzz.py, by hand, with its figures in bench/README.md."""

from __future__ import annotations

import string

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mappings.engine import Limits, MappingError, compile_mapping, run_mapping
from mappings.engine.sources import parse_source

LIMITS = Limits()
BUDGET = settings(
    max_examples=300,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)

# --- HL7 v2 ---------------------------------------------------------------------------------------------------

DELIMITERS = "|^~\\&#!@$%*+/:;=?`'\"<>{}[],.-_ \t"
SEGMENT_IDS = ["PID", "PV1", "OBR", "OBX", "NTE", "EVN", "NK1", "ZZ1", "AL1", "DG1", "IN1", "MSH", "X", "pid", ""]
ESCAPES = ["\\F\\", "\\S\\", "\\T\\", "\\R\\", "\\E\\", "\\X41\\", "\\X\\", "\\.br\\", "\\H\\", "\\N\\", "\\Z12\\"]
ESCAPES += ["\\", "\\\\", "\\X4G\\", "\\C2842\\", "\\M2442\\", "\\.sp3\\", "\\.in+4\\"]


@st.composite
def er7_messages(draw) -> str:
    """An ER7 message: MSH with drawn encoding characters (sometimes repeated, missing or odd), then segments of
    fields built from text, the delimiters themselves and escape sequences, split by CR, LF or CRLF."""
    field_sep = draw(st.sampled_from(DELIMITERS))
    encoding = draw(st.text(alphabet=DELIMITERS, min_size=0, max_size=6))
    pieces = st.one_of(
        st.text(alphabet=string.ascii_letters + string.digits + " .-", max_size=8),
        st.sampled_from([field_sep, *encoding] if encoding else [field_sep]),
        st.sampled_from(ESCAPES),
        st.text(max_size=4),  # any unicode
    )
    field = st.lists(pieces, max_size=6).map("".join)
    segment = st.tuples(st.sampled_from(SEGMENT_IDS), st.lists(field, max_size=8)).map(
        lambda pair: field_sep.join([pair[0], *pair[1]])
    )
    msh_fields = draw(st.lists(field, min_size=0, max_size=12))
    msh = field_sep.join(["MSH" + field_sep + encoding, *msh_fields])
    separator = draw(st.sampled_from(["\r", "\n", "\r\n", "\n\r", "\r\r"]))
    return separator.join([msh, *draw(st.lists(segment, max_size=8))]) + draw(st.sampled_from(["", separator]))


HL7_TEMPLATE = """{% set ns = namespace(n=0, text=[]) -%}
{% for segment in msg.segments %}{% for field in segment %}{% for rep in field.reps %}{% for component in rep %}
{% set ns.n = ns.n + 1 %}{% if ns.n < 50 %}{% set _ = ns.text.append(component | string) %}{% endif %}
{% endfor %}{% endfor %}{% endfor %}{% endfor -%}
{"resourceType": "Basic", "code": {"text": {{ [msg.names | join(","), msg.MSH[9][1] | string, msg.PID[5][1] | string,
 msg.get("PID-3(2).1") | string, msg.all("OBX") | length | string, msg.group("OBR", "OBX") | length | string,
 ns.text | join("/")] | join("|") | tojson }}}}"""


# --- CSV, XML, JSON, NDJSON, FHIR -------------------------------------------------------------------------------

CSV_PIECES = st.one_of(st.sampled_from([",", ";", '"', '""', "\n", "\r\n", "\r", "\t", " "]), st.text(max_size=6))
csv_texts = st.one_of(
    st.lists(CSV_PIECES, max_size=40).map("".join),
    st.lists(st.lists(st.text(max_size=6), min_size=1, max_size=5), min_size=1, max_size=6).map(
        lambda rows: "\n".join(",".join(f'"{cell}"' if "," in cell else cell for cell in row) for row in rows)
    ),
)
CSV_TEMPLATE = """{"resourceType": "Basic", "code": {"text": {{ [msg | length, (msg | first or {}) | list | join(","),
 msg | map("list") | map("length") | list | string] | join("|") | tojson }}}}"""

XML_PIECES = st.one_of(
    st.sampled_from(
        ["<a>", "</a>", "<b x='1'>", "</b>", "<c/>", "<ns:d xmlns:ns='urn:x'>", "</ns:d>", "&amp;", "&lt;"]
    ),
    st.sampled_from(["&bogus;", "<![CDATA[x]]>", "<!-- c -->", "<?pi x?>", '<?xml version="1.0"?>', "<", ">", "&"]),
    st.sampled_from(
        ['<!DOCTYPE a [<!ENTITY e "x">]>', '<!DOCTYPE a [<!ENTITY e SYSTEM "file:///etc/passwd">]>', "&e;"]
    ),
    st.sampled_from(['<ClinicalDocument xmlns="urn:hl7-org:v3">', "</ClinicalDocument>", "<code code='1'/>"]),
    st.text(max_size=6),
)
xml_texts = st.lists(XML_PIECES, max_size=30).map("".join)
XML_TEMPLATE = """{"resourceType": "Basic", "code": {"text": {{ [msg | string, msg.code | string,
 msg.all("code") | length] | join("|") | tojson }}}}"""

INTEGERS = st.integers(min_value=-(2**63), max_value=2**64 - 1)  # what orjson writes
json_values = st.recursive(
    st.none() | st.booleans() | INTEGERS | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=20,
)


@st.composite
def json_texts(draw) -> str:
    text = orjson.dumps(draw(json_values)).decode()
    cut = draw(st.integers(min_value=0, max_value=len(text)))
    return draw(st.sampled_from([text, text[:cut], text[:cut] + draw(st.text(max_size=4)) + text[cut:]]))


ndjson_texts = st.lists(st.one_of(json_texts(), st.text(max_size=8)), max_size=6).map("\n".join)
JSON_TEMPLATE = """{"resourceType": "Basic", "code": {"text": {{ [msg | string, msg.id | string,
 (msg | length if msg is iterable else 0) | string] | join("|") | tojson }}}}"""

fhir_resources = st.fixed_dictionaries(
    {"resourceType": st.sampled_from(["Patient", "Observation", "Bundle", "Nope", "", "patient"])},
    optional={
        "id": st.one_of(st.text(max_size=8), INTEGERS),
        "name": st.lists(st.dictionaries(st.sampled_from(["family", "given", "use"]), json_values, max_size=3)),
        "gender": json_values,
        "entry": st.lists(st.dictionaries(st.sampled_from(["resource", "fullUrl"]), json_values, max_size=2)),
    },
)


@st.composite
def fhir_texts(draw) -> str:
    resource = draw(fhir_resources)
    text = orjson.dumps(resource).decode()
    as_xml = f'<{resource["resourceType"] or "X"} xmlns="http://hl7.org/fhir"><id value="{resource.get("id", "")}"/>'
    return draw(st.sampled_from([text, text[: draw(st.integers(0, len(text)))], as_xml, as_xml + "</Patient>"]))


FHIR_TEMPLATE = """{"resourceType": "Basic", "code": {"text": {{ [msg.resourceType | string, msg.id | string]
 | join("|") | tojson }}}}"""


# --- the property ---------------------------------------------------------------------------------------------


def check_payload(payload: str, source_format: str, template: str) -> None:
    """Parsing raises only MappingError; a run returns a result (never raises) whose errors are all coded."""
    try:
        parse_source(payload, source_format, limits=LIMITS)
    except MappingError as error:
        assert error.code.startswith("FS-"), error
    result = run_mapping(COMPILED[source_format, template], payload, validate=False)
    failures = [error for error in result.errors if error.severity == "error"]
    assert (result.output is None) == bool(failures), result.errors  # warnings (a missing key) may come with output
    assert all(error.code.startswith("FS-") for error in result.errors), result.errors


COMPILED = {
    (source_format, template): compile_mapping(template, source_format=source_format)
    for source_format, template in (
        ("hl7v2", HL7_TEMPLATE),
        ("csv", CSV_TEMPLATE),
        ("xml", XML_TEMPLATE),
        ("json", JSON_TEMPLATE),
        ("ndjson", JSON_TEMPLATE),
        ("fhir", FHIR_TEMPLATE),
    )
}
STRATEGIES = {
    "hl7v2": (er7_messages(), HL7_TEMPLATE),
    "csv": (csv_texts, CSV_TEMPLATE),
    "xml": (xml_texts, XML_TEMPLATE),
    "json": (st.one_of(json_texts(), st.text(max_size=12)), JSON_TEMPLATE),
    "ndjson": (ndjson_texts, JSON_TEMPLATE),
    "fhir": (fhir_texts(), FHIR_TEMPLATE),
}


def fuzz_test(source_format: str):
    strategy, template = STRATEGIES[source_format]

    @BUDGET
    @given(strategy)
    def run(payload: str) -> None:
        check_payload(payload, source_format, template)

    return run


def test_it_parses_any_hl7v2_message_or_refuses_it_with_a_code() -> None:
    fuzz_test("hl7v2")()


def test_it_parses_any_csv_or_refuses_it_with_a_code() -> None:
    fuzz_test("csv")()


def test_it_parses_any_xml_or_refuses_it_with_a_code() -> None:
    fuzz_test("xml")()


def test_it_parses_any_json_or_refuses_it_with_a_code() -> None:
    fuzz_test("json")()


def test_it_parses_any_ndjson_or_refuses_it_with_a_code() -> None:
    fuzz_test("ndjson")()


def test_it_parses_any_fhir_resource_or_refuses_it_with_a_code() -> None:
    fuzz_test("fhir")()


def test_it_does_not_expand_an_external_xml_entity() -> None:
    payload = '<!DOCTYPE a [<!ENTITY e SYSTEM "file:///etc/passwd">]><a>&e;</a>'
    result = run_mapping(COMPILED["xml", XML_TEMPLATE], payload, validate=False)
    assert "root:" not in orjson.dumps(result.output).decode()


# --- bytes in any encoding, odd CSV options, HL7 v2 paths -------------------------------------------------------

ENCODINGS = ["utf-8", "latin-1", "utf-16", "ascii", "cp1252", "utf-8-sig", "no-such-encoding"]


@BUDGET
@given(st.binary(max_size=80), st.sampled_from(list(STRATEGIES)), st.sampled_from(ENCODINGS))
def test_it_decodes_any_bytes_or_refuses_them_with_a_code(payload: bytes, source_format: str, encoding: str) -> None:
    try:
        parse_source(payload, source_format, options={"encoding": encoding}, limits=LIMITS)
    except MappingError as error:
        assert error.code.startswith("FS-"), error


@BUDGET
@given(csv_texts, st.text(max_size=2), st.text(max_size=2))
def test_it_reads_csv_with_any_delimiter_and_quote_or_refuses_them(payload: str, delimiter: str, quote: str) -> None:
    try:
        parse_source(payload, "csv", options={"delimiter": delimiter, "quotechar": quote}, limits=LIMITS)
    except MappingError as error:
        assert error.code.startswith("FS-"), error


PATH_ALPHABET = "PIDMSHOBXZ-().0123456789 ,*^&~\\"


@BUDGET
@given(st.one_of(st.text(alphabet=PATH_ALPHABET, max_size=14), st.text(max_size=10)))
def test_it_answers_any_hl7v2_path_or_refuses_it_with_a_code(path: str) -> None:
    message = parse_source(HL7_SAMPLE, "hl7v2", limits=LIMITS)
    try:
        message.get(path)
    except MappingError as error:
        assert error.code.startswith("FS-"), error


HL7_SAMPLE = "MSH|^~\\&|A|B|C|D|20240101||ADT^A01|1|P|2.5\rPID|1||123^^^MRN~456^^^X||Doe^Jane&x\rOBX|1|ST|x||v"
