"""POST /api/mappings/{slug}/source-tree: the parsed payload as a tree whose expressions really print, through the
engine, the values the tree shows (every node is checked, by rendering one probe template through /render)."""

import json

import pytest

from mappings import actions
from tests.api.conftest import ROOT

pytestmark = pytest.mark.django_db

ADT = (ROOT / "examples/hl7v2-adt-a01/samples/adt-a01-full.hl7").read_text()
ADT_ESCAPES = (ROOT / "examples/hl7v2-adt-a01/samples/adt-a08-escapes-repetitions.hl7").read_text()
ORU = (ROOT / "examples/hl7v2-oru-r01/samples/nist-loi-hepatitis.hl7").read_text()
CCD = (ROOT / "examples/ccda-ccd/samples/ccd.xml").read_text()
CSV = (ROOT / "examples/csv-patients/samples/registrations.csv").read_text()
TREE = "/api/mappings/feed/source-tree"

# Keys Jinja would read as something else (dict methods, keywords, non-identifiers) must still be reached.
AWKWARD_JSON = json.dumps(
    {
        "items": 1,
        "keys": [True, None, {"get": "g"}],
        "first name": "Ada",
        'quo"te': "q",
        "back\\slash": "b",
        "new\nline": "n",
        "_private": "p",
        "ünï": "u",
        "and": "keyword",
        "": "empty key",
        "nested": {"values": [1.5, False]},
    },
    ensure_ascii=False,
)
# An attribute shadowed by a child element of the same name, attributes named like XmlNode's API, xsi:type, a
# namespace the engine has no prefix for, repeated elements, mixed content and a tag that is no identifier.
AWKWARD_XML = """<?xml version="1.0"?>
<root xmlns="urn:hl7-org:v3" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:o="urn:other" code="R">
  <code code="X" codeSystem="1.2"/>
  <value xsi:type="CD" value="v" type="plain"/>
  <value>second</value>
  <item tag="t" all="a" section="s" o:extra="other" extra="plain"/>
  <all>an element named all</all>
  <section><title>S1</title></section>
  <section><title>S2</title></section>
  <my-tag>dash</my-tag>
  <text>Some <b>bold</b>   text
    here</text>
  <id extension="1"><extension>the child wins</extension></id>
</root>"""


def walk(nodes):
    for node in nodes:
        yield node
        yield from walk(node["children"])


def tree_of(client, payload: str, source_format: str | None = None) -> dict:
    body = {"payload": payload} if source_format is None else {"payload": payload, "source_format": source_format}
    response = client.post(TREE, body, format="json")
    assert response.status_code == 200, response.json()
    return response.json()


def assert_expressions_print_their_values(client, payload: str, source_format: str, tree: list) -> int:
    """Render one template printing every node's expression into its own extension, through the real engine, and
    compare with the values the tree shows. Returns how many nodes were checked."""
    nodes = [node for node in walk(tree) if node["value"] is not None]
    probes = ", ".join(
        f'{{"url": "urn:n:{index}", "valueString": "{{{{ {node["expression"]} }}}}"}}'
        for index, node in enumerate(nodes)
    )
    template = f'{{"resourceType": "Basic", "id": "probe", "extension": [{probes}]}}'
    body = {"payload": payload, "source_format": source_format, "template": template, "validate": False}
    answer = client.post("/api/mappings/feed/render", body, format="json").json()
    assert answer["ok"], answer["errors"][:3]
    printed = {item["url"]: item.get("valueString", "") for item in answer["output"]["extension"]}
    for index, node in enumerate(nodes):
        got, shown = printed.get(f"urn:n:{index}", ""), node["value"]
        if shown.endswith("…"):  # cut at 200 characters
            assert got.startswith(shown[:-1]), node["expression"]
        else:
            # Post-processing drops strings that are only spaces; the expression still printed them.
            assert got == shown or (not got and not shown.strip()), (node["expression"], shown, got)
    return len(nodes)


