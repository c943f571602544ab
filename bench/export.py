"""Benchmark of Bulk Data `$export` (issue 12): a system export of a facade serving N Patients (about 1 KB each),
kicked off over HTTP against gunicorn, run by Celery prefork workers on Redis, every file downloaded as a client
would (streamed, lines counted). Measures kick-off to the last byte of the last file, in resources/s, the split
(plan, chunks, downloads) and the worker processes' RSS.

    createdb -h 127.0.0.1 -U postgres fhirstudio_bench   # once
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/fhirstudio_bench CELERY_BROKER_URL=redis://127.0.0.1:6379/5 \\
        .venv/bin/python bench/export.py --resources 1000000

The data is built once (bench/seed.py) and reused. Target: ≥ 40,000 resources/s on 2 cores, worker RSS growth ≤ 50 MB
between the first chunk and the end."""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fhirstudio.settings")

import django  # noqa: E402

django.setup()

import requests  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db.models import Max, Min, Sum  # noqa: E402

from bench.seed import seeded_facade  # noqa: E402
from mappings.models import ExportJob  # noqa: E402

SLUG = "bench-export"
MB = 1024 * 1024


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def children(pid: int) -> list[int]:
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=True).stdout.strip()


def start_worker(env: dict, concurrency: int, log: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "celery", "-A", "fhirstudio", "worker", "--pool", "prefork"]
    command += ["--concurrency", str(concurrency), "-Q", "exports", "--loglevel", "WARNING"]
    command += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
    with log.open("w") as out:
        worker = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while len(children(worker.pid)) < concurrency:
        if worker.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the worker did not start:\n{log.read_text()}")
        time.sleep(0.2)
    time.sleep(1)  # the children connect to the broker
    return worker


def start_server(env: dict, port: int, log: Path) -> subprocess.Popen:
    command = [str(ROOT / ".venv/bin/gunicorn"), "fhirstudio.wsgi", "--workers", "1", "--bind", f"127.0.0.1:{port}"]
    with log.open("w") as out:
        server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while True:
        try:
            if requests.get(f"http://127.0.0.1:{port}/fhir/{SLUG}/metadata", timeout=5).ok:
                return server
        except requests.ConnectionError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"gunicorn did not start:\n{log.read_text()}")
        time.sleep(0.2)


def download(url: str) -> tuple[int, int]:
    """(lines, bytes) of one file, streamed as a client would read it."""
    lines = size = 0
    with requests.get(url, stream=True, timeout=60) as response:
        response.raise_for_status()
        for block in response.iter_content(chunk_size=MB):
            lines += block.count(b"\n")
            size += len(block)
    return lines, size


def run_export(base: str, worker: subprocess.Popen, poll_s: float) -> dict:
    pids = children(worker.pid)
    figures: dict = {"rss_start": {pid: rss_mb(pid) for pid in pids}}
    started = time.perf_counter()
    kickoff = requests.get(f"{base}/$export", headers={"Prefer": "respond-async"}, timeout=30)
    kickoff.raise_for_status()
    status_url = kickoff.headers["Content-Location"]
    job = ExportJob.objects.order_by("-id").first()
    while True:
        status = requests.get(status_url, timeout=30)
        if status.status_code != 202:
            break
        done = job.chunks.aggregate(done=Sum("done"))["done"] or 0
        if done >= 10_000 and "rss_first" not in figures:
            figures["rss_first"] = {pid: rss_mb(pid) for pid in pids}
            figures["exported_at_first"] = done
        time.sleep(poll_s)
    finished = time.perf_counter()
    status.raise_for_status()
    figures["rss_end"] = {pid: rss_mb(pid) for pid in pids}
    figures["rss_peak"] = {pid: rss_mb(pid, "VmHWM") for pid in pids}
    manifest = status.json()
    lines = size = 0
    for entry in manifest["output"]:
        file_lines, file_bytes = download(entry["url"])
        assert file_lines == entry["count"], (entry, file_lines)
        lines, size = lines + file_lines, size + file_bytes
    downloaded = time.perf_counter()
    job.refresh_from_db()
    stamps = job.chunks.aggregate(sent=Min("queued_at"), last=Max("finished_at"))
    figures.update(
        job=job,
        files=len(manifest["output"]),
        chunks=job.chunks.count(),
        lines=lines,
        bytes=size,
        total_s=downloaded - started,
        to_manifest_s=finished - started,
        download_s=downloaded - finished,
        plan_s=(stamps["sent"] - job.created_at).total_seconds(),
        chunks_s=(stamps["last"] - stamps["sent"]).total_seconds(),
    )
    return figures


def report(figures: dict, resources: int) -> None:
    job = figures["job"]
    assert figures["lines"] == resources == job.planned, (figures["lines"], resources, job.planned)
    rate = resources / figures["total_s"]
    print(f"\n{resources:,} Patients, {figures['bytes'] / MB:,.0f} MB in {figures['files']} files")
    print(f"({figures['chunks']} chunks); kick-off to last file downloaded: {figures['total_s']:.1f} s = {rate:,.0f}/s")
    print(f"  plan (kick-off → chunks sent, worker clock):  {figures['plan_s']:6.1f} s")
    print(f"  chunks (first sent → last done):              {figures['chunks_s']:6.1f} s")
    print(f"  kick-off → manifest (client clock):           {figures['to_manifest_s']:6.1f} s")
    print(f"  downloads (manifest → last byte):             {figures['download_s']:6.1f} s")
    first = figures.get("rss_first", figures["rss_start"])
    for pid in figures["rss_end"]:
        print(
            f"  worker child {pid}: RSS {figures['rss_start'][pid]:.0f} MB idle, {first[pid]:.0f} MB at "
            f"{figures.get('exported_at_first', 0):,} exported, {figures['rss_end'][pid]:.0f} MB at {resources:,} "
            f"(growth {figures['rss_end'][pid] - first[pid]:+.0f} MB), peak {figures['rss_peak'][pid]:.0f} MB"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--resources", type=int, default=1_000_000)
    parser.add_argument("--chunk", type=int, default=settings.FHIR_STUDIO["EXPORT_CHUNK_RESOURCES"])
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--poll", type=float, default=0.25, help="status poll interval, seconds")
    options = parser.parse_args()
    if not os.environ.get("CELERY_BROKER_URL", "").startswith("redis://"):
        raise SystemExit("set CELERY_BROKER_URL=redis://…: the benchmark measures the production broker")
    call_command("migrate", verbosity=0)
    seeded_facade(SLUG, options.resources)
    scratch = Path(tempfile.mkdtemp(prefix="bench-export-"))
    env = {
        **os.environ,
        "FHIR_STUDIO_JOB_FILES_DIR": str(scratch / "jobs"),
        "FHIR_STUDIO_EXPORT_CHUNK_RESOURCES": str(options.chunk),
        "DEBUG": "false",
        "SECRET_KEY": "bench-only",
        "ALLOWED_HOSTS": "127.0.0.1",
    }
    port = free_port()
    worker = start_worker(env, options.concurrency, scratch / "worker.log")
    server = start_server(env, port, scratch / "gunicorn.log")
    try:
        for run in range(options.runs):
            print(f"\nrun {run + 1}; load before: {uptime()}")
            figures = run_export(f"http://127.0.0.1:{port}/fhir/{SLUG}", worker, options.poll)
            report(figures, options.resources)
            print(f"load after: {uptime()}")
            shutil.rmtree(scratch / "jobs" / "exports", ignore_errors=True)
    finally:
        server.terminate()
        worker.terminate()
        server.wait(timeout=30)
        worker.wait(timeout=60)
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
