"""The client against the studio's own demo facade over real HTTP on 127.0.0.1: metadata and the diagnosis, reads,
search paging (the same resources fhirpy finds), a Bulk Data export with a real worker, and SMART Backend Services
against the studio's own token endpoint (demo-smart)."""

from __future__ import annotations

import pytest
from fhirpy import SyncFHIRClient

from mappings.connectors import BulkClient, FhirClient, FhirError, SmartBackendAuth, diagnose
from mappings.models import Facade
from mappings.security.clients import create_smart_client
from tests.conftest import worker_database_url
from tests.tasks.conftest import celery_worker

pytestmark = pytest.mark.timeout(180)


def test_it_diagnoses_the_demo_facade_as_a_fhir_r4_server(demo) -> None:
    found = diagnose(FhirClient(demo["base"]))
    assert found.code == "ok", found.message
    assert found.fhir_version == "4.0.1"
    assert {"Patient", "Observation"} <= set(found.resource_types)
    assert "read" in found.interactions["Patient"] and "search-type" in found.interactions["Patient"]


def test_it_searches_across_pages_and_finds_what_fhirpy_finds(demo) -> None:
    client = FhirClient(demo["base"])
    pages = list(client.pages("Observation", {"_count": 10}))
    assert len(pages) >= 2  # it followed `next`
    found = [resource["id"] for resource in client.search("Observation", {"_count": 10})]
    assert len(found) == len(set(found)) == pages[0]["total"]
    by_fhirpy = SyncFHIRClient(demo["base"]).resources("Observation").fetch_all()
    assert sorted(found) == sorted(item["id"] for item in by_fhirpy)
    assert len(list(client.search("Observation", {"_count": 10}, max_pages=1))) == 10


def test_it_reads_what_it_searched_and_says_not_found_with_the_outcome(demo) -> None:
    client = FhirClient(demo["base"])
    patient = next(client.search("Patient", {"family": "every"}))
    assert client.read("Patient", patient["id"]) == patient
    with pytest.raises(FhirError) as raised:
        client.read("Patient", "no-such-patient")
    assert raised.value.code == "not_found" and raised.value.status == 404
    assert raised.value.outcome["resourceType"] == "OperationOutcome"


def test_it_exports_with_the_bulk_client_and_streams_every_resource(demo, tmp_path) -> None:
    client = FhirClient(demo["base"])
    expected = sorted(resource["id"] for resource in client.search("Patient", {"_count": 100}))
    progress: list[str] = []
    bulk = BulkClient(client, max_poll_seconds=0.5)
    with celery_worker(tmp_path / "worker.log", {"DATABASE_URL": worker_database_url()}, queues="exports,default"):
        status_url = bulk.kick_off("Patient", {"_type": "Patient"})
        manifest = bulk.poll(status_url, timeout_seconds=90, on_progress=progress.append)
        exported = [resource for entry in manifest["output"] for resource in bulk.stream(entry)]
        assert sorted(resource["id"] for resource in exported) == expected
        assert {resource["resourceType"] for resource in exported} == {"Patient"}
        assert bulk.delete(status_url) in (200, 202, 204)


def test_it_signs_in_with_smart_backend_services_and_reuses_its_token(demo, tmp_path) -> None:
    base = demo["base"].replace("/fhir/demo", "/fhir/demo-smart")
    keys = create_smart_client(Facade.objects.get(slug="demo-smart"), scopes=["system/*.rs"], out_dir=tmp_path)
    auth = SmartBackendAuth(
        client_id=keys.client.client_id,
        private_key=keys.private_key.read_text(),
        algorithm="ES384",
        scope="system/*.rs",
    )
    client = FhirClient(base, auth=auth)
    assert diagnose(client).code == "ok"
    patients = list(client.search("Patient", {"_count": 5}))
    assert patients and client.read("Patient", patients[0]["id"])["id"] == patients[0]["id"]
    assert auth.tokens_fetched == 1  # discovered the token endpoint once, kept the token for every request
    assert auth.token_url.endswith("/fhir/demo-smart/auth/token")
    with pytest.raises(FhirError) as raised:
        FhirClient(base).read("Patient", patients[0]["id"])
    assert raised.value.code == "unauthorized"


def test_it_diagnoses_a_client_the_token_endpoint_refuses_as_unauthorized(demo, tmp_path) -> None:
    base = demo["base"].replace("/fhir/demo", "/fhir/demo-smart")
    keys = create_smart_client(Facade.objects.get(slug="demo-smart"), scopes=["system/*.rs"], out_dir=tmp_path / "a")
    other = create_smart_client(Facade.objects.get(slug="demo-smart"), scopes=["system/*.rs"], out_dir=tmp_path / "b")
    wrong_key = SmartBackendAuth(
        client_id=keys.client.client_id, private_key=other.private_key.read_text(), algorithm="ES384"
    )
    found = diagnose(FhirClient(base, auth=wrong_key))
    assert found.code == "unauthorized", found.message
