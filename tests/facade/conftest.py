"""The demo facade on a live server: the demo content (mappings published, corpus HL7 messages stored, bindings
deployed and indexed), reached over HTTP like any FHIR client would."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from mappings import caches
from mappings.demo import load_demo
from mappings.facade import request_log
from tests.api.conftest import api, json_patient, users  # noqa: F401 — the studio API's fixtures, shared


@pytest.fixture
def demo(transactional_db, live_server) -> dict:
    caches.clear()
    request_log.discard()
    admin = User.objects.create_superuser("admin", password="pw-admin")
    load_demo(admin)
    return {"base": f"{live_server.url}/fhir/demo", "admin": admin}
