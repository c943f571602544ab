"""Benchmark of deploy indexing (issue 12): a stored source of N ADT^A01 records (the corpus ADT-A01-01.hl7, one
message per record, each with its own control id and MRN, so each makes its own Patient) indexed by the demo mapping
hl7v2-adt-a01 bound as Patient, with 1 and then 2 Celery solo workers, each pinned to its own core with taskset, on
PostgreSQL and Redis. Measures deploy → `Deployment.ready` (plan, chunks on every worker each staging its rows, the
serial swap in the last one), in records/s, against the engine's own single-core rate on the same records
(run_deployed in a loop, pinned to core 0: the mapping and the Patients' validation, as indexing does), measured
twice: as in any process, then with the garbage collector as an index chunk has it in a worker (long-lived objects
frozen, young collections every 10,000 allocations), so that a ratio to the first does not credit the workers with
collector work the engine's figure pays. Each run also prints the CPU time the local PostgreSQL server used (all
its processes; read it on a machine with no other database work), the work that competes with the engine when two
workers take both cores. Then the CPU a record by process (each worker's engine thread and its other threads,
PostgreSQL by role, Redis) and what it is beside the engine's own CPU a record: the overhead O that caps a build on
all cores at E / (E + O) of the engine × cores, whatever the machine's load (wall time moves with it, CPU much less).

    createdb -h 127.0.0.1 -U postgres fhirstudio_bench   # once
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/fhirstudio_bench CELERY_BROKER_URL=redis://127.0.0.1:6379/5 \\
        .venv/bin/python bench/index.py --records 100000

The records are stored once per N (source `bench-index-<N>`) and reused. Each run deploys to a facade of its own,
dropped (index and all) after the run, outside the timing. Targets: ≥ 1.8× from 1 worker to 2, and within 15 % of
the engine's rate × workers. Run by hand, never in CI."""

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
from django.db import connection  # noqa: E402
from django.db.models import Max, Min, Sum  # noqa: E402
from django.utils import timezone  # noqa: E402

from mappings import actions, caches  # noqa: E402
from mappings.facade.deployed import run_deployed  # noqa: E402
from mappings.jobs.indexing import fewer_collections  # noqa: E402
from mappings.models import (  # noqa: E402
    DataSource,
    Deployment,
    Facade,
    FacadeResource,
    Mapping,
    MappingVersion,
    ResourceBinding,
    SearchValue,
    SourceRecord,
)
from mappings.profiles import studio_registry  # noqa: E402

ADT_A01 = settings.FHIR_STUDIO["CORPUS_DIR"] / "fhir-converter/hl7v2/ADT-A01-01.hl7"
SLUG = "hl7v2-adt-a01"
SEED_BATCH = 10_000
AUXILIARY = {
    "checkpointer",
    "background writer",
    "walwriter",
    "autovacuum launcher",
    "autovacuum worker",
    "logical replication launcher",
}


def admin() -> User:
    return User.objects.filter(username="bench").first() or User.objects.create_superuser("bench", password="-")


def adt_version() -> MappingVersion:
    mapping = Mapping.objects.filter(slug=SLUG).select_related("latest_version").first()
    if mapping is None:
        from mappings.demo import load_demo

        load_demo(admin())
        mapping = Mapping.objects.select_related("latest_version").get(slug=SLUG)
    return mapping.latest_version


def messages(count: int):
    """(key, payload) of `count` messages, each with its own control id (MSH-10) and MRN (PID-3)."""
    lines = ADT_A01.read_text().replace("\r\n", "\r").replace("\n", "\r").strip().split("\r")
    msh = lines[0].split("|")
    body = "\r".join(lines[1:])
    for n in range(count):
        msh[9] = f"MSG{n:07d}"
        yield msh[9], "|".join(msh) + "\r" + body.replace("PATID1234", f"MRN{n:07d}")


