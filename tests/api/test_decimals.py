"""FHIR decimals keep their digits through the studio API: `0.70` in a rendered output, in a sample's expected output
(stored and read back) and in a resource sent to the API is written `0.70`, never `0.7`."""

import pytest

pytestmark = pytest.mark.django_db

TEMPLATE = (
    '{"resourceType": "Observation", "status": "final", "code": {"text": "glucose"},'
    ' "valueQuantity": {"value": {{ msg.value }}, "unit": "mg/dL"}}'
)


def test_the_preview_writes_a_decimal_as_the_template_did(api, json_patient) -> None:
    response = api["viewer"].post(
        "/api/mappings/json-patient/render", {"payload": '{"value": "0.70"}', "template": TEMPLATE}, format="json"
    )
    assert response.status_code == 200 and response.json()["ok"] is True, response.json()["errors"]
    assert b'"valueQuantity":{"value":0.70,' in response.content


def test_a_samples_expected_output_keeps_its_decimals(api, json_patient) -> None:
    body = (
        b'{"name": "precise", "payload": "{}", "source_format": "json",'
        b' "expected": {"resourceType": "Observation", "valueQuantity": {"value": 1.250}}}'
    )
    created = api["author"].post("/api/mappings/json-patient/samples/", body, content_type="application/json")
    assert created.status_code == 201, created.content
    assert b'"value":1.250' in created.content
    listed = api["viewer"].get("/api/mappings/json-patient/samples/")
    assert b'"value":1.250' in listed.content  # read back from the database
