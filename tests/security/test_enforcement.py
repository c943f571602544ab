"""What a token lets a client do on a protected facade, per type and interaction (mappings/security/enforcement.py):
401 with WWW-Authenticate without a usable token, 403 with a valid one lacking the scope, and the answer otherwise."""

from __future__ import annotations

import time

import pytest
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from joserfc import jwt

from mappings import actions
from mappings.jobs.exports import plan_export_direct, run_export_chunk_direct
from mappings.models import ExportJob, Facade
from mappings.security import tokens
from mappings.security.actions import do_update_client_app
from mappings.security.scopes import parse_scopes
from tests.facade.conftest import PATIENT
from tests.security.conftest import access_token, register

pytestmark = pytest.mark.django_db(transaction=True)  # deploys index on commit
FHIR_JSON = "application/fhir+json"


def bearer(token: str) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


def token_for(client, scopes: str) -> str:
    """A token whose scopes are exactly `scopes`, from a client app allowed just those."""
    app = register(["clinic"], scopes.split())
    return access_token(client, app, scopes)


def patient_id(protected) -> str:
    return protected["binding"].deployments.get().resources.values_list("resource_id", flat=True).first()


def test_without_a_usable_token_every_data_interaction_is_401_with_a_challenge(protected, client) -> None:
    expired = jwt.encode(
        {"alg": "HS256"},
        {"iss": "fhir-studio", "aud": tokens.audience("clinic"), "sub": "x", "scope": "system/*.rs", "exp": 1},
        tokens._key(settings.SECRET_KEY),
    )
    elsewhere = tokens.issue_token("another-facade", "x", parse_scopes("system/*.rs"))
    forged = tokens.issue_token("clinic", "x", parse_scopes("system/*.rs"))[:-4] + "AAAA"
    cases = {
        "": 'Bearer realm="clinic"',
        "Bearer ": 'Bearer realm="clinic"',
        "Basic dXNlcjpwdw==": 'Bearer realm="clinic"',
        "Bearer not-a-jwt": 'error="invalid_token"',
        f"Bearer {expired}": 'error="invalid_token"',
        f"Bearer {elsewhere}": 'error="invalid_token"',
        f"Bearer {forged}": 'error="invalid_token"',
    }
    for header, challenge in cases.items():
        for method, path in [
            ("get", f"/fhir/clinic/Patient/{patient_id(protected)}"),
            ("get", "/fhir/clinic/Patient"),
            ("post", "/fhir/clinic/$export"),
            ("post", "/fhir/clinic/Patient/$validate"),
            ("post", "/fhir/clinic/$convert-data"),
        ]:
            answer = (
                getattr(client, method)(path, HTTP_AUTHORIZATION=header) if header else getattr(client, method)(path)
            )
            assert answer.status_code == 401, (header, path, answer.content)
            assert answer.json()["issue"][0]["code"] == "security"
            assert challenge in answer["WWW-Authenticate"], (header, answer["WWW-Authenticate"])


def test_an_expired_token_says_so(protected, client, monkeypatch) -> None:
    token = tokens.issue_token("clinic", "x", parse_scopes("system/*.rs"))
    monkeypatch.setattr(time, "time", lambda: 10**10)
    answer = client.get("/fhir/clinic/Patient", **bearer(token))
    assert answer.status_code == 401 and "expired" in answer.json()["issue"][0]["diagnostics"]


def test_a_warm_protected_read_is_one_query_as_an_open_one_is(protected, client) -> None:
    token = token_for(client, "system/Patient.r")
    path = f"/fhir/clinic/Patient/{patient_id(protected)}"
    assert client.get(path, **bearer(token)).status_code == 200  # warms the worker's guess and the token check
    with CaptureQueriesContext(connection) as queries:
        assert client.get(path, **bearer(token)).status_code == 200
    assert len(queries) == 1, [query["sql"] for query in queries]  # the token needs no row of its own


def test_a_token_already_checked_still_runs_out_after_five_minutes(protected, client, monkeypatch) -> None:
    token = token_for(client, "system/*.rs")
    assert client.get("/fhir/clinic/Patient", **bearer(token)).status_code == 200  # checked, and remembered
    issued = time.time()
    monkeypatch.setattr(time, "time", lambda: issued + 301)
    answer = client.get("/fhir/clinic/Patient", **bearer(token))
    assert answer.status_code == 401 and "expired" in answer.json()["issue"][0]["diagnostics"]


@pytest.mark.parametrize(
    "scopes, read, search",
    [
        ("system/*.rs", 200, 200),
        ("system/*.read", 200, 200),
        ("system/Patient.read", 200, 200),
        ("system/Patient.rs", 200, 200),
        ("system/Patient.r", 200, 403),
        ("system/Patient.s", 403, 200),
        ("system/Patient.cud", 403, 403),
        ("system/Encounter.rs", 403, 403),
    ],
)
def test_read_and_search_need_their_own_scope(protected, client, scopes, read, search) -> None:
    token = token_for(client, scopes)
    found = client.get(f"/fhir/clinic/Patient/{patient_id(protected)}", **bearer(token))
    assert found.status_code == read, found.content
    searched = client.get("/fhir/clinic/Patient", **bearer(token))
    posted = client.post(
        "/fhir/clinic/Patient/_search", "name=Smith", content_type="application/x-www-form-urlencoded", **bearer(token)
    )
    assert searched.status_code == posted.status_code == search
    for refused in [answer for answer in (found, searched) if answer.status_code == 403]:
        assert refused.json()["issue"][0]["code"] == "security"
        assert refused["WWW-Authenticate"] == 'Bearer error="insufficient_scope"'


