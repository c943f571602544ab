"""/api/audit/fhir: the audit trail as FHIR R4 AuditEvent resources, as a paged collection Bundle or streamed NDJSON,
with the filters of /api/audit/, for admins only. Every kind of row becomes a resource that the studio's own validator
and fhir.resources (R4B) both accept."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from fhir.resources.R4B.auditevent import AuditEvent as R4BAuditEvent
from fhir.resources.R4B.bundle import Bundle as R4BBundle

from mappings import actions
from mappings.actions.common import audit
from mappings.audit_events import ACTION_SYSTEM, DICOM, USER_SYSTEM, audit_event_resource
from mappings.engine.validate import validate_output
from mappings.models import AuditAction, AuditEvent

pytestmark = pytest.mark.django_db


@dataclass
class Thing:
    """An object an audit row is about, as the actions pass them (anything with a pk)."""

    pk: object


# What each kind of row holds, as its action writes it (the details the actions pass).
DETAILS = {
    AuditAction.LOGIN: {"address": "10.0.0.7"},
    AuditAction.LOGIN_FAILED: {"address": "10.0.0.8"},
    AuditAction.LOGIN_REFUSED: {"address": "10.0.0.8"},
    AuditAction.API_TOKEN_REFUSED: {"address": "10.0.0.9", "reason": "Invalid token."},
    AuditAction.TOKEN_ISSUED: {"facade": "clinic", "scope": "system/*.rs"},
    AuditAction.TOKEN_REFUSED: {"facade": "clinic", "client": "lab-sync", "error": "invalid_client", "reason": "bad"},
    AuditAction.EXPORT_STARTED: {"facade": "clinic", "client": "lab-sync", "request": "https://x/fhir/clinic/$export"},
    AuditAction.EXPORT_FINISHED: {"status": "failed", "error": "Part 1 of Patient failed"},
}


def issues(resource: dict) -> list[str]:
    """The errors of both validators: the engine's (what $validate answers) and fhir.resources R4B."""
    found = [f"{issue.code} {issue.message}" for issue in validate_output(resource) if issue.fatal]
    try:
        (R4BBundle if resource["resourceType"] == "Bundle" else R4BAuditEvent).model_validate(resource)
    except ValueError as exc:  # pydantic's ValidationError
        found.append(str(exc))
    return found


@pytest.mark.parametrize("action", AuditAction.values)
def test_it_makes_a_valid_audit_event_of_every_kind_of_row(action, users) -> None:
    login = action in (AuditAction.LOGIN_FAILED, AuditAction.LOGIN_REFUSED)
    actor = None if login or action.startswith(("smart.", "export.")) else users["admin"]
    audit(
        actor,
        action,
        Thing("ana" if login else 42),
        mapping_slug="json-patient" if action.startswith(("draft.", "version.")) else "",
        before={"revision": 1} if action.endswith("updated") else None,
        after={"revision": 2},
        **DETAILS.get(action, {}),
    )
    row = AuditEvent.objects.select_related("actor").get()
    resource = audit_event_resource(row, site="studio.example")
    assert issues(resource) == []
    assert resource["recorded"] == row.created_at.isoformat(timespec="milliseconds")
    assert {"system": ACTION_SYSTEM, "code": action, "display": AuditAction(action).label} in resource["subtype"]
    [agent] = resource["agent"]
    if actor is not None:
        assert agent["who"]["identifier"] == {"system": USER_SYSTEM, "value": "admin"} and agent["requestor"]
    if login:
        assert agent["who"]["identifier"]["value"] == "ana" and agent["network"]["address"] == "10.0.0.8"
    assert resource["entity"][0]["what"]["identifier"]["value"] == ("ana" if login else "42")
    refused = action.endswith(("login_failed", "_refused"))  # sign-ins, tokens and deploys refused
    assert resource["outcome"] == ("4" if refused or action == "export.finished" else "0")


def test_it_codes_sign_ins_and_writes_as_dicom_and_rest_events(users, json_patient) -> None:
    actions.do_save_draft(json_patient, acting_user=users["author"], template="{}", expected_revision=1)
    audit(users["author"], AuditAction.LOGIN, users["author"], address="10.1.1.1")
    rows = {row.action: row for row in AuditEvent.objects.select_related("actor")}
    login = audit_event_resource(rows["auth.login"], site="s")
    assert login["type"] == {"system": DICOM, "code": "110114", "display": "User Authentication"}
    assert login["subtype"][0]["code"] == "110122" and login["action"] == "E"
    saved = audit_event_resource(rows["draft.saved"], site="s")
    assert saved["type"]["code"] == "rest" and saved["subtype"][0]["code"] == "update" and saved["action"] == "U"
    entities = {entity["what"]["identifier"]["system"]: entity for entity in saved["entity"]}
    assert entities["urn:fhir-studio:mapping"]["what"]["identifier"]["value"] == "json-patient"
    details = {detail["type"]: json.loads(detail["valueString"]) for detail in saved["entity"][0]["detail"]}
    assert details["after"] == rows["draft.saved"].after
    created = audit_event_resource(rows["mapping.created"], site="s")
    assert created["subtype"][0]["code"] == "create" and created["action"] == "C"


