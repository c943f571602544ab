"""The render endpoint keeps what it read between requests (the compiled draft, the snippets and lookup tables it
reaches) and must still answer what is stored now: each test renders once to fill the caches, changes something
through the API, and renders again through the test client."""

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.test.utils import CaptureQueriesContext

from mappings.models import LookupTable, Snippet
from tests.api.conftest import ROOT

pytestmark = pytest.mark.django_db

URL = "/api/mappings/json-patient/render"
PAYLOAD = (ROOT / "examples/json-patient/samples/example-patient.json").read_text()
DATATYPES = "snippets/common/datatypes.j2"
FAMILY = '"family": {{ family | tojson }}'


def render(client, **body) -> dict:
    response = client.post(URL, body, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def edit_snippet(api, name: str, text: str) -> None:
    response = api["author"].patch(f"/api/snippets/{name}", {"text": text}, format="json", HTTP_IF_MATCH="*")
    assert response.status_code == 200, response.content


def edit_gender_table(api, code_for_m: str) -> None:
    data = LookupTable.objects.get(name="administrative-gender").data
    for entry in data["entries"]:
        if entry["source"] == "M":
            entry["code"] = code_for_m
    response = api["author"].patch(
        "/api/lookup-tables/administrative-gender", {"data": data}, format="json", HTTP_IF_MATCH="*"
    )
    assert response.status_code == 200, response.content


def test_a_draft_render_sees_a_snippet_edited_since_the_last_one(api, json_patient) -> None:
    assert render(api["viewer"], payload=PAYLOAD)["output"]["name"][0]["family"] == "Smith"
    text = Snippet.objects.get(name=DATATYPES).text
    assert FAMILY in text
    edit_snippet(api, DATATYPES, text.replace(FAMILY, '"family": {{ family | upper | tojson }}'))
    assert render(api["viewer"], payload=PAYLOAD)["output"]["name"][0]["family"] == "SMITH"


def test_a_draft_render_sees_a_lookup_table_edited_since_the_last_one(api, json_patient) -> None:
    assert render(api["viewer"], payload=PAYLOAD)["output"]["gender"] == "male"
    edit_gender_table(api, "other")
    assert render(api["viewer"], payload=PAYLOAD)["output"]["gender"] == "other"


def test_unsaved_text_sees_a_snippet_imported_through_another_one_edited(api, json_patient) -> None:
    outer = '{%- import "snippets/common/inner.j2" as inner -%}{%- macro word() -%}{{ inner.word() }}{%- endmacro -%}'
    for name, text in [
        ("snippets/common/inner.j2", '{%- macro word() -%}"before"{%- endmacro -%}'),
        ("snippets/common/outer.j2", outer),
    ]:
        response = api["author"].post("/api/snippets/", {"name": name, "text": text}, format="json")
        assert response.status_code == 201, response.content
    template = '{%- import "snippets/common/outer.j2" as outer -%}{"resourceType": "Basic", "id": {{ outer.word() }}}'
    assert render(api["viewer"], payload=PAYLOAD, template=template, validate=False)["output"]["id"] == "before"
    edit_snippet(api, "snippets/common/inner.j2", '{%- macro word() -%}"after"{%- endmacro -%}')
    assert render(api["viewer"], payload=PAYLOAD, template=template, validate=False)["output"]["id"] == "after"


def test_a_render_sees_a_snippet_created_after_it_was_found_missing(api, json_patient) -> None:
    template = '{%- import "snippets/common/later.j2" as later -%}{"resourceType": "Basic", "id": {{ later.id() }}}'
    missing = render(api["viewer"], payload=PAYLOAD, template=template, validate=False)
    assert [error["code"] for error in missing["errors"]] == ["FS-TPL-002"]
    text = '{%- macro id() -%}"made-later"{%- endmacro -%}'
    response = api["author"].post("/api/snippets/", {"name": "snippets/common/later.j2", "text": text}, format="json")
    assert response.status_code == 201, response.content
    found = render(api["viewer"], payload=PAYLOAD, template=template, validate=False)
    assert (found["ok"], found["output"]["id"]) == (True, "made-later")


def test_a_render_sees_a_lookup_table_created_after_it_was_found_missing(api, json_patient) -> None:
    template = '{"resourceType": "Patient", "gender": {{ "M" | translate_code("later-gender") | tojson }}}'
    missing = render(api["viewer"], payload=PAYLOAD, template=template)
    assert missing["ok"] is False
    data = {"target_system": "http://hl7.org/fhir/administrative-gender", "entries": [{"source": "M", "code": "male"}]}
    response = api["author"].post("/api/lookup-tables/", {"name": "later-gender", "data": data}, format="json")
    assert response.status_code == 201, response.content
    found = render(api["viewer"], payload=PAYLOAD, template=template)
    assert (found["ok"], found["output"]["gender"]) == (True, "male")


def test_a_draft_render_sees_the_draft_saved_since_the_last_one(api, json_patient) -> None:
    assert render(api["viewer"], payload=PAYLOAD)["output"]["active"] is True
    changed = json_patient.draft.template.replace('"active": true', '"active": false')
    response = api["author"].put(
        "/api/mappings/json-patient/draft", {"template": changed}, format="json", HTTP_IF_MATCH="*"
    )
    assert response.status_code == 200, response.content
    assert render(api["viewer"], payload=PAYLOAD)["output"]["active"] is False


def test_a_version_render_is_not_changed_by_a_library_edit(api, json_patient) -> None:
    response = api["author"].post("/api/mappings/json-patient/versions/", {"message": "first"}, format="json")
    assert response.status_code == 201, response.content
    assert render(api["viewer"], payload=PAYLOAD, version=1)["output"]["gender"] == "male"
    edit_gender_table(api, "other")
    assert render(api["viewer"], payload=PAYLOAD, version=1)["output"]["gender"] == "male"  # frozen into v1
    assert render(api["viewer"], payload=PAYLOAD)["output"]["gender"] == "other"


def test_a_render_sees_a_role_taken_away_and_given_back(api, json_patient, users) -> None:
    viewers = Group.objects.get(name="viewer")
    assert render(api["viewer"], payload=PAYLOAD)["ok"] is True
    users["viewer"].groups.remove(viewers)
    refused = api["viewer"].post(URL, {"payload": PAYLOAD}, format="json")
    assert (refused.status_code, refused.json()["code"]) == (403, "permission_denied")
    refused = api["viewer"].post(URL, {"payload": PAYLOAD, "version": 1}, format="json")
    assert (refused.status_code, refused.json()["code"]) == (403, "permission_denied")
    users["viewer"].groups.add(viewers)
    assert render(api["viewer"], payload=PAYLOAD)["ok"] is True


def library_queries(client, **body) -> list[str]:
    with CaptureQueriesContext(connection) as captured:
        render(client, **body)
    tables = (Snippet._meta.db_table, LookupTable._meta.db_table)
    return [query["sql"] for query in captured.captured_queries if any(table in query["sql"] for table in tables)]


def test_a_repeated_draft_render_checks_the_library_in_one_query_without_reading_it(api, json_patient) -> None:
    first = library_queries(api["viewer"], payload=PAYLOAD)
    assert len(first) >= 2  # the snippets, then the tables they and the draft name, with their content
    again = library_queries(api["viewer"], payload=PAYLOAD)
    assert len(again) == 1
    assert '"text"' not in again[0] and '"data"' not in again[0]
    # Unsaved text naming the same snippets and tables (a keystroke in the editor) needs the same one query.
    typed = json_patient.draft.template.replace('"active": true', '"active": false')
    assert len(library_queries(api["viewer"], payload=PAYLOAD, template=typed)) == 1


def test_a_payload_with_a_lone_surrogate_is_refused_as_before(api, json_patient) -> None:
    body = '{"payload": "abc \\ud800 def"}'  # JSON can carry a lone surrogate; no text encoding can
    response = api["viewer"].post(URL, body, content_type="application/json")
    assert (response.status_code, response.json()["code"]) == (400, "invalid")
    assert response.json()["details"]["payload"] == ["Surrogate characters are not allowed: U+D800."]


def test_a_token_is_checked_on_every_request(api, json_patient, users) -> None:
    assert render(api["viewer"], payload=PAYLOAD)["ok"] is True
    users["viewer"].is_active = False
    users["viewer"].save(update_fields=["is_active"])
    inactive = api["viewer"].post(URL, {"payload": PAYLOAD}, format="json")
    assert (inactive.status_code, inactive.json()["code"]) == (401, "authentication_failed")
    assert inactive.json()["message"] == "User inactive or deleted."
    users["viewer"].auth_token.delete()
    unknown = api["viewer"].post(URL, {"payload": PAYLOAD}, format="json")
    assert (unknown.status_code, unknown.json()["code"]) == (401, "authentication_failed")
    assert unknown.json()["message"] == "Invalid token."
    assert unknown["WWW-Authenticate"] == "Token"


PROFILED = (
    '{"resourceType": "Patient", "meta": {"profile": ["http://example.org/fhir/StructureDefinition/studio-patient"]},'
    ' "active": true}'
)


def birth_date_errors(client) -> list[dict]:
    issues = render(client, payload=PAYLOAD, template=PROFILED, validate=True)["issues"].get("issue", [])
    return [issue for issue in issues if issue["severity"] == "error" and "Patient.birthDate" in issue["expression"]]


def test_a_render_validates_against_a_profile_uploaded_or_swapped_since_the_last_one(api, json_patient) -> None:
    from tests.api.test_profiles_api import LIST, patient_profile

    assert birth_date_errors(api["viewer"]) == []  # unknown profile: nothing demands a birth date
    first = api["author"].post(LIST, patient_profile(), format="json")
    assert first.status_code == 201, first.content
    assert len(birth_date_errors(api["viewer"])) == 1  # the uploaded profile's min 1, at the very next render
    # Swapped for a profile at the same URL that demands nothing: the same number of uploads as before.
    assert api["author"].delete(f"{LIST}{first.json()['definitions'][0]['id']}").status_code == 204
    relaxed = patient_profile()
    relaxed["differential"]["element"].pop()
    assert api["author"].post(LIST, relaxed, format="json").status_code == 201
    assert birth_date_errors(api["viewer"]) == []


def test_a_stored_table_that_does_not_load_is_reported_on_every_render(api, json_patient) -> None:
    # Tables are loaded once per read of the library now, not per compile: one that fails must still fail each time.
    LookupTable.objects.filter(name="administrative-gender").update(data={"entries": [{"code": "male"}]})
    unsaved = (ROOT / "examples/json-patient/template.j2").read_text() + " "
    for body in ({}, {"template": unsaved}, {"template": unsaved}):  # the draft, then unsaved text, twice
        result = render(api["viewer"], payload=PAYLOAD, **body)
        assert [error["code"] for error in result["errors"]] == ["FS-TPL-005"]
        assert "administrative-gender" in result["errors"][0]["message"]
