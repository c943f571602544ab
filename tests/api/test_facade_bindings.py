"""A facade binding as the API shows it: `live` is the deployment that serves (ready), `pending` the newest one still
indexing; a mapping's `deployed_version` counts only deployments that serve."""

import pytest

from mappings import actions
from mappings.models import Deployment

pytestmark = pytest.mark.django_db


@pytest.fixture
def binding(users, json_patient):
    version = actions.do_publish_version(json_patient, acting_user=users["author"], message="v1")
    facade = actions.do_create_facade(acting_user=users["author"], slug="clinic", title="Clinic")
    source = actions.do_create_data_source(acting_user=users["author"], name="regs", source_format="json")
    binding = actions.do_bind_resource(
        facade, acting_user=users["author"], resource_type="Patient", mapping=json_patient, source=source
    )
    binding.version = version
    return binding


def shown(api) -> dict:
    facade = api["viewer"].get("/api/facades/clinic/").json()
    (row,) = facade["bindings"]
    assert api["viewer"].get("/api/facades/clinic/bindings/").json() == [row]
    return row


def test_it_shows_neither_before_the_first_deploy(api, binding) -> None:
    row = shown(api)
    assert (row["live"], row["pending"]) == (None, None)


def test_it_shows_a_deployment_still_indexing_as_pending_not_live(api, binding, users) -> None:
    indexing = Deployment.objects.create(binding=binding, version=binding.version, deployed_by=users["author"])
    row = shown(api)
    assert row["live"] is None
    assert (row["pending"]["id"], row["pending"]["ready"]) == (indexing.id, False)
    assert api["viewer"].get("/api/mappings/json-patient/").json()["deployed_version"] is None


def test_it_keeps_the_serving_deployment_live_while_a_newer_one_indexes(api, binding, users) -> None:
    serving = Deployment.objects.create(binding=binding, version=binding.version, ready=True, indexed=1)
    newer = Deployment.objects.create(binding=binding, version=binding.version, deployed_by=users["author"])
    row = shown(api)
    assert (row["live"]["id"], row["live"]["ready"], row["live"]["version"]) == (serving.id, True, 1)
    assert row["pending"]["id"] == newer.id
    assert api["viewer"].get("/api/mappings/json-patient/").json()["deployed_version"] == 1
    assert api["viewer"].get("/api/mappings/").json()["results"][0]["deployed_version"] == 1
