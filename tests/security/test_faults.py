"""Faults a hospital's review asks about, on real services of the test's own (the machine's PostgreSQL and Redis are
never touched):

- PostgreSQL stopped while a live studio (gunicorn, as the run command starts it) serves traffic: every request is
  answered, a 503 in its part's shape with Retry-After (OperationOutcome FS-REQ-013 under /fhir/, the API's
  `database_unavailable`, the error page for /healthz), never a 500; once PostgreSQL is back the same server answers
  normally, without a restart (mappings/db_unavailable.py).
- Export storage full: the export's files land on a full disk (/dev/full): the job fails with its error recorded, no
  manifest is served and no file of it is left behind.

Covered elsewhere, not repeated here: Redis restarted during a batch (tests/tasks/test_batches.py,
test_it_completes_a_batch_after_its_broker_restarted) and a worker killed during an export
(tests/tasks/test_export_kill.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from tests.conftest import ROOT

PG_BIN = Path("/usr/lib/postgresql/15/bin")
PG_PORT = 18310  # helper I's range on the shared machine (18300-18399)
WEB_PORT = 18311
GUNICORN = [str(Path(sys.executable).with_name("gunicorn")), "fhirstudio.wsgi", "-c", "fhirstudio/gunicorn_conf.py"]
FHIR_URL = f"http://127.0.0.1:{WEB_PORT}/fhir/no-such-facade/Patient/1"  # a facade lookup: one query
API_URL = f"http://127.0.0.1:{WEB_PORT}/api/mappings/"  # token authentication: a query


def as_postgres(*command: str) -> list[str]:
    """PostgreSQL refuses to run as root: run its tools as the postgres user when the tests run as root."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else list(command)


@dataclass
class PrivatePostgres:
    data: Path
    log: Path

    def _ctl(self, *args: str) -> None:
        subprocess.run(
            as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), *args), check=True, capture_output=True
        )

    def start(self) -> None:
        options = f"-p {PG_PORT} -k {self.data} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._ctl("-l", str(self.log), "-o", options, "-w", "start")

    def stop(self) -> None:
        self._ctl("-m", "fast", "-w", "stop")  # fast: open connections are cut, as in a real restart


@pytest.fixture(scope="module")
def private_postgres() -> Iterator[PrivatePostgres]:
    if not (PG_BIN / "initdb").exists():
        pytest.skip(f"no PostgreSQL server binaries at {PG_BIN}")
    base = Path(tempfile.mkdtemp(prefix="fault-pg-"))
    base.chmod(0o777)  # the postgres user writes the cluster here
    server = PrivatePostgres(base / "data", base / "postgres.log")
    subprocess.run(
        as_postgres(str(PG_BIN / "initdb"), "-D", str(server.data), "-A", "trust", "-U", "postgres", "--no-sync"),
        check=True,
        capture_output=True,
    )
    server.start()
    try:
        subprocess.run(
            [str(PG_BIN / "createdb"), "-h", "127.0.0.1", "-p", str(PG_PORT), "-U", "postgres", "studio"],
            check=True,
            capture_output=True,
        )
        yield server
    finally:
        subprocess.run(as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(server.data), "-m", "immediate", "stop"))
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def live_studio(private_postgres, tmp_path_factory) -> Iterator[dict]:
    """gunicorn on the private PostgreSQL, migrated, with an admin's API token."""
    var = tmp_path_factory.mktemp("var")
    env = {
        **os.environ,
        "DEBUG": "false",
        "FHIR_STUDIO_VAR_DIR": str(var),
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:{PG_PORT}/studio",
    }
    manage = [sys.executable, "manage.py"]
    subprocess.run([*manage, "migrate", "--noinput"], cwd=ROOT, env=env, check=True, capture_output=True)
    made = subprocess.run(
        [*manage, "shell", "-c", TOKEN_FOR_ADMIN], cwd=ROOT, env=env, check=True, capture_output=True, text=True
    )
    token = made.stdout.strip().splitlines()[-1]
    log = var / "gunicorn.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [
                *GUNICORN,
                "--bind",
                f"127.0.0.1:{WEB_PORT}",
                "--workers",
                "1",
                "--threads",
                "4",
                "--graceful-timeout",
                "5",
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                requests.get(f"http://127.0.0.1:{WEB_PORT}/healthz", timeout=2)
                break
            except (requests.ConnectionError, requests.Timeout):
                time.sleep(0.2)
        yield {"process": process, "token": token, "log": log}
    finally:
        process.terminate()
        process.wait(timeout=30)


TOKEN_FOR_ADMIN = (
    "from django.contrib.auth.models import User; from rest_framework.authtoken.models import Token; "
    "user = User.objects.create_superuser('admin', 'admin@example.org', 'pw'); "
    "print(Token.objects.create(user=user).key)"
)


