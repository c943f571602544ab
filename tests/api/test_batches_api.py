"""/api/batches/: start a batch over uploaded files (multipart) or a stored source (JSON), follow it, list the failed
messages, download the results as streamed NDJSON, cancel and reprocess; errors with their codes, roles, paging.

The batch's plan and chunks run here, in the test's process, through the tasks' own bodies (plan_batch_direct,
run_batch_chunk_direct): tests/tasks/test_batches.py runs them on real workers."""

from __future__ import annotations

import io

import orjson
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from mappings import actions
from mappings.job_files import file_exists
from mappings.jobs.batches import plan_batch_direct, run_batch_chunk_direct
from mappings.models import AuditAction, AuditEvent, BatchChunk, BatchItem, BatchJob, ChunkStatus, DataSource

# A collection Bundle of two Patients per record; a record with "bad" is refused by fail() at line 1.
BUNDLE = (
    '{% if msg.bad %}{{ fail("a bad record") }}{% endif %}'
    '{"resourceType": "Bundle", "type": "collection", "entry": ['
    '{"resource": {"resourceType": "Patient", "id": {{ (msg.id ~ "a") | tojson }}}},'
    '{"resource": {"resourceType": "Patient", "id": {{ (msg.id ~ "b") | tojson }}}}]}'
)


@pytest.fixture(autouse=True)
def jobs_dir(settings, tmp_path):
    settings.STORAGES = {
        **settings.STORAGES,
        "jobs": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "jobs"), "allow_overwrite": True},
        },
    }
    settings.FHIR_STUDIO = {**settings.FHIR_STUDIO, "BATCH_CHUNK_MESSAGES": 3}


@pytest.fixture
def people(users):
    """`people` (JSON → a Bundle of two Patients), published as v1."""
    mapping = actions.do_create_mapping(
        acting_user=users["author"], slug="people", title="People", source_format="json", template=BUNDLE
    )
    actions.do_publish_version(mapping, acting_user=users["author"], message="v1")
    return mapping


def ndjson(count: int, bad: tuple[int, ...] = ()) -> bytes:
    return b"\n".join(orjson.dumps({"id": f"p{n}", "bad": n in bad}) for n in range(count)) + b"\n"


def start(api, *files: tuple[str, bytes], **fields: object):
    body = {"mapping": "people", "files": [SimpleUploadedFile(name, content) for name, content in files], **fields}
    return api["author"].post("/api/batches/", body, format="multipart")


def run(batch_id: int) -> None:
    """The batch's plan and every chunk, as the workers would run them."""
    plan_batch_direct(batch_id)
    for chunk_id in BatchChunk.objects.filter(batch_id=batch_id).values_list("pk", flat=True):
        run_batch_chunk_direct(chunk_id)


def test_it_starts_a_batch_from_uploaded_files(api, people) -> None:
    response = start(api, ("a.ndjson", ndjson(4)), ("b.ndjson", ndjson(3)))
    assert response.status_code == 201, response.json()
    batch = response.json()
    assert {key: batch[key] for key in ("status", "mapping", "version", "total", "done", "failed", "source")} == {
        "status": "queued",
        "mapping": "people",
        "version": 1,
        "total": 0,
        "done": 0,
        "failed": 0,
        "source": None,
    }
    assert batch["inputs"] == [
        {"name": "a.ndjson", "bytes": len(ndjson(4)), "messages": None},
        {"name": "b.ndjson", "bytes": len(ndjson(3)), "messages": None},
    ]
    assert batch["urls"]["results_ndjson"] == f"/api/batches/{batch['id']}/results?format=ndjson"
    assert file_exists(f"batches/{batch['id']}/inputs/1-a.ndjson")
    started = AuditEvent.objects.get(action=AuditAction.BATCH_STARTED)
    assert started.after["files"] == ["a.ndjson", "b.ndjson"] and started.mapping_slug == "people"

    run(batch["id"])
    shown = api["viewer"].get(f"/api/batches/{batch['id']}/").json()
    assert (shown["status"], shown["total"], shown["done"], shown["failed"], shown["pending"]) == (
        "completed",
        7,
        7,
        0,
        0,
    )
    assert [spec["messages"] for spec in shown["inputs"]] == [4, 3]
    assert AuditEvent.objects.get(action=AuditAction.BATCH_FINISHED).after["converted"] == 7


