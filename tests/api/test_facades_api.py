"""/api/facades/ and /api/sources/: build a facade from the API alone — source, records, binding, deploy, history,
rollback — with the role checks and errors of the rest of the studio API."""

import pytest

from mappings import actions
from tests.api.conftest import ROOT

pytestmark = pytest.mark.django_db(transaction=True)  # a deploy indexes once it commits
PATIENT = (ROOT / "examples/json-patient/samples/example-patient.json").read_text()


@pytest.fixture
def published(users, json_patient):
    actions.do_publish_version(json_patient, acting_user=users["author"], message="v1")
    return json_patient


def test_it_builds_and_deploys_a_facade_through_the_api(api, published) -> None:
    author = api["author"]
    assert author.post("/api/facades/", {"slug": "clinic", "title": "Clinic"}, format="json").status_code == 201
    source = author.post("/api/sources/", {"name": "registrations", "source_format": "json"}, format="json")
    assert source.status_code == 201
    uploaded = author.post(
        "/api/sources/registrations/records", {"records": [{"key": "r1", "payload": PATIENT}]}, format="json"
    )
    assert uploaded.json() == {"created": 1, "replaced": 0, "reindexed": []}
    bound = author.post(
        "/api/facades/clinic/bindings/",
        {"resource_type": "Patient", "mapping": "json-patient", "source": "registrations"},
        format="json",
    )
    assert bound.status_code == 200 and bound.json()["live"] is None
    deployed = author.post(
        "/api/facades/clinic/deployments/", {"resource_type": "Patient", "version": 1}, format="json"
    )
    assert deployed.status_code == 201
    assert (deployed.json()["version"], deployed.json()["indexed"]) == (1, 1)

    facade = api["viewer"].get("/api/facades/clinic/").json()
    assert facade["base_url"].endswith("/fhir/clinic/")
    assert facade["bindings"][0]["live"]["version"] == 1
    history = api["viewer"].get("/api/facades/clinic/deployments/").json()["results"]
    assert [row["version"] for row in history] == [1]

    again = author.post(
        "/api/sources/registrations/records", {"records": [{"key": "r2", "payload": PATIENT}]}, format="json"
    )
    assert again.json()["reindexed"] == ["clinic/Patient"]


def test_it_refuses_a_deploy_while_the_samples_fail(api, users, published) -> None:
    facade = actions.do_create_facade(acting_user=users["author"], slug="clinic", title="Clinic")
    source = actions.do_create_data_source(acting_user=users["author"], name="regs", source_format="json")
    actions.do_bind_resource(
        facade, acting_user=users["author"], resource_type="Patient", mapping=published, source=source
    )
    sample = published.samples.get()
    actions.do_update_sample(sample, acting_user=users["author"], assertions=["Patient.active = false"])
    response = api["author"].post(
        "/api/facades/clinic/deployments/", {"resource_type": "Patient", "version": 1}, format="json"
    )
    assert (response.status_code, response.json()["code"]) == (409, "tests_failing")
    assert response.json()["details"]["failing"] == [sample.name]
    rollback = api["author"].post(
        "/api/facades/clinic/deployments/rollback", {"resource_type": "Patient"}, format="json"
    )
    assert (rollback.status_code, rollback.json()["code"]) == (400, "invalid")


def test_it_keeps_facades_to_their_roles(api, users) -> None:
    actions.do_create_facade(acting_user=users["author"], slug="clinic", title="Clinic")
    assert api["anonymous"].get("/api/facades/").status_code == 401
    assert api["norole"].get("/api/facades/").status_code == 403
    assert api["viewer"].get("/api/facades/").status_code == 200
    assert api["viewer"].post("/api/facades/", {"slug": "x", "title": "X"}, format="json").status_code == 403
    assert api["viewer"].patch("/api/facades/clinic/", {"status": "paused"}, format="json").status_code == 403
    assert api["author"].patch("/api/facades/clinic/", {"status": "paused"}, format="json").json()["status"] == "paused"
    assert api["author"].post("/api/facades/", {"slug": "clinic", "title": "X"}, format="json").status_code == 409
    unknown = api["author"].post(
        "/api/facades/nope/deployments/", {"resource_type": "Patient", "version": 1}, format="json"
    )
    assert (unknown.status_code, unknown.json()["code"]) == (404, "not_found")
    bad = api["author"].post("/api/facades/clinic/bindings/", {"resource_type": "patient"}, format="json")
    assert (bad.status_code, bad.json()["code"]) == (400, "invalid")


def test_it_creates_http_sources_with_their_config_checked(api) -> None:
    config = {"base_url": "http://legacy.example", "read_path": "/p/{id}", "search_path": "/p?name={name}"}
    created = api["author"].post(
        "/api/sources/", {"name": "lis", "source_format": "json", "kind": "http", "config": config}, format="json"
    )
    assert created.status_code == 201 and created.json()["config"] == config
    incomplete = api["author"].post(
        "/api/sources/", {"name": "lis2", "source_format": "json", "kind": "http", "config": {}}, format="json"
    )
    assert (incomplete.status_code, incomplete.json()["code"]) == (400, "invalid")
    unknown_db = api["author"].post(
        "/api/sources/",
        {
            "name": "db",
            "source_format": "json",
            "kind": "sql",
            "config": {"database": "nope", "read_query": "x", "search_query": "y"},
        },
        format="json",
    )
    assert unknown_db.status_code == 400


def test_it_never_shows_source_credentials(api) -> None:
    config = {
        "base_url": "http://x",
        "read_path": "/p/{id}",
        "search_path": "/p",
        "auth": {"type": "bearer", "token": "s3cret"},
    }
    body = (
        api["author"]
        .post(
            "/api/sources/", {"name": "lis", "source_format": "json", "kind": "http", "config": config}, format="json"
        )
        .json()
    )
    assert body["config"]["auth"] == {"type": "bearer", "token": "***"}
    assert "s3cret" not in api["viewer"].get("/api/sources/").content.decode()


def test_it_lists_convert_templates_for_a_facade_and_refuses_unknown_mappings(api, published) -> None:
    author = api["author"]
    created = author.post(
        "/api/facades/",
        {"slug": "clinic", "title": "Clinic", "convert_templates": {"ExamplePatient": "json-patient"}},
        format="json",
    )
    assert created.status_code == 201 and created.json()["convert_templates"] == {"ExamplePatient": "json-patient"}
    converted = api["anonymous"].post(
        "/fhir/clinic/$convert-data",
        {
            "resourceType": "Parameters",
            "parameter": [
                {"name": "inputData", "valueString": PATIENT},
                {"name": "inputDataType", "valueString": "Json"},
                {"name": "rootTemplate", "valueString": "ExamplePatient"},
            ],
        },
        format="json",
    )
    assert converted.status_code == 200 and converted.json()["resourceType"] == "Patient"

    refused = author.patch("/api/facades/clinic/", {"convert_templates": {"X": "no-such-mapping"}}, format="json")
    assert (refused.status_code, refused.json()["code"]) == (400, "invalid")
    assert refused.json()["details"] == {"convert_templates": ["no-such-mapping"]}
    cleared = author.patch("/api/facades/clinic/", {"convert_templates": {}}, format="json")
    assert cleared.json()["convert_templates"] == {}
    gone = api["anonymous"].post(
        "/fhir/clinic/$convert-data",
        {
            "resourceType": "Parameters",
            "parameter": [
                {"name": "inputData", "valueString": PATIENT},
                {"name": "rootTemplate", "valueString": "ExamplePatient"},
            ],
        },
        format="json",
    )
    assert gone.status_code == 404  # the same worker sees the change at once
