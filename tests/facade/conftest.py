"""The demo facade on a live server: the demo content (mappings published, corpus HL7 messages stored, bindings
deployed and indexed), reached over HTTP like any FHIR client would."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from mappings import actions, caches
from mappings.demo import load_demo
from mappings.facade import request_log
from tests.api.conftest import ROOT, api, json_patient, users  # noqa: F401 — the studio API's fixtures, shared

PATIENT = (ROOT / "examples/json-patient/samples/example-patient.json").read_text()


@pytest.fixture
def demo(transactional_db, live_server) -> dict:
    caches.clear()
    request_log.discard()
    admin = User.objects.create_superuser("admin", password="pw-admin")
    load_demo(admin)
    return {"base": f"{live_server.url}/fhir/demo", "admin": admin}


@pytest.fixture
def served(users, json_patient):  # noqa: F811 — the shared fixtures above
    """json-patient v1 published, a stored source with two records of one patient, and a Patient binding."""
    author = users["author"]
    v1 = actions.do_publish_version(json_patient, acting_user=author, message="v1")
    source = actions.do_create_data_source(acting_user=author, name="registrations", source_format="json")
    second = PATIENT.replace('"Smith"', '"Jones"').replace('"id": "', '"id": "2')
    actions.do_upload_records(source, acting_user=author, records=[("r1", PATIENT), ("r2", second)])
    facade = actions.do_create_facade(acting_user=author, slug="clinic", title="Clinic")
    binding = actions.do_bind_resource(
        facade, acting_user=author, resource_type="Patient", mapping=json_patient, source=source
    )
    return {"author": author, "v1": v1, "binding": binding, "mapping": json_patient, "source": source}
