"""Benchmark of a deployed facade (issue 6): read-by-id and a 20-result search over a stored source of N records,
under concurrent load from wrk against gunicorn on loopback, beside a static Django JSON view on the same server.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/fhirstudio_bench .venv/bin/python bench/facade.py --records 100000

Builds the data once (json-patient v1 deployed over N synthetic registration records, indexed), then runs wrk for
each endpoint. Targets: read p50 ≤ 5 ms, p99 ≤ 20 ms; facade throughput ≥ 60 % of the static view's.

Before and after a change, interleaved on one core (a worktree of the earlier commit serves the same database):

    git worktree add -f /tmp/base <commit> && ln -s $PWD/.venv /tmp/base/.venv
    DATABASE_URL=… .venv/bin/python bench/facade.py --records 20000 --against /tmp/base --rounds 2 --pin-core 0 \\
        --workers 1 --connections 2 --seconds 8 --endpoints static,read

`--cpu` measures instead what a request costs in CPU (ms of user + system time per request, from /proc) of the
gunicorn workers, of the PostgreSQL backends serving them and of wrk: what sets throughput on two shared cores, and
much less moved by the machine's load than wall time. `--against-database` gives `--against` its own database."""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.benchsite")

import django  # noqa: E402

django.setup()

from django.contrib.auth.models import User  # noqa: E402
from django.core.management import call_command  # noqa: E402

from mappings import actions  # noqa: E402
from mappings.demo import load_demo  # noqa: E402
from mappings.jobs.indexing import index_deployment_direct  # noqa: E402
from mappings.models import Facade, FacadeResource, Mapping  # noqa: E402

FAMILIES = ["Smith", "Jones", "Garcia", "Nguyen", "Okafor", "Kowalski", "Haddad", "Silva", "Tanaka", "Novak"]


def record(number: int) -> str:
    return json.dumps(
        {
            "PatientId": number,
            "MRN": f"M{number:07d}",
            "FirstName": f"Given{number % 997}",
            "LastName": FAMILIES[number % len(FAMILIES)] + str(number % 101),
            "Phone Number": [f"555-{number % 10000:04d}"],
            "Gender": "MF"[number % 2],
            "DOB": f"{1930 + number % 90}{1 + number % 12:02d}{1 + number % 28:02d}",
        }
    )


def build(records: int) -> None:
    if Facade.objects.filter(slug="bench").exists():
        count = FacadeResource.objects.filter(deployment__binding__facade__slug="bench").count()
        print(f"bench facade exists with {count:,} resources")
        return
    admin = User.objects.filter(username="bench").first() or User.objects.create_superuser("bench", password="bench")
    if not Mapping.objects.filter(slug="json-patient").exists():
        load_demo(admin)
    mapping = Mapping.objects.select_related("latest_version").get(slug="json-patient")
    source = actions.do_create_data_source(acting_user=admin, name="bench-registrations", source_format="json")
    started = time.perf_counter()
    for start in range(0, records, 10_000):
        rows = [(f"r{number}", record(number)) for number in range(start, min(records, start + 10_000))]
        actions.do_upload_records(source, acting_user=admin, records=rows)
    print(f"stored {records:,} records in {time.perf_counter() - started:.1f} s")
    facade = actions.do_create_facade(acting_user=admin, slug="bench", title="Benchmark")
    binding = actions.do_bind_resource(
        facade, acting_user=admin, resource_type="Patient", mapping=mapping, source=source
    )
    started = time.perf_counter()
    deployment = actions.do_deploy(binding, acting_user=admin, version=mapping.latest_version)
    if not deployment.ready:  # big: queued for a worker; index here instead, as the worker would
        deployment = index_deployment_direct(deployment.pk)
    print(
        f"deployed and indexed {deployment.indexed or FacadeResource.objects.filter(deployment=deployment).count():,} "
        f"patients in {time.perf_counter() - started:.1f} s"
    )


