"""Batch conversion through real Celery workers on Redis, the state of every chunk in PostgreSQL: uploaded files of
many messages (a multi-message HL7 file, MLLP, a zip) convert with exact counts, a broken message lands in the
dead-letter list with its FS code and template line, results download as NDJSON and as Bundles, the failed messages
are reprocessed with a fixed version, a cancel stops the workers, and a batch completes with exact counts and no
duplicate output after its worker is killed (kill -9) mid-chunk or its broker restarted (a Redis of the test's own)."""

from __future__ import annotations

import io
import shutil
import subprocess
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import orjson
import pytest
from celery import current_app
from django.conf import settings
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from mappings import actions
from mappings.job_files import read_lines
from mappings.jobs import batches, chunks
from mappings.jobs.batches import plan_batch_direct, run_batch_chunk_direct
from mappings.jobs.chunks import requeue_stalled_chunks
from mappings.models import FINISHED, BatchChunk, BatchItem, BatchJob, ChunkStatus, JobStatus, Mapping
from tests.conftest import worker_database_url
from tests.tasks.conftest import Worker, running_worker

HL7 = settings.FHIR_STUDIO["CORPUS_DIR"]
FIVE_MESSAGES = HL7 / "more/hl7v2/cdc-oru-r01-v2.5.1-five-messages-one-file.hl7"
ORU = [HL7 / "fhir-converter/hl7v2/LAB-ORU-1.hl7", HL7 / "more/hl7v2/lfh-oru-r01-v2.6-lf-ipv6-msh.hl7"]
ZIPPED = [HL7 / "fhir-converter/hl7v2/LAB-ORU-2.hl7", HL7 / "more/hl7v2/cdc-oru-r01-v2.3-covid-elr-nte.hl7"]
ADT_A01 = HL7 / "fhir-converter/hl7v2/ADT-A01-01.hl7"
# An ORU^R01 without OBR or OBX: the demo mapping refuses it with fail() at line 8 of its template.
BROKEN = b"MSH|^~\\&|LAB|HOSP|||20240101||ORU^R01|BROKEN-1|P|2.5.1\rPID|1||123^^^HOSP^MR||Doe^Jane\r"
FAIL_LINE = 8
OWN_REDIS_PORT = 6390


def mllp(*messages: bytes) -> bytes:
    # A file's byte-order mark does not travel inside an MLLP frame.
    return b"".join(b"\x0b" + message.removeprefix(b"\xef\xbb\xbf").strip() + b"\x1c\r" for message in messages)


def zipped(paths: list[Path]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in paths:
            archive.writestr(f"results/{path.name}", path.read_bytes())
    return buffer.getvalue()


def adt_messages(count: int) -> bytes:
    """`count` ADT^A01 messages made from the corpus one, each with its own control id (MSH-10) and MRN."""
    lines = ADT_A01.read_bytes().replace(b"\r\n", b"\r").replace(b"\n", b"\r").strip().split(b"\r")
    msh = lines[0].split(b"|")
    out = []
    for n in range(count):
        msh[9] = b"MSG%06d" % n
        head = b"|".join(msh)
        out.append(b"\r".join([head, *lines[1:]]).replace(b"PATID1234", b"MRN%06d" % n))
    return b"\r\n".join(out) + b"\r\n"


@pytest.fixture
def jobs_dir(settings, tmp_path) -> Path:
    """Batch files in a directory of this test's own, for the test process and its workers alike."""
    location = tmp_path / "jobs"
    settings.STORAGES = {
        **settings.STORAGES,
        "jobs": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(location), "allow_overwrite": True},
        },
    }
    settings.FHIR_STUDIO = {**settings.FHIR_STUDIO, "JOB_STALE_SECONDS": 3}
    return location


@pytest.fixture
def studio(transactional_db, jobs_dir, client) -> dict:
    from mappings.demo import load_demo

    admin = User.objects.create_superuser("admin", password="pw")
    load_demo(admin)
    client.force_login(admin)
    return {"admin": admin, "client": client, "jobs": jobs_dir}


