"""/api/mappings/{slug}/draft: read with an ETag, save with If-Match — no lost updates, and every save runs the
samples."""

import threading

import pytest
from django.db import connection, connections
from rest_framework.test import APIClient

from mappings import actions
from mappings.models import AuditEvent, Draft, TestRun
from tests.api.conftest import client_for

pytestmark = pytest.mark.django_db

URL = "/api/mappings/json-patient/draft"


def writes_serialize() -> bool:
    """PostgreSQL locks the draft row (select_for_update); SQLite can only queue whole write transactions, which
    needs BEGIN IMMEDIATE and a file (shared-cache memory databases fail at once with 'table is locked')."""
    if connection.vendor != "sqlite":
        return True
    return connection.settings_dict["OPTIONS"].get("transaction_mode") == "IMMEDIATE" and not (
        connection.is_in_memory_db()
    )


def etag_of(client: APIClient) -> str:
    return client.get(URL)["ETag"]


def save(client: APIClient, template: str, etag: str | None, **body: object):
    headers = {"HTTP_IF_MATCH": etag} if etag is not None else {}
    return client.put(URL, {"template": template, **body}, format="json", **headers)


def test_it_returns_the_draft_with_its_revision_in_the_etag(api, json_patient) -> None:
    response = api["viewer"].get(URL)
    assert response.status_code == 200
    assert response["ETag"] == f'"{json_patient.id}-1"'
    body = response.json()
    assert body["revision"] == 1
    assert body["etag"] == response["ETag"]
    assert body["template"] == json_patient.draft.template
    assert body["snippet_names"] == ["snippets/common/datatypes.j2"]
    assert body["table_names"] == ["administrative-gender"]
    assert body["updated_by"] == "author"
    assert body["updated_at"]


def test_it_saves_with_the_etag_it_read_and_answers_the_new_one(api, json_patient) -> None:
    template = json_patient.draft.template.replace('"active": true', '"active": false')
    response = save(api["author"], template, etag_of(api["author"]))
    assert response.status_code == 200
    assert response["ETag"] == f'"{json_patient.id}-2"'
    body = response.json()
    assert (body["revision"], body["template"], body["updated_by"]) == (2, template, "author")
    assert Draft.objects.get(mapping=json_patient).template == template
    assert AuditEvent.objects.filter(action="draft.saved", mapping_slug="json-patient").count() == 1


def test_it_runs_the_samples_on_every_save_and_records_the_run(api, json_patient) -> None:
    broken = json_patient.draft.template.replace("msg.LastName", "msg.FirstName")  # the sample asserts the family
    response = save(api["author"], broken, etag_of(api["author"]))
    run = TestRun.objects.get()
    assert response.json()["test_run"] == {"id": run.id, "passed": 0, "failed": 1}
    assert (run.trigger, run.draft_revision, run.version, run.created_by.username) == ("save", 2, None, "author")
    assert run.results[0]["case"] == "example-patient"

    fixed = save(api["author"], json_patient.draft.template, response["ETag"])
    assert fixed.json()["test_run"]["passed"] == 1
    assert TestRun.objects.count() == 2


def test_it_saves_a_draft_that_does_not_compile_and_reports_it_through_the_test_run(api, json_patient) -> None:
    response = save(api["author"], "{\n{% for %}", etag_of(api["author"]))
    assert response.status_code == 200
    run = TestRun.objects.get(pk=response.json()["test_run"]["id"])
    assert run.failed == 1
    assert run.results[0]["problems"][0].startswith("FS-TPL-001")


def test_it_keeps_extra_lookup_tables_named_by_hand(api, json_patient) -> None:
    template = '{"resourceType": "Patient", "gender": {{ msg.Gender | translate_code(vars.table) | tojson }}}'
    response = save(api["author"], template, etag_of(api["author"]), lookup_tables=["administrative-gender"])
    assert response.json()["table_names"] == ["administrative-gender"]


def test_it_refuses_a_save_without_if_match(api, json_patient) -> None:
    response = save(api["author"], "{}", None)
    assert response.status_code == 428
    assert response.json()["code"] == "precondition_required"
    assert response.json()["details"]["etag"] == f'"{json_patient.id}-1"'
    assert Draft.objects.get(mapping=json_patient).revision == 1


@pytest.mark.parametrize(
    "etag",
    ["nonsense", '"abc"', '"1-x"', '"999999-1"', '"1"'],
    ids=["unreadable", "no-revision", "bad-revision", "another-mappings-etag", "a-library-etag"],
)
def test_it_refuses_an_if_match_that_is_not_the_current_etag(api, json_patient, etag) -> None:
    response = save(api["author"], "{}", etag)
    assert response.status_code == 412
    assert response.json()["code"] == "stale_draft"
    assert response.json()["details"]["current_revision"] == 1
    assert Draft.objects.get(mapping=json_patient).template != "{}"


def test_it_refuses_a_stale_etag_with_the_current_draft_in_details(api, json_patient) -> None:
    first = etag_of(api["author"])
    assert save(api["author"], '{"resourceType": "Patient"}', first).status_code == 200
    response = save(api["author"], "{}", first)
    assert (response.status_code, response.json()["code"]) == (412, "stale_draft")
    details = response.json()["details"]
    assert (details["current_revision"], details["etag"]) == (2, f'"{json_patient.id}-2"')
    assert details["template"] == '{"resourceType": "Patient"}'


