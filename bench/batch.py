"""Benchmark of batch conversion (issue 12): N ADT^A01 messages (the corpus ADT-A01-01.hl7, each with its own control
id and MRN) uploaded as one HL7 file and converted by the hl7v2-adt-a01 demo mapping, validated, with 1 and then 2
Celery prefork worker processes (concurrency 1, each pinned to its own core with taskset) on PostgreSQL and Redis.
Prints messages/s for each, the 2/1 ratio, and the engine's own single-core rate on the same message (run_mapping
in a loop, pinned to core 0, also with the collector as a chunk has it in a worker) for comparison. Then the CPU a
message by process (the workers' chunk processes and their Celery parents, PostgreSQL by role, Redis; read from
/proc with bench/index.py's helpers), for the plan (split and item rows) and the conversion apart, and the
conversion's overhead O beside the engine's own CPU E: what caps the workers at E / (E + O) of the engine × cores.

    createdb -h 127.0.0.1 -U postgres fhirstudio_bench   # once
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/fhirstudio_bench CELERY_BROKER_URL=redis://127.0.0.1:6379/5 \\
        .venv/bin/python bench/batch.py --messages 100000

"conversion" is from the chunks being sent (the split done) to the last chunk done: what the workers scale; "batch"
adds the split and the item rows (one worker, whatever the count). Targets: conversion ≥ 1.8× faster with 2 workers
than with 1, and within 15 % of the engine's rate × workers. Run by hand, never in CI."""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fhirstudio.settings")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.contrib.auth.models import User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db.models import Sum  # noqa: E402

from bench.index import cpu_of, other_databases_busy, postgres_cpu, process_cpu  # noqa: E402
from mappings import actions, caches  # noqa: E402
from mappings.compiling import compile_version  # noqa: E402
from mappings.conf import engine_limits  # noqa: E402
from mappings.engine import run_mapping  # noqa: E402
from mappings.jobs.indexing import fewer_collections  # noqa: E402
from mappings.models import FINISHED, BatchChunk, BatchJob, JobStatus, Mapping, MappingVersion  # noqa: E402

ADT_A01 = settings.FHIR_STUDIO["CORPUS_DIR"] / "fhir-converter/hl7v2/ADT-A01-01.hl7"
SLUG = "hl7v2-adt-a01"


def corpus_message() -> list[bytes]:
    return ADT_A01.read_bytes().replace(b"\r\n", b"\r").replace(b"\n", b"\r").strip().split(b"\r")


def write_messages(path: Path, count: int) -> int:
    """`count` messages, each with its own control id (MSH-10) and MRN; returns the file's size."""
    lines = corpus_message()
    msh = lines[0].split(b"|")
    body = b"\r".join(lines[1:])
    with path.open("wb") as out:
        for n in range(count):
            msh[9] = b"MSG%07d" % n
            out.write(b"|".join(msh) + b"\r" + body.replace(b"PATID1234", b"MRN%07d" % n) + b"\r\n")
    return path.stat().st_size


def adt_version() -> MappingVersion:
    mapping = Mapping.objects.filter(slug=SLUG).select_related("latest_version").first()
    if mapping is None:
        from mappings.demo import load_demo

        admin = User.objects.filter(is_superuser=True).first() or User.objects.create_superuser("bench", password="-")
        load_demo(admin)
        mapping = Mapping.objects.select_related("latest_version").get(slug=SLUG)
    return mapping.latest_version


def engine_rate(
    version: MappingVersion, seconds: float, validate: bool, *, as_workers: bool = False
) -> tuple[float, float]:
    """run_mapping on the corpus message in a loop, on core 0: what one worker could reach at best, per second of
    the clock and per CPU-second (the same on an idle machine; the second ignores other processes on the core).
    `as_workers`: the long-lived objects frozen and young collections as in a batch chunk."""
    payload = b"\r".join(corpus_message()).decode()
    compiled, limits = compile_version(version), engine_limits()
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {0})
    try:
        for _ in range(20):  # warm up
            run_mapping(compiled, payload, source_format="hl7v2", limits=limits, validate=validate)
        if as_workers:
            caches.freeze_long_lived()
        with fewer_collections() if as_workers else contextlib.nullcontext():
            count, started, cpu = 0, time.perf_counter(), time.process_time()
            while time.perf_counter() - started < seconds:
                run_mapping(compiled, payload, source_format="hl7v2", limits=limits, validate=validate)
                count += 1
            return count / (time.perf_counter() - started), count / (time.process_time() - cpu)
    finally:
        os.sched_setaffinity(0, before)


