"""/api/mappings/{slug}/render: the editor's live preview. Every completed run is a 200 — a template that does not
compile or a payload that does not parse comes back as ok=false with the error's stage and line — and only a request
of the wrong shape is an HTTP error."""

import pytest

from mappings import actions
from mappings.models import AuditEvent, Draft, TestRun
from tests.api.conftest import ROOT

pytestmark = pytest.mark.django_db

URL = "/api/mappings/json-patient/render"
PAYLOAD = (ROOT / "examples/json-patient/samples/example-patient.json").read_text()
STAGES = {"compile", "parse", "render", "postprocess", "validate", "total"}


def render(client, **body):
    return client.post(URL, body, format="json")


def test_it_renders_the_draft(api, json_patient) -> None:
    response = render(api["viewer"], payload=PAYLOAD)
    assert response.status_code == 200
    body = response.json()
    assert body["ok"] is True
    assert body["errors"] == []
    assert body["output"]["resourceType"] == "Patient"
    assert body["output"]["name"][0]["family"] == "Smith"
    assert body["output"]["gender"] == "male"  # through the lookup table
    assert body["issues"]["resourceType"] == "OperationOutcome"
    assert set(body["timings"]) == STAGES
    assert all(value >= 0 for value in body["timings"].values())
    assert body["timings"]["total"] >= body["timings"]["render"]
    assert body["trace"]["source_format"] == "json"


def test_it_renders_a_published_version_not_the_draft(api, json_patient, users) -> None:
    actions.do_publish_version(json_patient, acting_user=users["author"], message="first")
    changed = json_patient.draft.template.replace('"active": true', '"active": false')
    actions.do_save_draft(json_patient, acting_user=users["author"], template=changed, expected_revision=1)

    assert render(api["viewer"], payload=PAYLOAD).json()["output"]["active"] is False  # the draft
    from_version = render(api["viewer"], payload=PAYLOAD, version=1).json()
    assert from_version["ok"] is True
    assert from_version["output"]["active"] is True


def test_it_renders_unsaved_template_text_with_the_stored_snippets_and_tables(api, json_patient) -> None:
    template = (
        '{%- import "snippets/common/datatypes.j2" as dt -%}\n'
        '{"resourceType": "Patient", "name": [{{ dt.human_name(msg.FirstName, []) }}],\n'
        ' "gender": {{ msg.Gender | translate_code("administrative-gender") | tojson }}}'
    )
    body = render(api["viewer"], payload=PAYLOAD, template=template).json()
    assert body["ok"] is True, body["errors"]
    assert body["output"]["name"] == [{"family": "Jerry"}]
    assert body["output"]["gender"] == "male"
    assert Draft.objects.get(mapping=json_patient).revision == 1  # nothing saved


def test_it_points_a_json_error_in_unsaved_text_at_its_template_line(api, json_patient) -> None:
    template = '{\n  "resourceType": "Patient",\n  "id": "x"\n  "active": true\n}'
    response = render(api["viewer"], payload=PAYLOAD, template=template)
    assert response.status_code == 200
    body = response.json()
    assert (body["ok"], body["output"]) == (False, None)
    error = body["errors"][0]
    assert (error["code"], error["stage"], error["template"], error["line"]) == (
        "FS-PST-001",
        "postprocess",
        "template.j2",
        4,
    )
    assert body["issues"]["issue"][0]["details"]["coding"][0]["code"] == "FS-PST-001"
    # What the template wrote, for the editor to show with the bad spot marked: the missing comma before line 4.
    rendered = body["rendered"]
    assert (rendered["text"], rendered["start"], rendered["truncated"]) == (template, 0, False)
    assert rendered["total_chars"] == len(template)
    assert template[rendered["offset"] :].startswith('"active"')
    assert "rendered" not in body["trace"]  # the uncapped copy stays on the server


def test_it_sends_no_rendered_text_when_the_output_is_json(api, json_patient) -> None:
    body = render(api["viewer"], payload=PAYLOAD).json()
    assert body["ok"] is True
    assert body["rendered"] is None
    invalid = render(api["viewer"], payload=PAYLOAD, template='{"resourceType": "Patient", "gender": "x"}').json()
    assert invalid["ok"] is False and invalid["rendered"] is None  # invalid FHIR, but JSON: the output is shown
    broken = render(api["viewer"], payload=PAYLOAD, template='{"resourceType": "Patient", "id": "{{ 1 // 0 }}"}')
    assert broken.json()["rendered"] is None  # failed before post-processing: nothing was written


