"""Issue 16's story end to end, over HTTP on 127.0.0.1: an admin adds a connection with SMART Backend Services auth to
a protected FHIR store of the studio's own and tests it; an author pushes ADT messages, each rendered by the demo's
hl7v2-adt-a01 mapping to a transaction Bundle, and sees each entry's result; fhirpy, with a token from the same
client app, reads the resources back."""

from __future__ import annotations

import pytest
from fhirpy import SyncFHIRClient
from fhirpy.base.exceptions import AuthorizationError

from mappings.connectors import SmartBackendAuth, Transport
from tests.api.conftest import ROOT, client_for, make_user
from tests.connectors.conftest import SMART_SCOPE, connect_with_smart
from tests.store.conftest import make_store_facade

pytestmark = pytest.mark.timeout(180)
SAMPLES = sorted((ROOT / "examples/hl7v2-adt-a01/samples").glob("*.hl7"))


def test_an_admin_connects_with_smart_and_an_author_pushes_adt_messages_read_back_by_fhirpy(
    demo, settings, tmp_path
) -> None:
    made = make_store_facade(slug="store-smart", store="smart-data", auth_mode="smart-backend")
    base = demo["base"].replace("://localhost:", "://127.0.0.1:").replace("/fhir/demo", "/fhir/store-smart")
    admin, author = client_for(demo["admin"]), client_for(make_user("writer", "author"))
    keys, tested = connect_with_smart(admin, made["facade"], base, settings, tmp_path)
    assert tested["code"] == "ok" and tested["fhir_version"] == "4.0.1", tested

    pushed_ids: set[str] = set()
    for sample in SAMPLES:
        body = {"mapping": "hl7v2-adt-a01", "version": 1, "payload": sample.read_text()}
        answer = author.post("/api/connections/ehr/push", body, format="json").json()
        assert answer["code"] == "ok", (sample.name, answer)
        assert answer["entries"] and all(entry["status"][:1] == "2" for entry in answer["entries"]), answer
        pushed_ids |= {
            entry["location"].split("/_history")[0] for entry in answer["entries"] if "Patient/" in entry["location"]
        }
    assert pushed_ids

    auth = SmartBackendAuth(
        client_id=keys.client.client_id, private_key=keys.private_key.read_text(), algorithm="ES384", scope=SMART_SCOPE
    )
    token = auth.headers(Transport(), base)["Authorization"]
    fhirpy = SyncFHIRClient(base, authorization=token)
    read_back = {f"Patient/{patient['id']}" for patient in fhirpy.resources("Patient").fetch_all()}
    assert pushed_ids <= read_back
    with pytest.raises(AuthorizationError):  # without the token the store refuses
        SyncFHIRClient(base).resources("Patient").fetch_all()