def children(pid: int) -> list[int]:
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def start_workers(env: dict, cores: list[int], logs: Path) -> list[subprocess.Popen]:
    """One prefork worker (concurrency 1) per core, pinned to it with taskset (its child inherits the pinning)."""
    workers = []
    for core in cores:
        command = ["taskset", "-c", str(core), sys.executable, "-m", "celery", "-A", "fhirstudio", "worker"]
        command += ["--pool", "prefork", "--concurrency", "1", "-Q", "batch", "--loglevel", "WARNING"]
        command += ["--without-gossip", "--without-mingle", "--without-heartbeat", "-n", f"bench{core}@%h"]
        with (logs / f"worker-{core}.log").open("w") as out:
            workers.append(subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT))
    deadline = time.monotonic() + 60
    for worker in workers:
        while not Path(f"/proc/{worker.pid}/task/{worker.pid}/children").exists() or not children(worker.pid):
            if worker.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"a worker did not start:\n{(logs / 'worker-0.log').read_text()}")
            time.sleep(0.2)
    time.sleep(1.5)  # the children connect to the broker
    return workers


def stop(workers: list[subprocess.Popen]) -> None:
    for worker in workers:
        worker.terminate()
    for worker in workers:
        worker.wait(timeout=60)


def workers_cpu_of(workers: list[subprocess.Popen]) -> Counter:
    """The workers' CPU seconds: "chunk processes" (the prefork children: the engine, the items, the results, the
    split while planning) and "Celery parents" (receiving the tasks, handing them over)."""
    used: Counter = Counter()
    for worker in workers:
        used["Celery parents"] += cpu_of(Path(f"/proc/{worker.pid}/stat"))
        for child in children(worker.pid):
            used["chunk processes"] += cpu_of(Path(f"/proc/{child}/stat"))
    return used


def cpu_now(workers: list[subprocess.Popen]) -> Counter:
    return workers_cpu_of(workers) + postgres_cpu() + process_cpu()


def run_batch(version: MappingVersion, path: Path, validate: bool, messages: int, workers: list) -> dict:
    """Start the batch and poll it; the figures of the run, with the CPU used while planning (created → running)
    and while converting (running → finished) apart."""
    before, planned, others_busy = cpu_now(workers), None, 0
    with path.open("rb") as upload:
        batch = actions.do_start_batch(version, acting_user=None, uploads=[(path.name, upload)], validate=validate)
    while True:
        time.sleep(0.1)
        batch.refresh_from_db()
        others_busy += other_databases_busy()
        if planned is None and batch.status != JobStatus.QUEUED:
            planned = cpu_now(workers)
        if batch.status in FINISHED:
            break
    after = cpu_now(workers)
    if batch.status != JobStatus.COMPLETED:
        raise SystemExit(f"batch {batch.pk} {batch.status}: {batch.error}")
    sums = BatchChunk.objects.filter(batch=batch).aggregate(done=Sum("done"), failed=Sum("failed"))
    assert (batch.total, sums["done"], sums["failed"]) == (messages, messages, 0), (batch.total, sums)
    converting = (batch.finished_at - batch.started_at).total_seconds()
    whole = (batch.finished_at - batch.created_at).total_seconds()
    workers_cpu = sum((after - planned)[role] for role in ("chunk processes", "Celery parents"))
    return {
        "batch": batch,
        "conversion": messages / converting,
        "whole": messages / whole,
        "split_s": whole - converting,
        "cpu_share": workers_cpu / (converting * len(workers)),
        "per_cpu_second": messages / workers_cpu,
        "plan_cpu": planned - before,
        "conversion_cpu": after - planned,
        "others_busy": others_busy,
    }