@contextmanager
def batch_worker(tmp_path: Path, jobs: Path, name: str = "worker", chunk: int = 500, **env: str) -> Iterator[Worker]:
    with running_worker(
        tmp_path / f"{name}.log",
        {
            "DATABASE_URL": worker_database_url(),
            "FHIR_STUDIO_JOB_FILES_DIR": str(jobs),
            "FHIR_STUDIO_BATCH_CHUNK_MESSAGES": str(chunk),
            "FHIR_STUDIO_JOB_STALE_SECONDS": "3",
            **env,
        },
    ) as worker:
        yield worker


def wait_for(predicate, seconds: float = 45, every: float = 0.3, log: Path | None = None, sweep: bool = False):
    """Poll until `predicate()` is truthy; with `sweep`, run the stalled-chunk sweep each second, as beat would."""
    deadline, swept = time.monotonic() + seconds, 0.0
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        if sweep and time.monotonic() - swept > 1:
            requeue_stalled_chunks()
            swept = time.monotonic()
        time.sleep(every)
    tail = log.read_text()[-3000:] if log else ""
    raise AssertionError(f"timed out after {seconds} s\n{tail}")


def finished(batch_id: int) -> BatchJob | None:
    batch = BatchJob.objects.get(pk=batch_id)
    return batch if batch.status in FINISHED else None


def counts(batch_id: int) -> tuple[int, int]:
    rows = list(BatchChunk.objects.filter(batch_id=batch_id).values_list("done", "failed"))
    return sum(done for done, _ in rows), sum(failed for _, failed in rows)


def start_upload(client, files: dict[str, bytes], mapping: str = "hl7v2-oru-r01", **fields: object) -> dict:
    uploads = [SimpleUploadedFile(name, content) for name, content in files.items()]
    response = client.post("/api/batches/", {"mapping": mapping, "files": uploads, **fields})
    assert response.status_code == 201, response.content
    return response.json()


def download(client, batch_id: int, kind: str) -> list[bytes]:
    response = client.get(f"/api/batches/{batch_id}/results?format={kind}")
    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"] == "application/fhir+ndjson"
    return b"".join(response.streaming_content).splitlines()


def test_it_converts_uploaded_files_and_keeps_the_broken_message(studio, tmp_path) -> None:
    client = studio["client"]
    with batch_worker(tmp_path, studio["jobs"], chunk=4) as worker:
        started = start_upload(
            client,
            {
                "five.hl7": FIVE_MESSAGES.read_bytes(),
                "feed.mllp": mllp(*(path.read_bytes() for path in ORU), BROKEN),
                "more.zip": zipped(ZIPPED),
            },
        )
        assert started["status"] == "queued"
        batch = wait_for(lambda: finished(started["id"]), log=worker.log)

    assert batch.status == JobStatus.COMPLETED, batch.error
    assert (batch.total, *counts(batch.pk)) == (10, 9, 1)
    assert [spec["messages"] for spec in batch.inputs] == [5, 3, 2]
    assert BatchChunk.objects.filter(batch=batch).count() == 3  # 4 + 4 + 2

    shown = client.get(f"/api/batches/{batch.pk}/").json()
    assert (shown["total"], shown["done"], shown["failed"], shown["pending"], shown["eta_seconds"]) == (
        10,
        9,
        1,
        0,
        None,
    )
    assert shown["rate"] > 0

    failures = client.get(f"/api/batches/{batch.pk}/failures/").json()
    assert failures["count"] == 1
    failure = failures["results"][0]
    assert (failure["key"], failure["code"], failure["line"], failure["template"]) == (
        "BROKEN-1",
        "FS-RND-005",
        FAIL_LINE,
        "template.j2",
    )
    assert failure["seq"] == 7 and failure["origin"].startswith("feed.mllp line ")
    assert client.get(failure["payload_url"]).content.replace(b"\n", b"\r").strip() == BROKEN.strip()

    bundles = [orjson.loads(line) for line in download(client, batch.pk, "bundles")]
    assert len(bundles) == 9 and {bundle["resourceType"] for bundle in bundles} == {"Bundle"}
    resources = [orjson.loads(line) for line in download(client, batch.pk, "ndjson")]
    assert len(resources) == sum(len(bundle["entry"]) for bundle in bundles)
    assert "Bundle" not in {resource["resourceType"] for resource in resources}
    assert resources[0] == bundles[0]["entry"][0]["resource"]


