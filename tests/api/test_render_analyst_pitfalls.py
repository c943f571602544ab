"""Issue 11's engine items as the editor meets them, through /api/mappings/{slug}/render: a column the pasted CSV does
not have warns at the starter's line (it printed nothing, silently), a helper that gives nothing leaves its member out
instead of failing as "not JSON" (FS-PST-001), and coding() takes named arguments and warns at the line when given
FHIR's system|code order."""

import pytest

from tests.api.conftest import ROOT

pytestmark = pytest.mark.django_db

STARTER = (ROOT / "mappings/starter_templates/csv.j2").read_text()
STARTER_SAMPLE = (ROOT / "mappings/starter_templates/csv.sample").read_text()
BIRTH_LINE = next(
    number for number, line in enumerate(STARTER.splitlines(), 1) if '"birthDate": {{ row["birth date"]' in line
)
# The clinic's own file: the same columns, but the header says birth_date.
HEADER, ROWS = STARTER_SAMPLE.split("\n", 1)
CLINIC_CSV = HEADER.replace("birth date", "birth_date") + "\n" + ROWS


@pytest.fixture
def clinic(api, json_patient) -> str:  # json_patient brings the library the starter imports
    created = api["author"].post(
        "/api/mappings/",
        {"slug": "clinic", "title": "Clinic", "source_format": "csv", "starter": True},
        format="json",
    )
    assert created.status_code == 201, created.json()
    return "/api/mappings/clinic/render"


def render(api, url: str, payload: str, template: str | None = None) -> dict:
    body = {"payload": payload} if template is None else {"payload": payload, "template": template}
    response = api["viewer"].post(url, body, format="json")
    assert response.status_code == 200, response.json()
    return response.json()


def codes(body: dict) -> list[str]:
    return [error["code"] for error in body["errors"]]


def test_the_starter_warns_at_its_line_for_a_column_the_pasted_csv_does_not_have(api, clinic) -> None:
    own = render(api, clinic, STARTER_SAMPLE)  # the starter's own sample has the column: nothing to say
    assert own["ok"] and "FS-RND-007" not in codes(own), own["errors"]
    assert own["output"]["entry"][0]["resource"]["birthDate"]

    pasted = render(api, clinic, CLINIC_CSV)
    assert pasted["ok"] is True  # a warning, not an error: the rest of the preview stays
    (warning,) = [error for error in pasted["errors"] if error["code"] == "FS-RND-007"]
    assert warning["severity"] == "warning"
    assert (warning["template"], warning["line"]) == ("template.j2", BIRTH_LINE)
    assert "no column 'birth date'; did you mean 'birth_date'?" in warning["message"]
    assert "birthDate" not in pasted["output"]["entry"][0]["resource"]
    issue = next(item for item in pasted["issues"]["issue"] if "birth date" in item["details"]["text"])
    assert issue["severity"] == "warning" and issue["details"]["coding"][0]["code"] == "FS-RND-007"


def test_a_helper_that_gives_nothing_leaves_the_member_out_not_a_json_error(api, clinic) -> None:
    template = (
        "{%- macro nothing() -%}{%- endmacro -%}\n"
        '{"resourceType": "Patient", "gender": {{ nothing() }}, "active": true,\n'
        ' "maritalStatus": {"coding": [{"code": {{ nothing() }}}]}}'
    )
    body = render(api, clinic, STARTER_SAMPLE, template)
    assert "FS-PST-001" not in codes(body), body["errors"]
    assert body["ok"] is True
    assert body["output"]["resourceType"] == "Patient" and body["output"]["active"] is True
    assert "gender" not in body["output"]


def test_coding_takes_named_arguments_and_warns_at_the_line_about_fhirs_order(api, clinic) -> None:
    template = (
        '{"resourceType": "Observation", "status": "final",\n'
        ' "code": {"coding": [{{ coding(system="http://loinc.org", code="718-7", display="Hemoglobin") }}]},\n'
        ' "category": [{"coding": [{{ coding("http://loinc.org", "718-7") }}]}]}'
    )
    body = render(api, clinic, STARTER_SAMPLE, template)
    assert body["ok"] is True, body["errors"]
    assert body["output"]["code"]["coding"] == [
        {"system": "http://loinc.org", "code": "718-7", "display": "Hemoglobin"}
    ]
    (swapped,) = [error for error in body["errors"] if "reverse of FHIR's system|code" in error["message"]]
    assert (swapped["severity"], swapped["line"]) == ("warning", 3)
    assert "coding(system='http://loinc.org', code='718-7')" in swapped["message"]


def test_completion_documents_codings_order_and_its_named_arguments(api) -> None:
    functions = api["viewer"].get("/api/editor/completions?part=engine").json()["globals"]
    coding = next(item for item in functions if item["name"] == "coding")
    assert coding["signature"].startswith("coding(code") and "system" in coding["signature"]
    assert "reverse of FHIR's `system|code`" in coding["doc"] and 'coding(system="http://loinc.org"' in coding["doc"]