def test_it_caps_a_long_failed_output_around_the_error(api, json_patient) -> None:
    from mappings.api.mappings import RENDERED_CAP

    filler = ", ".join(f'"k{number}": "{"v" * 40}"' for number in range(8000))  # ~440,000 characters of JSON
    template = '{"resourceType": "Patient", ' + filler + ', "broken": tru, ' + filler + "}"
    body = render(api["viewer"], payload=PAYLOAD, template=template).json()
    assert body["errors"][0]["code"] == "FS-PST-001"
    rendered = body["rendered"]
    assert rendered["truncated"] is True
    assert rendered["total_chars"] == len(template)
    assert len(rendered["text"]) == RENDERED_CAP
    assert 0 < rendered["start"] < rendered["offset"] < rendered["start"] + RENDERED_CAP
    assert template[rendered["start"] : rendered["start"] + RENDERED_CAP] == rendered["text"]
    assert template[rendered["offset"] - 20 : rendered["offset"] + 5].count("tru") == 1


def test_it_reports_unsaved_text_that_does_not_compile_as_a_result_not_an_http_error(api, json_patient) -> None:
    response = render(api["viewer"], payload=PAYLOAD, template='{\n  "resourceType": "Patient",\n  {% if %}\n}')
    assert response.status_code == 200
    body = response.json()
    assert body["ok"] is False
    error = body["errors"][0]
    assert (error["code"], error["stage"], error["template"], error["line"]) == (
        "FS-TPL-001",
        "template",
        "template.j2",
        3,
    )
    assert set(body["timings"]) == {"compile", "total"}


def test_it_reports_a_missing_snippet_at_the_importing_line(api, json_patient) -> None:
    template = '{\n{%- import "snippets/common/nope.j2" as nope -%}\n}'
    error = render(api["viewer"], payload=PAYLOAD, template=template).json()["errors"][0]
    assert (error["code"], error["line"]) == ("FS-TPL-002", 2)


def test_it_reports_a_payload_that_does_not_parse_as_a_source_error(api, json_patient) -> None:
    response = render(api["viewer"], payload='{"MRN": ')
    assert response.status_code == 200
    body = response.json()
    assert body["ok"] is False
    assert [(error["code"], error["stage"]) for error in body["errors"]] == [("FS-SRC-020", "source")]


def test_it_reports_an_empty_payload_as_a_source_error(api, json_patient) -> None:
    body = render(api["viewer"], payload="").json()
    assert (body["ok"], body["errors"][0]["code"]) == (False, "FS-SRC-001")


def test_it_parses_the_payload_in_the_source_format_asked_for(api, json_patient) -> None:
    body = render(api["viewer"], payload=PAYLOAD, source_format="xml").json()
    assert body["trace"]["source_format"] == "xml"
    assert [(error["code"], error["stage"]) for error in body["errors"]] == [("FS-SRC-030", "source")]


def test_it_reports_a_payload_over_the_input_limit_as_fs_lim_001(api, json_patient, settings) -> None:
    settings.FHIR_STUDIO = {**settings.FHIR_STUDIO, "MAX_INPUT_BYTES": 1000}
    response = render(api["viewer"], payload='{"MRN": "' + "x" * 2000 + '"}')
    assert response.status_code == 200
    body = response.json()
    assert body["ok"] is False
    assert (body["errors"][0]["code"], body["errors"][0]["stage"]) == ("FS-LIM-001", "limit")


def test_it_reports_a_render_error_with_its_line(api, json_patient) -> None:
    template = '{\n  "resourceType": "Patient",\n  "id": "{{ 1 // 0 }}"\n}'
    body = render(api["viewer"], payload=PAYLOAD, template=template).json()
    assert body["ok"] is False
    assert body["errors"][0]["stage"] == "render"
    assert body["errors"][0]["line"] == 3


def test_it_passes_variables_to_the_template(api, json_patient) -> None:
    body = render(api["viewer"], payload=PAYLOAD, variables={"mrn_system": "urn:example:mrn"}).json()
    assert body["output"]["identifier"][0]["system"] == "urn:example:mrn"


