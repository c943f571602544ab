"""A facade never serves an invalid resource: deploy indexing (and live reads) validate each resource of the bound
type; one that fails is left out, and its record is named in the deployment's index errors with the validator's code
and the element that broke."""

from __future__ import annotations

import threading
from http.server import ThreadingHTTPServer

import pytest

from mappings import actions
from tests.facade.test_live_sources import LegacyAPI, http_config

# The birth date is written as the source has it: a record with an impossible date makes an invalid Patient.
TEMPLATE = """{"resourceType": "Patient", "id": "{{ msg.MRN }}",
 "name": [{"family": "{{ msg.LastName }}"}], "birthDate": "{{ msg.DOB }}"}"""
RECORD = '{{"MRN": "{mrn}", "LastName": "Ng", "DOB": "{dob}"}}'


@pytest.fixture
def raw_dates(users):
    author = users["author"]
    mapping = actions.do_create_mapping(
        acting_user=author, slug="raw-dates", title="Raw dates", source_format="json", template=TEMPLATE
    )
    return actions.do_publish_version(mapping, acting_user=author, message="v1")


@pytest.mark.django_db(transaction=True)  # indexing starts when the deploy commits
def test_an_invalid_resource_is_not_indexed_and_its_record_is_named(client, users, raw_dates) -> None:
    author = users["author"]
    source = actions.do_create_data_source(acting_user=author, name="births", source_format="json")
    actions.do_upload_records(
        source,
        acting_user=author,
        records=[
            ("good-1", RECORD.format(mrn="m1", dob="1990-01-02")),
            ("bad", RECORD.format(mrn="m2", dob="1990-02-30")),
            ("good-2", RECORD.format(mrn="m3", dob="2001-12-31")),
        ],
    )
    facade = actions.do_create_facade(acting_user=author, slug="births", title="Births")
    binding = actions.do_bind_resource(
        facade, acting_user=author, resource_type="Patient", mapping=raw_dates.mapping, source=source
    )
    deployment = actions.do_deploy(binding, acting_user=author, version=raw_dates)

    assert deployment.ready and deployment.indexed == 2
    [error] = deployment.index_errors
    assert error["record"] == "bad"
    assert error["code"].startswith("FS-VAL-")
    assert "Patient/m2" in error["message"] and "birthDate" in error["message"]
    assert client.get("/fhir/births/Patient/m1").status_code == 200
    assert client.get("/fhir/births/Patient/m2").status_code == 404
    assert client.get("/fhir/births/Patient?_summary=count").json()["total"] == 2


@pytest.mark.django_db(transaction=True)
def test_a_live_record_that_makes_an_invalid_resource_is_a_502_naming_the_element(
    client, users, raw_dates, settings
) -> None:
    # The legacy API answers a read with the bare record; its patients' DOB is 18151210: not a FHIR date.
    server = ThreadingHTTPServer(("127.0.0.1", 0), LegacyAPI)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    host = f"127.0.0.1:{server.server_address[1]}"
    settings.FHIR_STUDIO = {**settings.FHIR_STUDIO, "SOURCE_ALLOWED_HOSTS": [host]}
    try:
        author = users["author"]
        source = actions.do_create_data_source(
            acting_user=author,
            name="legacy",
            source_format="json",
            kind="http",
            config=http_config(f"http://{host}", records_key=None),
        )
        facade = actions.do_create_facade(acting_user=author, slug="legacy", title="Legacy")
        binding = actions.do_bind_resource(
            facade, acting_user=author, resource_type="Patient", mapping=raw_dates.mapping, source=source
        )
        actions.do_deploy(binding, acting_user=author, version=raw_dates)

        answer = client.get("/fhir/legacy/Patient/M0001")
        assert answer.status_code == 502, answer.content
        issue = answer.json()["issue"][0]
        assert "Patient/M0001" in issue["diagnostics"] and "birthDate" in issue["diagnostics"]
    finally:
        server.shutdown()
