"""The editor's support endpoints: the source tree (whose expressions must really reach their values through the
engine), completion data, the impact of a change on the samples, and starter templates."""

import json

import pytest

from mappings import actions
from mappings.starters import all_starters
from tests.api.conftest import ROOT

pytestmark = pytest.mark.django_db

ADT = (ROOT / "examples/hl7v2-adt-a01/samples/adt-a01-full.hl7").read_text()
CCDA = (ROOT / "mappings/starter_templates/xml.sample").read_text()
PROBE = (
    '{"resourceType": "Basic", "id": "x", "extension": [{"url": "urn:x", '
    '"valueString": {{ (EXPR) | string | tojson }}}]}'
)


def walk(nodes):
    for node in nodes:
        yield node
        yield from walk(node["children"])


def evaluate(client, slug: str, expression: str, payload: str, source_format: str) -> str:
    body = {
        "payload": payload,
        "source_format": source_format,
        "validate": False,
        "template": PROBE.replace("EXPR", expression),
    }
    answer = client.post(f"/api/mappings/{slug}/render", body, format="json").json()
    assert answer["ok"], answer["errors"]
    return answer["output"]["extension"][0]["valueString"]


@pytest.fixture
def feed(users):
    return actions.do_create_mapping(acting_user=users["author"], slug="feed", title="Feed", source_format="hl7v2")


def test_it_lists_hl7v2_segments_fields_and_components_with_their_names(api, feed) -> None:
    answer = api["viewer"].post("/api/mappings/feed/source-tree", {"payload": ADT}, format="json").json()
    assert answer["ok"] is True and answer["truncated"] is False
    pid = next(node for node in answer["tree"] if node["label"] == "PID")
    assert pid["description"] == "Patient Identification"
    name = next(node for node in pid["children"] if node["label"] == "PID-5")
    assert (name["description"], name["expression"]) == ("Patient Name", "msg.PID[5]")
    family = next(node for node in walk([name]) if node["label"] == "PID-5.1")
    assert family["description"] == "Family Name"
    assert family["value"] == "EVERYMAN"