def seeded_source(count: int) -> DataSource:
    """The source `bench-index-<count>` with `count` records, stored unless already there."""
    name = f"bench-index-{count}"
    source = DataSource.objects.filter(name=name).first()
    if source is not None and SourceRecord.objects.filter(source=source).count() == count:
        print(f"{name}: {count:,} records already stored")
        return source
    if source is None:
        source = actions.do_create_data_source(acting_user=admin(), name=name, source_format="hl7v2")
    SourceRecord.objects.filter(source=source).delete()
    started, batch = time.perf_counter(), []
    for stored, (key, payload) in enumerate(messages(count), 1):
        batch.append(SourceRecord(source=source, key=key, payload=payload))
        if len(batch) == SEED_BATCH or stored == count:
            SourceRecord.objects.bulk_create(batch, batch_size=2_000)
            batch = []
            print(f"  stored {stored:,} records, {time.perf_counter() - started:.1f} s", flush=True)
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {SourceRecord._meta.db_table}")
    return source


def engine_rate(
    version: MappingVersion, source: DataSource, records: int, *, as_workers: bool = False
) -> tuple[float, float]:
    """What indexing does per record (run_deployed: the mapping, then the bound type's resources validated) over the
    first `records` stored payloads, on core 0: what one worker could reach at best, as (records/s, CPU ms a record;
    the CPU does not depend on the machine's load). `as_workers`: with the garbage collector as an index chunk has it
    in a worker (the long-lived objects frozen, fewer young collections)."""
    rows = SourceRecord.objects.filter(source=source).order_by("id")
    payloads = list(rows.values_list("payload", flat=True)[:records])
    deployment = Deployment(binding=ResourceBinding(resource_type="Patient", source=source), version=version)
    registry = studio_registry()
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {0})
    try:
        for payload in payloads[:20]:  # warm up
            run_deployed(deployment, payload, registry=registry)
        if as_workers:
            caches.freeze_long_lived()
        with fewer_collections() if as_workers else contextlib.nullcontext():
            started, cpu = time.perf_counter(), time.process_time()
            for payload in payloads:
                run_deployed(deployment, payload, registry=registry)
            cpu_ms = (time.process_time() - cpu) * 1000 / len(payloads)
            return len(payloads) / (time.perf_counter() - started), cpu_ms
    finally:
        os.sched_setaffinity(0, before)


def start_workers(env: dict, cores: list[int], logs: Path) -> list[subprocess.Popen]:
    """One solo-pool worker per core, pinned to it with taskset."""
    workers = []
    for core in cores:
        command = ["taskset", "-c", str(core), sys.executable, "-m", "celery", "-A", "fhirstudio", "worker"]
        command += ["--pool", "solo", "--concurrency", "1", "-Q", "batch", "--loglevel", "INFO"]
        command += ["--without-gossip", "--without-mingle", "--without-heartbeat", "-n", f"benchindex{core}@%h"]
        with (logs / f"worker-{core}.log").open("w") as out:
            workers.append(subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT))
    deadline = time.monotonic() + 60
    for core, worker in zip(cores, workers, strict=True):
        log = logs / f"worker-{core}.log"
        while "ready" not in log.read_text():
            if worker.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"a worker did not start:\n{log.read_text()}")
            time.sleep(0.2)
    return workers


def stop(workers: list[subprocess.Popen]) -> None:
    for worker in workers:
        worker.terminate()
    for worker in workers:
        worker.wait(timeout=60)