def wrk(url: str, seconds: int, connections: int, script: str | None = None, pin: list[str] | None = None) -> dict:
    command = [*(pin or []), "wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", url]
    if script:
        command[-1:-1] = ["-s", script]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout

    def ms(label: str) -> float:
        value, unit = re.search(rf"{label}%\s+([\d.]+)(us|ms|s)", output).groups()
        return float(value) * {"us": 0.001, "ms": 1, "s": 1000}[unit]

    return {
        "requests": int(re.search(r"(\d+) requests in", output).group(1)),
        "requests_per_s": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),
        "p50_ms": ms("50"),
        "p90_ms": ms("90"),
        "p99_ms": ms("99"),
        "non_2xx": int(m.group(1)) if (m := re.search(r"Non-2xx or 3xx responses: (\d+)", output)) else 0,
    }


ENDPOINTS = {
    "static": ("static Django JSON view", "/bench/static"),
    "read": ("read Patient by id (random of 5,000)", None),
    "search-family": ("search Patient?family=smith1&_count=20", "/fhir/bench/Patient?family=smith1&_count=20"),
    "search-broad": (
        "search Patient?gender=female&birthdate=ge1980&_count=20",
        "/fhir/bench/Patient?gender=female&birthdate=ge1980&_count=20",
    ),
}


TICK_MS = 1000 / os.sysconf("SC_CLK_TCK")


def cpu_ms(pids: list[int]) -> float:
    """User + system CPU the processes have used so far (/proc/<pid>/stat utime + stime), in ms."""
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rpartition(")")[2].split()
        total += int(fields[11]) + int(fields[12])
    return total * TICK_MS


def server_pids(server: subprocess.Popen, database: str | None) -> tuple[list[int], list[int]]:
    """The gunicorn workers (the master's children) and the PostgreSQL backends serving them (every other backend
    on the database they serve): whose CPU a request costs, besides wrk's."""
    from django.db import connection

    children = Path(f"/proc/{server.pid}/task/{server.pid}/children").read_text().split()
    if not children:  # under taskset the master is taskset's exec, same pid
        raise SystemExit("no gunicorn workers found")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity"
            " WHERE datname = COALESCE(%s, current_database()) AND pid <> pg_backend_pid()",
            [database and database.rpartition("/")[2]],
        )
        backends = [row[0] for row in cursor.fetchall()]
    return [int(pid) for pid in children], backends


def cpu_per_request(
    url: str, options: argparse.Namespace, script: str | None, server: subprocess.Popen, database: str | None
) -> dict:
    """CPU per request of the gunicorn workers, of their PostgreSQL backends and of wrk, over one wrk run: what
    sets throughput on a shared machine, whatever the load (a busy machine stretches wall time, not CPU time)."""
    workers, backends = server_pids(server, database)
    before = cpu_ms(workers), cpu_ms(backends), resource.getrusage(resource.RUSAGE_CHILDREN)
    figures = wrk(url, options.seconds, options.connections, script)
    after = cpu_ms(workers), cpu_ms(backends), resource.getrusage(resource.RUSAGE_CHILDREN)
    count = figures["requests"]
    wrk_ms = (after[2].ru_utime + after[2].ru_stime - before[2].ru_utime - before[2].ru_stime) * 1000
    return {
        "requests": count,
        "backends": len(backends),
        "gunicorn_ms": round((after[0] - before[0]) / count, 4),
        "postgres_ms": round((after[1] - before[1]) / count, 4),
        "wrk_ms": round(wrk_ms / count, 4),
    }