def test_it_skips_validation_when_asked(api, json_patient) -> None:
    template = '{"resourceType": "Patient", "active": "not a boolean"}'
    validated = render(api["viewer"], payload=PAYLOAD, template=template).json()
    assert [error["stage"] for error in validated["errors"]] == ["validate"]
    assert "validate" in validated["timings"]
    unvalidated = render(api["viewer"], payload=PAYLOAD, template=template, validate=False).json()
    assert (unvalidated["ok"], unvalidated["errors"]) == (True, [])
    assert "validate" not in unvalidated["timings"]


def test_it_writes_nothing(api, json_patient) -> None:
    audit_rows = AuditEvent.objects.count()
    render(api["viewer"], payload=PAYLOAD)
    render(api["viewer"], payload=PAYLOAD, template="{}")
    assert AuditEvent.objects.count() == audit_rows
    assert not TestRun.objects.exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "payload"),
        ({"payload": None}, "payload"),
        ({"payload": 12}, "payload"),
        ({"payload": {"MRN": "x"}}, "payload"),
        ({"payload": "{}", "version": 1, "template": "{}"}, "template"),
        ({"payload": "{}", "version": "one"}, "version"),
        ({"payload": "{}", "version": 0}, "version"),
        ({"payload": "{}", "version": True}, "version"),
        ({"payload": "{}", "version": 2**40}, "version"),
        ({"payload": "{}", "template": 5}, "template"),
        ({"payload": "{}", "template": ["{}"]}, "template"),
        ({"payload": "{}", "source_format": "pdf"}, "source_format"),
        ({"payload": "{}", "validate": "maybe"}, "validate"),
        ({"payload": "{}", "validate": "yes"}, "validate"),
        ({"payload": "{}", "variables": ["a"]}, "variables"),
        ({"payload": "{}", "variables": "a"}, "variables"),
    ],
)
def test_it_refuses_a_request_of_the_wrong_shape(api, json_patient, body, field) -> None:
    response = render(api["viewer"], **body)
    assert response.status_code == 400
    assert response.json()["code"] == "invalid"
    assert field in response.json()["details"]


def test_it_refuses_a_body_that_is_not_an_object(api, json_patient) -> None:
    for body in (["payload"], "payload", 5):
        response = api["viewer"].post(URL, body, format="json")
        assert response.status_code == 400
        assert response.json()["code"] == "invalid"
    broken = api["viewer"].post(URL, '{"payload": ', content_type="application/json")
    assert (broken.status_code, broken.json()["code"]) == (400, "parse_error")


def test_it_answers_not_found_for_an_unknown_version_or_mapping(api, json_patient) -> None:
    response = render(api["viewer"], payload=PAYLOAD, version=3)
    assert (response.status_code, response.json()["code"]) == (404, "not_found")
    missing = api["viewer"].post("/api/mappings/nope/render", {"payload": PAYLOAD}, format="json")
    assert (missing.status_code, missing.json()["code"]) == (404, "not_found")


@pytest.mark.parametrize(
    ("role", "status"), [("anonymous", 401), ("norole", 403), ("viewer", 200), ("author", 200), ("admin", 200)]
)
def test_it_lets_every_studio_role_render(api, json_patient, role, status) -> None:
    response = render(api[role], payload=PAYLOAD)
    assert response.status_code == status
    if status == 403:
        assert response.json()["code"] == "permission_denied"


def test_it_points_a_validation_issue_at_the_template_line_that_wrote_the_element(api, json_patient) -> None:
    template = '{"resourceType": "Patient",\n "active": true,\n "gender": "M"}'
    body = render(api["viewer"], payload="{}", template=template).json()
    error = next(error for error in body["errors"] if error["code"] == "FS-VAL-005")
    assert (error["template"], error["line"]) == ("template.j2", 3)
    assert error["expression"] == ["Patient.gender"]
    assert "locate" in body["timings"]


def test_it_skips_locating_issues_when_asked_to_answer_fast(api, json_patient) -> None:
    template = '{"resourceType": "Patient",\n "active": true,\n "gender": "M"}'
    body = render(api["viewer"], payload="{}", template=template, locate=False).json()
    error = next(error for error in body["errors"] if error["code"] == "FS-VAL-005")
    assert error["line"] is None and "locate" not in body["timings"]
