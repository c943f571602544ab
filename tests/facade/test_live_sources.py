"""Facades over live sources: a legacy REST API the test starts on 127.0.0.1 (allowed hosts only, no redirects,
retries on 503, timeouts) and a read-only SQL query against a real PostgreSQL schema the test creates."""

from __future__ import annotations

import uuid
from urllib.parse import parse_qs, urlsplit

import psycopg
import pytest

from mappings import actions
from tests.legacy_http import JsonHandler, allowed_server

pytestmark = pytest.mark.django_db(transaction=True)
PATIENTS = {
    "M0001": {
        "PatientId": 1,
        "MRN": "M0001",
        "FirstName": "Ada",
        "LastName": "Lovelace",
        "Gender": "F",
        "DOB": "18151210",
    },
    "M0002": {
        "PatientId": 2,
        "MRN": "M0002",
        "FirstName": "Alan",
        "LastName": "Turing",
        "Gender": "M",
        "DOB": "19120623",
    },
}


class LegacyAPI(JsonHandler):
    calls: list[str] = []
    flaky_left = 0

    def do_GET(self) -> None:  # noqa: N802 — http.server names it
        LegacyAPI.calls.append(self.path)
        url = urlsplit(self.path)
        if url.path == "/flaky" and LegacyAPI.flaky_left > 0:
            LegacyAPI.flaky_left -= 1
            return self.send_json(503, {})
        if url.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "http://169.254.169.254/latest/meta-data/")
            self.end_headers()
            return None
        if url.path.startswith("/patients/"):
            found = PATIENTS.get(url.path.rsplit("/", 1)[1])
            return self.send_json(200 if found else 404, found or {})
        family = parse_qs(url.query).get("family", [""])[0].lower()
        rows = [row for row in PATIENTS.values() if row["LastName"].lower().startswith(family)]
        if self.headers.get("Authorization") != "Bearer s3cret":
            return self.send_json(401, {})
        return self.send_json(200, {"items": rows})


@pytest.fixture
def legacy_api(settings):
    with allowed_server(LegacyAPI, settings) as base:
        LegacyAPI.calls = []
        yield base


def facade_over(users, mapping, kind: str, config: dict, source_format: str = "json") -> None:
    author = users["author"]
    version = mapping.versions.first() or actions.do_publish_version(mapping, acting_user=author, message="v1")
    source = actions.do_create_data_source(
        acting_user=author, name=f"legacy-{kind}", source_format=source_format, kind=kind, config=config
    )
    facade = actions.do_create_facade(acting_user=author, slug=f"legacy-{kind}", title="Legacy")
    binding = actions.do_bind_resource(
        facade, acting_user=author, resource_type="Patient", mapping=mapping, source=source
    )
    actions.do_deploy(binding, acting_user=author, version=version)


def http_config(base: str, **extra) -> dict:
    return {
        "base_url": base,
        "read_path": "/patients/{id}",
        "search_path": "/patients?family={family}",
        "search": {"family": "family"},
        "records_key": "items",
        "auth": {"type": "bearer", "token": "s3cret"},
        "timeout_s": 2,
        **extra,
    }


def test_it_reads_and_searches_a_legacy_rest_api(client, users, json_patient, legacy_api) -> None:
    facade_over(users, json_patient, "http", http_config(legacy_api, read_path="/patients/{id}"))
    bundle = client.get("/fhir/legacy-http/Patient?family=love").json()
    assert bundle["total"] == 1
    assert bundle["entry"][0]["resource"]["name"][0]["family"] == "Lovelace"
    assert "/patients?family=love" in LegacyAPI.calls
    injected = client.get("/fhir/legacy-http/Patient", {"family": "x&admin=1/../../etc"})
    assert injected.status_code == 200
    assert LegacyAPI.calls[-1] == "/patients?family=x%26admin%3D1%2F..%2F..%2Fetc"  # encoded, not spliced
    unsupported = client.get("/fhir/legacy-http/Patient?birthdate=1815")
    assert unsupported.status_code == 400 and unsupported.json()["resourceType"] == "OperationOutcome"