def test_its_hl7v2_expressions_reach_the_values_shown(api, feed) -> None:
    tree = api["viewer"].post("/api/mappings/feed/source-tree", {"payload": ADT}, format="json").json()["tree"]
    nodes = [node for node in walk(tree) if node["value"] and len(node["value"]) < 60 and "\\" not in node["value"]]
    picked = nodes[:: max(1, len(nodes) // 40)]  # ~40 nodes spread over the message: fields, reps, components, subs
    assert {1, 2, 3} <= {node["expression"].count("[") for node in picked}  # fields, components, sub-components
    assert any(".rep(" in node["expression"] for node in picked)  # repetitions
    assert any('msg.all("' in node["expression"] for node in walk(tree))  # a repeated segment
    for node in picked:
        assert evaluate(api["viewer"], "feed", node["expression"], ADT, "hl7v2") == node["value"], node["expression"]


def test_its_json_and_xml_expressions_reach_the_values_shown(api, feed) -> None:
    payload = json.dumps(
        {"id": "p1", "first name": "Ada", "addresses": [{"city": "London"}, {"city": "Bath"}], "items": 3}
    )
    for source_format, text in (("json", payload), ("xml", CCDA)):
        answer = (
            api["viewer"]
            .post("/api/mappings/feed/source-tree", {"payload": text, "source_format": source_format}, format="json")
            .json()
        )
        leaves = [node for node in walk(answer["tree"]) if node["value"] and not node["children"]]
        assert len(leaves) >= 4
        for node in leaves:
            assert evaluate(api["viewer"], "feed", node["expression"], text, source_format) == node["value"]
    expressions = {node["expression"] for node in walk(answer["tree"])}
    assert 'msg.recordTarget.patientRole.id.attr("extension")' in expressions


def test_it_answers_a_payload_that_does_not_parse_with_the_engine_error(api, feed) -> None:
    response = api["viewer"].post("/api/mappings/feed/source-tree", {"payload": "not hl7"}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert body["ok"] is False and body["tree"] == []
    assert body["errors"][0]["code"].startswith("FS-SRC-")


def test_it_stops_a_huge_tree_and_says_so(api, feed) -> None:
    payload = json.dumps({"rows": [{"a": index, "b": index} for index in range(4000)]})
    body = (
        api["viewer"]
        .post("/api/mappings/feed/source-tree", {"payload": payload, "source_format": "json"}, format="json")
        .json()
    )
    assert body["truncated"] is True
    assert sum(1 for _ in walk(body["tree"])) == 5000


def test_it_refuses_the_source_tree_to_anonymous_and_roleless_users(api, feed) -> None:
    assert api["anonymous"].post("/api/mappings/feed/source-tree", {"payload": ADT}, format="json").status_code == 401
    assert api["norole"].post("/api/mappings/feed/source-tree", {"payload": ADT}, format="json").status_code == 403
    bad = api["viewer"].post("/api/mappings/feed/source-tree", {"payload": 12}, format="json")
    assert (bad.status_code, bad.json()["code"]) == (400, "invalid")


def test_it_completes_filters_functions_macros_tables_hl7_and_fhir_names(api, json_patient) -> None:
    body = api["viewer"].get("/api/editor/completions").json()
    fhir_id = next(item for item in body["filters"] if item["name"] == "fhir_id")
    assert "deterministic" in fhir_id["doc"]
    assert "loop_guard" not in {item["name"] for item in body["filters"]}
    assert any(item["name"] == "codeable_concept" and "system" in item["signature"] for item in body["globals"])
    snippet = next(item for item in body["snippets"] if item["name"] == "snippets/common/datatypes.j2")
    assert snippet["macros"] and all(isinstance(macro["args"], list) for macro in snippet["macros"])
    assert {"name": "administrative-gender"}.items() <= body["lookup_tables"][0].items()
    assert {"id": "PID", "description": "Patient Identification"} in body["hl7v2"]["segments"]
    assert body["hl7v2"]["fields"] == {}

    pid = api["viewer"].get("/api/editor/completions?part=hl7v2&segments=PID").json()["hl7v2"]["fields"]["PID"]
    field = next(item for item in pid if item["position"] == 5)
    assert field["name"] == "Patient Name" and field["datatype"] == "XPN"
    assert field["components"][0]["name"] == "Family Name"

    fhir = api["viewer"].get("/api/editor/completions?part=fhir&resource=Patient").json()["fhir"]
    elements = {item["name"]: item for item in fhir["elements"]["Patient"]}
    assert elements["birthDate"]["type"] == "date"
    assert elements["gender"]["codes"] == ["male", "female", "other", "unknown"]
    assert elements["name"]["cardinality"] == "0..*"


def test_it_lets_the_browser_reuse_completions_it_already_has(api, json_patient) -> None:
    first = api["viewer"].get("/api/editor/completions?part=engine")
    assert first["Cache-Control"] == "private, max-age=300"
    again = api["viewer"].get("/api/editor/completions?part=engine", HTTP_IF_NONE_MATCH=first["ETag"])
    assert again.status_code == 304


def test_it_shows_the_impact_of_a_draft_change_on_each_sample(api, users, json_patient) -> None:
    actions.do_create_sample(
        json_patient,
        acting_user=users["author"],
        name="second",
        payload=(ROOT / "examples/json-patient/samples/example-patient.json").read_text(),
    )
    actions.do_publish_version(json_patient, acting_user=users["author"], message="v1")
    unchanged = api["viewer"].post("/api/mappings/json-patient/impact", {}, format="json").json()
    assert (unchanged["from"], unchanged["to"], unchanged["changed"], unchanged["unchanged"]) == ("v1", "draft", 0, 2)

    json_patient.refresh_from_db()
    changed_text = json_patient.draft.template.replace('"active": true', '"active": false')
    assert changed_text != json_patient.draft.template
    actions.do_save_draft(
        json_patient, acting_user=users["author"], template=changed_text, expected_revision=json_patient.draft.revision
    )
    body = api["viewer"].post("/api/mappings/json-patient/impact", {"from": 1, "to": "draft"}, format="json").json()
    assert (body["changed"], body["unchanged"]) == (2, 0)
    case = body["cases"][0]
    assert '-  "active": true' in case["diff"] and '+  "active": false' in case["diff"]
    assert case["from_ok"] and case["to_ok"]


def test_it_refuses_an_impact_with_nothing_published(api, json_patient) -> None:
    response = api["viewer"].post("/api/mappings/json-patient/impact", {}, format="json")
    assert (response.status_code, response.json()["code"]) == (400, "invalid")
    missing = api["viewer"].post("/api/mappings/json-patient/impact", {"from": 7}, format="json")
    assert missing.status_code == 404
    bad = api["viewer"].post("/api/mappings/json-patient/impact", {"from": "v1"}, format="json")
    assert (bad.status_code, bad.json()["code"]) == (400, "invalid")


@pytest.mark.parametrize("starter", all_starters(), ids=lambda starter: starter["source_format"])
def test_each_starter_creates_a_mapping_whose_sample_passes(api, starter) -> None:
    slug = f"new-{starter['source_format']}"
    created = api["author"].post(
        "/api/mappings/",
        {"slug": slug, "title": "New", "source_format": starter["source_format"], "starter": True},
        format="json",
    )
    assert created.status_code == 201
    draft = api["author"].get(f"/api/mappings/{slug}/draft").json()
    assert draft["template"] == starter["template"]
    run = api["author"].post(f"/api/mappings/{slug}/test-runs/", {}, format="json").json()
    assert (run["passed"], run["failed"]) == (1, 0), run["results"]
    rendered = api["author"].post(f"/api/mappings/{slug}/render", {"payload": starter["sample"]}, format="json")
    assert rendered.json()["ok"] and rendered.json()["errors"] == []


def test_it_lists_the_starters(api) -> None:
    body = api["viewer"].get("/api/starters/").json()
    assert {item["source_format"] for item in body} == {"hl7v2", "json", "ndjson", "xml", "csv", "fhir"}


def test_it_filters_mappings_by_draft_status_and_last_test(api, users, json_patient) -> None:
    actions.do_create_mapping(acting_user=users["author"], slug="fresh", title="Fresh", source_format="json")
    slugs = lambda query: [row["slug"] for row in api["viewer"].get(f"/api/mappings/?{query}").json()["results"]]  # noqa: E731
    assert slugs("status=never_published") == ["fresh", "json-patient"]
    actions.do_publish_version(json_patient, acting_user=users["author"], message="v1")
    assert slugs("status=published") == ["json-patient"]
    json_patient.refresh_from_db()
    actions.do_save_draft(
        json_patient,
        acting_user=users["author"],
        template=json_patient.draft.template + " ",
        expected_revision=json_patient.draft.revision,
    )
    assert slugs("status=changed") == ["json-patient"]
    assert api["viewer"].get("/api/mappings/json-patient/").json()["draft_changed"] is True
    assert slugs("last_test=passed") == ["json-patient"]  # publishing recorded a passing run
    assert slugs("last_test=none") == ["fresh"]
    assert api["viewer"].get("/api/mappings/?status=bogus").status_code == 400


def test_it_documents_a_macro_with_the_comment_block_above_it(api, users) -> None:
    text = (
        "{#- name_from_xpn(xpn): XPN → HumanName;\n    family from XPN-1. -#}\n"
        '{%- macro name_from_xpn(xpn, use=None) -%}{"family": "{{ xpn[1] }}"}{%- endmacro %}\n'
        "{% macro bare() %}{}{% endmacro %}"
    )
    actions.do_create_snippet(acting_user=users["author"], name="snippets/hl7v2/names.j2", text=text)
    snippet = next(s for s in api["viewer"].get("/api/editor/completions?part=library").json()["snippets"])
    first, second = snippet["macros"]
    assert (first["name"], first["args"]) == ("name_from_xpn", ["xpn", "use"])
    assert first["doc"] == "name_from_xpn(xpn): XPN → HumanName; family from XPN-1."
    assert (second["name"], second["doc"]) == ("bare", "")