def test_it_runs_the_latest_published_version_unless_told(api, people, users) -> None:
    actions.do_publish_version(people, acting_user=users["author"], message="v2")
    assert start(api, ("a.ndjson", ndjson(1))).json()["version"] == 2
    assert start(api, ("a.ndjson", ndjson(1)), version=1).json()["version"] == 1


def test_it_starts_a_batch_over_a_stored_source(api, people, users) -> None:
    source = actions.do_create_data_source(acting_user=users["author"], name="registry", source_format="json")
    records = [(f"r{n}", orjson.dumps({"id": f"r{n}", "bad": n == 1}).decode()) for n in range(4)]
    actions.do_upload_records(source, acting_user=users["author"], records=records)
    response = api["author"].post("/api/batches/", {"mapping": "people", "source": "registry"}, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["source"] == "registry" and response.json()["inputs"] == []
    run(response.json()["id"])
    shown = api["author"].get(f"/api/batches/{response.json()['id']}/").json()
    assert (shown["total"], shown["done"], shown["failed"]) == (4, 3, 1)
    failure = api["author"].get(f"/api/batches/{shown['id']}/failures/").json()["results"][0]
    assert (failure["key"], failure["origin"], failure["code"]) == ("r1", "registry", "FS-RND-005")
    payload = api["author"].get(failure["payload_url"])
    assert orjson.loads(payload.content) == {"id": "r1", "bad": True}  # read from the stored record


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"mapping": "people"}, 400, "invalid"),  # neither files nor a source
        ({"mapping": "people", "source": "registry", "files": "x"}, 400, "invalid"),  # both
        ({"mapping": "nobody", "source": "registry"}, 404, "not_found"),
        ({"mapping": "people", "version": 9, "source": "registry"}, 404, "not_found"),
        ({"mapping": "people", "source": "nowhere"}, 404, "not_found"),
        ({"mapping": "people", "source": "lis"}, 400, "invalid"),  # a live source
        ({"mapping": "draft-only", "source": "registry"}, 400, "invalid"),  # nothing published
        ({"mapping": "people", "version": True, "source": "registry"}, 400, "invalid"),
        ({"mapping": "people", "source": "registry", "key_column": "a\x00b"}, 400, "invalid"),
    ],
)
def test_it_refuses_what_it_cannot_start(api, people, users, body, status, code) -> None:
    actions.do_create_data_source(acting_user=users["author"], name="registry", source_format="json")
    DataSource.objects.create(name="lis", kind=DataSource.Kind.HTTP, source_format="json")
    actions.do_create_mapping(acting_user=users["author"], slug="draft-only", title="D", source_format="json")
    if body.get("files") == "x":
        body = {**body, "files": [SimpleUploadedFile("a.ndjson", ndjson(1))]}
        response = api["author"].post("/api/batches/", body, format="multipart")
    else:
        response = api["author"].post("/api/batches/", body, format="json")
    assert (response.status_code, response.json()["code"]) == (status, code), response.json()
    assert not BatchJob.objects.exists()


def test_it_refuses_an_empty_file(api, people) -> None:
    response = start(api, ("a.ndjson", ndjson(1)), ("empty.hl7", b""))
    assert (response.status_code, response.json()["code"]) == (400, "invalid")
    assert "empty.hl7" in response.json()["message"]


def test_it_refuses_files_over_the_size_limit(api, people, settings) -> None:
    settings.FHIR_STUDIO = {**settings.FHIR_STUDIO, "MAX_INPUT_BYTES": 10}  # files of 1,000 bytes at most
    response = start(api, ("a.ndjson", ndjson(100)))
    assert response.status_code == 413
    assert response.json()["code"] == "too_large" and response.json()["details"]["max_bytes"] == 1000
    # A body announced as far too big is refused before it is read.
    body = {"mapping": "people", "files": [SimpleUploadedFile("a.ndjson", ndjson(1))]}
    huge = api["author"].post("/api/batches/", body, format="multipart", CONTENT_LENGTH=str(10**12))
    assert (huge.status_code, huge.json()["code"]) == (413, "too_large")
    garbled = api["author"].post("/api/batches/", body, format="multipart", CONTENT_LENGTH="many")
    assert garbled.status_code == 400
    assert not BatchJob.objects.exists()