def run_index(
    version: MappingVersion, source: DataSource, slug: str, records: int, poll_s: float, workers: list[subprocess.Popen]
) -> dict:
    """Deploy over the source and wait for the deployment to be ready; the figures of the run."""
    user = admin()
    facade = actions.do_create_facade(acting_user=user, slug=slug, title="Index benchmark")
    binding = actions.do_bind_resource(
        facade, acting_user=user, resource_type="Patient", mapping=version.mapping, source=source
    )
    started, database_cpu, vacuums = time.perf_counter(), postgres_cpu(), autovacuum_runs()
    others, workers_cpu = process_cpu(), workers_cpu_of(workers)
    deployment = actions.do_deploy(binding, acting_user=user, version=version)
    deployed = time.perf_counter()
    others_busy = 0  # polls that saw another database's connection at work: its CPU counts in postgres_cpu's
    own = OwnBackends()
    while not deployment.ready:
        time.sleep(poll_s)
        deployment.refresh_from_db()
        others_busy += other_databases_busy()
        own.poll()
        failed = deployment.index_errors and deployment.index_errors[0].get("code") == "FS-IDX-001"
        if failed:
            raise SystemExit(f"indexing failed: {deployment.index_errors}")
    ready, ready_at, database_cpu = time.perf_counter(), timezone.now(), postgres_cpu() - database_cpu
    workers_cpu, others = workers_cpu_of(workers) - workers_cpu, process_cpu() - others
    vacuums = autovacuum_runs() - vacuums
    stamps = deployment.index_chunks.aggregate(
        sent=Min("queued_at"), claimed=Min("heartbeat_at"), last=Max("finished_at"), records=Sum("records")
    )
    assert deployment.indexed == records == stamps["records"], (deployment.indexed, records, stamps)
    whole = ready - started
    return {
        "deployment": deployment,
        "facade": facade,
        "chunks": deployment.index_chunks.count(),
        "whole_s": whole,
        "rate": records / whole,
        "deploy_s": deployed - started,  # the samples run, the rows written, the plan queued
        "plan_s": (stamps["sent"] - deployment.deployed_at).total_seconds(),
        "chunks_s": (stamps["last"] - stamps["sent"]).total_seconds(),
        "swap_s": (ready_at - stamps["last"]).total_seconds(),  # the last chunk done (its staging, the swap) → ready
        "chunk_rate": records / (stamps["last"] - stamps["sent"]).total_seconds(),
        "database_cpu": database_cpu,
        "workers_cpu": workers_cpu,
        "others_cpu": others,
        "autovacuums": vacuums,
        "others_busy": others_busy,
        "own_backends": own.cpu(),
    }


def drop(facade: Facade) -> None:
    """The run's facade, with its index (the delete action drops index rows in bulk SQL)."""
    actions.do_delete_facade(facade, acting_user=admin())
    with connection.cursor() as cursor:
        cursor.execute(f"VACUUM ANALYZE {SearchValue._meta.db_table}")
        cursor.execute(f"VACUUM ANALYZE {FacadeResource._meta.db_table}")


class OwnBackends:
    """The CPU of this database's backends alone (the workers' connections and their staging threads'), read at every
    poll from /proc for the backends pg_stat_activity lists: on a machine where other databases are at work too, the
    server's total (postgres_cpu) counts theirs. A backend's last CPU before it exits (under a poll) is missed."""

    def __init__(self) -> None:
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}
        for pid in self._pids():
            self.first[pid] = self.last[pid] = cpu_of(Path(f"/proc/{pid}/stat"))

    @staticmethod
    def _pids() -> set[int]:
        with connection.cursor() as cursor:  # not this process's own
            cursor.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            return {row[0] for row in cursor.fetchall()}

    def poll(self) -> None:
        for pid in self._pids():
            used = cpu_of(Path(f"/proc/{pid}/stat"))
            self.first.setdefault(pid, 0.0)  # started during the run
            self.last[pid] = max(used, self.last.get(pid, 0.0))

    def cpu(self) -> float:
        return sum(self.last[pid] - self.first[pid] for pid in self.last)


def postgres_cpu() -> Counter:
    """CPU seconds the local PostgreSQL server's processes have used, by role: "backends" (the connections, those
    that exited counted in the postmaster's children's times), "checkpointer", "walwriter", … Read it on a machine
    with no other database work: it is the work that competes with the engine when two workers take both cores."""
    used: Counter = Counter()
    tick = os.sysconf("SC_CLK_TCK")
    for process in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError, ValueError):
            stat = (process / "stat").read_text()
            if not stat[stat.index("(") + 1 : stat.rindex(")")].startswith("postgres"):
                continue
            utime, stime, cutime, cstime = (int(field) / tick for field in stat[stat.rindex(")") + 2 :].split()[11:15])
            title = (process / "cmdline").read_bytes().decode(errors="replace").replace("\0", " ")
            if not title.startswith("postgres: "):  # the postmaster: a backend that exited counts in its children
                used["backends"] += cutime + cstime
                continue
            role = title.split(": ")[2].strip() if title.count(": ") >= 2 else "backends"
            if role.startswith("autovacuum worker"):  # one still running; those that ended count as backends
                role = "autovacuum worker"
            used[role if role in AUXILIARY else "backends"] += utime + stime
    return used


