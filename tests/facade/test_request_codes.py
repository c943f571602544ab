"""Every FS-REQ code (mappings/errors.py RequestCode) has a request that triggers it, answered as an
OperationOutcome with the code in issue.details.coding and the status the code stands for. A new code without a row
here fails the last test."""

from __future__ import annotations

import socket
from collections.abc import Callable

import pytest
from django.db import OperationalError
from django.test import Client
from django.utils import timezone

from mappings import actions, caches
from mappings.errors import RequestCode
from mappings.facade import views as facade_views
from mappings.models import ExportJob, Facade

pytestmark = pytest.mark.django_db(transaction=True)
FHIR_JSON = "application/fhir+json"


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # nothing listens once the socket is closed


@pytest.fixture
def facades(users, json_patient, settings) -> dict:
    """clinic: json-patient deployed for Patient over stored records; legacy: Patient from an HTTP source on a port
    nothing listens on, Encounter from one on a host that is not allowed; quiet: paused; locked: SMART-protected."""
    author = users["author"]
    port = closed_port()
    settings.FHIR_STUDIO = {**settings.FHIR_STUDIO, "SOURCE_ALLOWED_HOSTS": [f"127.0.0.1:{port}"]}
    version = actions.do_publish_version(json_patient, acting_user=author, message="v1")
    stored = actions.do_create_data_source(acting_user=author, name="stored", source_format="json")
    http = {"read_path": "/patients/{id}", "search_path": "/patients", "retries": 0, "timeout_s": 1}
    down = actions.do_create_data_source(
        acting_user=author,
        name="down",
        source_format="json",
        kind="http",
        config={**http, "base_url": f"http://127.0.0.1:{port}"},
    )
    elsewhere = actions.do_create_data_source(
        acting_user=author,
        name="elsewhere",
        source_format="json",
        kind="http",
        config={**http, "base_url": "http://10.1.2.3"},
    )
    for slug, bindings in {
        "clinic": {"Patient": stored},
        "legacy": {"Patient": down, "Encounter": elsewhere},
        "quiet": {"Patient": stored},
        "locked": {"Patient": stored},
    }.items():
        facade = actions.do_create_facade(acting_user=author, slug=slug, title=slug)
        for resource_type, source in bindings.items():
            binding = actions.do_bind_resource(
                facade, acting_user=author, resource_type=resource_type, mapping=json_patient, source=source
            )
            actions.do_deploy(binding, acting_user=author, version=version)
    actions.do_update_facade(Facade.objects.get(slug="quiet"), acting_user=author, status="paused")
    Facade.objects.filter(slug="locked").update(auth_mode=Facade.AuthMode.SMART_BACKEND)
    caches.clear()
    return {}


def convert(client: Client, body: dict) -> object:
    return client.post("/fhir/clinic/$convert-data", body, content_type=FHIR_JSON)


def failing_view(monkeypatch: pytest.MonkeyPatch) -> Callable[[Client], object]:
    def explode(*args, **kwargs):
        raise RuntimeError("a fault of ours")

    monkeypatch.setattr(facade_views, "fhir_response", explode)  # the view breaks; the error path must not
    return lambda client: client.get("/fhir/clinic/metadata")


def failed_export(client: Client) -> object:
    job = ExportJob.objects.create(
        facade=Facade.objects.get(slug="clinic"), level="system", request="/", transaction_time=timezone.now()
    )
    actions.do_fail_export(job.pk, "The export could not be planned: a test says so.")
    return client.get(f"/fhir/clinic/$export-status/{job.key}")


REQUESTS: dict[RequestCode, tuple[int, Callable]] = {
    RequestCode.NOT_FOUND: (404, lambda client: client.get("/fhir/nowhere/metadata")),
    RequestCode.NOT_SERVED: (404, lambda client: client.get("/fhir/clinic/Observation")),
    RequestCode.METHOD: (405, lambda client: client.delete("/fhir/clinic/Patient/x")),
    RequestCode.FORMAT: (406, lambda client: client.get("/fhir/clinic/Patient", {"_format": "text/csv"})),
    RequestCode.PARAMETER: (400, lambda client: client.get("/fhir/clinic/Patient", {"shoe-size": "9"})),
    RequestCode.INVALID: (400, lambda client: client.get("/fhir/clinic/Patient", {"birthdate": "yesterday"})),
    RequestCode.REQUIRED: (400, lambda client: convert(client, {"resourceType": "Parameters", "parameter": []})),
    RequestCode.PAUSED: (503, lambda client: client.get("/fhir/quiet/Patient")),
    RequestCode.UNAUTHORIZED: (401, lambda client: client.get("/fhir/locked/Patient")),
    RequestCode.SOURCE_UNAVAILABLE: (504, lambda client: client.get("/fhir/legacy/Patient/M1")),
    RequestCode.SOURCE_FAILED: (500, lambda client: client.get("/fhir/legacy/Encounter/E1")),
    RequestCode.EXPORT_FAILED: (500, failed_export),
}


@pytest.mark.parametrize("code", list(REQUESTS), ids=lambda code: code.code)
def test_it_answers_each_request_code_with_its_status(facades, client, code) -> None:
    status, make = REQUESTS[code]
    response = make(client)
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith(FHIR_JSON)
    issue = response.json()["issue"][0]
    assert issue["details"]["coding"][0]["code"] == code.code
    assert issue["code"] == code.fhir_type
    assert issue["diagnostics"] == issue["details"]["text"]  # what FHIR clients show their users


def test_a_fault_of_ours_is_a_500_outcome_never_a_traceback(facades, client, monkeypatch) -> None:
    response = failing_view(monkeypatch)(client)
    assert response.status_code == 500
    issue = response.json()["issue"][0]
    assert issue["details"]["coding"][0]["code"] == RequestCode.INTERNAL.code
    assert "Traceback" not in response.content.decode() and "a fault of ours" not in response.content.decode()


def test_a_database_outage_is_a_503_outcome_with_retry_after(facades, client, monkeypatch) -> None:
    def unreachable(*args, **kwargs):
        raise OperationalError("connection failed: the database system is shutting down")

    monkeypatch.setattr(facade_views, "fhir_response", unreachable)  # as PostgreSQL answers while it restarts
    response = client.get("/fhir/clinic/metadata")
    assert response.status_code == 503 and response["Retry-After"] == "5"
    issue = response.json()["issue"][0]
    assert issue["details"]["coding"][0]["code"] == RequestCode.DATABASE_UNAVAILABLE.code
    assert issue["code"] == "transient"
    assert "shutting down" not in response.content.decode()  # the server's words stay in the log


def test_every_request_code_has_a_request_that_triggers_it() -> None:
    # FS-REQ-013 is triggered above and by a real PostgreSQL stop in tests/security/test_faults.py
    assert set(REQUESTS) | {RequestCode.INTERNAL, RequestCode.DATABASE_UNAVAILABLE} == set(RequestCode)
