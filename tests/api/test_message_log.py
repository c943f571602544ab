"""The message log: what $convert-data and batch chunks write (business keys, status, FS code and template line),
searching it through /api/messages/, reprocessing a failure after the mapping is fixed, roles, and the purge.

$convert-data is called through Django's test client on the facade's real view; batch chunks run through the tasks'
own bodies (tests/tasks/test_batches.py runs them on real workers)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from mappings import actions, message_log
from mappings.jobs.batches import plan_batch_direct, run_batch_chunk_direct
from mappings.jobs.messages import purge_messages_direct
from mappings.models import AuditAction, AuditEvent, BatchChunk, ProcessedMessage

# A Patient from PID-3; a message whose PID-8 is X calls a function that does not exist, at line 2.
BROKEN = (
    '{"resourceType": "Patient",\n'
    '{% if msg.get("PID-8") == "X" %}{{ no_such_function() }}{% endif %}\n'
    '"identifier": [{"value": {{ msg.get("PID-3.1") | tojson }}}]}'
)
FIXED = BROKEN.replace("{{ no_such_function() }}", "")


def adt(control_id: str, mrn: str, sex: str = "F") -> str:
    return (
        f"MSH|^~\\&|LAB|HOSP|STUDIO|HOSP|20240101120000||ADT^A01|{control_id}|P|2.5\r"
        f"PID|1||{mrn}^^^HOSP^MR~OTHER^^^X||Doe^Jane||19800101|{sex}\r"
    )


@pytest.fixture(autouse=True)
def _empty_log(monkeypatch):
    message_log.discard()  # rows buffered by an earlier test belong to its database
    monkeypatch.setattr(message_log.buffer, "batch_seconds", 3600.0)  # written when a test flushes, not by the clock
    yield
    message_log.discard()


@pytest.fixture
def adt_patient(users):
    """`adt-patient` (HL7 v2 → Patient) published as v1, broken for PID-8 X; facade `clinic` converts with it."""
    author = users["author"]
    mapping = actions.do_create_mapping(
        acting_user=author, slug="adt-patient", title="ADT patient", source_format="hl7v2", template=BROKEN
    )
    actions.do_publish_version(mapping, acting_user=author, message="v1")
    actions.do_create_facade(
        acting_user=author, slug="clinic", title="Clinic", convert_templates={"ADT_A01": "adt-patient"}
    )
    return mapping


def convert(client, message: str):
    body = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "inputData", "valueString": message},
            {"name": "inputDataType", "valueString": "Hl7v2"},
            {"name": "rootTemplate", "valueString": "ADT_A01"},
        ],
    }
    return client.post("/fhir/clinic/$convert-data", json.dumps(body), content_type="application/fhir+json")


def fix(mapping, author) -> None:
    actions.do_save_draft(mapping, acting_user=author, template=FIXED, expected_revision=None)
    actions.do_publish_version(mapping, acting_user=author, message="v2: no call for PID-8 X")


def test_it_logs_a_convert_data_success_and_failure_with_their_keys(client, adt_patient) -> None:
    assert convert(client, adt("CTRL-1", "MRN-1")).status_code == 200
    assert convert(client, adt("CTRL-2", "MRN-2", sex="X")).status_code == 422
    assert message_log.flush() == 2
    converted, failed = ProcessedMessage.objects.order_by("pk")
    assert (converted.channel, converted.facade_slug, converted.mapping_slug, converted.version_number) == (
        "facade-convert",
        "clinic",
        "adt-patient",
        1,
    )
    assert (converted.status, converted.message_control_id, converted.patient_identifier) == (
        "converted",
        "CTRL-1",
        "MRN-1",
    )
    assert converted.payload == "" and converted.outcome is None  # successes keep their keys only
    assert (failed.status, failed.message_control_id, failed.patient_identifier) == ("failed", "CTRL-2", "MRN-2")
    assert (failed.error_code, failed.error_line) == ("FS-RND-001", 2)
    assert "no_such_function" in failed.error_message
    assert failed.outcome["issue"][0]["details"]["coding"][0]["code"] == "FS-RND-001"
    assert failed.payload == adt("CTRL-2", "MRN-2", sex="X")


def test_it_adds_no_query_to_a_facade_request(client, adt_patient) -> None:
    convert(client, adt("CTRL-0", "MRN-0"))  # compiles and caches what every later request reuses
    message_log.flush()
    with CaptureQueriesContext(connection) as one:
        convert(client, adt("CTRL-1", "MRN-1"))
    with CaptureQueriesContext(connection) as five:
        for number in range(2, 7):
            convert(client, adt(f"CTRL-{number}", "MRN-1"))
    table = ProcessedMessage._meta.db_table
    assert not [query for query in one.captured_queries + five.captured_queries if table in query["sql"]]
    assert len(five) == 5 * len(one)  # the same queries per request, however many rows wait
    with CaptureQueriesContext(connection) as flushed:
        assert message_log.flush() == 6
    assert len(flushed) <= 1  # one COPY for every waiting row (not in Django's query log), or one INSERT
    assert ProcessedMessage.objects.count() == 7


def test_it_finds_messages_by_control_id_patient_status_and_code(api, client, adt_patient) -> None:
    convert(client, adt("CTRL-1", "MRN-1"))
    convert(client, adt("CTRL-2", "MRN-2", sex="X"))
    convert(client, adt("CTRL-3", "MRN-2"))
    message_log.flush()
    viewer = api["viewer"]

    def found(**query: str) -> list[str]:
        response = viewer.get("/api/messages/", query)
        assert response.status_code == 200, response.json()
        return [row["message_control_id"] for row in response.json()["results"]]

    assert found(message_control_id="CTRL-2") == ["CTRL-2"]
    assert found(patient_identifier="MRN-2") == ["CTRL-3", "CTRL-2"]  # newest first
    assert found(status="failed") == ["CTRL-2"]
    assert found(code="FS-RND") == ["CTRL-2"]  # a code's start finds it
    assert found(mapping="adt-patient", channel="facade-convert", facade="clinic") == ["CTRL-3", "CTRL-2", "CTRL-1"]
    assert found(since=(timezone.now() + timedelta(minutes=1)).isoformat()) == []
    assert found(message_control_id="CTRL-9") == []
    row = viewer.get("/api/messages/", {"status": "failed"}).json()["results"][0]
    assert (row["error_code"], row["error_line"], row["reprocessable"]) == ("FS-RND-001", 2, True)
    assert "payload" not in row and "outcome" not in row  # the list stays light; the detail has them
    detail = viewer.get(f"/api/messages/{row['id']}").json()
    assert detail["outcome"]["resourceType"] == "OperationOutcome"
    assert detail["payload"].startswith("MSH|") and detail["reprocessed"] == []


def test_it_answers_bad_filters_and_unknown_messages_with_the_error_shape(api) -> None:
    bad = api["viewer"].get("/api/messages/", {"status": "lost", "batch": "x", "since": "yesterday"})
    assert bad.status_code == 400
    assert bad.json()["code"] == "invalid"
    assert set(bad.json()["details"]) == {"status", "batch", "since"}
    backwards = api["viewer"].get("/api/messages/", {"since": "2024-02-01T00:00:00Z", "until": "2024-01-01T00:00:00Z"})
    assert backwards.status_code == 400 and "until" in backwards.json()["details"]
    missing = api["viewer"].get("/api/messages/999999")
    assert (missing.status_code, missing.json()["code"]) == (404, "not_found")
    assert api["norole"].get("/api/messages/").status_code == 403
    assert api["anonymous"].get("/api/messages/").status_code == 401


def test_it_reprocesses_a_failure_after_the_mapping_is_fixed(api, client, users, adt_patient) -> None:
    convert(client, adt("CTRL-2", "MRN-2", sex="X"))
    message_log.flush()
    failed = ProcessedMessage.objects.get()
    still = api["author"].post(f"/api/messages/{failed.pk}/reprocess")
    assert still.status_code == 201  # run again with the same (latest) version: it fails again, and is logged
    assert still.json()["message"]["status"] == "failed"
    assert still.json()["outcome"]["issue"][0]["details"]["coding"][0]["code"] == "FS-RND-001"
    fix(adt_patient, users["author"])
    response = api["author"].post(f"/api/messages/{failed.pk}/reprocess")
    assert response.status_code == 201, response.json()
    answer = response.json()
    assert answer["output"] == {"resourceType": "Patient", "identifier": [{"value": "MRN-2"}]}
    message = answer["message"]
    assert (message["status"], message["version"], message["reprocessed_from"]) == ("converted", 2, failed.pk)
    assert (message["message_control_id"], message["patient_identifier"], message["channel"]) == (
        "CTRL-2",
        "MRN-2",
        "facade-convert",
    )
    assert message["payload"] == ""  # converted now: keys only
    assert api["viewer"].get(f"/api/messages/{failed.pk}").json()["reprocessed"] == [
        still.json()["message"]["id"],
        message["id"],
    ]
    audit = AuditEvent.objects.filter(action=AuditAction.MESSAGE_REPROCESSED).order_by("pk").last()
    assert (audit.actor, audit.object_id, audit.after["status"]) == (users["author"], str(message["id"]), "converted")
    again = api["author"].post(f"/api/messages/{failed.pk}/reprocess")
    assert (again.status_code, again.json()["code"]) == (409, "conflict")  # already converted once
    converted = api["author"].post(f"/api/messages/{message['id']}/reprocess")
    assert (converted.status_code, converted.json()["code"]) == (409, "conflict")


def test_a_viewer_cannot_reprocess(api, client, adt_patient) -> None:
    convert(client, adt("CTRL-2", "MRN-2", sex="X"))
    message_log.flush()
    failed = ProcessedMessage.objects.get()
    refused = api["viewer"].post(f"/api/messages/{failed.pk}/reprocess")
    assert (refused.status_code, refused.json()["code"]) == (403, "permission_denied")
    assert ProcessedMessage.objects.count() == 1
    assert not AuditEvent.objects.filter(action=AuditAction.MESSAGE_REPROCESSED).exists()


def test_it_logs_a_batchs_messages_with_their_failures(api, users, adt_patient, settings, tmp_path) -> None:
    settings.STORAGES = {
        **settings.STORAGES,
        "jobs": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "jobs"), "allow_overwrite": True},
        },
    }
    settings.FHIR_STUDIO = {**settings.FHIR_STUDIO, "BATCH_CHUNK_MESSAGES": 2}
    feed = (adt("B-1", "MRN-1") + adt("B-2", "MRN-2", sex="X") + adt("B-3", "MRN-3")).encode()
    started = api["author"].post(
        "/api/batches/",
        {"mapping": "adt-patient", "files": [SimpleUploadedFile("feed.hl7", feed)]},
        format="multipart",
    )
    assert started.status_code == 201, started.json()
    batch_id = started.json()["id"]
    plan_batch_direct(batch_id)
    for chunk_id in BatchChunk.objects.filter(batch_id=batch_id).values_list("pk", flat=True):
        run_batch_chunk_direct(chunk_id)
        run_batch_chunk_direct(chunk_id)  # delivered twice: the chunk is done, nothing is logged again
    rows = api["viewer"].get("/api/messages/", {"batch": batch_id}).json()["results"]
    assert sorted((row["message_control_id"], row["status"], row["record_key"]) for row in rows) == [
        ("B-1", "converted", "B-1"),
        ("B-2", "failed", "B-2"),
        ("B-3", "converted", "B-3"),
    ]
    failed = ProcessedMessage.objects.get(batch_id=batch_id, status="failed")
    assert (failed.channel, failed.error_code, failed.error_line, failed.patient_identifier) == (
        "batch",
        "FS-RND-001",
        2,
        "MRN-2",
    )
    assert failed.payload.startswith("MSH|") and "B-2" in failed.payload
    fix(adt_patient, users["author"])
    answer = api["author"].post(f"/api/messages/{failed.pk}/reprocess").json()
    assert (answer["message"]["status"], answer["message"]["batch"]) == ("converted", batch_id)


def test_the_purge_removes_rows_older_than_the_retention_only(client, settings, adt_patient) -> None:
    convert(client, adt("OLD-1", "MRN-1", sex="X"))
    convert(client, adt("OLD-2", "MRN-1"))
    convert(client, adt("NEW-1", "MRN-1", sex="X"))
    message_log.flush()
    settings.FHIR_STUDIO = {**settings.FHIR_STUDIO, "MESSAGE_RETENTION_DAYS": 30}
    ProcessedMessage.objects.filter(message_control_id__startswith="OLD").update(
        created_at=timezone.now() - timedelta(days=31)
    )
    old = ProcessedMessage.objects.get(message_control_id="OLD-1")
    ProcessedMessage.objects.create(  # a recent reprocess of an old failure outlives it, unlinked
        channel="facade-convert", mapping_slug="adt-patient", status="converted", reprocessed_from=old
    )
    assert purge_messages_direct() == 2
    assert sorted(ProcessedMessage.objects.values_list("message_control_id", flat=True)) == ["", "NEW-1"]
    assert ProcessedMessage.objects.filter(reprocessed_from__isnull=False).count() == 0
    audit = AuditEvent.objects.get(action=AuditAction.MESSAGES_PURGED)
    assert audit.after == {"deleted": 2}
    assert purge_messages_direct() == 0
    assert AuditEvent.objects.filter(action=AuditAction.MESSAGES_PURGED).count() == 1  # nothing purged: no row


def test_the_purge_command_takes_a_number_of_days(client, adt_patient, capsys) -> None:
    convert(client, adt("A-1", "MRN-1"))
    message_log.flush()
    ProcessedMessage.objects.update(created_at=timezone.now() - timedelta(days=3))
    call_command("fhirstudio", "purge-messages", "--days", "5")
    assert "0 message log rows deleted." in capsys.readouterr().out
    call_command("fhirstudio", "purge-messages", "--days", "2")
    assert "1 message log rows deleted." in capsys.readouterr().out
    assert not ProcessedMessage.objects.exists()


@pytest.mark.parametrize("rows", [1, 20])
def test_it_lists_a_page_of_messages_in_a_fixed_number_of_queries(api, django_assert_num_queries, rows) -> None:
    for number in range(rows):
        ProcessedMessage.objects.create(
            channel="batch", mapping_slug="adt-patient", status="failed", payload=adt(f"C-{number}", "MRN-1")
        )
    # The token's user, its role, the page's count and its rows (reprocessable in the same query).
    with django_assert_num_queries(4):
        response = api["viewer"].get("/api/messages/", {"status": "failed"})
    assert response.status_code == 200
    assert [row["reprocessable"] for row in response.json()["results"]] == [True] * rows


@pytest.mark.parametrize(
    ("payload", "keys"),
    [
        (adt("CTRL-1", "MRN-1"), ("CTRL-1", "MRN-1")),
        (adt("CTRL-1", "MRN-1").replace("\r", "\n"), ("CTRL-1", "MRN-1")),  # LF-separated segments
        (adt("CTRL-1", "MRN-1").replace("\r", "\r\n"), ("CTRL-1", "MRN-1")),
        ("\n" + adt("CTRL-1", "MRN-1"), ("CTRL-1", "MRN-1")),  # a blank line before MSH
        ("MSH#$~\\&#A#B#C#D#20240101##ADT$A01#C-9#P#2.5\rPID#1##M-9$$$H$MR~X##Doe\r", ("C-9", "M-9")),  # MSH-2
        ("MSH|^~\\&|A|B|C|D|20240101||ADT^A01\rEVN|A01\r", ("", "")),  # no MSH-10, no PID
        ("MSH|^~\\&|A|B|C|D|20240101||ADT^A01|C-2|P|2.5\rPID|1|\r", ("C-2", "")),  # PID without PID-3
        ("MSH|", ("", "")),  # cut short
        ("not HL7 at all", ("", "")),
    ],
)
def test_it_reads_the_business_keys_off_the_msh_and_pid_lines(payload: str, keys: tuple[str, str]) -> None:
    assert message_log.hl7_keys(payload) == keys


def test_it_takes_the_patient_identifier_from_the_output_when_the_source_has_no_pid() -> None:
    bundle = {
        "resourceType": "Bundle",
        "entry": [
            {"resource": {"resourceType": "Encounter", "identifier": [{"value": "E-1"}]}},
            {"resource": {"resourceType": "Patient", "identifier": [{"system": "urn:x"}, {"value": "P-7"}]}},
        ],
    }
    assert message_log.business_keys('{"mrn": "P-7"}', "json", bundle) == ("", "P-7")
    assert message_log.business_keys("{}", "json", {"resourceType": "Observation"}) == ("", "")


def test_a_message_over_the_payload_cap_is_kept_cut_and_not_reprocessable(api, client, adt_patient) -> None:
    big = adt("BIG-1", "MRN-1", sex="X") + "NTE|1||" + "x" * message_log.PAYLOAD_CHARS + "\r"
    assert convert(client, big).status_code == 422
    message_log.flush()
    row = api["viewer"].get("/api/messages/", {"message_control_id": "BIG-1"}).json()["results"][0]
    assert row["reprocessable"] is False
    detail = api["viewer"].get(f"/api/messages/{row['id']}").json()
    assert detail["payload_truncated"] is True and len(detail["payload"]) == message_log.PAYLOAD_CHARS
    refused = api["author"].post(f"/api/messages/{row['id']}/reprocess")
    assert (refused.status_code, refused.json()["code"]) == (409, "conflict")
    assert "not kept whole" in refused.json()["message"]


def test_the_list_shows_rows_this_process_has_not_written_yet(api, client, adt_patient) -> None:
    convert(client, adt("CTRL-1", "MRN-1"))  # waiting in the buffer: no flush by the test
    rows = api["viewer"].get("/api/messages/").json()["results"]
    assert [row["message_control_id"] for row in rows] == ["CTRL-1"]