def cpu_of(stat_path: Path) -> float:
    """utime + stime of a process or thread, in seconds (0 when it has gone)."""
    try:
        stat = stat_path.read_text()
    except OSError:
        return 0.0
    utime, stime = stat[stat.rindex(")") + 2 :].split()[11:13]
    return (int(utime) + int(stime)) / os.sysconf("SC_CLK_TCK")


def workers_cpu_of(workers: list[subprocess.Popen]) -> Counter:
    """The workers' CPU seconds: "engine thread" (each worker's main thread: the engine, reading the records, the
    chunk bookkeeping, Celery) and "other threads" (the staging threads; those that ended count in the process)."""
    used: Counter = Counter()
    for worker in workers:
        main = cpu_of(Path(f"/proc/{worker.pid}/task/{worker.pid}/stat"))
        used["engine thread"] += main
        used["other threads"] += cpu_of(Path(f"/proc/{worker.pid}/stat")) - main
    return used


def process_cpu() -> Counter:
    """CPU seconds of the other processes a build uses: Redis (the broker), and this process (polling: shown, not
    counted in the build's CPU)."""
    used: Counter = Counter({"this process": time.process_time()})
    for process in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError):
            if (process / "comm").read_text().strip() == "redis-server":
                used["redis"] += cpu_of(process / "stat")
    return used


def other_databases_busy() -> bool:
    """Whether a connection to another database is running a statement: PostgreSQL's CPU is read for the whole
    server (a backend that ended counts in the postmaster's children's times, whatever its database)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE datname <> current_database() AND state = 'active')"
        )
        return bool(cursor.fetchone()[0])


def autovacuum_runs() -> int:
    """How many times autovacuum has vacuumed or analyzed the index's two tables: a run that did any shares the cores
    with the workers, and its CPU is in postgres_cpu's "backends" once the autovacuum worker has ended."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT coalesce(sum(autovacuum_count + autoanalyze_count), 0) FROM pg_stat_all_tables"
            " WHERE relname IN (%s, %s)",
            [SearchValue._meta.db_table, FacadeResource._meta.db_table],
        )
        return int(cursor.fetchone()[0])


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=True).stdout.strip()


