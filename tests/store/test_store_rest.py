"""A store facade's REST interactions over HTTP (the Django test client): create, read, vread, update with If-Match,
update as create, conditional create and update, patch, delete and 410, history, search after writes, validation,
Prefer and XML."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from mappings import actions
from mappings.models import FacadeResource, SearchValue, StoreVersion

PATIENT = {
    "resourceType": "Patient",
    "identifier": [{"system": "urn:mrn", "value": "MRN-1"}],
    "name": [{"family": "Smith", "given": ["Ann"]}],
    "gender": "female",
    "birthDate": "1980-02-03",
}
FHIR_JSON = "application/fhir+json"


@pytest.fixture
def client() -> Client:
    return Client()


def create(client: Client, base: str, resource: dict, **headers) -> dict:
    response = client.post(
        f"{base}/{resource['resourceType']}", json.dumps(resource), content_type=FHIR_JSON, **headers
    )
    assert response.status_code == 201, response.content
    return response.json()


def put(client: Client, url: str, resource: dict, **headers):
    return client.put(url, json.dumps(resource), content_type=FHIR_JSON, **headers)


def test_it_creates_with_a_server_id_and_answers_201_location_and_etag(client, store):
    response = client.post(f"{store['base']}/Patient", json.dumps({**PATIENT, "id": "ignored"}), content_type=FHIR_JSON)
    assert response.status_code == 201
    body = response.json()
    assert body["id"] != "ignored"
    assert body["meta"]["versionId"] == "1"
    assert body["meta"]["lastUpdated"].endswith("Z")
    assert response["Location"] == f"http://testserver/fhir/store/Patient/{body['id']}/_history/1"
    assert response["ETag"] == 'W/"1"'
    read = client.get(f"{store['base']}/Patient/{body['id']}")
    assert read.status_code == 200
    assert read.json() == body
    assert read["ETag"] == 'W/"1"'


def test_it_updates_with_if_match_and_refuses_a_stale_version_with_412(client, store):
    patient = create(client, store["base"], PATIENT)
    url = f"{store['base']}/Patient/{patient['id']}"
    changed = {**patient, "gender": "other"}
    response = put(client, url, changed, HTTP_IF_MATCH='W/"1"')
    assert response.status_code == 200
    assert response.json()["meta"]["versionId"] == "2"
    assert response["ETag"] == 'W/"2"'
    stale = put(client, url, {**patient, "gender": "male"}, HTTP_IF_MATCH='W/"1"')
    assert stale.status_code == 412
    assert stale.json()["resourceType"] == "OperationOutcome"
    assert client.get(url).json()["gender"] == "other"


def test_it_updates_as_create_with_the_clients_id(client, store):
    response = put(client, f"{store['base']}/Patient/mine-1", {**PATIENT, "id": "mine-1"})
    assert response.status_code == 201
    assert response.json()["id"] == "mine-1"
    assert client.get(f"{store['base']}/Patient/mine-1").status_code == 200


def test_it_refuses_an_update_whose_body_names_another_id(client, store):
    response = put(client, f"{store['base']}/Patient/one", {**PATIENT, "id": "two"})
    assert response.status_code == 400
    assert "two" in response.json()["issue"][0]["details"]["text"]


def test_it_reads_old_versions_and_the_history_newest_first(client, store):
    patient = create(client, store["base"], PATIENT)
    url = f"{store['base']}/Patient/{patient['id']}"
    put(client, url, {**patient, "gender": "other"})
    assert client.get(f"{url}/_history/1").json()["gender"] == "female"
    assert client.get(f"{url}/_history/2").json()["gender"] == "other"
    assert client.get(f"{url}/_history/3").status_code == 404
    history = client.get(f"{url}/_history").json()
    assert history["type"] == "history"
    assert history["total"] == 2
    assert [entry["response"]["etag"] for entry in history["entry"]] == ['W/"2"', 'W/"1"']
    assert [entry["request"]["method"] for entry in history["entry"]] == ["PUT", "POST"]
    create(client, store["base"], {**PATIENT, "gender": "male"})
    assert client.get(f"{store['base']}/Patient/_history").json()["total"] == 3


def test_it_deletes_and_answers_410_gone_then(client, store):
    patient = create(client, store["base"], PATIENT)
    url = f"{store['base']}/Patient/{patient['id']}"
    assert client.delete(url).status_code == 204
    gone = client.get(url)
    assert gone.status_code == 410
    assert gone.json()["resourceType"] == "OperationOutcome"
    assert client.delete(url).status_code == 204  # deleting again changes nothing
    assert client.get(f"{url}/_history/2").status_code == 410
    assert client.get(f"{store['base']}/Patient?_id={patient['id']}").json()["total"] == 0
    assert not SearchValue.objects.filter(resource__resource_id=patient["id"]).exists()
    again = put(client, url, patient)  # a deleted resource can be created again, as its next version
    assert again.status_code == 201
    assert again.json()["meta"]["versionId"] == "3"


def test_it_answers_404_for_a_resource_never_written(client, store):
    assert client.get(f"{store['base']}/Patient/nobody").status_code == 404


def test_it_creates_conditionally_by_match_count(client, store):
    headers = {"HTTP_IF_NONE_EXIST": "identifier=urn:mrn|MRN-1"}
    first = client.post(f"{store['base']}/Patient", json.dumps(PATIENT), content_type=FHIR_JSON, **headers)
    assert first.status_code == 201  # no match: created
    second = client.post(f"{store['base']}/Patient", json.dumps(PATIENT), content_type=FHIR_JSON, **headers)
    assert second.status_code == 200  # one match: that one, nothing written
    assert second.json()["id"] == first.json()["id"]
    create(client, store["base"], PATIENT)  # unconditionally: now two share the identifier
    third = client.post(f"{store['base']}/Patient", json.dumps(PATIENT), content_type=FHIR_JSON, **headers)
    assert third.status_code == 412
    assert StoreVersion.objects.filter(resource_type="Patient").count() == 2


def test_it_updates_conditionally_by_criteria(client, store):
    url = f"{store['base']}/Patient?identifier=urn:mrn|MRN-9"
    created = put(client, url, {**PATIENT, "identifier": [{"system": "urn:mrn", "value": "MRN-9"}]})
    assert created.status_code == 201  # no match: created
    patient = created.json()
    updated = put(client, url, {**patient, "gender": "other"})
    assert updated.status_code == 200
    assert updated.json()["id"] == patient["id"]
    assert updated.json()["meta"]["versionId"] == "2"
    create(client, store["base"], {**PATIENT, "identifier": [{"system": "urn:mrn", "value": "MRN-9"}]})
    assert put(client, url, patient).status_code == 412  # two match


def test_it_patches_with_json_patch(client, store):
    patient = create(client, store["base"], PATIENT)
    url = f"{store['base']}/Patient/{patient['id']}"
    operations = [{"op": "replace", "path": "/gender", "value": "male"}]
    response = client.patch(url, json.dumps(operations), content_type="application/json-patch+json")
    assert response.status_code == 200
    assert response.json()["gender"] == "male"
    assert response.json()["meta"]["versionId"] == "2"
    bad = client.patch(
        url,
        json.dumps([{"op": "replace", "path": "/nothing/here", "value": 1}]),
        content_type="application/json-patch+json",
    )
    assert bad.status_code == 422
    invalid = [{"op": "replace", "path": "/gender", "value": "sometimes"}]
    assert client.patch(url, json.dumps(invalid), content_type="application/json-patch+json").status_code == 422
    assert client.get(url).json()["meta"]["versionId"] == "2"


def test_it_refuses_an_invalid_resource_with_422_and_writes_nothing(client, store):
    response = client.post(
        f"{store['base']}/Patient", json.dumps({**PATIENT, "gender": "sometimes"}), content_type=FHIR_JSON
    )
    assert response.status_code == 422
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["severity"] == "error"
    assert not StoreVersion.objects.exists()
    assert not FacadeResource.objects.filter(resource_type="Patient").exists()


def test_it_refuses_a_body_of_another_type_with_400(client, store):
    response = client.post(
        f"{store['base']}/Patient", json.dumps({"resourceType": "Observation"}), content_type=FHIR_JSON
    )
    assert response.status_code == 400


def test_it_finds_written_resources_by_the_facades_search_parameters(client, store):
    patient = create(client, store["base"], PATIENT)
    create(client, store["base"], {**PATIENT, "name": [{"family": "Jones"}], "gender": "male"})
    observation = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
        "subject": {"reference": f"Patient/{patient['id']}"},
        "effectiveDateTime": "2024-05-01T10:00:00Z",
    }
    create(client, store["base"], observation)

    def ids(query: str) -> list[str]:
        bundle = client.get(f"{store['base']}/{query}").json()
        return [entry["resource"]["id"] for entry in bundle.get("entry", [])]

    assert ids("Patient?family=smi") == [patient["id"]]
    assert ids("Patient?identifier=urn:mrn|MRN-1&gender=female") == [patient["id"]]
    assert ids("Patient?birthdate=1980-02") != []
    assert len(ids(f"Observation?patient={patient['id']}&code=8867-4")) == 1
    put(client, f"{store['base']}/Patient/{patient['id']}", {**patient, "name": [{"family": "Brown"}]})
    assert ids("Patient?family=smith") == []  # the old version's values are gone
    assert ids("Patient?family=brown") == [patient["id"]]
    form = "application/x-www-form-urlencoded"
    posted = client.post(f"{store['base']}/Patient/_search", "family=brown", content_type=form)
    assert posted.json()["total"] == 1


@pytest.mark.parametrize(
    ("prefer", "body"),
    [("return=minimal", None), ("return=representation", "Patient"), ("return=OperationOutcome", "OperationOutcome")],
)
def test_it_answers_a_write_as_prefer_asks(client, store, prefer, body):
    response = client.post(f"{store['base']}/Patient", json.dumps(PATIENT), content_type=FHIR_JSON, HTTP_PREFER=prefer)
    assert response.status_code == 201
    assert response["Location"]
    if body is None:
        assert response.content == b""
    else:
        assert response.json()["resourceType"] == body


def test_it_reads_and_writes_xml(client, store):
    xml = '<Patient xmlns="http://hl7.org/fhir"><name><family value="Xu"/></name><gender value="male"/></Patient>'
    response = client.post(
        f"{store['base']}/Patient", xml, content_type="application/fhir+xml", HTTP_ACCEPT="application/fhir+xml"
    )
    assert response.status_code == 201
    assert response["Content-Type"].startswith("application/fhir+xml")
    assert b'<family value="Xu"/>' in response.content
    location = response["Location"].split("/_history")[0].replace("http://testserver", "")
    assert client.get(location).json()["name"][0]["family"] == "Xu"


def test_it_answers_405_to_writes_on_a_facade_that_serves_no_store(client, served, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):  # indexing starts when the deploy commits
        actions.do_deploy(served["binding"], acting_user=served["author"], version=served["v1"])
    assert client.get("/fhir/clinic/Patient").status_code == 200
    response = client.post("/fhir/clinic/Patient", json.dumps(PATIENT), content_type=FHIR_JSON)
    assert response.status_code == 405
    assert client.delete("/fhir/clinic/Patient/x").status_code == 405


def test_it_advertises_a_stores_writes_history_and_transactions_in_metadata(client, store):
    statement = client.get(f"{store['base']}/metadata").json()
    rest = statement["rest"][0]
    assert {"transaction", "batch"} <= {entry["code"] for entry in rest["interaction"]}
    patient = next(entry for entry in rest["resource"] if entry["type"] == "Patient")
    codes = {entry["code"] for entry in patient["interaction"]}
    assert {"create", "update", "delete", "vread", "history-instance", "search-type"} <= codes
    assert patient["versioning"] == "versioned"
    assert patient["conditionalCreate"] is True


def test_it_includes_the_stores_resources_a_search_references(client, store):
    patient = create(client, store["base"], PATIENT)
    observation = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
        "subject": {"reference": f"Patient/{patient['id']}"},
    }
    create(client, store["base"], observation)
    bundle = client.get(f"{store['base']}/Observation?_include=Observation:subject").json()
    modes = sorted((entry["search"]["mode"], entry["resource"]["resourceType"]) for entry in bundle["entry"])
    assert modes == [("include", "Patient"), ("match", "Observation")]


def test_it_reads_from_the_new_source_after_a_type_is_rebound_away_from_the_store(
    client, store, served, django_capture_on_commit_callbacks
):
    patient = create(client, store["base"], PATIENT)
    assert client.get(f"{store['base']}/Patient/{patient['id']}").status_code == 200  # the worker's guess: the store
    with django_capture_on_commit_callbacks(execute=True):
        binding = actions.do_bind_resource(
            store["facade"],
            acting_user=served["author"],
            resource_type="Patient",
            mapping=served["mapping"],
            source=served["source"],
        )
        actions.do_deploy(binding, acting_user=served["author"], version=served["v1"])
    indexed = FacadeResource.objects.filter(deployment__binding=binding, deployment__ready=True)
    first = indexed.values_list("resource_id", flat=True).first()
    assert client.get(f"{store['base']}/Patient/{first}").status_code == 200  # the first read after: the new source
    assert client.get(f"{store['base']}/Patient?_count=1").json()["total"] == indexed.count()
    assert client.get(f"{store['base']}/Patient/{patient['id']}").status_code == 404