def test_it_accepts_a_weak_form_of_the_current_etag(api, json_patient) -> None:
    response = save(api["author"], "{}", "W/" + etag_of(api["author"]))
    assert response.status_code == 200


def test_it_takes_a_star_if_match_as_whatever_is_current(api, json_patient, users) -> None:
    json_patient.refresh_from_db()
    actions.do_save_draft(json_patient, acting_user=users["admin"], template="{}", expected_revision=1)
    response = save(api["author"], '{"resourceType": "Patient"}', "*")
    assert response.status_code == 200, response.json()
    assert (response.json()["revision"], response["ETag"]) == (3, f'"{json_patient.id}-3"')


def test_it_lets_exactly_one_of_two_clients_that_read_the_same_revision_save(users, json_patient) -> None:
    first, second = client_for(users["author"]), client_for(users["admin"])
    etag_first, etag_second = etag_of(first), etag_of(second)
    assert etag_first == etag_second

    won = save(first, '{"resourceType": "Patient", "active": true}', etag_first)
    lost = save(second, '{"resourceType": "Patient", "active": false}', etag_second)

    assert (won.status_code, lost.status_code) == (200, 412)
    stale = lost.json()
    assert stale["code"] == "stale_draft"
    assert stale["details"]["current_revision"] == 2
    assert stale["details"]["etag"] == won["ETag"]
    assert Draft.objects.get(mapping=json_patient).template == '{"resourceType": "Patient", "active": true}'

    retried = save(second, '{"resourceType": "Patient", "active": false}', stale["details"]["etag"])
    assert retried.status_code == 200
    assert retried.json()["revision"] == 3


# Transactional (two real connections race); the `users` fixture makes the role groups a previous flush removed.
# No serialized_rollback: after another transactional test's flush has re-created the content types, reloading the
# serialized ones collides with them.
@pytest.mark.django_db(transaction=True)
def test_it_lets_exactly_one_of_two_concurrent_saves_of_one_revision_win(users, json_patient) -> None:
    if not writes_serialize():
        pytest.skip(
            "SQLite only serializes two writing transactions with a file database and transaction_mode IMMEDIATE; "
            "without them the loser gets 'database is locked' (a 500). Settings need OPTIONS transaction_mode and "
            "a file TEST NAME."
        )
    etag = etag_of(client_for(users["author"]))
    start = threading.Barrier(2)
    statuses: list[int] = []

    def save_in_a_thread(username: str) -> None:
        try:
            client = client_for(users[username])
            start.wait(timeout=10)
            statuses.append(save(client, f'{{"resourceType": "Patient", "id": "{username}"}}', etag).status_code)
        finally:
            connections.close_all()  # this thread's connection, so the test database can be dropped

    threads = [threading.Thread(target=save_in_a_thread, args=(name,)) for name in ("author", "admin")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert sorted(statuses) == [200, 412]
    draft = Draft.objects.get(mapping=json_patient)
    assert draft.revision == 2
    assert AuditEvent.objects.filter(action="draft.saved").count() == 1


def test_it_refuses_a_malformed_body(api, json_patient) -> None:
    etag = etag_of(api["author"])
    for body in ({}, {"template": 12}, {"template": None}, {"template": "{}", "lookup_tables": "x"}, ["{}"]):
        response = api["author"].put(URL, body, format="json", HTTP_IF_MATCH=etag)
        assert response.status_code == 400, body
        assert response.json()["code"] == "invalid"
    assert Draft.objects.get(mapping=json_patient).revision == 1


def test_it_refuses_a_body_that_is_not_json(api, json_patient) -> None:
    response = api["author"].put(URL, "template=x", content_type="text/plain", HTTP_IF_MATCH=etag_of(api["author"]))
    assert response.status_code == 415


@pytest.mark.parametrize(
    ("role", "method", "status"),
    [
        ("viewer", "get", 200),
        ("author", "get", 200),
        ("admin", "get", 200),
        ("norole", "get", 403),
        ("anonymous", "get", 401),
        ("viewer", "put", 403),
        ("author", "put", 200),
        ("admin", "put", 200),
        ("norole", "put", 403),
        ("anonymous", "put", 401),
    ],
)
def test_it_lets_each_role_do_what_it_may(api, json_patient, role, method, status) -> None:
    response = api[role].get(URL) if method == "get" else save(api[role], "{}", json_patient.draft.etag)
    assert response.status_code == status
    if status == 403:
        assert response.json()["code"] == "permission_denied"


def test_it_answers_not_found_for_a_missing_mapping(api, json_patient) -> None:
    assert api["viewer"].get("/api/mappings/nope/draft").json()["code"] == "not_found"
    response = api["author"].put("/api/mappings/nope/draft", {"template": "{}"}, format="json", HTTP_IF_MATCH='"1-1"')
    assert response.status_code == 404


def test_it_answers_a_stale_save_with_the_current_draft_so_the_client_can_merge(api, json_patient, users) -> None:
    etag = etag_of(api["author"])
    actions.do_save_draft(json_patient, acting_user=users["admin"], template="{ }", expected_revision=1)
    response = save(api["author"], "{}", etag)
    assert response.status_code == 412
    assert response.json()["details"]["template"] == "{ }"
