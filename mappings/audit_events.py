"""An audit row as a FHIR R4 AuditEvent (issue 15), for GET /api/audit/fhir: one pure function of the row.

- type: what kind of event, from the DICOM audit event ids FHIR's AuditEventID value set names (110114 User
  Authentication, 110113 Security Alert, 110106 Export, 110100 Application Activity) or `rest` for a change made
  through the studio's REST API; subtype: the DICOM event type (110122 Login, 110123 Logout, 110137 User Security
  Attributes Changed, 110136 Security Roles Changed, 110129 Security Configuration, 110131 Software Configuration) or
  the RESTful interaction (create, update, delete, operation), and always the studio's own code for the action
  (urn:fhir-studio:audit-action, e.g. `draft.saved`), which is what a reader filters on.
- action C/R/U/D/E, recorded (the row's time), outcome 0 (success) or 4 (refused or failed) with the reason.
- agent: who asked (a studio user by username, the username a failed sign-in tried, or a SMART client by client id),
  requestor true, with the address it came from when the row has one; the studio itself for work nobody asked for
  (a worker finishing an export).
- source: the studio (observer), at `site`.
- entity: the object changed (object_type, object_id), the mapping it belongs to, and the row's before, after and
  details as JSON in entity.detail. Rows hold no secrets (tests/security/test_audit_trail.py), so neither does this.
"""

from __future__ import annotations

import json

from mappings.models import AuditAction, AuditEvent

DICOM = "http://dicom.nema.org/resources/ontology/DCM"
EVENT_TYPE = "http://terminology.hl7.org/CodeSystem/audit-event-type"
INTERACTION = "http://hl7.org/fhir/restful-interaction"
ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
SOURCE_TYPE = "http://terminology.hl7.org/CodeSystem/security-source-type"
NETWORK_IP = "2"  # AuditEventAgentNetworkType: IP address
ACTION_SYSTEM = "urn:fhir-studio:audit-action"  # the studio's code for each action: AuditAction's values
USER_SYSTEM = "urn:fhir-studio:user"  # studio usernames
CLIENT_SYSTEM = "urn:fhir-studio:client-app"  # SMART client ids
MAPPING_SYSTEM = "urn:fhir-studio:mapping"  # mapping slugs
OBJECT_SYSTEM = "urn:fhir-studio:object:"  # + the object's type (Mapping, Facade, ExportJob …): its id in the studio

AUTHENTICATION = (DICOM, "110114", "User Authentication")
SECURITY_ALERT = (DICOM, "110113", "Security Alert")
EXPORT = (DICOM, "110106", "Export")
APPLICATION_ACTIVITY = (DICOM, "110100", "Application Activity")
REST = (EVENT_TYPE, "rest", "RESTful Operation")
LOGIN = (DICOM, "110122", "Login")
LOGOUT = (DICOM, "110123", "Logout")
USER_CHANGED = (DICOM, "110137", "User Security Attributes Changed")
ROLES_CHANGED = (DICOM, "110136", "Security Roles Changed")
SECURITY_CONFIGURATION = (DICOM, "110129", "Security Configuration")
SOFTWARE_CONFIGURATION = (DICOM, "110131", "Software Configuration")

A = AuditAction
# action → (type, DICOM subtype or None, FHIR action code); the rest are REST writes (see _rest)
KINDS = {
    A.LOGIN: (AUTHENTICATION, LOGIN, "E"),
    A.LOGOUT: (AUTHENTICATION, LOGOUT, "E"),
    A.LOGIN_FAILED: (AUTHENTICATION, LOGIN, "E"),
    A.LOGIN_REFUSED: (AUTHENTICATION, LOGIN, "E"),
    A.API_TOKEN_ISSUED: (AUTHENTICATION, None, "E"),
    A.API_TOKEN_REFUSED: (AUTHENTICATION, None, "E"),
    A.TOKEN_ISSUED: (AUTHENTICATION, None, "E"),
    A.TOKEN_REFUSED: (AUTHENTICATION, None, "E"),
    A.USER_CREATED: (SECURITY_ALERT, USER_CHANGED, "C"),
    A.USER_UPDATED: (SECURITY_ALERT, USER_CHANGED, "U"),
    A.USER_DELETED: (SECURITY_ALERT, USER_CHANGED, "D"),
    A.GROUP_CHANGED: (SECURITY_ALERT, ROLES_CHANGED, "U"),
    A.CLIENT_APP_REGISTERED: (SECURITY_ALERT, SECURITY_CONFIGURATION, "C"),
    A.CLIENT_APP_UPDATED: (SECURITY_ALERT, SECURITY_CONFIGURATION, "U"),
    A.CLIENT_APP_DELETED: (SECURITY_ALERT, SECURITY_CONFIGURATION, "D"),
    A.EXPORT_STARTED: (EXPORT, None, "E"),
    A.EXPORT_FINISHED: (EXPORT, None, "E"),
    A.EXPORT_CANCELLED: (EXPORT, None, "E"),
    A.EXPORT_FILES_DELETED: (EXPORT, None, "D"),
    A.DEPLOYED: (APPLICATION_ACTIVITY, SOFTWARE_CONFIGURATION, "U"),
    A.DEPLOY_REFUSED: (APPLICATION_ACTIVITY, SOFTWARE_CONFIGURATION, "U"),
    A.ROLLED_BACK: (APPLICATION_ACTIVITY, SOFTWARE_CONFIGURATION, "U"),
    A.INDEXED: (APPLICATION_ACTIVITY, SOFTWARE_CONFIGURATION, "E"),
}
REFUSALS = {A.LOGIN_FAILED, A.LOGIN_REFUSED, A.API_TOKEN_REFUSED, A.TOKEN_REFUSED, A.DEPLOY_REFUSED}
SIGN_IN_ATTEMPTS = {A.LOGIN_FAILED, A.LOGIN_REFUSED}  # the row's object is the username tried
# the last word of an action → the RESTful interaction of a REST write and its action code
VERBS = {
    "created": ("create", "C"),
    "registered": ("create", "C"),
    "uploaded": ("create", "C"),
    "records_uploaded": ("create", "C"),
    "published": ("create", "C"),
    "updated": ("update", "U"),
    "saved": ("update", "U"),
    "binding_saved": ("update", "U"),
    "group_saved": ("update", "U"),
    "restored": ("update", "U"),
    "deleted": ("delete", "D"),
    "binding_deleted": ("delete", "D"),
    "group_deleted": ("delete", "D"),
    "purged": ("delete", "D"),
}