def test_validate_needs_read_on_the_type_validated(protected, client) -> None:
    resource = {"resourceType": "Patient", "id": "p1"}
    for scopes, status in [("system/Patient.r", 200), ("system/Encounter.rs", 403), ("system/Patient.s", 403)]:
        token = token_for(client, scopes)
        for path in ("/fhir/clinic/$validate", "/fhir/clinic/Patient/$validate"):
            answer = client.post(path, resource, content_type=FHIR_JSON, **bearer(token))
            assert answer.status_code == status, (scopes, path, answer.content)


def test_convert_data_needs_read_on_every_type_it_answers(protected, client) -> None:
    body = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "inputData", "valueString": PATIENT},
            {"name": "mapping", "valueString": "json-patient"},
        ],
    }
    allowed = client.post(
        "/fhir/clinic/$convert-data", body, content_type=FHIR_JSON, **bearer(token_for(client, "system/*.r"))
    )
    assert allowed.status_code == 200, allowed.content
    made = {entry["resource"]["resourceType"] for entry in allowed.json().get("entry", [])} or {"Patient"}
    narrow = token_for(client, "system/Encounter.r")
    refused = client.post("/fhir/clinic/$convert-data", body, content_type=FHIR_JSON, **bearer(narrow))
    assert refused.status_code == 403 and sorted(made)[0] in refused.json()["issue"][0]["diagnostics"]
    search_only = token_for(client, "system/*.s")
    assert (
        client.post("/fhir/clinic/$convert-data", body, content_type=FHIR_JSON, **bearer(search_only)).status_code
        == 403
    )


def kickoff(client, token: str, query: str = "") -> object:
    return client.get(f"/fhir/clinic/$export{query}", HTTP_PREFER="respond-async", **bearer(token))


def test_export_needs_read_and_search_on_every_exported_type(protected, client) -> None:
    assert kickoff(client, token_for(client, "system/Patient.r"), "?_type=Patient").status_code == 403
    assert kickoff(client, token_for(client, "system/Encounter.rs")).status_code == 403  # nothing it may export
    started = kickoff(client, token_for(client, "system/Patient.read"), "?_type=Patient")
    assert started.status_code == 202, started.content
    job = ExportJob.objects.get()
    assert job.requires_access_token and job.parameters["types"] == ["Patient"]


def test_an_export_without_type_is_narrowed_to_what_the_token_covers(protected, client) -> None:
    assert kickoff(client, token_for(client, "system/Patient.rs")).status_code == 202
    assert ExportJob.objects.get().parameters["types"] == ["Patient"]


def test_a_group_export_reads_a_served_group_only_with_read_on_group(protected, client) -> None:
    patients = [patient_id(protected)]
    actions.do_save_patient_group(
        Facade.objects.get(slug="clinic"), acting_user=None, group_id="ward", name="Ward", patient_ids=patients
    )
    narrow = token_for(client, "system/Patient.rs")
    ward = client.get("/fhir/clinic/Group/ward/$export", HTTP_PREFER="respond-async", **bearer(narrow))
    assert ward.status_code == 202, ward.content  # a group defined in the studio is no Group resource
    served = client.get("/fhir/clinic/Group/g1/$export", HTTP_PREFER="respond-async", **bearer(narrow))
    assert served.status_code == 403  # a Group the facade would serve: reading it needs r on Group
    wide = token_for(client, "system/*.rs")
    unknown = client.get("/fhir/clinic/Group/g1/$export", HTTP_PREFER="respond-async", **bearer(wide))
    assert unknown.status_code == 404


def test_status_files_and_delete_need_the_clients_own_token(protected, client) -> None:
    app = register(["clinic"], ["system/*.rs"])
    owner = access_token(client, app)
    started = kickoff(client, owner, "?_type=Patient")
    status_url = started["Content-Location"].removeprefix("http://testserver")
    job = ExportJob.objects.get()
    assert job.client == app["client"].client_id
    assert client.get(status_url).status_code == 401
    other = token_for(client, "system/*.rs")
    assert client.get(status_url, **bearer(other)).status_code == 404  # another client's export is not shown
    assert client.get(status_url, **bearer(owner)).status_code == 202
    plan_export_direct(job.pk)
    for chunk in job.chunks.all():
        run_export_chunk_direct(chunk.pk)
    manifest = client.get(status_url, **bearer(owner))
    assert manifest.status_code == 200, manifest.content
    assert manifest.json()["requiresAccessToken"] is True
    file_url = manifest.json()["output"][0]["url"].removeprefix("http://testserver")
    assert client.get(file_url).status_code == 401
    assert client.get(file_url, **bearer(other)).status_code == 404
    fetched = client.get(file_url, **bearer(owner))
    assert fetched.status_code == 200 and b'"Patient"' in b"".join(fetched.streaming_content)
    # The same client, its scope narrowed since: its new token no longer covers the exported type.
    do_update_client_app(app["client"], acting_user=None, scopes=["system/*.rs", "system/Encounter.rs"])
    narrowed = access_token(client, app, "system/Encounter.rs")
    assert client.get(file_url, **bearer(narrowed)).status_code == 403
    assert client.delete(status_url, **bearer(narrowed)).status_code == 403
    assert client.delete(status_url, **bearer(owner)).status_code == 202


def test_an_open_facade_ignores_the_authorization_header(served, client) -> None:
    actions.do_deploy(served["binding"], acting_user=served["author"], version=served["v1"])
    for header in ("Bearer ", "Bearer", "Bearer garbage", "Basic x"):
        assert client.get("/fhir/clinic/Patient", HTTP_AUTHORIZATION=header).status_code == 200, header
