"""Pull: a facade whose Patient source is another FHIR server (data source kind `fhir-server`, through a
connection), here the studio's own store facade on a live server. Each read and search asks the store and maps what
it answers (a tag added, the family name re-coded to upper case); a 404 stays a 404; the server down answers 502 and
too slow 504, as HTTP sources do; each resource read is in the message log; a bulk $export lists the server."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
import requests

from mappings import actions, caches, message_log
from mappings.actions.connections import do_create_connection, do_delete_connection
from mappings.errors import StudioError
from mappings.models import Connection, DataSource, ProcessedMessage
from tests.connectors.conftest import Answer

pytestmark = pytest.mark.timeout(120)
FHIR_JSON = "application/fhir+json"
TAG = {"system": "http://example.org/fhir-studio/pulled", "code": "pulled"}
TEMPLATE = """{
  "resourceType": "Patient",
  "id": {{ msg.id | tojson }},
  "meta": {"tag": [{"system": "http://example.org/fhir-studio/pulled", "code": "pulled"}]},
  "name": [{"family": {{ (msg.name[0].family | upper) | tojson }}, "given": {{ msg.name[0].given | tojson }}}],
  "gender": {{ msg.gender | tojson }},
}"""
PATIENTS = [
    {"resourceType": "Patient", "id": "ada", "name": [{"family": "Lovelace", "given": ["Ada"]}], "gender": "female"},
    {"resourceType": "Patient", "id": "alan", "name": [{"family": "Turing", "given": ["Alan"]}], "gender": "male"},
]


def pull_facade(
    users, base_url: str, *, slug: str = "pull", connection: str = "upstream", config=None, **connection_options
):
    """A facade `slug` serving Patient from the server at base_url, mapped by `pulled-{slug}`."""
    author = users["author"]
    do_create_connection(acting_user=None, name=connection, base_url=base_url, **connection_options)
    mapping = actions.do_create_mapping(
        acting_user=author, slug=f"pulled-{slug}", title="Pulled Patient", source_format="fhir", template=TEMPLATE
    )
    version = actions.do_publish_version(mapping, acting_user=author, message="v1")
    source = actions.do_create_data_source(
        acting_user=author,
        name=f"server-{slug}",
        source_format="fhir",
        kind="fhir-server",
        config={"connection": connection, "page_size": 1, **(config or {})},
    )
    facade = actions.do_create_facade(acting_user=author, slug=slug, title=slug)
    binding = actions.do_bind_resource(
        facade, acting_user=author, resource_type="Patient", mapping=mapping, source=source
    )
    actions.do_deploy(binding, acting_user=author, version=version)
    caches.clear()
    return facade


@pytest.fixture
def upstream(live_store, users, settings) -> str:
    """The store facade on the live server, holding two Patients, allowed as a connection host."""
    base = live_store["base"].replace("://localhost:", "://127.0.0.1:")
    settings.FHIR_STUDIO = {**settings.FHIR_STUDIO, "CONNECTION_ALLOWED_HOSTS": [urlsplit(base).netloc]}
    for patient in PATIENTS:
        written = requests.put(
            f"{base}/Patient/{patient['id']}", json=patient, headers={"Content-Type": FHIR_JSON}, timeout=10
        )
        assert written.status_code in (200, 201), written.text
    return base


@pytest.fixture(autouse=True)
def _empty_log(monkeypatch):
    message_log.discard()
    monkeypatch.setattr(message_log.buffer, "batch_seconds", 3600.0)  # written when the test flushes
    yield
    message_log.discard()


def test_it_reads_a_remote_resource_and_maps_it(client, users, upstream) -> None:
    pull_facade(users, upstream)
    answer = client.get("/fhir/pull/Patient/ada")
    assert answer.status_code == 200, answer.content
    patient = answer.json()
    assert patient["id"] == "ada" and patient["meta"]["tag"] == [TAG]
    assert patient["name"][0]["family"] == "LOVELACE"  # re-coded by the mapping, not as the store holds it
    message_log.flush()
    row = ProcessedMessage.objects.get()
    assert (row.channel, row.facade_slug, row.mapping_slug, row.status) == (
        "facade-read",
        "pull",
        "pulled-pull",
        "converted",
    )
    assert row.record_key == "ada"


def test_it_passes_search_parameters_and_count_through(client, users, upstream) -> None:
    pull_facade(users, upstream)
    found = client.get("/fhir/pull/Patient?family=Turing")
    assert found.status_code == 200, found.content
    entries = [entry["resource"] for entry in found.json()["entry"] if entry["resource"]["resourceType"] == "Patient"]
    assert [(patient["id"], patient["name"][0]["family"]) for patient in entries] == [("alan", "TURING")]
    assert all(patient["meta"]["tag"] == [TAG] for patient in entries)
    everyone = client.get("/fhir/pull/Patient?_count=1").json()
    assert [entry["resource"]["id"] for entry in everyone["entry"] if entry.get("search", {}).get("mode") == "match"]


def test_it_answers_404_for_a_resource_the_server_does_not_have(client, users, upstream) -> None:
    pull_facade(users, upstream)
    missing = client.get("/fhir/pull/Patient/nobody")
    assert missing.status_code == 404
    assert missing.json()["resourceType"] == "OperationOutcome"


def test_it_answers_502_when_the_server_is_down(client, users, settings, free_port) -> None:
    settings.FHIR_STUDIO = {**settings.FHIR_STUDIO, "CONNECTION_ALLOWED_HOSTS": [f"127.0.0.1:{free_port}"]}
    pull_facade(users, f"http://127.0.0.1:{free_port}/fhir", max_retries=0)
    for path in ("/fhir/pull/Patient/ada", "/fhir/pull/Patient?family=x"):
        down = client.get(path)
        assert down.status_code == 502, down.content
        outcome = down.json()
        assert outcome["resourceType"] == "OperationOutcome"
        assert "could not be reached" in outcome["issue"][0]["diagnostics"]


def test_it_answers_504_when_the_server_is_too_slow(client, users, settings, stub) -> None:
    settings.FHIR_STUDIO = {**settings.FHIR_STUDIO, "CONNECTION_ALLOWED_HOSTS": [stub.host]}
    stub.on("/fhir/Patient/ada", Answer(body=PATIENTS[0], delay_seconds=2.0))
    pull_facade(users, stub.base, max_retries=0, timeout_seconds=0.5)
    slow = client.get("/fhir/pull/Patient/ada")
    assert slow.status_code == 504, slow.content
    assert "in time" in slow.json()["issue"][0]["diagnostics"]


def test_it_refuses_a_source_naming_no_connection(client, users, upstream) -> None:
    pull_facade(users, upstream)
    source = DataSource.objects.get(name="server-pull")
    with pytest.raises(StudioError) as refused:  # the actions refuse to lose the connection ...
        actions.do_update_data_source(source, acting_user=users["author"], config={"connection": "gone"})
    assert refused.value.code == "invalid"
    with pytest.raises(StudioError) as in_use:
        do_delete_connection(Connection.objects.get(name="upstream"), acting_user=None)
    assert in_use.value.code == "in_use" and in_use.value.details == {"sources": ["server-pull"]}
    Connection.objects.filter(name="upstream").delete()  # ... a database changed behind their back is the 500 left
    caches.clear()
    refused = client.get("/fhir/pull/Patient/ada")
    assert refused.status_code == 500
    assert "no existing connection" in refused.json()["issue"][0]["diagnostics"]


def test_it_passes_only_the_parameters_the_source_names(client, users, upstream) -> None:
    pull_facade(users, upstream, config={"search": ["family"]})
    assert client.get("/fhir/pull/Patient?family=Lovelace").status_code == 200
    refused = client.get("/fhir/pull/Patient?gender=male")
    assert refused.status_code == 400
    assert "searches by family only, not gender" in refused.json()["issue"][0]["diagnostics"]


def test_it_answers_503_when_the_connections_secret_cannot_be_opened(client, users, upstream, settings) -> None:
    pull_facade(users, upstream, auth_mode="bearer", secrets={"token": "a-token"})
    settings.FHIR_STUDIO = {**settings.FHIR_STUDIO, "SECRETS_KEYS": ["a-different-key-of-32-characters!!"]}
    refused = client.get("/fhir/pull/Patient/ada")
    assert refused.status_code == 503, refused.content
    assert "FHIR_STUDIO_SECRETS_KEY" in refused.json()["issue"][0]["diagnostics"]


def test_it_refuses_a_source_that_names_an_unknown_connection(users) -> None:
    with pytest.raises(StudioError) as refused:
        actions.do_create_data_source(
            acting_user=users["author"],
            name="nowhere",
            source_format="fhir",
            kind="fhir-server",
            config={"connection": "no-such-connection"},
        )
    assert refused.value.code == "invalid" and "unknown connection" in refused.value.message
    assert "no-such-connection" in refused.value.details["config"][0]
    assert not DataSource.objects.filter(name="nowhere").exists()
