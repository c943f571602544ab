"""Real FHIR client libraries, unmodified, against the demo facade: fhirclient (SMART on FHIR's Python client) and
fhirpy."""

from __future__ import annotations

import pytest
from fhirclient import client as smart_client
from fhirclient.models.observation import Observation
from fhirclient.models.patient import Patient
from fhirpy import SyncFHIRClient

pytestmark = pytest.mark.timeout(120)


def test_fhirclient_reads_searches_and_follows_the_next_page(demo) -> None:
    smart = smart_client.FHIRClient(settings={"app_id": "fhir-studio-tests", "api_base": demo["base"] + "/"})
    found = list(Patient.where(struct={"family": "every"}).perform_resources_iter(smart.server))
    assert found and found[0].name[0].family.lower().startswith("every")
    patient = Patient.read(found[0].id, smart.server)
    assert patient.id == found[0].id
    pages = list(Observation.where(struct={"_count": "25"}).perform_iter(smart.server))
    assert len(pages) >= 2  # followed the next links
    ids = [entry.resource.id for page in pages for entry in page.entry or []]
    assert len(ids) == len(set(ids)) == pages[0].total


def test_fhirpy_searches_with_chained_filters_counts_and_fetches_all(demo) -> None:
    client = SyncFHIRClient(demo["base"])
    observations = client.resources("Observation")
    total = observations.count()
    assert total > 20
    everything = observations.limit(15).fetch_all()
    assert len(everything) == total
    subject = everything[0]["subject"]["reference"]
    narrowed = observations.search(patient=subject.split("/")[1]).search(status=everything[0]["status"])
    assert narrowed.count() >= 1
    assert all(resource["subject"]["reference"] == subject for resource in narrowed.fetch_all())
    patient = client.resources("Patient").search(family="every").first()
    assert patient is not None and patient["resourceType"] == "Patient"
