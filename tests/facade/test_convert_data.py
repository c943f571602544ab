"""$convert-data: a client written for Azure's FHIR converter works against the demo facade unchanged, and a facade
runs only its own mappings (bound to it, or listed in its convert_templates), whoever asks."""

from __future__ import annotations

import pytest
import requests
from django.contrib.auth.models import User
from fhir.resources.R4B.bundle import Bundle

from mappings import actions
from mappings.access import access_convert_mapping, access_facade_request
from mappings.errors import FhirError
from mappings.models import Mapping
from tests.api.conftest import ROOT

pytestmark = pytest.mark.timeout(120)
FHIR_JSON = {"Content-Type": "application/fhir+json"}
ADT = (ROOT / "examples/hl7v2-adt-a01/samples/adt-a01-full.hl7").read_text()


def azure_request(**values: str) -> dict:
    """What Azure's documentation shows a client sending to $convert-data."""
    return {
        "resourceType": "Parameters",
        "parameter": [{"name": name, "valueString": value} for name, value in values.items()],
    }


def code_of(response: requests.Response) -> str:
    return response.json()["issue"][0]["details"]["coding"][0]["code"]


def test_an_azure_style_request_gets_a_valid_bundle_from_the_demo_facade(demo) -> None:
    body = azure_request(
        inputData=ADT,
        inputDataType="Hl7v2",
        templateCollectionReference="microsofthealth/fhirconverter:default",
        rootTemplate="ADT_A01",
    )
    response = requests.post(f"{demo['base']}/$convert-data", json=body, headers=FHIR_JSON, timeout=20)
    assert response.status_code == 200, response.text
    bundle = Bundle.model_validate(response.json())  # fhir.resources checks it independently of the studio
    types = {entry.resource.get_resource_type() for entry in bundle.entry}
    assert {"Patient", "Encounter"} <= types


def test_an_anonymous_caller_cannot_run_a_mapping_the_facade_does_not_serve(demo) -> None:
    admin = User.objects.get(username="admin")
    secret = actions.do_create_mapping(
        acting_user=admin, slug="payroll-extract", title="Not for the facade", source_format="json", template="{}"
    )
    actions.do_publish_version(secret, acting_user=admin, message="v1")
    unbound = requests.post(
        f"{demo['base']}/$convert-data", json=azure_request(inputData="{}", mapping="payroll-extract"), timeout=10
    )
    missing = requests.post(
        f"{demo['base']}/$convert-data", json=azure_request(inputData="{}", mapping="no-such-mapping"), timeout=10
    )
    # The same answer whether the mapping exists elsewhere in the studio or not at all: nothing to probe.
    assert (unbound.status_code, code_of(unbound)) == (404, "FS-REQ-001")
    assert (
        unbound.json()["issue"][0]["diagnostics"].replace("payroll-extract", "no-such-mapping")
        == (missing.json()["issue"][0]["diagnostics"])
    )


def test_an_input_type_the_template_does_not_read_is_refused(demo) -> None:
    body = azure_request(inputData=ADT, inputDataType="Ccda", rootTemplate="ADT_A01")
    refused = requests.post(f"{demo['base']}/$convert-data", json=body, headers=FHIR_JSON, timeout=10)
    assert (refused.status_code, code_of(refused)) == (400, "FS-REQ-006")
    assert "reads hl7v2" in refused.json()["issue"][0]["diagnostics"]


def test_a_listed_ccda_template_converts_a_document(demo) -> None:
    document = (ROOT / "examples/ccda-ccd/samples/ccd.xml").read_text()
    body = azure_request(inputData=document, inputDataType="Ccda", rootTemplate="CCD")
    response = requests.post(f"{demo['base']}/$convert-data", json=body, headers=FHIR_JSON, timeout=30)
    assert response.status_code == 200, response.text
    assert Bundle.model_validate(response.json()).type == "transaction"


@pytest.fixture
def clinic(transactional_db, users, json_patient):
    """json-patient v1 deployed as the clinic's Patient, then v2 published but not deployed; the CSV mapping listed
    under an alias."""
    author = users["author"]
    v1 = actions.do_publish_version(json_patient, acting_user=author, message="v1")
    csv = actions.do_create_mapping(
        acting_user=author, slug="csv-list", title="CSV", source_format="csv", template='{"resourceType": "Basic"}'
    )
    actions.do_publish_version(csv, acting_user=author, message="v1")
    source = actions.do_create_data_source(acting_user=author, name="registrations", source_format="json")
    facade = actions.do_create_facade(
        acting_user=author, slug="clinic", title="Clinic", convert_templates={"Registrations": "csv-list"}
    )
    binding = actions.do_bind_resource(
        facade, acting_user=author, resource_type="Patient", mapping=json_patient, source=source
    )
    actions.do_deploy(binding, acting_user=author, version=v1)
    v2 = actions.do_publish_version(json_patient, acting_user=author, message="v2")
    return {"v1": v1, "v2": v2, "facade": access_facade_request("clinic")}


def test_a_bound_mapping_runs_the_version_the_facade_serves_unless_one_is_named(clinic) -> None:
    facade = clinic["facade"]
    assert access_convert_mapping(facade, "json-patient") == clinic["v1"]
    assert access_convert_mapping(facade, "json-patient", 2) == clinic["v2"]
    assert access_convert_mapping(facade, "Registrations").mapping.slug == "csv-list"  # listed: its latest version
    for refused in ("csv-list", "ADT_A01", "nothing"):  # an alias's target is reachable only through its alias
        with pytest.raises(FhirError) as caught:
            access_convert_mapping(facade, refused)
        assert (caught.value.status, caught.value.code) == (404, "FS-REQ-001")


def test_a_facade_cannot_list_a_mapping_that_does_not_exist(clinic, users) -> None:
    from mappings.errors import StudioError
    from mappings.models import Facade

    with pytest.raises(StudioError) as refused:
        actions.do_update_facade(
            Facade.objects.get(slug="clinic"), acting_user=users["author"], convert_templates={"X": "no-such"}
        )
    assert refused.value.details == {"convert_templates": ["no-such"]}
    assert Mapping.objects.filter(slug="no-such").count() == 0