def test_it_answers_a_collection_bundle_paged_with_links(api, json_patient, users) -> None:
    for _ in range(3):
        audit(users["viewer"], AuditAction.LOGIN, users["viewer"], address="10.0.0.1")
    total = AuditEvent.objects.count()  # the fixture's writes too
    first = api["admin"].get("/api/audit/fhir?_count=2&actor=")
    assert first.status_code == 200 and first["Content-Type"] == "application/fhir+json"
    assert first["X-Total-Count"] == str(total)
    bundle = first.json()
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "collection" and "total" not in bundle
    assert len(bundle["entry"]) == 2 and issues(bundle) == []
    links = {link["relation"]: link["url"] for link in bundle["link"]}
    assert links["next"] == "http://testserver/api/audit/fhir?actor=&_count=2&page=2" and "previous" not in links
    newest = AuditEvent.objects.order_by("-created_at", "-id").first()
    assert bundle["entry"][0]["resource"]["id"] == str(newest.pk)
    seen = []
    url = links["self"]
    while url:
        page = api["admin"].get(url).json()
        seen += [entry["resource"]["id"] for entry in page["entry"]]
        url = {link["relation"]: link["url"] for link in page["link"]}.get("next")
    assert len(seen) == total == len(set(seen))


def test_it_filters_as_the_json_list_does(api, json_patient, users) -> None:
    audit(users["viewer"], AuditAction.LOGIN, users["viewer"], address="10.0.0.1")
    audit(users["author"], AuditAction.LOGIN, users["author"], address="10.0.0.2")
    by_actor = api["admin"].get("/api/audit/fhir?action=auth.login&actor=viewer").json()
    [entry] = by_actor["entry"]
    assert entry["resource"]["agent"][0]["who"]["identifier"]["value"] == "viewer"
    by_mapping = api["admin"].get("/api/audit/fhir?mapping=json-patient").json()
    json_list = api["admin"].get("/api/audit/?mapping=json-patient").json()
    assert [e["resource"]["id"] for e in by_mapping["entry"]] == [str(row["id"]) for row in json_list["results"]]
    later = (timezone.now() + timedelta(minutes=5)).isoformat()
    assert api["admin"].get("/api/audit/fhir", {"since": later}).json()["entry"] == []


def test_it_streams_ndjson_when_asked(api, json_patient, users) -> None:
    total = AuditEvent.objects.count()
    for asked in ({"HTTP_ACCEPT": "application/fhir+ndjson"}, {"QUERY_STRING": "_format=ndjson"}):
        answer = api["admin"].get("/api/audit/fhir", **asked)
        assert answer.status_code == 200 and answer["Content-Type"] == "application/fhir+ndjson"
        lines = b"".join(answer.streaming_content).decode().splitlines()
        assert len(lines) == total
        assert all(issues(json.loads(line)) == [] for line in lines)


def test_it_refuses_everyone_but_admins_and_bad_parameters(api) -> None:
    for role in ("viewer", "author", "norole"):
        refused = api[role].get("/api/audit/fhir")
        assert refused.status_code == 403 and refused.json()["code"] == "permission_denied"
    assert api["anonymous"].get("/api/audit/fhir").status_code == 401
    for bad in ("_count=0", "_count=1001", "page=0", "action=nope", "since=yesterday", "_format=xml", "format=R"):
        answer = api["admin"].get(f"/api/audit/fhir?{bad}")
        assert answer.status_code == 400, bad
        assert set(answer.json()) == {"code", "message", "details"} and answer.json()["code"] == "invalid", bad


def test_a_page_costs_the_same_queries_for_one_row_and_for_twenty(api, users) -> None:
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert api["admin"].get("/api/audit/fhir?_count=50").status_code == 200
        return len(captured)

    audit(users["viewer"], AuditAction.LOGIN, users["viewer"])
    one = queries()
    for _ in range(19):
        audit(users["author"], AuditAction.LOGIN, users["author"])
    assert queries() == one