@pytest.fixture
def feed(users):
    return actions.do_create_mapping(acting_user=users["author"], slug="feed", title="Feed", source_format="hl7v2")


def test_it_names_hl7v2_segments_fields_components_and_subcomponents(api, feed) -> None:
    answer = tree_of(api["viewer"], ADT)
    assert (answer["ok"], answer["truncated"], answer["errors"], answer["source_format"]) == (True, False, [], "hl7v2")
    pid = next(node for node in answer["tree"] if node["label"] == "PID")
    assert (pid["description"], pid["expression"], pid["value"]) == ("Patient Identification", "msg.PID", None)
    name = next(node for node in pid["children"] if node["label"] == "PID-5")
    assert (name["description"], name["expression"], name["value"]) == ("Patient Name", "msg.PID[5]", "EVERYMAN")
    family = next(node for node in walk([name]) if node["label"] == "PID-5(1).1")
    assert (family["description"], family["expression"], family["value"]) == (
        "Family Name",
        "msg.PID[5].rep(1)[1]",
        "EVERYMAN",
    )
    spouse = next(node for node in walk([family]) if node["label"] == "PID-5(1).1.5")
    assert (spouse["description"], spouse["expression"], spouse["value"]) == (
        "Surname From Partner Spouse",
        "msg.PID[5].rep(1)[1][5]",
        "Aniston",
    )
    authority = next(node for node in walk(pid["children"]) if node["label"] == "PID-3(1).4.2")
    assert (authority["description"], authority["value"]) == ("Universal ID", "2.16.1")


def test_it_shows_repetitions_only_for_fields_that_repeat_and_later_segments_through_all(api, feed) -> None:
    tree = tree_of(api["viewer"], ADT_ESCAPES)["tree"]
    pid = next(node for node in tree if node["label"] == "PID")
    identifiers = next(node for node in pid["children"] if node["label"] == "PID-3")
    assert [child["label"] for child in identifiers["children"]] == ["PID-3(1)", "PID-3(2)"]
    second = identifiers["children"][1]
    assert (second["expression"], second["description"]) == ("msg.PID[3].rep(2)", "repetition 2")
    assert [child["label"] for child in second["children"]][:2] == ["PID-3(2).1", "PID-3(2).4"]
    sex = next(node for node in pid["children"] if node["label"] == "PID-8")
    assert (sex["value"], sex["children"]) == ("F", [])  # one value: no repetition or component level
    assert "PID-4" not in [node["label"] for node in pid["children"]]  # empty fields are left out

    obx = [node for node in tree_of(api["viewer"], ORU)["tree"] if node["label"].startswith("OBX")]
    assert [node["expression"] for node in obx[:3]] == ["msg.OBX", 'msg.all("OBX")[1]', 'msg.all("OBX")[2]']
    assert [node["label"] for node in obx[:2]] == ["OBX", "OBX (2)"]


@pytest.mark.parametrize("payload", [ADT, ADT_ESCAPES, ORU], ids=["adt-full", "adt-escapes", "oru"])
def test_its_hl7v2_expressions_print_the_values_shown(api, feed, payload) -> None:
    tree = tree_of(api["viewer"], payload)["tree"]
    labels = {node["label"] for node in walk(tree)}
    assert "MSH-9.2" in labels
    assert assert_expressions_print_their_values(api["viewer"], payload, "hl7v2", tree) > 100


def test_its_xml_expressions_print_the_values_shown(api, feed) -> None:
    for payload in (CCD, AWKWARD_XML):
        tree = tree_of(api["viewer"], payload, "xml")["tree"]
        assert assert_expressions_print_their_values(api["viewer"], payload, "xml", tree) > 10
    expressions = {
        node["label"]: node["expression"] for node in walk(tree_of(api["viewer"], AWKWARD_XML, "xml")["tree"])
    }
    assert expressions["<my-tag>"] == 'msg["my-tag"]'
    assert expressions["<all>"] == 'msg["all"]'
    ccd = {node["expression"] for node in walk(tree_of(api["viewer"], CCD, "xml")["tree"])}
    # What the examples write: attributes read like child names where no child element of that name exists.
    assert "msg.recordTarget.patientRole.patient.birthTime.value" in ccd
    assert "msg.recordTarget.patientRole.id.extension" in ccd