def test_it_reprocesses_the_failed_messages_with_a_fixed_version(studio, tmp_path) -> None:
    client, admin = studio["client"], studio["admin"]
    with batch_worker(tmp_path, studio["jobs"]) as worker:
        first = start_upload(client, {"feed.hl7": mllp(ORU[0].read_bytes(), BROKEN, BROKEN.replace(b"-1|", b"-2|"))})
        wait_for(lambda: finished(first["id"]), log=worker.log)
        assert counts(first["id"]) == (1, 2)

        mapping = Mapping.objects.select_related("draft").get(slug="hl7v2-oru-r01")
        fixed = "\n".join("" if "fail(" in line else line for line in mapping.draft.template.splitlines())
        actions.do_save_draft(mapping, acting_user=admin, template=fixed, expected_revision=None)
        version = actions.do_publish_version(mapping, acting_user=admin, message="No results is not an error")
        response = client.post(
            f"/api/batches/{first['id']}/reprocess", {"version": version.number}, content_type="application/json"
        )
        assert response.status_code == 201, response.content
        again = response.json()
        assert (again["reprocess_of"], again["version"]) == (first["id"], version.number)
        batch = wait_for(lambda: finished(again["id"]), log=worker.log)

    assert batch.status == JobStatus.COMPLETED
    assert (batch.total, *counts(batch.pk)) == (2, 2, 0)
    assert list(BatchItem.objects.filter(batch=batch).order_by("seq").values_list("key", flat=True)) == [
        "BROKEN-1",
        "BROKEN-2",
    ]
    assert [
        orjson.loads(line)["entry"][0]["resource"]["resourceType"] for line in download(client, batch.pk, "bundles")
    ] == [
        "Patient",
        "Patient",
    ]


def test_it_fails_a_batch_whose_file_cannot_be_split(studio, tmp_path) -> None:
    with batch_worker(tmp_path, studio["jobs"]) as worker:
        started = start_upload(studio["client"], {"notes.hl7": b"Dear colleague,\r\n" + BROKEN})
        batch = wait_for(lambda: finished(started["id"]), log=worker.log)
    assert batch.status == JobStatus.FAILED
    assert batch.error.startswith("FS-SRC-010 notes.hl7 line 1:"), batch.error
    assert not BatchItem.objects.filter(batch=batch).exists() and not batch.chunks.exists()


def test_it_stops_a_cancelled_batch(studio, tmp_path) -> None:
    client = studio["client"]
    with batch_worker(tmp_path, studio["jobs"], chunk=50) as worker:
        started = start_upload(client, {"adt.hl7": adt_messages(1500)}, mapping="hl7v2-adt-a01", validate="false")
        wait_for(lambda: counts(started["id"])[0] >= 50, log=worker.log)
        response = client.post(f"/api/batches/{started['id']}/cancel")
        assert response.status_code == 200 and response.json()["status"] == "cancelled"
        # The chunk that was running sees the cancel at its next heartbeat and writes nothing.
        wait_for(lambda: not BatchChunk.objects.filter(batch_id=started["id"], status=ChunkStatus.RUNNING).exists())
        time.sleep(1)
        done_then = counts(started["id"])
    batch = BatchJob.objects.get(pk=started["id"])
    assert batch.status == JobStatus.CANCELLED
    assert counts(batch.pk) == done_then and done_then[0] < 1500
    assert BatchItem.objects.filter(batch=batch, status=BatchItem.Status.PENDING).count() == 1500 - done_then[0]
    assert len(download(client, batch.pk, "bundles")) == done_then[0]  # what was converted stays downloadable
    assert client.post(f"/api/batches/{batch.pk}/cancel").json()["code"] == "conflict"


def assert_complete_without_duplicates(client, batch_id: int, total: int) -> None:
    batch = BatchJob.objects.get(pk=batch_id)
    assert batch.status == JobStatus.COMPLETED, batch.error
    assert (batch.total, *counts(batch_id)) == (total, total, 0)
    assert BatchItem.objects.filter(batch=batch, status=BatchItem.Status.CONVERTED).count() == total
    lines = download(client, batch_id, "bundles")
    assert len(lines) == total and len(set(lines)) == total