def start_server(root: Path, options: argparse.Namespace, database: str | None = None) -> subprocess.Popen:
    """gunicorn serving the checkout at `root` (this one, or --against) on the bench database: sync workers, or
    gthread workers (keep-alive) with --threads above 1, as scripts/run serves."""
    command = [str(root / ".venv/bin/gunicorn"), "fhirstudio.wsgi", "--bind", f"127.0.0.1:{options.port}"]
    command += ["--workers", str(options.workers), "--threads", str(options.threads), "--log-level", "warning"]
    if options.pin_core is not None:
        command = ["taskset", "-c", str(options.pin_core), *command]
    server = subprocess.Popen(
        command,
        cwd=root,
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "bench.benchsite",
            "DEBUG": "false",
            "SECRET_KEY": "bench-only",
            "ALLOWED_HOSTS": "127.0.0.1",
            **({"DATABASE_URL": database} if database else {}),
        },
    )
    deadline = time.monotonic() + 60  # workers load the FHIR definitions before they answer
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{options.port}/bench/static", timeout=5) as answer:
                if answer.status == 200:
                    return server
        except OSError:
            time.sleep(0.2)
    server.terminate()
    raise SystemExit(f"gunicorn in {root} did not answer")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="per worker; above 1, gunicorn's gthread workers")
    parser.add_argument("--port", type=int, default=8799)
    parser.add_argument("--endpoints", default=",".join(ENDPOINTS), help="of " + ", ".join(ENDPOINTS))
    parser.add_argument(
        "--against",
        type=Path,
        help="another checkout (a worktree of an earlier commit, sharing this database) served in turn with this "
        "one: each round runs every endpoint on both, so a slow patch of the machine hits both alike",
    )
    parser.add_argument(
        "--against-database",
        help="the database --against serves (built as this one, by its own bench/facade.py); default: this one",
    )
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--pin-core", type=int, help="run gunicorn and wrk on this one core (taskset)")
    parser.add_argument(
        "--cpu",
        action="store_true",
        help="measure CPU per request (gunicorn workers, PostgreSQL backends, wrk) from /proc instead of wall time",
    )
    options = parser.parse_args()
    call_command("migrate", verbosity=0)
    build(options.records)
    ids = list(
        FacadeResource.objects.filter(deployment__binding__facade__slug="bench").values_list("resource_id", flat=True)[
            :5000
        ]
    )
    base = f"http://127.0.0.1:{options.port}"
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as lua:
        paths = ",".join(f'"/fhir/bench/Patient/{rid}"' for rid in ids)
        # Each thread writes its requests once: wrk.format on every request cost wrk about 0.01 ms of CPU a read
        # (0.093-0.098 against 0.084-0.088 ms, --cpu), on the cores the server shares; the static view's runs none.
        prepare = "init = function(args) for i, p in ipairs(paths) do requests[i] = wrk.format('GET', p) end end"
        pick = "request = function() return requests[math.random(#requests)] end"
        lua.write(f"local paths = {{{paths}}}\nlocal requests = {{}}\n{prepare}\n{pick}\n")
    roots = {"this": ROOT} if options.against is None else {"before": options.against.resolve(), "after": ROOT}
    pin = [] if options.pin_core is None else ["taskset", "-c", str(options.pin_core)]
    results: dict[tuple[str, str], list[dict]] = {}
    for _ in range(options.rounds):
        for version, root in roots.items():
            database = options.against_database if version == "before" else None
            server = start_server(root, options, database)
            try:
                for key in options.endpoints.split(","):
                    name, path = ENDPOINTS[key]
                    url, script = (base, lua.name) if path is None else (base + path, None)
                    wrk(url, min(3, options.seconds), options.connections, script, pin)  # warm up
                    if options.cpu:
                        figures = cpu_per_request(url, options, script, server, database)
                        print(f"{version:6} {name:58} CPU per request {figures}", flush=True)
                        continue
                    figures = wrk(url, options.seconds, options.connections, script, pin)
                    figures["load"] = os.getloadavg()[0]
                    results.setdefault((version, name), []).append(figures)
                    print(f"{version:6} {name:58} {figures}", flush=True)
            finally:
                server.terminate()
                server.wait()
    kind = "sync" if options.threads == 1 else f"gthread ({options.threads} threads)"
    print(f"\n# {options.workers} {kind} workers, {options.connections} connections, {options.seconds} s per endpoint")
    for version in roots:
        static = results.get((version, ENDPOINTS["static"][0]))
        for (of, name), rounds in results.items():
            if of != version:
                continue
            share = ""
            if static:
                pairs = zip(rounds, static, strict=True)
                share = " / ".join(f"{run['requests_per_s'] / floor['requests_per_s']:.1%}" for run, floor in pairs)
                share += " of static"
            per_round = " / ".join(
                f"{run['requests_per_s']:,.0f}/s p50 {run['p50_ms']} p99 {run['p99_ms']} ms (load {run['load']:.2f})"
                for run in rounds
            )
            print(f"{version:6} {name:58} {per_round}  {share}")


if __name__ == "__main__":
    main()