def print_cpu(figures: dict, records: int, engine_ms: float) -> None:
    """CPU a record by process, and what it is beside the engine's own (engine_ms, the collector as in a worker): the
    overhead O that caps a build on all cores at E / (E + O) of the engine × cores."""
    used = figures["workers_cpu"] + figures["database_cpu"] + figures["others_cpu"]
    per_record = {role: cpu * 1000 / records for role, cpu in used.most_common()}
    total = sum(per_record.values()) - per_record.get("this process", 0)  # the benchmark's polling: not the build's
    overhead = total - engine_ms
    print(
        f"  CPU a record {total:.3f} ms: "
        + ", ".join(f"{role} {ms:.3f}" for role, ms in per_record.items() if ms >= 0.0005)
        + f"; beside the engine's {engine_ms:.3f}: {overhead:.3f} ms → at most "
        f"{engine_ms / (engine_ms + overhead):.0%} of the engine × cores when the cores are all busy",
        flush=True,
    )
    print(
        f"  this database's backends (polled, the others' apart): {figures['own_backends'] * 1000 / records:.3f} ms a "
        f"record; with them in place of the server's backends: overhead "
        f"{overhead - per_record.get('backends', 0) + figures['own_backends'] * 1000 / records:.3f} ms"
    )
    if figures["others_busy"]:
        print(
            f"  (other databases were at work in {figures['others_busy']} of the polls: PostgreSQL's CPU above "
            "includes theirs)"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--chunk", type=int, default=settings.FHIR_STUDIO["INDEX_CHUNK_RECORDS"])
    parser.add_argument("--engine-records", type=int, default=2_000)
    parser.add_argument("--workers", default="1,2", help="worker counts to run, in order")
    parser.add_argument("--poll", type=float, default=0.1, help="how often to look at the deployment, seconds")
    options = parser.parse_args()
    if connection.vendor != "postgresql":
        raise SystemExit("set DATABASE_URL=postgres://…: the benchmark measures the production database")
    if not os.environ.get("CELERY_BROKER_URL", "").startswith("redis://"):
        raise SystemExit("set CELERY_BROKER_URL=redis://…: the benchmark measures the production broker")
    if shutil.which("taskset") is None:
        raise SystemExit("taskset (util-linux) is needed to pin each worker to its core")
    call_command("migrate", verbosity=0)
    version = adt_version()
    source = seeded_source(options.records)
    for stale in Facade.objects.filter(slug__startswith="bench-index-"):  # left by an interrupted run
        drop(stale)
    scratch = Path(tempfile.mkdtemp(prefix="bench-index-"))
    env = {
        **os.environ,
        "FHIR_STUDIO_JOB_FILES_DIR": str(scratch / "jobs"),
        "FHIR_STUDIO_INDEX_CHUNK_RECORDS": str(options.chunk),
        "DEBUG": "false",  # DEBUG keeps every query in memory
        "SECRET_KEY": "bench-only",
    }
    try:
        print(
            f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
        )
        print(f"{options.records:,} ADT^A01 records → Patient, chunks of {options.chunk:,} records")
        print(f"load before: {uptime()}")
        engine, engine_ms = engine_rate(version, source, options.engine_records)
        print(
            f"engine alone (run_deployed, {options.engine_records:,} records, core 0): {engine:,.1f}/s, "
            f"{engine_ms:.3f} ms CPU a record"
        )
        # After the first: the freeze stays.
        tuned, tuned_ms = engine_rate(version, source, options.engine_records, as_workers=True)
        print(
            f"engine alone, collector as in a worker (frozen, fewer young collections): {tuned:,.1f}/s, "
            f"{tuned_ms:.3f} ms CPU a record"
        )
        rates: dict[int, float] = {}
        for count in (int(number) for number in options.workers.split(",")):
            workers = start_workers(env, list(range(count)), scratch)
            try:
                figures = run_index(version, source, f"bench-index-{count}w", options.records, options.poll, workers)
            finally:
                stop(workers)
            rates[count] = figures["rate"]
            print(
                f"{count} worker{'s' if count > 1 else ''}: deploy → ready {figures['whole_s']:.1f} s = "
                f"{figures['rate']:,.1f} records/s ({figures['rate'] / (engine * count):.0%} of the engine × {count}, "
                f"{figures['rate'] / (tuned * count):.0%} of its collector-as-in-a-worker row); "
                f"{figures['deployment'].indexed:,} Patients, {figures['chunks']} chunks"
            )
            print(
                f"  do_deploy {figures['deploy_s']:.1f} s · plan {figures['plan_s']:.1f} s · chunks "
                f"{figures['chunks_s']:.1f} s ({figures['chunk_rate']:,.1f}/s) · swap {figures['swap_s']:.1f} s · "
                f"PostgreSQL CPU {figures['database_cpu'].total():.1f} s, "
                f"{figures['database_cpu'].total() * 1000 / options.records:.2f} s per 1,000 records ("
                + ", ".join(f"{role} {cpu:.1f}" for role, cpu in figures["database_cpu"].most_common())
                + f"; autovacuum runs {figures['autovacuums']})  "
                f"[{uptime().split('load average: ')[-1]}]",
                flush=True,
            )
            print_cpu(figures, options.records, tuned_ms)
            drop(figures["facade"])
            shutil.rmtree(scratch / "jobs", ignore_errors=True)
        if 1 in rates and 2 in rates:
            print(f"2 workers / 1 worker: {rates[2] / rates[1]:.2f}×")
        print(f"load after: {uptime()}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
