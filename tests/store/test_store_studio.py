"""The studio side of a FHIR store: a store is a data source of kind `fhir-store` (the sources API), a facade serves
it through bindings (made by do_create_store_facade, or bound and deployed through the facades API), studio-side
actions are audited while FHIR clients' writes are not, and reads and searches cost a fixed number of queries."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from mappings import caches
from mappings.actions.store import Change, do_store_changes, targets_of
from mappings.actions.store_facades import do_bind_store, store_version
from mappings.errors import StudioError
from mappings.fhir_types import R4_RESOURCE_TYPES
from mappings.models import AuditAction, AuditEvent, DataSource, Facade, StoreVersion
from mappings.security.scopes import parse_scopes
from mappings.security.tokens import issue_token
from tests.store.conftest import make_store_facade

FHIR_JSON = "application/fhir+json"
PATIENT = {"resourceType": "Patient", "name": [{"family": "Silva"}], "gender": "female"}


def test_it_creates_a_store_through_the_sources_api(api):
    response = api["author"].post(
        "/api/sources/", {"name": "ward-store", "kind": "fhir-store", "source_format": "fhir"}, format="json"
    )
    assert response.status_code == 201, response.content
    assert response.json()["kind"] == "fhir-store"
    assert DataSource.objects.get(name="ward-store").kind == DataSource.Kind.FHIR_STORE
    listed = api["viewer"].get("/api/sources/?kind=fhir-store").json()["results"]
    assert [source["name"] for source in listed] == ["ward-store"]


def test_a_type_bound_and_deployed_through_the_api_serves_what_the_store_holds(api, store, users):
    written = Client().post(f"{store['base']}/Patient", json.dumps(PATIENT), content_type=FHIR_JSON).json()
    author = api["author"]
    assert author.post("/api/facades/", {"slug": "ward", "title": "Ward"}, format="json").status_code == 201
    binding = {"resource_type": "Patient", "mapping": "fhir-store", "source": "store-data"}
    assert author.post("/api/facades/ward/bindings/", binding, format="json").status_code in (200, 201)
    deployed = author.post("/api/facades/ward/deployments/", {"resource_type": "Patient", "version": 1}, format="json")
    assert deployed.status_code == 201, deployed.content
    caches.clear()
    read = Client().get(f"/fhir/ward/Patient/{written['id']}")
    assert read.status_code == 200
    assert read.json() == written
    # a write through one facade is served by every facade reading the store
    changed = {**written, "gender": "other"}
    Client().put(f"/fhir/ward/Patient/{written['id']}", json.dumps(changed), content_type=FHIR_JSON)
    assert Client().get(f"{store['base']}/Patient/{written['id']}").json()["gender"] == "other"


def test_it_refuses_to_upload_records_to_a_store(api, store):
    records = {"records": [{"key": "r1", "payload": json.dumps(PATIENT)}]}
    response = api["author"].post("/api/sources/store-data/records", records, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid"


def test_it_binds_only_a_store_source(store, users):
    other = DataSource.objects.create(name="registrations", kind=DataSource.Kind.STORED, source_format="json")
    with pytest.raises(StudioError) as refused:
        do_bind_store(store["facade"], acting_user=users["admin"], source=other, version=store_version())
    assert refused.value.code == "invalid"


def test_it_audits_making_a_store_facade_but_not_fhir_writes(store):
    made = set(AuditEvent.objects.values_list("action", flat=True))
    assert {AuditAction.FACADE_CREATED, AuditAction.SOURCE_CREATED, AuditAction.BINDING_SAVED} <= made
    before = AuditEvent.objects.count()
    client = Client()
    for _ in range(3):
        client.post(f"{store['base']}/Patient", json.dumps(PATIENT), content_type=FHIR_JSON)
    assert StoreVersion.objects.count() == 3
    assert AuditEvent.objects.count() == before


@pytest.mark.parametrize("rows", [1, 20])
def test_a_store_search_and_read_cost_the_same_queries_for_1_and_20_rows(
    store, rows, django_assert_num_queries, settings
):
    client = Client()
    ids = [
        client.post(f"{store['base']}/Patient", json.dumps(PATIENT), content_type=FHIR_JSON).json()["id"]
        for _ in range(rows)
    ]
    client.get(f"{store['base']}/Patient/{ids[0]}")  # this worker learns where the facade serves Patient from
    with django_assert_num_queries(1):  # the facade's state and the resource, in one statement
        assert client.get(f"{store['base']}/Patient/{ids[-1]}").status_code == 200
    # facade state, the count, the page; on PostgreSQL a savepoint, SET LOCAL and release around them (latency_plans)
    with django_assert_num_queries(6 if settings.DATABASES["default"]["ENGINE"].endswith("postgresql") else 3):
        bundle = client.get(f"{store['base']}/Patient?family=silva&_count=50").json()
    assert bundle["total"] == rows


def test_a_store_facade_serves_every_r4_type_from_its_store(store):
    served = Facade.objects.get(slug="store").bindings.filter(source__name="store-data", deployments__ready=True)
    assert sorted(served.values_list("resource_type", flat=True)) == sorted(R4_RESOURCE_TYPES)


@pytest.mark.parametrize(
    ("scopes", "create", "read", "delete"),
    [
        ("system/Patient.rs", 403, 200, 403),
        ("system/Patient.cud", 201, 403, 204),
        ("system/*.write system/*.read", 201, 200, 204),
    ],
)
def test_writes_to_a_protected_store_need_write_scopes(db, scopes, create, read, delete):
    made = make_store_facade(slug="store-smart", auth_mode=Facade.AuthMode.SMART_BACKEND, resource_types=["Patient"])
    existing = stored_patient()  # one to read and delete
    client, base = Client(), made["base"]
    bearer = {"HTTP_AUTHORIZATION": f"Bearer {issue_token('store-smart', 'client-1', parse_scopes(scopes))}"}
    assert client.post(f"{base}/Patient", json.dumps(PATIENT), content_type=FHIR_JSON).status_code == 401
    assert client.post(f"{base}/Patient", json.dumps(PATIENT), content_type=FHIR_JSON, **bearer).status_code == create
    assert client.get(f"{base}/Patient/{existing}", **bearer).status_code == read
    assert client.delete(f"{base}/Patient/{existing}", **bearer).status_code == delete


def stored_patient() -> str:
    """A Patient written to the store through the actions, as its facade writes one."""
    source = DataSource.objects.get(name="store-data")
    [done] = do_store_changes(targets_of(source.pk, ["Patient"]), [Change("POST", "Patient", resource=PATIENT)])
    return done.resource_id


def test_the_demo_command_makes_the_open_demo_store_once(db, settings):
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    settings.FHIR_STUDIO = {**settings.FHIR_STUDIO, "DEMO_PASSWORD": "pw"}
    call_command("fhirstudio", "demo", stdout=out)
    call_command("fhirstudio", "demo", stdout=out)
    assert out.getvalue().count("Created the open facade demo-store") == 1  # the second run leaves it
    facade = Facade.objects.get(slug="demo-store")
    assert facade.auth_mode == Facade.AuthMode.OPEN
    assert facade.bindings.filter(source__kind=DataSource.Kind.FHIR_STORE).count() == len(R4_RESOURCE_TYPES)
