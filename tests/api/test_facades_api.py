"""/api/facades/ and /api/sources/: build a facade from the API alone — source, records, binding, deploy, history,
rollback — with the role checks and errors of the rest of the studio API."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from mappings import actions, models
from mappings.errors import StudioError
from mappings.facade import request_log
from mappings.fhir_types import R4_RESOURCE_TYPES
from tests.api.conftest import ROOT

pytestmark = pytest.mark.django_db(transaction=True)  # a deploy indexes once it commits
PATIENT = (ROOT / "examples/json-patient/samples/example-patient.json").read_text()


@pytest.fixture(autouse=True)
def _no_earlier_requests():
    request_log.discard()  # metrics count this database's requests only


@pytest.fixture
def published(users, json_patient):
    actions.do_publish_version(json_patient, acting_user=users["author"], message="v1")
    json_patient.refresh_from_db()  # latest_version
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


def test_it_searches_sources_by_name_or_description_and_kind(api, users) -> None:
    author = users["author"]
    actions.do_create_data_source(acting_user=author, name="registrations", source_format="json")
    actions.do_create_data_source(acting_user=author, name="lab", source_format="hl7v2", description="ORU feed")
    config = {"base_url": "http://lis.example", "read_path": "/p/{id}", "search_path": "/p?name={name}"}
    actions.do_create_data_source(acting_user=author, name="lis", source_format="json", kind="http", config=config)

    def names(**query) -> list[str]:
        response = api["viewer"].get("/api/sources/", query)
        assert response.status_code == 200
        return [row["name"] for row in response.json()["results"]]

    assert names() == ["lab", "lis", "registrations"]
    assert names(search="REGIS") == ["registrations"]
    assert names(search="oru") == ["lab"]  # the description too
    assert names(kind="stored") == ["lab", "registrations"]
    assert names(kind="http", search="l") == ["lis"]
    refused = api["viewer"].get("/api/sources/", {"kind": "ftp"})
    assert (refused.status_code, refused.json()["code"]) == (400, "invalid")


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


# --- FHIR R4 resource types ------------------------------------------------------------------------------------------


@pytest.fixture
def clinic(users, published):
    """The clinic facade serving Patient from a stored source of one record through json-patient v1 (deployed)."""
    author = users["author"]
    facade = actions.do_create_facade(acting_user=author, slug="clinic", title="Clinic")
    source = actions.do_create_data_source(acting_user=author, name="regs", source_format="json")
    actions.do_upload_records(source, acting_user=author, records=[("r1", PATIENT)])
    binding = actions.do_bind_resource(
        facade, acting_user=author, resource_type="Patient", mapping=published, source=source
    )
    actions.do_deploy(binding, acting_user=author, version=published.latest_version)
    return {"facade": facade, "source": source, "binding": binding}


def test_it_refuses_a_resource_type_fhir_r4_does_not_have_and_suggests_the_nearest(api, users, clinic) -> None:
    body = {"mapping": "json-patient", "source": "regs"}
    for typed, meant in (("Observaton", "Observation"), ("patient", "Patient"), ("Frobnicator", None)):
        response = api["author"].post("/api/facades/clinic/bindings/", {**body, "resource_type": typed}, format="json")
        assert (response.status_code, response.json()["code"]) == (400, "invalid"), typed
        (message,) = response.json()["details"]["resource_type"]
        assert f"'{typed}' is not a FHIR R4 resource type." in message
        assert (f"Did you mean {meant}?" in message) if meant else "Did you mean" not in message
    assert not models.ResourceBinding.objects.exclude(resource_type="Patient").exists()
    # The action refuses it too, whoever calls it (the admin, the demo loader).
    with pytest.raises(StudioError) as refused:
        actions.do_bind_resource(
            clinic["facade"],
            acting_user=users["author"],
            resource_type="Observaton",
            mapping=clinic["binding"].mapping,
            source=clinic["source"],
        )
    assert refused.value.code == "invalid"
    types = api["viewer"].get("/api/resource-types/").json()
    assert types["fhir_version"] == "4.0.1" and len(types["resource_types"]) == 146
    assert {"Observation", "Patient", "MedicinalProductUndesirableEffect"} <= set(types["resource_types"])
    assert "Observaton" not in types["resource_types"]
    assert "Observaton" not in api["anonymous"].get("/fhir/clinic/metadata").content.decode()


# --- deletes ---------------------------------------------------------------------------------------------------------


def test_it_deletes_a_binding_and_every_worker_stops_serving_the_type(api, users, clinic) -> None:
    fhir = api["anonymous"]
    assert fhir.get("/fhir/clinic/Patient").json()["total"] == 1
    generation = models.Facade.objects.get(slug="clinic").generation
    assert api["viewer"].delete("/api/facades/clinic/bindings/Patient").status_code == 403
    assert api["author"].delete("/api/facades/clinic/bindings/Encounter").status_code == 404

    assert api["author"].delete("/api/facades/clinic/bindings/Patient").status_code == 204
    assert models.Facade.objects.get(slug="clinic").generation > generation  # seen by every worker's cache
    gone = fhir.get("/fhir/clinic/Patient")
    assert gone.status_code == 404 and "does not serve Patient" in gone.content.decode()
    assert '"Patient"' not in fhir.get("/fhir/clinic/metadata").content.decode()
    assert not models.Deployment.objects.filter(binding__facade__slug="clinic").exists()
    assert not models.FacadeResource.objects.exists()
    event = models.AuditEvent.objects.get(action="facade.binding_deleted")
    assert event.actor == users["author"]
    assert event.before == {
        "facade": "clinic",
        "resource_type": "Patient",
        "mapping": "json-patient",
        "source": "regs",
        "live_version": 1,
        "deployments": 1,
    }
    assert api["viewer"].get("/api/facades/clinic/").json()["bindings"] == []
    assert models.DataSource.objects.filter(name="regs").exists()  # the source and mapping stay


def test_it_refuses_to_delete_a_source_a_binding_reads_and_names_the_bindings(api, users, clinic) -> None:
    refused = api["author"].delete("/api/sources/regs/")
    assert (refused.status_code, refused.json()["code"]) == (409, "in_use")
    assert refused.json()["details"] == {"bindings": ["clinic/Patient"]}
    assert "clinic/Patient" in refused.json()["message"]
    assert api["viewer"].get("/api/sources/regs/").json()["used_by"] == ["clinic/Patient"]
    assert api["viewer"].delete("/api/sources/regs/").status_code == 403

    api["author"].delete("/api/facades/clinic/bindings/Patient")
    assert api["author"].delete("/api/sources/regs/").status_code == 204
    assert not models.DataSource.objects.filter(name="regs").exists()
    assert not models.SourceRecord.objects.exists()
    event = models.AuditEvent.objects.get(action="source.deleted")
    assert (event.actor, event.before["records"]) == (users["author"], 1)
    assert api["author"].delete("/api/sources/regs/").status_code == 404


def test_it_deletes_a_facade_with_its_bindings_deployments_and_request_log(api, users, clinic) -> None:
    api["anonymous"].get("/fhir/clinic/Patient")
    assert api["viewer"].get("/api/facades/clinic/metrics").json()["requests"] == 1
    assert api["viewer"].delete("/api/facades/clinic/").status_code == 403

    assert api["author"].delete("/api/facades/clinic/").status_code == 204
    assert api["anonymous"].get("/fhir/clinic/metadata").status_code == 404
    assert api["viewer"].get("/api/facades/clinic/").status_code == 404
    assert not models.ResourceBinding.objects.exists() and not models.Deployment.objects.exists()
    assert not models.FacadeRequest.objects.filter(facade_slug="clinic").exists()
    assert models.DataSource.objects.filter(name="regs").exists()
    event = models.AuditEvent.objects.get(action="facade.deleted")
    assert event.actor == users["author"]
    assert event.before["bindings"] == ["Patient ← json-patient from regs"]
    # A new facade of the same slug starts without the old one's requests (the 404 above is logged, as any request).
    actions.do_create_facade(acting_user=users["author"], slug="clinic", title="Clinic again")
    assert "Patient" not in api["viewer"].get("/api/facades/clinic/metrics").json()["by_type"]


# --- what the facade page is told ------------------------------------------------------------------------------------


def test_it_names_the_version_a_rollback_goes_back_to(api, users, clinic, published) -> None:
    assert api["viewer"].get("/api/facades/clinic/").json()["bindings"][0]["rollback_to"] is None
    v2 = actions.do_publish_version(published, acting_user=users["author"], message="v2")
    deployed = api["author"].post(
        "/api/facades/clinic/deployments/", {"resource_type": "Patient", "version": v2.number}, format="json"
    )
    assert deployed.status_code == 201
    (row,) = api["viewer"].get("/api/facades/clinic/").json()["bindings"]
    assert (row["live"]["version"], row["rollback_to"], row["mapping_title"]) == (2, 1, "JSON patient → Patient")
    rolled = api["author"].post("/api/facades/clinic/deployments/rollback", {"resource_type": "Patient"}, format="json")
    assert rolled.json()["version"] == row["rollback_to"]


def test_it_lists_the_bindings_a_mapping_serves_with_their_live_versions(api, users, clinic) -> None:
    other = actions.do_create_facade(acting_user=users["author"], slug="ward", title="Ward")
    actions.do_bind_resource(
        other,
        acting_user=users["author"],
        resource_type="Patient",
        mapping=clinic["binding"].mapping,
        source=clinic["source"],
    )
    rows = api["viewer"].get("/api/bindings/?mapping=json-patient").json()["results"]
    assert [(row["facade"], row["resource_type"], row["live"] and row["live"]["version"]) for row in rows] == [
        ("clinic", "Patient", 1),
        ("ward", "Patient", None),
    ]
    assert api["viewer"].get("/api/bindings/?mapping=hl7v2-adt-a01").json()["results"] == []


def test_it_searches_facades_and_pages_through_them(api, users) -> None:
    for slug, title in (("clinic", "Outpatient clinic"), ("ward", "Ward feed"), ("lab", "Lab results")):
        actions.do_create_facade(acting_user=users["author"], slug=slug, title=title)
    viewer = api["viewer"]
    assert [row["slug"] for row in viewer.get("/api/facades/?search=CLIN").json()["results"]] == ["clinic"]
    assert [row["slug"] for row in viewer.get("/api/facades/?search=feed").json()["results"]] == ["ward"]
    assert viewer.get("/api/facades/?search=nothing").json()["count"] == 0
    first = viewer.get("/api/facades/?page_size=2").json()
    assert (first["count"], [row["slug"] for row in first["results"]]) == (3, ["clinic", "lab"])
    second = viewer.get(first["next"]).json()
    assert [row["slug"] for row in second["results"]] == ["ward"] and second["next"] is None


def test_it_splits_facade_errors_by_status_class(api, clinic) -> None:
    now = timezone.now()
    for status in (200, 200, 404, 400, 500):
        models.FacadeRequest.objects.create(
            facade_slug="clinic",
            resource_type="Patient",
            interaction="read",
            status=status,
            latency_ms=1,
            created_at=now,
        )
    metrics = api["viewer"].get("/api/facades/clinic/metrics").json()
    assert (metrics["errors"], metrics["client_errors"], metrics["server_errors"]) == (3, 2, 1)
    assert metrics["by_status_class"] == {"2xx": 2, "4xx": 2, "5xx": 1}
    (minute,) = metrics["per_minute"]
    assert (minute["requests"], minute["client_errors"], minute["server_errors"]) == (5, 2, 1)
    assert metrics["by_type"]["Patient"]["client_errors"] == 2


# --- query counts ---------------------------------------------------------------------------------------------------


def _queries(client, path: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        assert client.get(path).status_code == 200
    return len(captured)


def _add_facades(users, mapping, numbers: range) -> None:
    """Facades f<number>, each with its own source and two bound types, one live and one indexing deployment each."""
    author = users["author"]
    for number in numbers:
        facade = actions.do_create_facade(acting_user=author, slug=f"f{number:02}", title=f"Facade {number}")
        source = actions.do_create_data_source(acting_user=author, name=f"src{number:02}", source_format="json")
        for resource_type in ("Patient", "Person"):
            binding = actions.do_bind_resource(
                facade, acting_user=author, resource_type=resource_type, mapping=mapping, source=source
            )
            models.Deployment.objects.create(binding=binding, version=mapping.latest_version, ready=True, indexed=1)
            models.Deployment.objects.create(binding=binding, version=mapping.latest_version)  # indexing


@pytest.mark.parametrize("path", ["/api/facades/", "/api/bindings/", "/api/sources/"])
def test_it_answers_facade_lists_in_queries_that_do_not_grow_with_the_rows(api, users, published, path) -> None:
    _add_facades(users, published, range(1))
    one = _queries(api["viewer"], path)
    _add_facades(users, published, range(1, 20))
    assert _queries(api["viewer"], path) == one


def test_it_answers_a_facade_in_queries_that_do_not_grow_with_its_bindings(api, users, published) -> None:
    _add_facades(users, published, range(1))
    one = _queries(api["viewer"], "/api/facades/f00/")
    facade, source = models.Facade.objects.get(slug="f00"), models.DataSource.objects.get(name="src00")
    for resource_type in R4_RESOURCE_TYPES[:20]:
        binding = actions.do_bind_resource(
            facade, acting_user=users["author"], resource_type=resource_type, mapping=published, source=source
        )
        models.Deployment.objects.create(binding=binding, version=published.latest_version, ready=True)
    assert _queries(api["viewer"], "/api/facades/f00/") == one
    assert _queries(api["viewer"], "/api/facades/f00/bindings/") == _queries(api["viewer"], "/api/facades/f00/") - 1


def test_it_refuses_a_nul_character_anywhere_in_a_source_s_settings(api) -> None:
    # PostgreSQL's jsonb holds no U+0000: a 400 naming the field, never a 500 from the INSERT
    for config in ({"\x00key": 1}, {"headers": {"X-A": "a\x00b"}}, {"search": {"family": ["\x00"]}}):
        sent = {"name": "nul", "source_format": "json", "config": config}
        refused = api["author"].post("/api/sources/", sent, format="json")
        assert refused.status_code == 400, refused.content
        assert refused.json()["code"] == "invalid" and "config" in refused.json()["details"]
