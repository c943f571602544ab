"""GET /api/editor/completions: what the template editor completes, from the engine's registries, the stored
library, hl7apy's HL7 v2.5 tables and the fhir.resources models; cached by the browser through a strong ETag."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from mappings import actions

pytestmark = pytest.mark.django_db

URL = "/api/editor/completions"


def test_it_lists_the_engines_filters_functions_and_tests_with_their_docs(api) -> None:
    body = api["viewer"].get(URL + "?part=engine").json()
    assert set(body) == {"filters", "globals", "tests"}
    fhir_id = next(item for item in body["filters"] if item["name"] == "fhir_id")
    assert "deterministic" in fhir_id["doc"] and fhir_id["signature"].startswith("fhir_id(")
    assert {"tojson", "fhir_date", "translate_code", "default"} <= {item["name"] for item in body["filters"]}
    assert "loop_guard" not in {item["name"] for item in body["filters"]}  # the sandbox's plumbing is not for authors
    concept = next(item for item in body["globals"] if item["name"] == "codeable_concept")
    assert "system" in concept["signature"] and concept["doc"]
    assert "present" in {item["name"] for item in body["tests"]}


def test_it_lists_the_fhir_helpers_before_jinjas_generic_builtins_marked_as_such(api) -> None:
    body = api["viewer"].get(URL + "?part=engine").json()
    for group in ("filters", "globals", "tests"):
        origins = [item["origin"] for item in body[group]]
        assert set(origins) == {"studio", "jinja"}, group
        first_jinja = origins.index("jinja")
        assert "studio" not in origins[first_jinja:], f"{group}: a FHIR helper after Jinja's built-ins"
    filters = {item["name"]: item["origin"] for item in body["filters"]}
    assert filters["fhir_date"] == filters["translate_code"] == filters["urn_uuid"] == "studio"
    assert filters["center"] == filters["filesizeformat"] == filters["tojson"] == "jinja"  # generic, even if wrapped
    functions = {item["name"]: item["origin"] for item in body["globals"]}
    assert functions["coding"] == functions["codeable_concept"] == "studio"
    assert functions["range"] == functions["namespace"] == "jinja"
    assert body["filters"][0]["origin"] == "studio"


def test_it_lists_the_librarys_snippet_macros_and_lookup_tables(api, json_patient) -> None:
    body = api["viewer"].get(URL + "?part=library").json()
    assert set(body) == {"snippets", "lookup_tables"}
    snippet = next(item for item in body["snippets"] if item["name"] == "snippets/common/datatypes.j2")
    macros = {macro["name"]: macro for macro in snippet["macros"]}
    assert macros["human_name"]["args"] == ["family", "given", "use", "prefix", "suffix", "text"]
    assert macros["human_name"]["signature"] == (
        "human_name(family, given=[], use=None, prefix=None, suffix=None, text=None)"
    )
    assert macros["telecom"]["signature"] == 'telecom(value, system="phone", use=None)'
    assert body["lookup_tables"] == [{"name": "administrative-gender", "description": ""}]


def test_it_documents_a_macro_with_the_comment_block_above_it(api, users) -> None:
    text = (
        "{#- name_from_xpn(xpn): XPN → HumanName;\n    family from XPN-1. -#}\n"
        '{%- macro name_from_xpn(xpn, use=None) -%}{"family": "{{ xpn[1] }}"}{%- endmacro %}\n'
        "{% macro bare() %}{}{% endmacro %}"
    )
    actions.do_create_snippet(acting_user=users["author"], name="snippets/hl7v2/names.j2", text=text)
    snippet = api["viewer"].get(URL + "?part=library").json()["snippets"][0]
    first, second = snippet["macros"]
    assert (first["name"], first["args"], first["line"]) == ("name_from_xpn", ["xpn", "use"], 3)
    assert first["doc"] == "name_from_xpn(xpn): XPN → HumanName; family from XPN-1."
    assert (second["name"], second["doc"], second["signature"]) == ("bare", "", "bare()")


def test_it_names_hl7v2_segments_and_gives_fields_on_demand(api) -> None:
    everything = api["viewer"].get(URL).json()
    assert {"id": "PID", "description": "Patient Identification"} in everything["hl7v2"]["segments"]
    assert everything["hl7v2"]["version"] == "2.5"
    assert everything["hl7v2"]["fields"] == {}  # all fields of all segments would be 830 KB

    fields = api["viewer"].get(URL + "?part=hl7v2&segments=PID,OBX,ZZZ").json()["hl7v2"]["fields"]
    assert set(fields) == {"PID", "OBX"}
    name = next(item for item in fields["PID"] if item["position"] == 5)
    assert (name["name"], name["datatype"], name["repeats"]) == ("Patient Name", "XPN", True)
    family = name["components"][0]
    assert (family["position"], family["name"], family["datatype"]) == (1, "Family Name", "FN")
    assert family["components"][0]["name"] == "Surname"
    assert fields["OBX"][0]["name"] == "Set ID OBX"
    assert next(item for item in fields["PID"] if item["position"] == 8)["table"] == "HL70001"


def test_it_gives_fhir_resource_types_and_elements_on_demand(api) -> None:
    assert "fhir" not in api["viewer"].get(URL).json()
    types = api["viewer"].get(URL + "?part=fhir").json()["fhir"]
    assert {"Patient", "Encounter", "Observation", "Bundle"} <= set(types["resource_types"])
    assert "HumanName" not in types["resource_types"] and types["elements"] == {}

    fhir = api["viewer"].get(URL + "?part=fhir&resource=Patient,Encounter").json()["fhir"]
    assert set(fhir["elements"]) == {"Patient", "Encounter"}
    elements = {item["name"]: item for item in fhir["elements"]["Patient"]}
    assert elements["birthDate"] == {"name": "birthDate", "type": "date", "cardinality": "0..1"}
    assert elements["gender"]["codes"] == ["male", "female", "other", "unknown"]
    assert elements["name"]["cardinality"] == "0..*" and elements["name"]["type"] == "HumanName"
    assert list(elements).index("identifier") < list(elements).index("birthDate")  # FHIR's element order
    status = next(item for item in fhir["elements"]["Encounter"] if item["name"] == "status")
    assert status["cardinality"] == "1..1"  # a required primitive, which pydantic alone calls optional
    assert status["codes"][-2:] == ["entered-in-error", "unknown"]  # the whole value set, not "…, +"


def test_it_lets_the_browser_reuse_completions_it_already_has(api, users) -> None:
    first = api["viewer"].get(URL + "?part=library")
    assert first["Cache-Control"] == "private, max-age=300"
    assert first["ETag"].startswith('"') and not first["ETag"].startswith("W/")
    again = api["viewer"].get(URL + "?part=library", HTTP_IF_NONE_MATCH=first["ETag"])
    assert (again.status_code, again.content) == (304, b"")
    assert again["ETag"] == first["ETag"]
    listed = api["viewer"].get(URL + "?part=library", HTTP_IF_NONE_MATCH=f'"other", W/{first["ETag"]}')
    assert listed.status_code == 304

    actions.do_create_snippet(acting_user=users["author"], name="snippets/new.j2", text="{% macro m() %}{% endmacro %}")
    changed = api["viewer"].get(URL + "?part=library", HTTP_IF_NONE_MATCH=first["ETag"])
    assert changed.status_code == 200 and changed["ETag"] != first["ETag"]


@pytest.mark.parametrize("rows", [1, 20])
def test_it_answers_in_the_same_number_of_queries_for_1_or_20_snippets(api, users, rows) -> None:
    for number in range(rows):
        actions.do_create_snippet(
            acting_user=users["author"], name=f"snippets/s{number:02}.j2", text="{% macro m(a) %}{{ a }}{% endmacro %}"
        )
        actions.do_create_lookup_table(acting_user=users["author"], name=f"table-{number:02}", data={"entries": []})
    with CaptureQueriesContext(connection) as queries:
        body = api["viewer"].get(URL).json()
    assert (len(body["snippets"]), len(body["lookup_tables"])) == (rows, rows)
    # token, role, snippets, lookup tables
    assert len(queries) == 4, "\n".join(query["sql"] for query in queries)


def test_it_refuses_completions_to_anonymous_roleless_and_bad_requests(api) -> None:
    assert api["anonymous"].get(URL).status_code == 401
    assert api["norole"].get(URL).status_code == 403
    bad = api["viewer"].get(URL + "?part=everything")
    assert (bad.status_code, bad.json()["code"]) == (400, "invalid")
    long = api["viewer"].get(URL + "?segments=" + "PID," * 200)
    assert (long.status_code, long.json()["code"]) == (400, "invalid")
