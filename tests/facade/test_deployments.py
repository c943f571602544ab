"""Deploying a mapping version behind a facade: gated by its sample tests, indexed from the stored records, rolled
back to the previous version, and a mapping that serves a facade cannot be deleted."""

from __future__ import annotations

import pytest

from mappings import actions
from mappings.errors import StudioError
from mappings.jobs.indexing import index_deployment_direct
from mappings.models import AuditAction, AuditEvent, Deployment, FacadeResource, TestRun
from tests.facade.conftest import PATIENT

# Transactional: a deploy indexes once its transaction commits, as in production.
pytestmark = pytest.mark.django_db(transaction=True)


def families(deployment) -> set[str]:
    return {row.content["name"][0]["family"] for row in FacadeResource.objects.filter(deployment=deployment)}


def test_it_indexes_what_the_version_makes_with_the_newest_record_winning_for_one_id(served) -> None:
    deployment = actions.do_deploy(served["binding"], acting_user=served["author"], version=served["v1"])
    # Both records describe the same patient (the same business key, so the same fhir_id): r2 came later and wins.
    assert (deployment.indexed, families(deployment)) == (1, {"Jones"})
    assert deployment.index_errors == []


def test_it_refuses_to_deploy_a_version_whose_samples_fail(served) -> None:
    mapping, author = served["mapping"], served["author"]
    sample = mapping.samples.get()
    actions.do_update_sample(sample, acting_user=author, assertions=["Patient.gender = 'female'"])
    with pytest.raises(StudioError) as refused:
        actions.do_deploy(served["binding"], acting_user=author, version=served["v1"])
    assert refused.value.code == "tests_failing" and refused.value.status_code == 409
    assert refused.value.details["failing"] == [sample.name]
    assert not served["binding"].deployments.exists()
    # The refused deploy's run is kept, as a deploy run, and the refusal is in the audit log.
    run = TestRun.objects.get(pk=refused.value.details["test_run"])
    assert (run.trigger, run.version, run.failed) == ("deploy", served["v1"], 1)
    refusal = AuditEvent.objects.get(action=AuditAction.DEPLOY_REFUSED)
    assert refusal.after == {"version": 1, "test_run": run.pk, "failed": 1}


def test_it_rolls_back_to_the_previous_version_and_reindexes(served) -> None:
    author, mapping = served["author"], served["mapping"]
    actions.do_deploy(served["binding"], acting_user=author, version=served["v1"])
    mapping.refresh_from_db()
    changed = mapping.draft.template.replace('"active": true', '"active": false')
    actions.do_save_draft(mapping, acting_user=author, template=changed, expected_revision=mapping.draft.revision)
    for sample in mapping.samples.all():  # the change is intended: update the expectations with it
        actions.do_update_sample(sample, acting_user=author, expected=None, assertions=["Patient.active = false"])
    v2 = actions.do_publish_version(mapping, acting_user=author, message="inactive")
    live = actions.do_deploy(served["binding"], acting_user=author, version=v2)
    assert {row.content["active"] for row in FacadeResource.objects.filter(deployment=live)} == {False}

    back = actions.do_rollback(served["binding"], acting_user=author)
    assert back.version == served["v1"] and back.rollback_of == live
    assert not FacadeResource.objects.filter(deployment=live).exists()  # only the live deployment is indexed
    assert {row.content["active"] for row in FacadeResource.objects.filter(deployment=back)} == {True}


def test_it_has_nothing_to_roll_back_to_after_one_deployment(served) -> None:
    actions.do_deploy(served["binding"], acting_user=served["author"], version=served["v1"])
    with pytest.raises(StudioError) as refused:
        actions.do_rollback(served["binding"], acting_user=served["author"])
    assert refused.value.code == "invalid"


def test_it_refuses_to_delete_a_mapping_that_serves_a_facade(served, api) -> None:
    response = api["author"].delete("/api/mappings/json-patient/")
    assert (response.status_code, response.json()["code"]) == (409, "deployed")
    assert "clinic/Patient" in response.json()["message"]


def test_it_replaces_a_record_sent_again_with_the_same_key(served) -> None:
    counts = actions.do_upload_records(served["source"], acting_user=served["author"], records=[("r1", "{}")])
    assert counts == {"created": 0, "replaced": 1, "reindexed": []}
    assert served["source"].records.get(key="r1").payload == "{}"


def test_a_paused_facade_answers_503_and_a_deploy_is_served_at_once(served, client) -> None:
    author = served["author"]
    assert client.get("/fhir/clinic/Patient").status_code == 404  # bound, not deployed: not served yet
    actions.do_deploy(served["binding"], acting_user=author, version=served["v1"])
    assert client.get("/fhir/clinic/Patient").json()["total"] == 1
    actions.do_update_facade(served["binding"].facade, acting_user=author, status="paused")
    paused = client.get("/fhir/clinic/Patient")
    assert paused.status_code == 503 and paused.json()["resourceType"] == "OperationOutcome"