def test_it_completes_a_batch_whose_worker_was_killed(studio, tmp_path) -> None:
    client, total = studio["client"], 3000
    with batch_worker(tmp_path, studio["jobs"], chunk=1000) as worker:
        started = start_upload(client, {"adt.hl7": adt_messages(total)}, mapping="hl7v2-adt-a01")
        # A chunk shows its counts a second after it started. Chunks of 1,000 take ~3 s (300 took under a second
        # once the engine got faster, so no chunk was ever seen half-way): it is half-way through.
        mid_chunk = BatchChunk.objects.filter(batch_id=started["id"], status=ChunkStatus.RUNNING, done__gt=0)
        wait_for(lambda: counts(started["id"])[0] >= 600 and mid_chunk.exists(), log=worker.log, every=0.1)
        worker.process.kill()  # kill -9: its chunk stays running, and its heartbeat stops
    killed = BatchChunk.objects.get(batch_id=started["id"], status=ChunkStatus.RUNNING)
    assert not finished(started["id"])

    with batch_worker(tmp_path, studio["jobs"], name="second", chunk=1000) as worker:
        wait_for(lambda: finished(started["id"]), log=worker.log, sweep=True)

    killed.refresh_from_db()
    assert (killed.status, killed.attempts) == (ChunkStatus.DONE, 2)  # taken over once its heartbeat was stale
    assert_complete_without_duplicates(client, started["id"], total)