def test_its_json_csv_and_ndjson_expressions_print_the_values_shown(api, feed) -> None:
    ndjson = '{"id": 1, "name": {"family": "Lovelace"}}\n{"id": 2, "name": {"family": "Turing"}}\n'
    for payload, source_format in ((AWKWARD_JSON, "json"), (CSV, "csv"), (ndjson, "ndjson")):
        tree = tree_of(api["viewer"], payload, source_format)["tree"]
        assert assert_expressions_print_their_values(api["viewer"], payload, source_format, tree) >= 4
    awkward = {node["label"]: node for node in walk(tree_of(api["viewer"], AWKWARD_JSON, "json")["tree"])}
    assert awkward["items"]["expression"] == 'msg["items"]'
    assert awkward["first name"]["expression"] == 'msg["first name"]'
    assert awkward["nested"]["expression"] == "msg.nested"
    values = {node["expression"]: node["value"] for node in walk(tree_of(api["viewer"], AWKWARD_JSON, "json")["tree"])}
    assert (values["msg.nested"], values['msg["keys"][0]'], values['msg["keys"][1]']) == (None, "true", "")
    rows = tree_of(api["viewer"], CSV, "csv")["tree"]
    assert rows[0]["expression"] == "msg[0]" and rows[0]["children"][0]["expression"] == "msg[0].mrn"


def test_it_reads_the_payload_with_the_mappings_source_options(api, users) -> None:
    actions.do_create_mapping(
        acting_user=users["author"],
        slug="semicolons",
        title="CSV with semicolons",
        source_format="csv",
        source_options={"delimiter": ";"},
    )
    answer = api["viewer"].post("/api/mappings/semicolons/source-tree", {"payload": "a;b\n1;2\n"}, format="json")
    assert [node["expression"] for node in answer.json()["tree"][0]["children"]] == ["msg[0].a", "msg[0].b"]


@pytest.mark.parametrize(
    ("payload", "source_format", "code"),
    [("not hl7", None, "FS-SRC-010"), ('{"a": ', "json", "FS-SRC-020"), ("<a><b></a>", "xml", "FS-SRC-030")],
)
def test_it_answers_a_payload_that_does_not_parse_with_the_engine_error(api, feed, payload, source_format, code):
    answer = tree_of(api["viewer"], payload, source_format)
    assert (answer["ok"], answer["tree"], answer["truncated"]) == (False, [], False)
    assert answer["errors"][0]["code"] == code
    assert answer["errors"][0]["stage"] == "source"


def test_it_stops_a_huge_tree_and_says_so(api, feed) -> None:
    payload = json.dumps({"rows": [{"a": index, "b": index} for index in range(4000)]})
    answer = tree_of(api["viewer"], payload, "json")
    assert answer["truncated"] is True
    assert sum(1 for _ in walk(answer["tree"])) == 5000


def test_it_cuts_long_values(api, feed) -> None:
    answer = tree_of(api["viewer"], json.dumps({"note": "x" * 500}), "json")
    assert answer["tree"][0]["value"] == "x" * 199 + "…"


def test_it_refuses_the_source_tree_to_anonymous_roleless_and_bad_requests(api, feed) -> None:
    assert api["anonymous"].post(TREE, {"payload": ADT}, format="json").status_code == 401
    assert api["norole"].post(TREE, {"payload": ADT}, format="json").status_code == 403
    missing = api["viewer"].post("/api/mappings/nope/source-tree", {"payload": ADT}, format="json")
    assert (missing.status_code, missing.json()["code"]) == (404, "not_found")
    for body in ({"payload": 12}, {}, {"payload": ADT, "source_format": "edifact"}):
        bad = api["viewer"].post(TREE, body, format="json")
        assert (bad.status_code, bad.json()["code"]) == (400, "invalid"), body