def test_it_lets_viewers_read_and_authors_write(api, people) -> None:
    batch_id = start(api, ("a.ndjson", ndjson(2))).json()["id"]
    assert api["viewer"].get("/api/batches/").status_code == 200
    assert api["viewer"].get(f"/api/batches/{batch_id}/failures/").status_code == 200
    for client, status, code in ((api["viewer"], 403, "permission_denied"), (api["anonymous"], 401, None)):
        for url in ("/api/batches/", f"/api/batches/{batch_id}/cancel", f"/api/batches/{batch_id}/reprocess"):
            response = client.post(url, {"mapping": "people", "source": "x"}, format="json")
            assert response.status_code == status, url
            assert code is None or response.json()["code"] == code
    assert api["norole"].get("/api/batches/").json()["code"] == "permission_denied"
    assert api["anonymous"].get(f"/api/batches/{batch_id}/").json()["code"] == "not_authenticated"


def test_it_answers_not_found_for_a_batch_that_does_not_exist(api, people) -> None:
    for url in ("", "failures/", "results", "items/0/payload"):
        response = api["admin"].get(f"/api/batches/4242/{url}")
        assert (response.status_code, response.json()["code"]) == (404, "not_found"), url
    assert api["admin"].post("/api/batches/4242/cancel").json()["code"] == "not_found"


def test_it_shows_the_progress_of_a_running_batch(api, people) -> None:
    batch_id = start(api, ("a.ndjson", ndjson(7, bad=(1,)))).json()["id"]
    assert plan_batch_direct(batch_id) == 3
    run_batch_chunk_direct(BatchChunk.objects.filter(batch_id=batch_id).order_by("first_seq").first().pk)
    shown = api["viewer"].get(f"/api/batches/{batch_id}/").json()
    assert (shown["status"], shown["total"], shown["done"], shown["failed"], shown["pending"]) == (
        "running",
        7,
        2,
        1,
        4,
    )
    assert shown["rate"] > 0 and shown["eta_seconds"] >= 0 and shown["started_at"] and not shown["finished_at"]


def test_it_lists_the_failed_messages_page_by_page(api, people) -> None:
    batch_id = start(api, ("people.ndjson", ndjson(7, bad=(1, 4, 6)))).json()["id"]
    run(batch_id)
    first = api["viewer"].get(f"/api/batches/{batch_id}/failures/?page_size=2").json()
    assert first["count"] == 3 and first["next"]
    assert [row["seq"] for row in first["results"]] == [1, 4]
    row = first["results"][0]
    assert {key: row[key] for key in ("key", "origin", "code", "message", "line", "template")} == {
        "key": "people.ndjson#2",
        "origin": "people.ndjson line 2",
        "code": "FS-RND-005",
        "message": "a bad record",
        "line": 1,
        "template": "template.j2",
    }
    assert row["issues"]["resourceType"] == "OperationOutcome"
    second = api["viewer"].get(first["next"]).json()
    assert [row["seq"] for row in second["results"]] == [6] and not second["next"]
    payload = api["viewer"].get(row["payload_url"])
    assert payload["Content-Type"] == "text/plain; charset=utf-8"
    assert orjson.loads(payload.content) == {"id": "p1", "bad": True}
    assert api["viewer"].get(f"/api/batches/{batch_id}/items/99/payload").json()["code"] == "not_found"


def test_it_streams_the_results_as_resources_or_as_outputs(api, people) -> None:
    batch_id = start(api, ("a.ndjson", ndjson(5, bad=(2,)))).json()["id"]
    run(batch_id)
    response = api["viewer"].get(f"/api/batches/{batch_id}/results?format=bundles")
    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"] == "application/fhir+ndjson"
    assert response["Content-Disposition"] == f'attachment; filename="batch-{batch_id}-bundles.ndjson"'
    bundles = [orjson.loads(line) for line in b"".join(response.streaming_content).splitlines()]
    assert [bundle["entry"][0]["resource"]["id"] for bundle in bundles] == ["p0a", "p1a", "p3a", "p4a"]

    # Flattened, and whatever the client says it accepts: the format is the query's.
    response = api["viewer"].get(f"/api/batches/{batch_id}/results", HTTP_ACCEPT="application/fhir+ndjson")
    assert response.status_code == 200 and response.streaming
    resources = [orjson.loads(line) for line in b"".join(response.streaming_content).splitlines()]
    assert [resource["id"] for resource in resources] == ["p0a", "p0b", "p1a", "p1b", "p3a", "p3b", "p4a", "p4b"]

    refused = api["viewer"].get(f"/api/batches/{batch_id}/results?format=xml")
    assert (refused.status_code, refused.json()["code"]) == (400, "invalid")


