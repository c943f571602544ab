"""Real FHIR client libraries, unmodified, writing to a store facade on a live server: fhirclient (SMART on FHIR's
Python client) and fhirpy create, read, update, search and delete; and the demo's `demo-store`, which the demo
content makes empty, takes a transaction and serves it back."""

from __future__ import annotations

import uuid

import pytest
import requests
from fhirclient import client as smart_client
from fhirclient.models.humanname import HumanName
from fhirclient.models.patient import Patient
from fhirpy import SyncFHIRClient
from fhirpy.base.exceptions import ResourceNotFound

from mappings.demo import DEMO_STORE, load_demo_store_facade
from mappings.models import Facade, FacadeResource

pytestmark = pytest.mark.timeout(120)


def test_fhirclient_creates_reads_updates_and_searches_the_store(live_store) -> None:
    smart = smart_client.FHIRClient(settings={"app_id": "fhir-studio-tests", "api_base": live_store["base"] + "/"})
    patient = Patient({"gender": "female", "birthDate": "1980-02-03"})
    patient.name = [HumanName({"family": "Okafor", "given": ["Ada"]})]
    created = patient.create(smart.server)  # the server's answer: the resource as stored
    assert created["meta"]["versionId"] == "1"
    read = Patient.read(created["id"], smart.server)
    assert read.name[0].family == "Okafor"
    read.gender = "other"
    read.update(smart.server)
    assert Patient.read(created["id"], smart.server).meta.versionId == "2"
    found = list(Patient.where(struct={"family": "okafor"}).perform_resources_iter(smart.server))
    assert [resource.id for resource in found] == [created["id"]]
    assert found[0].gender == "other"


def test_fhirpy_creates_reads_updates_searches_and_deletes_in_the_store(live_store) -> None:
    client = SyncFHIRClient(live_store["base"])
    patient = client.resource("Patient", name=[{"family": "Novak", "given": ["Ivo"]}], gender="male")
    patient.save()  # POST: fhirpy takes the id and meta the server assigned
    assert patient.id and patient["meta"]["versionId"] == "1"
    patient["birthDate"] = "1975-06-07"
    patient.save()  # PUT
    fetched = client.reference("Patient", patient.id).to_resource()
    assert fetched["birthDate"] == "1975-06-07" and fetched["meta"]["versionId"] == "2"
    observation = client.resource(
        "Observation",
        status="final",
        code={"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
        subject=patient.to_reference(),
        valueQuantity={"value": 61, "unit": "/min"},
    )
    observation.save()
    assert client.resources("Observation").search(patient=patient.id).count() == 1
    assert client.resources("Patient").search(family="novak").first().id == patient.id
    patient.delete()
    with pytest.raises(ResourceNotFound):
        client.reference("Patient", patient.id).to_resource()


def test_the_demo_store_starts_empty_takes_a_transaction_and_reads_it_back(transactional_db, live_server) -> None:
    load_demo_store_facade(None)  # what `fhirstudio demo` runs (load_demo) after the demo's own facades
    assert Facade.objects.filter(slug=DEMO_STORE, auth_mode=Facade.AuthMode.OPEN).exists()
    assert not FacadeResource.objects.filter(deployment__binding__facade__slug=DEMO_STORE).exists()
    base = f"{live_server.url}/fhir/{DEMO_STORE}"
    patient_url = f"urn:uuid:{uuid.uuid4()}"
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": patient_url,
                "resource": {"resourceType": "Patient", "name": [{"family": "Demo"}]},
                "request": {"method": "POST", "url": "Patient"},
            },
            {
                "resource": {
                    "resourceType": "Encounter",
                    "status": "finished",
                    "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
                    "subject": {"reference": patient_url},
                },
                "request": {"method": "POST", "url": "Encounter"},
            },
        ],
    }
    answer = requests.post(f"{base}/", json=bundle, headers={"Content-Type": "application/fhir+json"}, timeout=30)
    assert answer.status_code == 200, answer.text
    patient_id = answer.json()["entry"][0]["response"]["location"].split("/")[1]
    client = SyncFHIRClient(base)
    encounter = client.resources("Encounter").search(patient=patient_id).first()
    assert encounter["subject"]["reference"] == f"Patient/{patient_id}"
    metadata = requests.get(f"{base}/metadata", timeout=30).json()
    assert {"Patient", "Encounter", "Observation"} <= {entry["type"] for entry in metadata["rest"][0]["resource"]}