def test_it_refuses_hosts_the_administrator_did_not_allow(client, users, json_patient, legacy_api, settings) -> None:
    facade_over(users, json_patient, "http", http_config("http://127.0.0.2:9"))
    refused = client.get("/fhir/legacy-http/Patient?family=love")
    assert refused.status_code == 500
    assert "not an allowed host" in refused.json()["issue"][0]["diagnostics"]


def test_it_does_not_follow_redirects_and_retries_a_503(client, users, json_patient, legacy_api) -> None:
    facade_over(users, json_patient, "http", http_config(legacy_api, read_path="/redirect", search_path="/flaky"))
    redirected = client.get("/fhir/legacy-http/Patient/M0001")
    assert redirected.status_code == 502  # the 302 is an error, never followed to the metadata address
    LegacyAPI.flaky_left = 1
    flaky = client.get("/fhir/legacy-http/Patient?family=love")
    assert flaky.status_code == 200  # second attempt answered
    assert LegacyAPI.calls.count("/flaky") == 2  # the template had no {family}: nothing was added to it


def test_it_answers_504_when_the_legacy_api_is_down(client, users, json_patient, settings) -> None:
    settings.FHIR_STUDIO = {**settings.FHIR_STUDIO, "SOURCE_ALLOWED_HOSTS": ["127.0.0.1:9"]}
    facade_over(users, json_patient, "http", http_config("http://127.0.0.1:9", retries=1))
    down = client.get("/fhir/legacy-http/Patient?family=love")
    assert down.status_code == 504 and down.json()["issue"][0]["code"] == "transient"


@pytest.fixture
def legacy_database(settings):
    """A real PostgreSQL database with a legacy patients table, read through the SQL source."""
    name = f"legacy_{uuid.uuid4().hex[:8]}"
    admin_url = "postgres://postgres@127.0.0.1:5432/postgres"
    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(f"CREATE DATABASE {name}")
    url = f"postgres://postgres@127.0.0.1:5432/{name}"
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("CREATE TABLE patients (mrn text primary key, first text, last text, sex text, dob text)")
        for row in PATIENTS.values():
            connection.execute(
                "INSERT INTO patients VALUES (%s, %s, %s, %s, %s)",
                (row["MRN"], row["FirstName"], row["LastName"], row["Gender"], row["DOB"]),
            )
    settings.FHIR_STUDIO = {**settings.FHIR_STUDIO, "SQL_SOURCES": {"legacy": url}}
    yield url
    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(f"DROP DATABASE {name} WITH (FORCE)")


SELECT = 'SELECT mrn AS "MRN", first AS "FirstName", last AS "LastName", sex AS "Gender", dob AS "DOB" FROM patients'


def test_it_reads_and_searches_a_sql_source_read_only(client, users, json_patient, legacy_database) -> None:
    config = {
        "database": "legacy",
        "read_query": SELECT + " WHERE mrn = %(id)s",
        "search_query": SELECT + " WHERE last ILIKE %(family)s || '%%' ORDER BY mrn",
        "search": {"family": "family"},
    }
    facade_over(users, json_patient, "sql", config)
    bundle = client.get("/fhir/legacy-sql/Patient?family=tur").json()
    assert [entry["resource"]["name"][0]["family"] for entry in bundle["entry"]] == ["Turing"]
    sneaky = client.get("/fhir/legacy-sql/Patient", {"family": "x' OR '1'='1"}).json()
    assert sneaky["total"] == 0  # a parameter, never SQL


def test_it_refuses_to_write_through_a_sql_source(client, users, json_patient, legacy_database) -> None:
    config = {"database": "legacy", "read_query": "DELETE FROM patients RETURNING mrn", "search_query": SELECT}
    facade_over(users, json_patient, "sql", config)
    refused = client.get("/fhir/legacy-sql/Patient/M0001")
    assert refused.status_code == 500 and refused.json()["resourceType"] == "OperationOutcome"
    with psycopg.connect(legacy_database) as connection:
        assert connection.execute("SELECT count(*) FROM patients").fetchone()[0] == 2


def test_its_capability_statement_lists_what_the_live_source_searches(client, users, json_patient, legacy_api) -> None:
    facade_over(users, json_patient, "http", http_config(legacy_api))
    statement = client.get("/fhir/legacy-http/metadata").json()
    patient = statement["rest"][0]["resource"][0]
    assert [param["name"] for param in patient["searchParam"]] == ["_id", "family"]