def test_it_fails_a_batch_whose_file_cannot_be_split(api, people) -> None:
    batch_id = start(api, ("a.ndjson", ndjson(2) + b'{"id": "broken\n')).json()["id"]
    assert plan_batch_direct(batch_id) == 0
    shown = api["viewer"].get(f"/api/batches/{batch_id}/").json()
    assert (shown["status"], shown["total"]) == ("failed", 0)
    assert shown["error"].startswith("FS-SRC-021 a.ndjson line 3 is not valid JSON"), shown["error"]
    assert not BatchItem.objects.filter(batch_id=batch_id).exists()


def test_it_cancels_a_batch_once(api, people) -> None:
    batch_id = start(api, ("a.ndjson", ndjson(7))).json()["id"]
    plan_batch_direct(batch_id)
    assert api["viewer"].post(f"/api/batches/{batch_id}/cancel").status_code == 403
    response = api["author"].post(f"/api/batches/{batch_id}/cancel")
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    assert set(BatchChunk.objects.filter(batch_id=batch_id).values_list("status", flat=True)) == {ChunkStatus.CANCELLED}
    again = api["author"].post(f"/api/batches/{batch_id}/cancel")
    assert (again.status_code, again.json()["code"]) == (409, "conflict")
    assert AuditEvent.objects.filter(action=AuditAction.BATCH_CANCELLED).count() == 1


def test_it_reprocesses_only_the_failed_messages(api, people, users) -> None:
    batch_id = start(api, ("people.ndjson", ndjson(6, bad=(0, 3)))).json()["id"]
    running = api["author"].post(f"/api/batches/{batch_id}/reprocess", {}, format="json")
    assert (running.status_code, running.json()["code"]) == (409, "conflict")
    run(batch_id)

    other = actions.do_create_mapping(acting_user=users["author"], slug="other", title="O", source_format="json")
    actions.do_publish_version(other, acting_user=users["author"], message="v1")
    elsewhere = api["author"].post(f"/api/batches/{batch_id}/reprocess", {"version": 9}, format="json")
    assert (elsewhere.status_code, elsewhere.json()["code"]) == (404, "not_found")

    response = api["author"].post(f"/api/batches/{batch_id}/reprocess", {"version": 1}, format="json")
    assert response.status_code == 201, response.json()
    again = response.json()
    assert (again["reprocess_of"], again["version"], again["status"]) == (batch_id, 1, "queued")
    run(again["id"])
    items = BatchItem.objects.filter(batch_id=again["id"]).order_by("seq")
    assert [(item.seq, item.key, item.origin) for item in items] == [
        (0, "people.ndjson#1", "people.ndjson line 1"),
        (1, "people.ndjson#4", "people.ndjson line 4"),
    ]
    assert api["author"].get(f"/api/batches/{again['id']}/").json()["failed"] == 2  # same version, same failures

    ok_id = start(api, ("a.ndjson", ndjson(2))).json()["id"]
    run(ok_id)
    nothing = api["author"].post(f"/api/batches/{ok_id}/reprocess", {}, format="json")
    assert (nothing.status_code, nothing.json()["code"]) == (400, "invalid")


def test_it_lists_batches_newest_first_in_a_fixed_number_of_queries(
    api, people, users, django_assert_num_queries
) -> None:
    def listed_with(count: int) -> int:
        BatchJob.objects.all().delete()
        version = people.versions.get()
        for _ in range(count):
            actions.do_start_batch(version, acting_user=users["author"], uploads=[("a.ndjson", io.BytesIO(ndjson(1)))])
        with django_assert_num_queries(4) as captured:  # token, role, count, page
            rows = api["viewer"].get("/api/batches/?page_size=50").json()["results"]
        assert len(rows) == count and rows[0]["id"] >= rows[-1]["id"]
        return len(captured.captured_queries)

    assert listed_with(1) == listed_with(20)
    only = api["viewer"].get("/api/batches/?mapping=people&status=queued").json()
    assert only["count"] == 20
    assert api["viewer"].get("/api/batches/?status=running").json()["count"] == 0
    assert api["viewer"].get("/api/batches/?status=sleeping").json()["code"] == "invalid"
