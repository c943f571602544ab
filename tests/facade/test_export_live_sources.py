"""Bulk `$export` of types served from live sources: a legacy REST API the test starts on 127.0.0.1 and a real
PostgreSQL database, listed page by page through `list_path` / `list_query`. The worker path runs in the test
(plan_export_direct, run_export_chunk_direct) with `send_chunks` recording ids instead of using a broker; a real
worker is tested in test_bulk_export.py."""

from __future__ import annotations

import bisect
import threading
from http.server import ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import orjson
import psycopg
import pytest
import requests
from celery import current_app
from django.utils import timezone

from mappings import actions, secrets
from mappings.actions.exports import PLAN_TASK
from mappings.errors import StudioError
from mappings.job_files import LineFiles, read_lines
from mappings.jobs.chunks import Heartbeat
from mappings.jobs.export_live import plan_live_chunks, write_live_chunk
from mappings.jobs.exports import plan_export_direct, run_export_chunk_direct
from mappings.models import Deployment, ExportChunk, ExportJob, JobStatus
from mappings.sources import SourceError, live_type_filter_error
from mappings.sources import http as http_source
from mappings.sources import sql as sql_source
from tests.facade.test_live_sources import SELECT, LegacyAPI, facade_over, http_config, legacy_database  # noqa: F401

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]
# The live server's request thread keeps its database connection while a kept-alive socket is open: one still open
# when the session ends stops the test database from being dropped.
CLOSE = {"Connection": "close"}
ASYNC = {"Prefer": "respond-async", "Accept": "application/fhir+json", **CLOSE}
TOTAL = 1250
BROKEN = "L00617"  # its "Phone Number" is a number: the mapping's loop over it fails (FS-RND-006)
RECORDS = [
    {
        "PatientId": n,
        "MRN": f"L{n:05d}",
        "FirstName": f"First{n}",
        "LastName": f"Last{n}",
        "Gender": "F" if n % 2 else "M",
        "DOB": "19800101",
        **({"Phone Number": 5} if f"L{n:05d}" == BROKEN else {}),
    }
    for n in range(1, TOTAL + 1)
]
KEYS = [record["MRN"] for record in RECORDS]


class ListAPI(LegacyAPI):
    """The legacy API's list endpoints: by page (from 1), offset or key (MRN), answered under "items"; /capped never
    gives more than 70 per page whatever is asked, /same ignores the page asked for, /failing answers 500."""

    calls: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 — the name BaseHTTPRequestHandler calls
        ListAPI.calls.append(self.path)
        url = urlsplit(self.path)
        query = {name: values[0] for name, values in parse_qs(url.query, keep_blank_values=True).items()}
        limit = int(query.get("limit") or 100)
        if url.path == "/failing":
            return self.send_json(500, {})
        if url.path == "/capped":
            limit = min(limit, 70)
        if url.path == "/same":
            start = 0
        elif "page" in query:
            start = (int(query["page"]) - 1) * limit
        elif "offset" in query:
            start = int(query["offset"])
        else:
            start = bisect.bisect_right(KEYS, query.get("after", ""))
        return self.send_json(200, {"items": RECORDS[start : start + limit]})


@pytest.fixture
def list_api(settings):
    server = ThreadingHTTPServer(("127.0.0.1", 0), ListAPI)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    host = f"127.0.0.1:{server.server_address[1]}"
    settings.FHIR_STUDIO = {**settings.FHIR_STUDIO, "SOURCE_ALLOWED_HOSTS": [host]}
    ListAPI.calls = []
    yield f"http://{host}"
    server.shutdown()


@pytest.fixture
def legacy_rows(legacy_database):  # noqa: F811 — the fixture imported from test_live_sources
    """The legacy patients table with TOTAL rows; one has a phones value the mapping cannot loop over."""
    with psycopg.connect(legacy_database, autocommit=True) as connection:
        connection.execute("ALTER TABLE patients ADD COLUMN phones jsonb")
        with connection.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO patients VALUES (%s, %s, %s, %s, %s, %s)",
                [(f"M{n:04d}", f"First{n}", f"Last{n}", "F", "19800101", None) for n in range(3, TOTAL + 1)],
            )
        connection.execute("UPDATE patients SET phones = '5' WHERE mrn = 'M0617'")
    return legacy_database