def print_cpu(label: str, used: Counter, messages: int, engine_ms: float | None = None) -> None:
    """CPU a message by process; for the conversion, what it is beside the engine's own (engine_ms): the overhead O
    that caps the workers at E / (E + O) of the engine × cores when the cores are all busy."""
    per_message = {role: cpu * 1000 / messages for role, cpu in used.most_common()}
    total = sum(per_message.values()) - per_message.get("this process", 0)  # the benchmark's polling
    line = f"  {label}: CPU a message {total:.3f} ms: " + ", ".join(
        f"{role} {ms:.3f}" for role, ms in per_message.items() if ms >= 0.0005
    )
    if engine_ms is not None:
        overhead = total - engine_ms
        line += (
            f"; beside the engine's {engine_ms:.3f}: {overhead:.3f} ms → at most "
            f"{engine_ms / (engine_ms + overhead):.0%} of the engine × cores"
        )
    print(line, flush=True)


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=True).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--chunk", type=int, default=settings.FHIR_STUDIO["BATCH_CHUNK_MESSAGES"])
    parser.add_argument("--no-validate", dest="validate", action="store_false")
    parser.add_argument("--engine-seconds", type=float, default=10)
    parser.add_argument("--workers", default="1,2", help="worker counts to run, in order")
    options = parser.parse_args()
    if not os.environ.get("CELERY_BROKER_URL", "").startswith("redis://"):
        raise SystemExit("set CELERY_BROKER_URL=redis://…: the benchmark measures the production broker")
    if shutil.which("taskset") is None:
        raise SystemExit("taskset (util-linux) is needed to pin each worker to its core")
    call_command("migrate", verbosity=0)
    version = adt_version()
    scratch = Path(tempfile.mkdtemp(prefix="bench-batch-"))
    env = {
        **os.environ,
        "FHIR_STUDIO_JOB_FILES_DIR": str(scratch / "jobs"),
        "FHIR_STUDIO_BATCH_CHUNK_MESSAGES": str(options.chunk),
        "DEBUG": "false",  # DEBUG keeps every query in memory
        "SECRET_KEY": "bench-only",
    }
    settings.STORAGES["jobs"]["OPTIONS"]["location"] = str(scratch / "jobs")  # where this process stores the upload
    try:
        path = scratch / "adt.hl7"
        size = write_messages(path, options.messages)
        print(
            f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
        )
        print(f"{options.messages:,} ADT^A01 messages, {size / 1024**2:,.0f} MB, chunks of {options.chunk}, "
              f"validate={options.validate}")  # fmt: skip
        print(f"load before: {uptime()}")
        engine, engine_cpu = engine_rate(version, options.engine_seconds, options.validate)
        print(
            f"engine alone (run_mapping in a loop, core 0): {engine:,.1f} messages/s, {engine_cpu:,.1f} per CPU-second"
        )
        # After the first: the freeze stays.
        tuned, tuned_cpu = engine_rate(version, options.engine_seconds, options.validate, as_workers=True)
        print(
            f"engine alone, collector as in a worker (frozen, fewer young collections): {tuned:,.1f} messages/s, "
            f"{tuned_cpu:,.1f} per CPU-second ({1000 / tuned_cpu:.3f} ms CPU a message)"
        )
        rates: dict[int, float] = {}
        for count in (int(number) for number in options.workers.split(",")):
            workers = start_workers(env, list(range(count)), scratch)
            try:
                figures = run_batch(version, path, options.validate, options.messages, workers)
            finally:
                stop(workers)
            rates[count] = figures["conversion"]
            print(
                f"{count} worker{'s' if count > 1 else ''}: conversion {figures['conversion']:,.1f} messages/s "
                f"({figures['conversion'] / (engine * count):.0%} of the engine × {count}); whole batch "
                f"{figures['whole']:,.1f}/s with the split and item rows taking {figures['split_s']:.1f} s"
            )
            load = Path("/proc/loadavg").read_text().split()[0]
            print(
                f"  the workers had {figures['cpu_share']:.0%} of their cores (the rest went to PostgreSQL, Redis "
                f"and whatever else ran); per CPU-second of theirs {figures['per_cpu_second']:,.1f} messages = "
                f"{figures['per_cpu_second'] / engine_cpu:.0%} of the engine's; load average {load}"
            )
            print_cpu("plan (split, item rows)", figures["plan_cpu"], options.messages)
            print_cpu("conversion", figures["conversion_cpu"], options.messages, 1000 / tuned_cpu)
            if figures["others_busy"]:
                print(
                    f"  (other databases were at work in {figures['others_busy']} polls: PostgreSQL's CPU is the "
                    "server's)"
                )
            BatchJob.objects.filter(pk=figures["batch"].pk).delete()
            shutil.rmtree(scratch / "jobs" / "batches", ignore_errors=True)
        if 1 in rates and 2 in rates:
            print(f"2 workers / 1 worker: {rates[2] / rates[1]:.2f}×")
        print(f"load after: {uptime()}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
