"""The message log of a facade over a live source: every record the legacy API answers is logged as the facade
mapped it (facade-read), with its key and patient identifier, and a record that does not convert with its error."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from mappings import actions, message_log
from mappings.models import ProcessedMessage
from tests.facade.test_live_sources import PATIENTS, LegacyAPI, facade_over, http_config, legacy_api  # noqa: F401

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _empty_log(monkeypatch):
    message_log.discard()
    monkeypatch.setattr(message_log.buffer, "batch_seconds", 3600.0)  # written when the test flushes
    yield
    message_log.discard()


def test_it_logs_each_live_record_a_read_or_search_mapped(client, users, json_patient, legacy_api) -> None:  # noqa: F811
    facade_over(users, json_patient, "http", http_config(legacy_api))
    assert client.get("/fhir/legacy-http/Patient?family=love").status_code == 200
    message_log.flush()
    with CaptureQueriesContext(connection) as read:
        assert client.get("/fhir/legacy-http/Patient?family=turing").status_code == 200
    assert not [query for query in read.captured_queries if ProcessedMessage._meta.db_table in query["sql"]]
    assert message_log.flush() == 1
    rows = list(ProcessedMessage.objects.order_by("pk"))
    assert [(row.channel, row.facade_slug, row.mapping_slug, row.status) for row in rows] == [
        ("facade-read", "legacy-http", "json-patient", "converted"),
        ("facade-read", "legacy-http", "json-patient", "converted"),
    ]
    assert [row.patient_identifier for row in rows] == ["M0001", "M0002"]  # the Patient's first identifier
    assert all(len(row.record_key) > 10 for row in rows)  # the resource's id: what a client asks the facade for
    assert rows[0].version_number == 1 and rows[0].source_format == "json"
    assert rows[0].payload == "" and rows[0].outcome is None


def test_it_logs_a_live_record_that_does_not_convert(client, users, json_patient, legacy_api) -> None:  # noqa: F811
    PATIENTS["M0003"] = {"PatientId": 3, "MRN": "M0003", "FirstName": {"not": "a name"}, "LastName": "Date"}
    try:
        facade_over(users, json_patient, "http", http_config(legacy_api))
        client.get("/fhir/legacy-http/Patient?family=date")
    finally:
        del PATIENTS["M0003"]
    message_log.flush()
    failed = ProcessedMessage.objects.get()
    assert (failed.channel, failed.status) == ("facade-read", "failed")
    assert failed.error_code.startswith("FS-") and failed.outcome["resourceType"] == "OperationOutcome"
    assert '"MRN": "M0003"' in failed.payload  # kept to be reprocessed


def test_a_live_record_reprocessed_runs_with_the_deployments_variables(
    api,
    client,
    users,
    json_patient,
    legacy_api,  # noqa: F811 — the fixture imported above
) -> None:
    author = users["author"]
    facade_over(users, json_patient, "http", http_config(legacy_api))
    binding = json_patient.bindings.get()
    v1 = json_patient.versions.get(number=1)
    actions.do_deploy(binding, acting_user=author, version=v1, variables={"mrn_system": "urn:example:mrn"})
    PATIENTS["M0003"] = {"PatientId": 3, "MRN": "M0003", "FirstName": {"not": "a name"}, "LastName": "Date"}
    try:
        client.get("/fhir/legacy-http/Patient?family=date")
    finally:
        del PATIENTS["M0003"]
    message_log.flush()
    failed = ProcessedMessage.objects.get(status="failed")
    template = json_patient.draft.template.replace("[msg.FirstName]", "[msg.FirstName if msg.FirstName is string]")
    actions.do_save_draft(json_patient, acting_user=author, template=template, expected_revision=None)
    actions.do_publish_version(json_patient, acting_user=author, message="v2: a name that is not text is left out")
    answer = api["author"].post(f"/api/messages/{failed.pk}/reprocess").json()
    assert (answer["message"]["status"], answer["message"]["version"]) == ("converted", 2)
    assert answer["output"]["identifier"][0]["system"] == "urn:example:mrn"  # the live deployment's variable
    assert answer["message"]["record_key"] == "" and answer["message"]["channel"] == "facade-read"