LISTED = SELECT.replace(" FROM", ', phones AS "Phone Number" FROM')
SQL_BY_OFFSET = LISTED + " ORDER BY mrn LIMIT %(limit)s OFFSET %(offset)s"
SQL_BY_KEY = LISTED + " WHERE (%(after)s::text IS NULL OR mrn > %(after)s) ORDER BY mrn LIMIT %(limit)s"


@pytest.fixture
def sql_sources(settings) -> None:
    """A database name the settings checks accept; nothing connects to it."""
    settings.FHIR_STUDIO = {**settings.FHIR_STUDIO, "SQL_SOURCES": {"legacy": "postgres://127.0.0.1:9/none"}}


def sql_config(**extra) -> dict:
    return {"database": "legacy", "read_query": SELECT + " WHERE mrn = %(id)s", "search_query": SELECT, **extra}


@pytest.fixture
def job_files(settings, tmp_path):
    settings.STORAGES = {
        **settings.STORAGES,
        "jobs": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path), "allow_overwrite": True},
        },
    }
    return tmp_path


@pytest.fixture
def sent(monkeypatch, job_files) -> list[int]:
    """Chunk ids "sent" to workers, in order: send_chunks stamps queued_at as it does, but queues nothing; the plan
    task is not queued either (the test plans itself)."""
    ids: list[int] = []

    def record(model, chunk_ids: list[int]) -> None:
        model.objects.filter(pk__in=chunk_ids).update(queued_at=timezone.now())
        ids.extend(chunk_ids)

    monkeypatch.setattr("mappings.jobs.chunks.send_chunks", record)
    monkeypatch.setattr("mappings.jobs.exports.send_chunks", record)
    monkeypatch.setattr(current_app.tasks[PLAN_TASK], "delay", lambda job_id: None)
    return ids


def small_chunks(settings, size: int = 300) -> None:
    settings.FHIR_STUDIO = {**settings.FHIR_STUDIO, "EXPORT_CHUNK_RESOURCES": size}


def run_worker_path(job_id: int, sent: list[int]) -> ExportJob:
    """What the workers do, one chunk after another, until nothing is left to run."""
    plan_export_direct(job_id)
    while sent:
        run_export_chunk_direct(sent.pop(0))
    return ExportJob.objects.get(pk=job_id)


def start_job(level: str = ExportJob.Level.SYSTEM, parameters: dict | None = None) -> ExportJob:
    facade = Deployment.objects.live().get().binding.facade
    return actions.do_start_export(
        facade,
        client="test",
        level=level,
        group_id="",
        request_url="http://testserver/$export",
        parameters=parameters or {},
        requires_access_token=False,
    )


# --- settings ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "extra", "problem"),
    [
        ("http", {"list_path": "patients?page={page}"}, "starting with a single /"),
        ("http", {"list_path": "//evil.example/x?page={page}"}, "starting with a single /"),
        ("http", {"list_path": "/patients?size={limit}"}, "exactly one of {page}, {offset} or {after}"),
        ("http", {"list_path": "/p?page={page}&offset={offset}"}, "exactly one of {page}, {offset} or {after}"),
        ("http", {"list_path": "/patients?page={page}&x={id}"}, "can only use {page}, {offset} or {after}"),
        ("http", {"list_path": "/patients?page={page:05d}"}, "no formats"),
        ("http", {"list_path": "/patients?page={page"}, "not a valid template"),
        ("http", {"list_path": "/patients?after={after}"}, "needs key_field"),
        ("http", {"list_path": "/patients?page={page}", "first_page": -1}, "first_page"),
        ("http", {"list_path": "/patients?page={page}", "page_size": 10_001}, "page_size"),
        ("http", {"list_path": "/patients?page={page}", "page_size": True}, "page_size"),
        ("sql", {"list_query": "SELECT * FROM patients OFFSET %(offset)s"}, "needs %(limit)s"),
        ("sql", {"list_query": "SELECT * FROM patients LIMIT %(limit)s"}, "needs %(limit)s"),
        ("sql", {"list_query": "SELECT * FROM p LIMIT %(limit)s OFFSET %s"}, "named placeholders only"),
        ("sql", {"list_query": "SELECT * FROM p WHERE a = %(id)s LIMIT %(limit)s OFFSET %(offset)s"}, "not %(id)s"),
        ("sql", {"list_query": "SELECT * FROM p WHERE k > %(after)s LIMIT %(limit)s"}, "needs key_column"),
        ("sql", {"list_query": SQL_BY_OFFSET, "page_size": 0}, "page_size"),
    ],
)
def test_it_refuses_list_settings_it_could_not_page_with(users, sql_sources, kind, extra, problem) -> None:
    config = http_config("http://127.0.0.1:9", **extra) if kind == "http" else sql_config(**extra)
    with pytest.raises(StudioError) as refused:
        actions.do_create_data_source(
            acting_user=users["author"], name="bad", source_format="json", kind=kind, config=config
        )
    assert refused.value.code == "invalid"
    assert any(problem in text for text in refused.value.details["config"]), refused.value.details