@contextmanager
def own_redis(port: int, log: Path) -> Iterator[callable]:
    """A throwaway redis-server (nothing saved), and a function restarting it empty: the shared Redis stays up."""
    server = shutil.which("redis-server")
    if server is None:
        pytest.fail("redis-server is not installed: the broker-restart test needs one of its own")
    process: list[subprocess.Popen] = []

    def start() -> None:
        out = log.open("a")
        process.append(
            subprocess.Popen(
                [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        )
        wait_for(
            lambda: subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True).stdout.strip()
            == b"PONG",
            10,
            0.1,
        )

    def restart() -> None:
        process[-1].terminate()
        process[-1].wait(timeout=10)
        start()

    start()
    try:
        yield restart
    finally:
        process[-1].terminate()
        process[-1].wait(timeout=10)


@contextmanager
def broker(url: str) -> Iterator[None]:
    """This process sends its tasks (the plan, the sweep's chunks) to `url` for the block."""
    app = current_app
    before = app.conf.broker_write_url  # what publishing connects to (the app derived it from broker_url)

    def use(address: str) -> None:
        app.conf.broker_write_url = address
        app._pool = None  # connections to the other broker are not reused
        app.amqp._producer_pool = None

    use(url)
    try:
        yield
    finally:
        use(before)


def test_it_completes_a_batch_after_its_broker_restarted(studio, tmp_path) -> None:
    client, total = studio["client"], 2000
    address = f"redis://127.0.0.1:{OWN_REDIS_PORT}/0"
    results = settings.CELERY_RESULT_BACKEND  # results stay on the shared Redis
    with own_redis(OWN_REDIS_PORT, tmp_path / "redis.log") as restart_redis, broker(address):
        env = {"CELERY_BROKER_URL": address, "CELERY_RESULT_BACKEND": results}
        with batch_worker(tmp_path, studio["jobs"], chunk=50, **env) as worker:
            started = start_upload(client, {"adt.hl7": adt_messages(total)}, mapping="hl7v2-adt-a01", validate="false")
            wait_for(lambda: counts(started["id"])[0] >= 300, log=worker.log)
            restart_redis()  # every queued chunk's message is gone
            time.sleep(4)  # more than the stale time: the running chunk ended, and nothing else came
            left = BatchChunk.objects.filter(batch_id=started["id"], status=ChunkStatus.QUEUED).count()
            assert left > 0 and not finished(started["id"])
            wait_for(lambda: finished(started["id"]), log=worker.log, sweep=True)
    assert_complete_without_duplicates(client, started["id"], total)


# --- the job's own guarantees, without a worker (the tasks' bodies called directly) -------------------------------

TINY = '{% if msg.bad %}{{ fail("a bad record") }}{% endif %}{"resourceType": "Patient", "id": {{ msg.id | tojson }}}'


@pytest.fixture
def tiny_batch(db, jobs_dir, settings) -> BatchJob:
    """A published JSON → Patient version and a batch of 7 NDJSON records (the 4th refused), in chunks of 3."""
    settings.FHIR_STUDIO = {**settings.FHIR_STUDIO, "BATCH_CHUNK_MESSAGES": 3}
    author = User.objects.create_user("ana")
    mapping = actions.do_create_mapping(
        acting_user=author, slug="tiny", title="Tiny", source_format="json", template=TINY
    )
    version = actions.do_publish_version(mapping, acting_user=author, message="v1")
    lines = [orjson.dumps({"id": f"p{n}", "bad": n == 3}) for n in range(7)]
    return actions.do_start_batch(
        version, acting_user=author, uploads=[("people.ndjson", io.BytesIO(b"\n".join(lines)))]
    )


def test_it_plans_a_batch_once_when_its_plan_runs_twice(tiny_batch) -> None:
    assert plan_batch_direct(tiny_batch.pk) == 3
    assert plan_batch_direct(tiny_batch.pk) == 3  # a redelivered message: the batch is running, nothing is added
    tiny_batch.refresh_from_db()
    assert (tiny_batch.status, tiny_batch.total) == (JobStatus.RUNNING, 7)
    assert list(tiny_batch.chunks.values_list("first_seq", "last_seq")) == [(0, 2), (3, 5), (6, 6)]
    assert list(BatchItem.objects.filter(batch=tiny_batch).values_list("seq", "key")) == [
        (n, f"people.ndjson#{n + 1}") for n in range(7)
    ]


def test_it_makes_again_the_items_of_a_plan_that_died_half_way(tiny_batch) -> None:
    BatchItem.objects.create(batch=tiny_batch, seq=0, key="left over", source_format="json", payload="{}")
    plan_batch_direct(tiny_batch.pk)
    assert BatchItem.objects.filter(batch=tiny_batch).count() == 7
    assert not BatchItem.objects.filter(batch=tiny_batch, key="left over").exists()


def test_it_counts_a_chunk_that_runs_again_once(tiny_batch) -> None:
    plan_batch_direct(tiny_batch.pk)
    first, second, third = tiny_batch.chunks.order_by("first_seq")
    assert run_batch_chunk_direct(second.pk) == "done"
    assert run_batch_chunk_direct(second.pk) == "skipped"  # redelivered after it ended
    # Its worker died after storing the file but before the commit: another worker takes the chunk over.
    BatchChunk.objects.filter(pk=second.pk).update(
        status=ChunkStatus.RUNNING, heartbeat_at=timezone.now() - timedelta(minutes=5)
    )
    assert run_batch_chunk_direct(second.pk) == "done"
    second.refresh_from_db()
    assert (second.done, second.failed, second.attempts) == (2, 1, 2)
    assert [file["name"] for file in second.files] == [f"{tiny_batch.storage_prefix}results/000000003.ndjson"]
    assert run_batch_chunk_direct(first.pk) == run_batch_chunk_direct(third.pk) == "done"
    tiny_batch.refresh_from_db()
    assert tiny_batch.status == JobStatus.COMPLETED and counts(tiny_batch.pk) == (6, 1)
    failed = BatchItem.objects.get(batch=tiny_batch, status=BatchItem.Status.FAILED)
    assert (failed.seq, failed.error_code, failed.error_line) == (3, "FS-RND-005", 1)
    names = [file["name"] for chunk in tiny_batch.chunks.order_by("first_seq") for file in chunk.files]
    ids = [orjson.loads(line)["id"] for name in names for line in read_lines(name)]
    assert ids == ["p0", "p1", "p2", "p4", "p5", "p6"]


def test_it_does_not_record_a_chunk_cancelled_while_it_ran(tiny_batch, monkeypatch) -> None:
    plan_batch_direct(tiny_batch.pk)
    chunk = tiny_batch.chunks.order_by("first_seq").first()
    real_run = batches.run_mapping

    def cancel_then_run(*args, **kwargs):
        if not BatchJob.objects.filter(pk=tiny_batch.pk, status=JobStatus.CANCELLED).exists():
            actions.do_cancel_batch(tiny_batch, acting_user=None)
        return real_run(*args, **kwargs)

    monkeypatch.setattr(batches, "run_mapping", cancel_then_run)
    monkeypatch.setattr(chunks, "HEARTBEAT_SECONDS", 0)  # every beat asks the database
    assert run_batch_chunk_direct(chunk.pk) == "stopped"
    chunk.refresh_from_db()
    assert (chunk.status, chunk.done, chunk.files) == (ChunkStatus.CANCELLED, 0, [])
    assert not BatchItem.objects.filter(batch=tiny_batch).exclude(status=BatchItem.Status.PENDING).exists()


def test_it_writes_the_outcome_of_its_own_items_only(tiny_batch) -> None:
    # The converted items are written as what of the chunk's range is still pending and did not fail now: the
    # failed ones (now or when split) keep their errors and the other chunks' items stay pending.
    plan_batch_direct(tiny_batch.pk)
    split_failure = {"status": BatchItem.Status.FAILED, "error_code": "FS-SRC-009", "error_message": "not text"}
    BatchItem.objects.filter(batch=tiny_batch, seq=5).update(**split_failure)
    second = tiny_batch.chunks.get(first_seq=3)
    assert run_batch_chunk_direct(second.pk) == "done"
    outcomes = dict(BatchItem.objects.filter(batch=tiny_batch).values_list("seq", "status"))
    pending, failed, converted = BatchItem.Status.PENDING, BatchItem.Status.FAILED, BatchItem.Status.CONVERTED
    assert outcomes == {0: pending, 1: pending, 2: pending, 3: failed, 4: converted, 5: failed, 6: pending}
    codes = dict(BatchItem.objects.filter(batch=tiny_batch, seq__in=(3, 5)).values_list("seq", "error_code"))
    assert codes == {3: "FS-RND-005", 5: "FS-SRC-009"}
    second.refresh_from_db()
    assert (second.done, second.failed) == (1, 2)


def test_it_stores_a_message_that_is_not_text_as_failed_when_split(db, jobs_dir) -> None:
    # Items are written as rows of a COPY: the one with a NUL byte is failed with its code, message and
    # OperationOutcome (JSON), its text kept readable; the others keep their keys and payloads, pending.
    author = User.objects.create_user("ana")
    mapping = actions.do_create_mapping(
        acting_user=author, slug="tiny-v2", title="Tiny", source_format="hl7v2", template='{"resourceType": "Basic"}'
    )
    version = actions.do_publish_version(mapping, acting_user=author, message="v1")
    messages = [b"MSH|^~\\&|A|B|||20240101||ADT^A01|M%d|P|2.5\rPID|1||%s\r" % (n, name) for n, name in
                enumerate((b"ann", b"b\x00b", b"cy"))]  # fmt: skip
    upload = [("adt.hl7", io.BytesIO(b"".join(messages)))]
    batch = actions.do_start_batch(version, acting_user=author, uploads=upload)
    assert plan_batch_direct(batch.pk) == 1
    items = list(BatchItem.objects.filter(batch=batch).order_by("seq"))
    assert [(item.seq, item.key, item.status) for item in items] == [
        (0, "M0", BatchItem.Status.PENDING),
        (1, "M1", BatchItem.Status.FAILED),
        (2, "M2", BatchItem.Status.PENDING),
    ]
    failed = items[1]
    assert (failed.error_code, failed.error_line, failed.record_id, failed.push) == ("FS-SRC-002", None, None, None)
    assert failed.error_message and failed.issues["resourceType"] == "OperationOutcome"
    assert failed.issues["issue"][0]["severity"] == "error"
    assert failed.payload.endswith("PID|1||b\ufffdb") and items[0].payload.endswith("PID|1||ann")
