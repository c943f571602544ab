"""Records added to an existing source (issue 11: the facade page could not, and its form now calls this): each
upload writes its audit row, a viewer is refused, and what reads the source is re-indexed so the facade serves the
new records."""

import json

import pytest

from mappings.models import AuditEvent
from tests.api.test_facades_api import PATIENT, clinic, published  # noqa: F401 (fixtures)

pytestmark = pytest.mark.django_db(transaction=True)  # a deploy indexes once it commits
SECOND = json.dumps({**json.loads(PATIENT), "MRN": "M0R1N3", "LastName": "Jones"})


def test_adding_records_is_audited_and_the_facade_serves_them(api, users, clinic) -> None:  # noqa: F811
    fhir = api["anonymous"]
    assert fhir.get("/fhir/clinic/Patient").json()["total"] == 1
    body = {"records": [{"key": "r2", "payload": SECOND}, {"key": "r1", "payload": PATIENT}]}
    assert api["viewer"].post("/api/sources/regs/records", body, format="json").status_code == 403
    uploads = AuditEvent.objects.filter(action="source.records_uploaded").order_by("pk")
    assert uploads.count() == 1  # the fixture's own upload

    added = api["author"].post("/api/sources/regs/records", body, format="json")
    assert added.status_code == 200
    assert added.json() == {"created": 1, "replaced": 1, "reindexed": ["clinic/Patient"]}
    assert uploads.count() == 2
    event = uploads.last()
    assert (event.actor, event.after) == (users["author"], {"created": 1, "replaced": 1})

    bundle = fhir.get("/fhir/clinic/Patient").json()
    assert bundle["total"] == 2
    assert sorted(entry["resource"]["name"][0]["family"] for entry in bundle["entry"]) == ["Jones", "Smith"]