def test_a_facade_marked_smart_protected_refuses_a_request_without_a_token(served, client) -> None:
    actions.do_deploy(served["binding"], acting_user=served["author"], version=served["v1"])
    facade = served["binding"].facade
    facade.auth_mode = "smart-backend"
    facade.save(update_fields=["auth_mode"])  # as an admin might in the database: read on every request
    assert client.get("/fhir/clinic/metadata").status_code == 200  # discovery stays open (tests/security)
    refused = client.get("/fhir/clinic/Patient")
    assert refused.status_code == 401 and refused.json()["issue"][0]["code"] == "security"


def test_validate_checks_the_profile_asked_for_core_or_uploaded_and_refuses_an_unknown_one(served, client) -> None:
    def validate(profile: str, resource: dict) -> tuple[int, list[dict]]:
        answer = client.post(
            f"/fhir/clinic/Patient/$validate?profile={profile}", resource, content_type="application/fhir+json"
        )
        return answer.status_code, answer.json()["issue"]

    status, issues = validate(
        "http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient", {"resourceType": "Patient"}
    )
    assert status == 200
    assert {"Patient.identifier", "Patient.name", "Patient.gender"} <= {
        i["expression"][0] for i in issues if i["severity"] == "error"
    }
    status, issues = validate("http://example.org/fhir/StructureDefinition/born", {"resourceType": "Patient"})
    assert status == 400 and "Unknown profile" in issues[0]["diagnostics"] and issues[0]["expression"] == ["profile"]
    actions.do_upload_definition(
        acting_user=served["author"],
        resource={
            "resourceType": "StructureDefinition",
            "url": "http://example.org/fhir/StructureDefinition/born",
            "type": "Patient",
            "derivation": "constraint",
            "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Patient",
            "differential": {"element": [{"id": "Patient.birthDate", "path": "Patient.birthDate", "min": 1}]},
        },
    )
    parameters = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "resource", "resource": {"resourceType": "Patient"}},
            {"name": "profile", "valueCanonical": "http://example.org/fhir/StructureDefinition/born"},
        ],
    }
    answer = client.post("/fhir/clinic/Patient/$validate", parameters, content_type="application/fhir+json")
    assert [i["expression"] for i in answer.json()["issue"] if i["severity"] == "error"] == [["Patient.birthDate"]]
    status, issues = validate(
        "http://example.org/fhir/StructureDefinition/born", {"resourceType": "Patient", "birthDate": "1970"}
    )
    assert status == 200 and [i["severity"] for i in issues] == ["information"]


def test_the_mapping_list_shows_which_version_a_facade_serves(served, api) -> None:
    assert api["viewer"].get("/api/mappings/json-patient/").json()["deployed_version"] is None
    actions.do_deploy(served["binding"], acting_user=served["author"], version=served["v1"])
    listed = api["viewer"].get("/api/mappings/").json()["results"][0]
    assert listed["deployed_version"] == 1
    assert api["viewer"].get("/api/mappings/json-patient/").json()["deployed_version"] == 1


def test_a_deployment_superseded_while_indexing_never_goes_live(served) -> None:
    author, binding = served["author"], served["binding"]
    first = actions.do_deploy(binding, acting_user=author, version=served["v1"])
    # A deploy whose index is still being built when a newer one is made (as a slow worker would leave it) …
    stale = Deployment.objects.create(binding=binding, version=served["v1"], deployed_by=author)
    newest = actions.do_deploy(binding, acting_user=author, version=served["v1"])
    stale.refresh_from_db()
    assert stale.superseded and not stale.ready
    # … is discarded when its indexing finishes late, and the newest stays live.
    index_deployment_direct(stale.pk)
    assert list(Deployment.objects.live().filter(binding=binding)) == [newest]
    first.refresh_from_db()
    assert (first.ready, first.superseded) == (False, True)
    assert AuditEvent.objects.filter(action=AuditAction.INDEXED, object_id=str(newest.pk)).exists()


def test_indexing_reads_records_in_the_source_s_format_not_the_mapping_s(served) -> None:
    author = served["author"]
    hl7 = actions.do_create_data_source(acting_user=author, name="hl7-feed", source_format="hl7v2")
    actions.do_upload_records(hl7, acting_user=author, records=[("r1", PATIENT)])
    binding = actions.do_bind_resource(
        served["binding"].facade, acting_user=author, resource_type="Patient", mapping=served["mapping"], source=hl7
    )
    deployment = actions.do_deploy(binding, acting_user=author, version=served["v1"])
    # The JSON record read as the HL7 v2 the source says it holds: no MSH segment.
    assert deployment.indexed == 0
    assert [error["code"] for error in deployment.index_errors] == ["FS-SRC-010"]


def test_indexing_a_deployment_deleted_before_its_job_ran_does_nothing(served) -> None:
    deployment = actions.do_deploy(served["binding"], acting_user=served["author"], version=served["v1"])
    actions.do_delete_binding(served["binding"], acting_user=served["author"])
    assert index_deployment_direct(deployment.pk) is None
    assert not Deployment.objects.filter(pk=deployment.pk).exists()