@dataclass
class Traffic:
    """Requests sent in a loop from a thread until stopped: (url kind, status, content type, body, Retry-After)."""

    token: str
    answers: list[tuple] = field(default_factory=list)
    running: bool = True

    def ask(self, kind: str) -> tuple:
        url, headers = {
            "fhir": (FHIR_URL, {}),
            "api": (API_URL, {"Authorization": f"Token {self.token}"}),
            "page": (f"http://127.0.0.1:{WEB_PORT}/healthz", {}),
        }[kind]
        response = requests.get(url, headers=headers, timeout=20)
        content_type = response.headers.get("Content-Type", "")
        body = response.json() if "json" in content_type else response.text
        answer = (kind, response.status_code, content_type, body, response.headers.get("Retry-After"))
        self.answers.append(answer)
        return answer

    def run(self) -> None:
        while self.running:
            for kind in ("fhir", "api", "page"):
                self.ask(kind)
            time.sleep(0.05)


def assert_shaped(answer) -> None:
    kind, status, content_type, body, retry_after = answer
    assert status != 500 and "Traceback" not in str(body), answer
    if status != 503:
        return
    assert retry_after == "5", answer
    if kind == "fhir":
        assert content_type.startswith("application/fhir+json"), answer
        assert body["resourceType"] == "OperationOutcome"
        assert body["issue"][0]["code"] == "transient"
        assert body["issue"][0]["details"]["coding"][0]["code"] == "FS-REQ-013"
    elif kind == "api":
        assert body["code"] == "database_unavailable" and "database" in body["message"]
    else:
        assert content_type.startswith("text/html") and "database" in body


def normal(answer) -> bool:
    kind, status = answer[0], answer[1]
    return status == {"fhir": 404, "api": 200, "page": 200}[kind]


def test_it_answers_503_while_postgresql_is_down_and_recovers_without_a_restart(private_postgres, live_studio) -> None:
    traffic = Traffic(live_studio["token"])
    for kind in ("fhir", "api", "page"):
        assert normal(traffic.ask(kind)), traffic.answers[-1]
    thread = threading.Thread(target=traffic.run, daemon=True)
    thread.start()
    try:
        time.sleep(1)
        private_postgres.stop()  # mid-traffic
        time.sleep(2)
        down = [traffic.ask(kind) for kind in ("fhir", "api", "page")]
        private_postgres.start()
        deadline = time.monotonic() + 30
        while not all(normal(traffic.ask(kind)) for kind in ("fhir", "api", "page")):
            assert time.monotonic() < deadline, traffic.answers[-6:]
            time.sleep(0.5)
        time.sleep(1)
    finally:
        traffic.running = False
        thread.join(timeout=30)
    assert [answer[1] for answer in down] == [503, 503, 503], down
    for answer in traffic.answers:
        assert_shaped(answer)
    assert {answer[1] for answer in traffic.answers} <= {200, 404, 503}
    assert live_studio["process"].poll() is None  # the same server, never restarted
    assert all(normal(traffic.ask(kind)) for kind in ("fhir", "api", "page"))


# --- export storage full ----------------------------------------------------------------------------------------


@pytest.fixture
def full_disk(settings) -> Iterator[Path]:
    """The jobs storage on a 256 KiB tmpfs of the test's own: an export of a few MB fills it (ENOSPC)."""
    mount = Path(tempfile.mkdtemp(prefix="fault-disk-"))
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)], capture_output=True)
    if mounted.returncode != 0:
        shutil.rmtree(mount, ignore_errors=True)
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.decode().strip()}")
    settings.STORAGES = {
        **settings.STORAGES,
        "jobs": {"BACKEND": settings.STORAGES["jobs"]["BACKEND"], "OPTIONS": {"location": str(mount)}},
    }
    settings.FHIR_STUDIO = {**settings.FHIR_STUDIO, "EXPORT_CHUNK_RESOURCES": 1000, "EXPORT_FILE_RESOURCES": 200}
    try:
        yield mount
    finally:
        if subprocess.run(["umount", str(mount)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "--lazy", str(mount)], check=False)  # a file the failed test left open
        shutil.rmtree(mount, ignore_errors=True)


def files_under(directory: Path) -> list[str]:
    return sorted(str(path.relative_to(directory)) for path in directory.rglob("*") if path.is_file())


def test_it_fails_an_export_cleanly_when_its_storage_is_full(transactional_db, full_disk, client) -> None:
    from django.utils import timezone

    from mappings import caches
    from mappings.jobs.exports import plan_export_direct, run_export_chunk_direct
    from mappings.models import ExportJob, JobStatus
    from tests.tasks.test_export_kill import patient_facade, seed_index

    caches.clear()
    deployment = patient_facade("full")
    seed_index(deployment, 5000)  # ~2 MB of NDJSON for a 256 KiB disk
    job = ExportJob.objects.create(
        facade=deployment.binding.facade, level="system", request="/", transaction_time=timezone.now()
    )
    assert plan_export_direct(job.pk) == 5
    outcomes = [run_export_chunk_direct(chunk_id) for chunk_id in job.chunks.values_list("pk", flat=True)]

    job.refresh_from_db()
    assert "failed" in outcomes
    assert job.status == JobStatus.FAILED
    diagnostics = job.error["issue"][0]["diagnostics"]
    assert "No space left on device" in diagnostics, diagnostics
    status = client.get(f"/fhir/full/$export-status/{job.key}")
    assert status.status_code == 500  # the failure as an OperationOutcome, never a manifest of some files
    assert status.json()["resourceType"] == "OperationOutcome" and "output" not in status.json()
    assert files_under(full_disk) == []  # neither the parts stored before the disk filled nor a half-written one