@pytest.mark.parametrize(
    ("kind", "extra"),
    [
        ("http", {"list_path": "/patients?page={page}&size={limit}", "page_size": 10_000, "first_page": 0}),
        ("http", {"list_path": "/patients?offset={offset}"}),
        ("http", {"list_path": "/patients?after={after}&limit={limit}", "key_field": "MRN"}),
        ("sql", {"list_query": SQL_BY_OFFSET + " -- 100%% read-only", "page_size": 1}),
        ("sql", {"list_query": SQL_BY_KEY, "key_column": "MRN"}),
        ("sql", {}),
    ],
)
def test_it_accepts_list_settings_it_can_page_with(users, sql_sources, kind, extra) -> None:
    config = http_config("http://127.0.0.1:9", **extra) if kind == "http" else sql_config(**extra)
    source = actions.do_create_data_source(
        acting_user=users["author"], name="good", source_format="json", kind=kind, config=config
    )
    assert secrets.opened(source.config) == config  # as given, the credentials sealed at rest (mappings/secrets.py)


# --- the sources' list_page -------------------------------------------------------------------------------------------


def every_page(module, config: dict, cursor: dict) -> tuple[list[dict], int]:
    records, pages = [], 0
    while cursor is not None:
        payloads, cursor = module.list_page(config, cursor)
        records += [orjson.loads(payload) for payload in payloads]
        pages += 1
    return records, pages


@pytest.mark.parametrize(
    ("list_path", "cursor", "pages"),
    [
        ("/patients?page={page}&size={limit}", {"page": 1, "limit": 100}, 14),
        ("/patients?offset={offset}&limit={limit}", {"offset": 0, "limit": 100}, 14),
        ("/capped?offset={offset}&limit={limit}", {"offset": 0, "limit": 100}, 19),  # 70 a page, none skipped
        ("/patients?after={after}&limit={limit}", {"after": None, "limit": 500}, 4),
    ],
)
def test_it_lists_every_record_of_an_http_source(list_api, list_path, cursor, pages) -> None:
    config = http_config(list_api, list_path=list_path, key_field="MRN")
    records, asked = every_page(http_source, config, cursor)
    assert [record["MRN"] for record in records] == KEYS
    assert asked == pages  # the last page asked for is the empty one that ends the list
    if "after" in cursor:
        assert ListAPI.calls[0] == "/patients?after=&limit=500"  # no key yet on the first page
        assert ListAPI.calls[1] == "/patients?after=L00500&limit=500"


def test_it_refuses_an_http_list_page_that_is_not_a_list(list_api) -> None:
    config = http_config(list_api, list_path="/patients?page={page}", records_key="rows")
    with pytest.raises(SourceError, match="an array under 'rows'"):
        http_source.list_page(config, {"page": 1, "limit": 10})
    unreachable = http_config("http://127.0.0.2:9", list_path="/patients?page={page}")
    with pytest.raises(SourceError, match="not an allowed host"):
        http_source.list_page(unreachable, {"page": 1, "limit": 10})


@pytest.mark.parametrize(
    ("query", "cursor"), [(SQL_BY_OFFSET, {"offset": 0, "limit": 400}), (SQL_BY_KEY, {"after": None, "limit": 400})]
)
def test_it_lists_every_row_of_a_sql_source(legacy_rows, query, cursor) -> None:
    config = sql_config(list_query=query, key_column="MRN")
    records, pages = every_page(sql_source, config, cursor)
    assert [record["MRN"] for record in records] == ["M0001", "M0002", *(f"M{n:04d}" for n in range(3, TOTAL + 1))]
    assert pages == 5  # 400, 400, 400, 50 and the empty page


