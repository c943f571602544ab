"""POST /api/convert: a FHIR resource from one format to another, by Content-Type and Accept; errors in the studio
API's JSON shape with a stable code; viewer role; documented in the OpenAPI schema."""

import json

import pytest

pytestmark = pytest.mark.django_db

URL = "/api/convert"
OBSERVATION = (
    '{"resourceType": "Observation", "id": "o1", "status": "final", "code": {"text": "K"},'
    ' "valueQuantity": {"value": 0.70, "unit": "mmol/L"}}'
)


def convert(client, body: str | bytes, content_type: str, accept: str | None = None, **query):
    headers = {"HTTP_ACCEPT": accept} if accept else {}
    path = URL + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else "")
    return client.generic("POST", path, body, content_type=content_type, **headers)


def test_it_converts_json_to_xml_and_back_keeping_decimal_digits(api) -> None:
    to_xml = convert(api["viewer"], OBSERVATION, "application/fhir+json", "application/fhir+xml")
    assert to_xml.status_code == 200
    assert to_xml["Content-Type"].startswith("application/fhir+xml")
    assert '<value value="0.70"/>' in to_xml.content.decode()
    back = convert(api["viewer"], to_xml.content, "application/fhir+xml", "application/fhir+json")
    assert back.status_code == 200
    assert back["Content-Type"].startswith("application/fhir+json")
    assert b'"value":0.70' in back.content
    assert json.loads(back.content) == json.loads(OBSERVATION)


def test_it_converts_to_turtle_and_back(api) -> None:
    to_ttl = convert(api["viewer"], OBSERVATION, "application/json", "text/turtle", base="https://x.example/fhir")
    assert to_ttl.status_code == 200
    assert to_ttl["Content-Type"].startswith("text/turtle")
    text = to_ttl.content.decode()
    assert "<https://x.example/fhir/Observation/o1> a fhir:Observation" in text
    assert '"0.70"^^xsd:decimal' in text
    back = convert(api["viewer"], text, "text/turtle", "application/xml")
    assert back.status_code == 200
    assert back.content.decode().startswith('<Observation xmlns="http://hl7.org/fhir">')


def test_it_answers_json_when_accept_names_no_fhir_format(api) -> None:
    response = convert(api["viewer"], OBSERVATION, "application/fhir+json", "*/*", pretty="true")
    assert response.status_code == 200
    assert response.content.decode().startswith('{\n  "resourceType": "Observation"')


@pytest.mark.parametrize(
    ("body", "content_type", "accept", "status", "code"),
    [
        (
            '<!DOCTYPE x [<!ENTITY e "x">]><Patient xmlns="http://hl7.org/fhir"/>',
            "application/fhir+xml",
            None,
            400,
            "FS-SRC-031",
        ),
        (
            '<Patient xmlns="http://hl7.org/fhir"><nickname value="x"/></Patient>',
            "application/xml",
            None,
            400,
            "FS-SRC-050",
        ),
        ("@prefix fhir: <http://hl7.org/fhir/> . [ a fhir:Patient", "text/turtle", None, 400, "FS-SRC-051"),
        ("{", "application/fhir+json", None, 400, "FS-SRC-020"),
        ('{"resourceType": "Patient"}', "text/csv", None, 415, "unsupported_media_type"),
        ('{"resourceType": "Patient"}', "application/fhir+json", "application/pdf", 406, "not_acceptable"),
    ],
)
def test_it_answers_bad_input_with_the_api_error_shape(api, body, content_type, accept, status, code) -> None:
    response = convert(api["viewer"], body, content_type, accept)
    assert response.status_code == status
    assert response["Content-Type"].startswith("application/json")
    answer = response.json()
    assert answer["code"] == code
    assert answer["message"]


def test_it_needs_a_role(api) -> None:
    assert convert(api["anonymous"], OBSERVATION, "application/fhir+json").status_code == 401
    assert convert(api["norole"], OBSERVATION, "application/fhir+json").status_code == 403


def test_it_is_documented_in_the_openapi_schema(api) -> None:
    schema = api["viewer"].get("/api/schema/", HTTP_ACCEPT="application/json").json()
    operation = schema["paths"]["/api/convert"]["post"]
    assert set(operation["requestBody"]["content"]) == {"application/fhir+json", "application/fhir+xml", "text/turtle"}
    assert set(operation["responses"]["200"]["content"]) == {
        "application/fhir+json",
        "application/fhir+xml",
        "text/turtle",
    }
    assert {"400", "406", "415"} <= set(operation["responses"])
