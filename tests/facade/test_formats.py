"""The facade speaks FHIR JSON, XML and RDF Turtle: `_format` (short names and MIME types) or Accept choose the
answer's format for metadata, search, read, operations and OperationOutcomes alike; bodies are read by Content-Type;
a format it cannot write is a 406."""

from __future__ import annotations

import orjson
import pytest
import requests
from django.test import Client

from mappings import actions, caches
from mappings.engine.formats import decimal_default, parse, serialize
from mappings.models import Facade

pytestmark = pytest.mark.django_db
XML, TTL, JSON = "application/fhir+xml", "text/turtle", "application/fhir+json"


@pytest.fixture
def clinic(users, json_patient) -> str:
    """The json-patient mapping deployed for Patient on facade `clinic`, over stored records (none yet)."""
    author = users["author"]
    version = actions.do_publish_version(json_patient, acting_user=author, message="v1")
    stored = actions.do_create_data_source(acting_user=author, name="stored", source_format="json")
    facade = actions.do_create_facade(acting_user=author, slug="clinic", title="Clinic")
    binding = actions.do_bind_resource(
        facade, acting_user=author, resource_type="Patient", mapping=json_patient, source=stored
    )
    actions.do_deploy(binding, acting_user=author, version=version)
    # $convert-data runs what the facade lists, live or not (its index is never built here: no worker runs)
    Facade.objects.filter(slug="clinic").update(convert_templates={"JsonPatient": "json-patient"})
    caches.clear()
    return "/fhir/clinic"


def answer(response, media_type: str, status: int = 200) -> dict:
    assert response.status_code == status, response.content[:500]
    assert response["Content-Type"].startswith(media_type)
    return parse(response.content, {XML: "xml", TTL: "ttl", JSON: "json"}[media_type])


@pytest.mark.parametrize(
    ("query", "headers", "media_type"),
    [
        ({"_format": "xml"}, {}, XML),
        ({"_format": "ttl"}, {}, TTL),
        ({"_format": "application/fhir+xml"}, {}, XML),
        ({"_format": "application/fhir xml"}, {}, XML),  # an unencoded "+" arrives as a space
        ({"_format": "text/turtle"}, {}, TTL),
        ({"_format": "json"}, {"HTTP_ACCEPT": TTL}, JSON),  # _format wins over Accept
        ({}, {"HTTP_ACCEPT": "text/turtle;q=0.9, */*;q=0.1"}, TTL),
        ({}, {"HTTP_ACCEPT": "application/xml"}, XML),
        ({}, {"HTTP_ACCEPT": "text/html, */*"}, JSON),
        ({}, {}, JSON),
    ],
)
def test_it_answers_metadata_in_the_format_asked(clinic, client: Client, query, headers, media_type) -> None:
    statement = answer(client.get(f"{clinic}/metadata", query, **headers), media_type)
    assert statement["resourceType"] == "CapabilityStatement"
    assert statement["format"] == ["json", "xml", "ttl"]
    assert statement["rest"][0]["mode"] == "server"
    assert {operation["name"] for operation in statement["rest"][0]["operation"]} >= {"validate", "convert-data"}


@pytest.mark.parametrize("media_type", [XML, TTL])
def test_it_answers_errors_as_operation_outcomes_in_the_format_asked(clinic, client: Client, media_type) -> None:
    outcome = answer(client.get(f"{clinic}/Observation", HTTP_ACCEPT=media_type), media_type, 404)
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["details"]["coding"][0]["code"] == "FS-REQ-002"


def test_it_refuses_a_format_it_cannot_write_with_a_406_in_json(clinic, client: Client) -> None:
    for response in (
        client.get(f"{clinic}/metadata", {"_format": "text/csv"}),
        client.get(f"{clinic}/metadata", HTTP_ACCEPT="application/pdf"),
    ):
        outcome = answer(response, JSON, 406)
        assert outcome["issue"][0]["details"]["coding"][0]["code"] == "FS-REQ-004"


@pytest.mark.parametrize(("content_type", "fmt"), [(XML, "xml"), ("application/xml", "xml"), (TTL, "ttl")])
def test_it_validates_a_body_sent_in_xml_or_turtle(clinic, client: Client, content_type: str, fmt: str) -> None:
    patient = {"resourceType": "Patient", "id": "p1", "gender": "female", "birthDate": "1974-12-25"}
    response = client.post(f"{clinic}/$validate", serialize(patient, fmt), content_type=content_type, HTTP_ACCEPT=XML)
    outcome = answer(response, XML)
    assert outcome["resourceType"] == "OperationOutcome"
    assert all(issue["severity"] not in ("error", "fatal") for issue in outcome["issue"])


def test_it_runs_convert_data_from_an_xml_parameters_body_and_answers_in_turtle(clinic, client: Client) -> None:
    parameters = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "inputData", "valueString": '{"PatientId": 7, "LastName": "Smith", "Gender": "M"}'},
            {"name": "rootTemplate", "valueString": "JsonPatient"},
        ],
    }
    response = client.post(f"{clinic}/$convert-data", serialize(parameters, "xml"), content_type=XML, HTTP_ACCEPT=TTL)
    patient = answer(response, TTL)
    assert patient["resourceType"] == "Patient"
    assert patient["name"][0]["family"] == "Smith"


@pytest.mark.parametrize(
    ("body", "content_type", "status", "code"),
    [
        ("PatientId,7", "text/csv", 415, "FS-REQ-004"),
        ('<!DOCTYPE P [<!ENTITY e "x">]><Patient xmlns="http://hl7.org/fhir"/>', XML, 400, "FS-REQ-006"),
        ("@prefix fhir: <http://hl7.org/fhir/> . [", TTL, 400, "FS-REQ-006"),
    ],
)
def test_it_refuses_bodies_it_cannot_read(clinic, client: Client, body, content_type, status, code) -> None:
    outcome = answer(client.post(f"{clinic}/$validate", body, content_type=content_type), JSON, status)
    assert outcome["issue"][0]["details"]["coding"][0]["code"] == code


def canonical(resource: dict) -> bytes:
    return orjson.dumps(resource, default=decimal_default, option=orjson.OPT_SORT_KEYS)


def test_it_searches_and_reads_stored_resources_in_every_format(demo) -> None:
    """On the demo facade (stored corpus messages, indexed): a searchset Bundle and a read, in XML and Turtle, say
    what the JSON says — an Observation with a decimal value keeps its digits in all three."""
    search = f"{demo['base']}/Observation"
    as_json = parse(requests.get(search, params={"_count": 50}, timeout=20).content, "json")
    for fmt, media_type in (("xml", XML), ("ttl", TTL)):
        response = requests.get(search, params={"_count": 50}, headers={"Accept": media_type}, timeout=20)
        assert response.headers["Content-Type"].startswith(media_type)
        assert canonical(parse(response.content, fmt)) == canonical(as_json)
    with_decimal = [
        entry["resource"]
        for entry in as_json["entry"]
        if isinstance(entry["resource"].get("valueQuantity", {}).get("value"), float)
    ]
    assert with_decimal, "the demo's ORU messages give Observations with decimal values"
    url = f"{search}/{with_decimal[0]['id']}"
    read = parse(requests.get(url, timeout=10).content, "json")
    for fmt, media_type in (("xml", XML), ("ttl", TTL)):
        response = requests.get(url, params={"_format": fmt}, timeout=10)
        assert response.headers["Content-Type"].startswith(media_type)
        assert canonical(parse(response.content, fmt)) == canonical(read)