def coding(code: tuple[str, str, str]) -> dict:
    system, value, display = code
    return {"system": system, "code": value, "display": display}


def _rest(action: str) -> tuple[tuple, tuple | None, str]:
    verb = action.split(".", 1)[1]
    interaction, letter = VERBS.get(verb, ("operation", "E"))  # tests run, batches started/finished/cancelled
    return REST, (INTERACTION, interaction, interaction), letter


def _outcome(row: AuditEvent) -> tuple[str, str]:
    """(AuditEventOutcome code, description): 0 success, 4 a refusal or a failed job."""
    details = row.details if isinstance(row.details, dict) else {}
    reason = details.get("reason") or details.get("error") or ""
    if row.action in REFUSALS:
        return "4", str(reason or AuditAction(row.action).label)
    if details.get("status") == "failed":
        return "4", str(reason or "failed")
    return "0", ""


def _agent(row: AuditEvent, details: dict) -> dict:
    if row.actor_id is not None:
        who = {"identifier": {"system": USER_SYSTEM, "value": row.actor.username}, "display": row.actor.username}
    elif row.action in SIGN_IN_ATTEMPTS and row.object_id:
        who = {"identifier": {"system": USER_SYSTEM, "value": row.object_id}, "display": row.object_id}
    elif isinstance(details.get("client"), str) and details["client"]:
        who = {"identifier": {"system": CLIENT_SYSTEM, "value": details["client"]}, "display": details["client"]}
    else:  # no one asked: the studio's own work (a worker finishing an export, a job's clean-up)
        return {"who": {"display": "FHIR Studio"}, "requestor": False}
    agent = {"who": who, "requestor": True}
    if isinstance(details.get("address"), str) and details["address"]:
        agent["network"] = {"address": details["address"], "type": NETWORK_IP}
    return agent


def _detail(name: str, value: object) -> dict:
    return {"type": name, "valueString": json.dumps(value, sort_keys=True, default=str)}


def _entities(row: AuditEvent, details: dict) -> list[dict]:
    entities = []
    if row.object_id:
        what = {
            "identifier": {"system": OBJECT_SYSTEM + row.object_type, "value": row.object_id},
            "display": f"{row.object_type} {row.object_id}",
        }
        kind = ("1", "Person") if row.object_type in ("User", "Login") else ("2", "System Object")
        entity = {"what": what, "type": {"system": ENTITY_TYPE, "code": kind[0], "display": kind[1]}}
        parts = [("before", row.before), ("after", row.after), ("details", details)]
        if shown := [_detail(name, value) for name, value in parts if value]:
            entity["detail"] = shown
        entities.append(entity)
    if row.mapping_slug:
        what = {"identifier": {"system": MAPPING_SYSTEM, "value": row.mapping_slug}, "display": row.mapping_slug}
        entities.append({"what": what, "type": {"system": ENTITY_TYPE, "code": "2", "display": "System Object"}})
    return entities


def audit_event_resource(row: AuditEvent, *, site: str) -> dict:
    """The AuditEvent resource of one audit row (with `actor` loaded: select_related). `site`: the studio's host."""
    event_type, subtype, letter = KINDS.get(row.action) or _rest(row.action)
    subtypes = [coding(subtype)] if subtype else []
    label = AuditAction(row.action).label if row.action in AuditAction.values else row.action
    subtypes.append({"system": ACTION_SYSTEM, "code": row.action, "display": label})
    details = row.details if isinstance(row.details, dict) else {}
    outcome, reason = _outcome(row)
    resource = {
        "resourceType": "AuditEvent",
        "id": str(row.pk),
        "type": coding(event_type),
        "subtype": subtypes,
        "action": letter,
        "recorded": row.created_at.isoformat(timespec="milliseconds"),
        "outcome": outcome,
        "agent": [_agent(row, details)],
        "source": {
            "site": site,
            "observer": {"display": "FHIR Studio"},
            "type": [{"system": SOURCE_TYPE, "code": "4", "display": "Application Server"}],
        },
    }
    if reason:
        resource["outcomeDesc"] = reason[:500]
    if entities := _entities(row, details):
        resource["entity"] = entities
    return resource