def test_it_reads_past_the_row_cap_of_search_queries(legacy_rows) -> None:
    config = sql_config(list_query=SQL_BY_OFFSET)
    payloads, following = sql_source.list_page(config, {"offset": 0, "limit": 1200})
    assert len(payloads) == 1200 > sql_source.MAX_ROWS
    assert following == {"offset": 1200, "limit": 1200}
    wrong_key = sql_config(list_query=SQL_BY_KEY, key_column="mrn")  # the query calls it MRN
    with pytest.raises(SourceError, match="key_column mrn is not a column"):
        sql_source.list_page(wrong_key, {"after": None, "limit": 10})


# --- plan and write, called directly ---------------------------------------------------------------------------------


def test_it_plans_one_chunk_at_the_start_of_the_list(users, json_patient, list_api, sent) -> None:
    config = http_config(list_api, list_path="/patients?page={page}&size={limit}", page_size=100, first_page=1)
    facade_over(users, json_patient, "http", config)
    job, deployment = start_job(), Deployment.objects.live().get()
    [chunk] = plan_live_chunks(job, "Patient", deployment)
    assert chunk.pk is None and chunk.number == 1 and chunk.deployment == deployment
    assert chunk.cursor == {"page": 1, "limit": 100}
    deployment.binding.source.config = http_config(list_api)
    with pytest.raises(ValueError) as refused:
        plan_live_chunks(job, "Patient", deployment)
    assert str(refused.value) == "Patient comes from an HTTP source with no list_path: it cannot be exported"


def test_it_writes_a_chunk_and_sends_the_next_one_once(users, json_patient, list_api, sent, settings) -> None:
    small_chunks(settings, 250)
    config = http_config(list_api, list_path="/patients?offset={offset}&limit={limit}", page_size=100)
    facade_over(users, json_patient, "http", config)
    job = start_job()
    plan_export_direct(job.pk)
    [first_id] = sent
    chunk = ExportChunk.objects.select_related("deployment").get(pk=first_id)
    results = []
    for run in range(2):  # the second run is a redelivered message, or a worker taking over a stalled chunk
        output = LineFiles(f"test/out-{run}", max_lines=10**6, max_bytes=10**9)
        errors = LineFiles(f"test/errors-{run}", max_lines=10**6, max_bytes=10**9)
        results.append(write_live_chunk(chunk, job, output, errors, Heartbeat(chunk)))
        output.close()
        errors.close()
    assert results == [(300, 0), (300, 0)]  # three pages of 100: whole pages, until 250 records were read
    successors = ExportChunk.objects.filter(job=job, number=2)
    assert successors.count() == 1
    assert successors.get().cursor["offset"] == 300 and successors.get().cursor["limit"] == 100
    assert sent == [first_id, successors.get().pk]  # sent once: the second run found it sent


class StopAfter:
    def __init__(self, beats: int) -> None:
        self.beats = beats

    def beat(self) -> bool:
        self.beats -= 1
        return self.beats > 0


def test_it_stops_when_the_heartbeat_says_so_and_makes_no_successor(
    users, json_patient, list_api, sent, settings
) -> None:
    small_chunks(settings)
    facade_over(users, json_patient, "http", http_config(list_api, list_path="/patients?page={page}", page_size=100))
    job = start_job()
    plan_export_direct(job.pk)
    chunk = ExportChunk.objects.get(job=job)
    output = LineFiles("test/stopped", max_lines=10**6, max_bytes=10**9)
    errors = LineFiles("test/stopped-errors", max_lines=10**6, max_bytes=10**9)
    assert write_live_chunk(chunk, job, output, errors, StopAfter(5)) == (5, 0)
    assert output.close() == [] and errors.close() == []  # nothing half-written is kept
    assert not ExportChunk.objects.filter(job=job, number=2).exists()


def test_it_keeps_the_asked_patients_in_a_patient_export(users, json_patient, list_api, sent, settings) -> None:
    facade_over(users, json_patient, "http", http_config(list_api, list_path="/patients?page={page}", page_size=500))
    everything = run_worker_path(start_job().pk, sent)
    some = [orjson.loads(line)["id"] for line in read_lines(everything.chunks.get(number=1).files[0]["name"])][:3]
    parameters = {"patients": some, "since": "2999-01-01T00:00:00+00:00", "elements": ["gender"]}
    job = run_worker_path(start_job(ExportJob.Level.PATIENT, parameters).pk, sent)
    exported = [orjson.loads(line) for chunk in job.chunks.all() for line in output_lines(chunk)]
    assert sorted(resource["id"] for resource in exported) == sorted(some)  # _since: live records have no lastUpdated
    assert all(set(resource) == {"resourceType", "id", "gender", "meta"} for resource in exported)
    assert all(resource["meta"]["tag"][0]["code"] == "SUBSETTED" for resource in exported)


def output_lines(chunk: ExportChunk) -> list[bytes]:
    return [line for file in chunk.files if file["kind"] == "output" for line in read_lines(file["name"])]


def test_it_refuses_type_filters_on_live_types_only() -> None:
    assert live_type_filter_error("Patient", "stored") is None
    assert "live http source" in live_type_filter_error("Patient", "http")
    assert "live sql source" in live_type_filter_error("Observation", "sql")


# --- end to end: kick-off and status over HTTP, the worker path in the test -----------------------------------------


def export_over_http(live_server, slug: str, sent: list[int]) -> tuple[requests.Response, ExportJob]:
    kicked = requests.get(f"{live_server.url}/fhir/{slug}/$export", headers=ASYNC, timeout=10)
    assert kicked.status_code == 202, kicked.text
    status_url = kicked.headers["Content-Location"]
    job = run_worker_path(ExportJob.objects.get(key=status_url.rsplit("/", 1)[1]).pk, sent)
    return requests.get(status_url, headers=CLOSE, timeout=10), job


def ndjson(url: str) -> list[dict]:
    response = requests.get(url, headers=CLOSE, timeout=10)
    assert response.status_code == 200
    return [orjson.loads(line) for line in response.content.splitlines()]


@pytest.mark.parametrize(
    ("kind", "broken"),
    [
        ("http", f"MRN={BROKEN}"),
        ("sql", "MRN=M0617"),
    ],
)
def test_it_exports_every_record_of_a_live_source(
    live_server, users, json_patient, list_api, legacy_rows, sent, settings, kind, broken
) -> None:
    small_chunks(settings)
    if kind == "http":
        config = http_config(list_api, list_path="/patients?page={page}&size={limit}", page_size=100, key_field="MRN")
    else:
        config = sql_config(list_query=SQL_BY_KEY, key_column="MRN", page_size=100)
    facade_over(users, json_patient, kind, config)
    status, job = export_over_http(live_server, f"legacy-{kind}", sent)
    assert status.status_code == 200, status.text
    assert job.status == JobStatus.COMPLETED
    # 13 pages of 100 (the last one 50), three to a chunk, and the empty page the fifth chunk ends on.
    assert list(job.chunks.values_list("number", "done", "failed")) == [
        (1, 300, 0),
        (2, 300, 0),
        (3, 299, 1),
        (4, 300, 0),
        (5, 50, 0),
    ]
    manifest = status.json()
    assert sum(entry["count"] for entry in manifest["output"]) == TOTAL - 1
    ids = []
    for entry in manifest["output"]:
        resources = ndjson(entry["url"])
        assert len(resources) == entry["count"]
        ids += [resource["id"] for resource in resources]
    assert len(ids) == len(set(ids)) == TOTAL - 1  # every record once, none twice across chunks
    [error_file] = manifest["error"]
    [outcome] = ndjson(error_file["url"])
    assert outcome["issue"][0]["details"]["coding"][0]["code"] == "FS-RND-006"
    assert outcome["issue"][0]["diagnostics"] == f"record {broken}"


def test_it_fails_the_export_of_a_live_source_without_a_list_setting(
    live_server, users, json_patient, list_api, sent
) -> None:
    facade_over(users, json_patient, "http", http_config(list_api))
    status, job = export_over_http(live_server, "legacy-http", sent)
    assert job.status == JobStatus.FAILED
    assert status.status_code == 500
    outcome = status.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert "Patient comes from an HTTP source with no list_path: it cannot be exported" in str(outcome)


@pytest.mark.parametrize(
    ("list_path", "message"),
    [
        ("/failing?page={page}", "The legacy API answered 500."),
        ("/same?page={page}", "answered the same page twice at page 2: does list_path page?"),
    ],
)
def test_it_fails_the_export_when_the_source_cannot_list(
    live_server, users, json_patient, list_api, sent, list_path, message
) -> None:
    facade_over(users, json_patient, "http", http_config(list_api, list_path=list_path, retries=0))
    status, job = export_over_http(live_server, "legacy-http", sent)
    assert job.status == JobStatus.FAILED and status.status_code == 500
    assert message in str(status.json())
    assert not job.chunks.filter(number=2).exists()
