"""Load test (issue 15): 1,000 concurrent connections of facade reads and searches against the demo facade on loopback,
served by gunicorn as the run command starts it (scripts/run: 2 gthread workers of 4 threads, -c
fhirstudio/gunicorn_conf.py, DEBUG off), on PostgreSQL. By hand, not in the suite:

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/h_j CELERY_BROKER_URL=redis://127.0.0.1:6379/14 \\
        .venv/bin/python bench/load.py --connections 1000 --seconds 20

Loads the demo content if the database has none (migrate, then `fhirstudio demo`'s load_demo; a deployment too big
to index inline is indexed here, as a worker would). wrk (-t2, --timeout 10s) runs a Lua script that sends reads by id
of every demo resource and searches (`_count`, `_id`, a patient's resources, a name), in turn per connection, and
counts every answer that is not a 2xx. Bounded in time (--seconds) and so in count. It passes with zero errors:
no non-2xx answer and no socket error (connect, read, write or timeout). Prints p50, p90, p99, the request rate, the
load average before and after and the UTC time, as a JSON line too (--json-out appends it to a file)."""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fhirstudio.settings")

import django  # noqa: E402

django.setup()

from django.contrib.auth.models import User  # noqa: E402
from django.core.management import call_command  # noqa: E402

from mappings.demo import load_demo  # noqa: E402
from mappings.jobs.indexing import index_deployment_direct  # noqa: E402
from mappings.models import Deployment, Facade, FacadeResource  # noqa: E402

FACADE = "demo"

# Per connection, the next path in turn (each wrk thread starts at its own offset); counts non-2xx answers per thread
# and prints one JSON line at the end: wrk's percentiles and errors, and our count.
LUA = r"""
local paths = {%(paths)s}
local threads = {}
local next_id = 0
function setup(thread)
  thread:set("offset", next_id * 7919)
  next_id = next_id + 1
  table.insert(threads, thread)
end
function init(args)
  position = offset
  non2xx = 0
end
function request()
  position = position + 1
  return wrk.format("GET", paths[(position %% #paths) + 1], {["Accept"] = "application/fhir+json"})
end
function response(status, headers, body)
  if status < 200 or status > 299 then non2xx = non2xx + 1 end
end
function done(summary, latency, requests)
  local bad = 0
  for _, thread in ipairs(threads) do bad = bad + thread:get("non2xx") end
  local e = summary.errors
  io.write(string.format(
    'LOADJSON {"requests": %%d, "duration_us": %%d, "non_2xx": %%d, "connect": %%d, "read": %%d, "write": %%d, ' ..
    '"timeout": %%d, "p50_us": %%d, "p90_us": %%d, "p99_us": %%d, "max_us": %%d}\n',
    summary.requests, summary.duration, bad, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
"""


def prepare() -> None:
    """The demo content, as the run command loads it; any deployment left to a worker is indexed here."""
    call_command("migrate", verbosity=0)
    if not Facade.objects.filter(slug=FACADE).exists():
        admin = User.objects.filter(username="admin").first() or User.objects.create_superuser("admin", password=None)
        load_demo(admin)
    for deployment in Deployment.objects.filter(binding__facade__slug=FACADE, ready=False, superseded=False):
        index_deployment_direct(deployment.pk)


def paths(base: str) -> list[str]:
    """Reads of the resources the demo facade serves (up to 500 of each type) and, one in three, searches over them
    with the parameters its CapabilityStatement lists. Each search is tried once first: one that does not answer 2xx
    is left out and printed (the load test measures serving, not a search the facade refuses)."""
    served_rows = FacadeResource.objects.filter(deployment__binding__facade__slug=FACADE, deployment__ready=True)
    rows = [
        row
        for kind in sorted(set(served_rows.values_list("resource_type", flat=True)))
        for row in served_rows.filter(resource_type=kind).values_list("resource_type", "resource_id")[:500]
    ]
    if not rows:
        raise SystemExit(f"The '{FACADE}' facade serves nothing: is the demo loaded and indexed?")
    with urllib.request.urlopen(f"{base}/fhir/{FACADE}/metadata", timeout=10) as answer:
        served = {
            entry["type"]: {param["name"] for param in entry.get("searchParam", [])}
            for entry in json.load(answer)["rest"][0]["resource"]
        }
    reads = [f"/fhir/{FACADE}/{kind}/{rid}" for kind, rid in rows]
    patients = [rid for kind, rid in rows if kind == "Patient"][:10]
    searches = [f"/fhir/{FACADE}/{kind}?_count=10" for kind in served]
    searches += [f"/fhir/{FACADE}/{kind}?_id={rid}" for kind, rid in rows[:: max(1, len(rows) // 100)]]
    searches += [f"/fhir/{FACADE}/Patient?{name}" for name in ("name=a&_count=5", "gender=female&_count=5")]
    searches += [
        f"/fhir/{FACADE}/{kind}?{param}={pid}"
        for kind, params in served.items()
        for param in ("patient", "subject")
        if param in params
        for pid in patients
    ]
    kept = []
    for path in searches:
        try:
            with urllib.request.urlopen(base + path, timeout=10) as answer:
                kept.append(path)
        except OSError as error:
            print(f"left out {path}: {error}")
    mixed = []
    for number, read in enumerate(reads):  # reads and searches interleaved, two reads to one search
        mixed.append(read)
        if number % 2:
            mixed.append(kept[(number // 2) % len(kept)])
    return mixed


def start_server(port: int, workers: int, threads: int) -> subprocess.Popen:
    """gunicorn with scripts/run's flags and config file."""
    command = [str(ROOT / ".venv/bin/gunicorn"), "fhirstudio.wsgi", "--bind", f"127.0.0.1:{port}"]
    command += ["--workers", str(workers), "--threads", str(threads), "--timeout", "60"]
    command += ["-c", "fhirstudio/gunicorn_conf.py", "--log-level", "warning"]
    env = {**os.environ, "DEBUG": "false", "ALLOWED_HOSTS": "127.0.0.1", "HOST": "127.0.0.1"}
    server = subprocess.Popen(command, cwd=ROOT, env=env)
    deadline = time.monotonic() + 90  # workers load the FHIR definitions before they answer
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/fhir/{FACADE}/metadata", timeout=5) as answer:
                if answer.status == 200:
                    return server
        except OSError:
            time.sleep(0.3)
    server.terminate()
    raise SystemExit("gunicorn did not answer")


def run_wrk(port: int, script: str, connections: int, seconds: int, timeout_s: int) -> dict:
    command = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", f"--timeout={timeout_s}s", "-s", script]
    output = subprocess.run([*command, f"http://127.0.0.1:{port}"], capture_output=True, text=True, check=True).stdout
    found = re.search(r"^LOADJSON (.*)$", output, re.MULTILINE)
    if found is None:
        raise SystemExit(f"wrk printed no summary:\n{output}")
    figures = json.loads(found.group(1))
    return {
        "requests": figures["requests"],
        "requests_per_s": round(figures["requests"] / (figures["duration_us"] / 1e6), 1),
        "non_2xx": figures["non_2xx"],
        "socket_errors": {name: figures[name] for name in ("connect", "read", "write", "timeout")},
        **{f"{name}_ms": round(figures[f"{name}_us"] / 1000, 1) for name in ("p50", "p90", "p99", "max")},
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--timeout", type=int, default=10, help="wrk's per-request timeout (s), counted as an error")
    parser.add_argument("--port", type=int, default=18401)
    parser.add_argument("--workers", type=int, default=2, help="scripts/run's WEB_WORKERS default")
    parser.add_argument("--threads", type=int, default=4, help="scripts/run's WEB_THREADS default")
    parser.add_argument("--json-out", type=Path, help="append the result as a JSON line to this file")
    options = parser.parse_args()
    prepare()
    server = start_server(options.port, options.workers, options.threads)
    try:
        mixed = paths(f"http://127.0.0.1:{options.port}")
        with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as lua:
            lua.write(LUA % {"paths": ",".join(json.dumps(path) for path in mixed)})
        run_wrk(options.port, lua.name, min(options.connections, 50), 2, options.timeout)  # warm up every thread
        load_before = os.getloadavg()
        started = datetime.now(UTC)
        figures = run_wrk(options.port, lua.name, options.connections, options.seconds, options.timeout)
        load_after = os.getloadavg()
    finally:
        server.terminate()
        server.wait(timeout=60)
    os.unlink(lua.name)
    errors = figures["non_2xx"] + sum(figures["socket_errors"].values())
    result = {
        "started_utc": started.strftime("%Y-%m-%d %H:%M:%S"),
        "connections": options.connections,
        "seconds": options.seconds,
        "server": f"gunicorn {options.workers} gthread workers x {options.threads} threads, gunicorn_conf.py",
        "paths": len(mixed),
        **figures,
        "errors": errors,
        "load_before": [round(value, 2) for value in load_before],
        "load_after": [round(value, 2) for value in load_after],
        "cpus": os.cpu_count(),
    }
    print(json.dumps(result))
    print(
        f"{options.connections} connections, {options.seconds} s at {result['started_utc']} UTC: "
        f"{figures['requests']:,} requests ({figures['requests_per_s']:,.0f}/s), p50 {figures['p50_ms']} ms, "
        f"p90 {figures['p90_ms']} ms, p99 {figures['p99_ms']} ms, max {figures['max_ms']} ms; errors {errors} "
        f"(non-2xx {figures['non_2xx']}, sockets {figures['socket_errors']}); load {result['load_before'][0]} → "
        f"{result['load_after'][0]}"
    )
    if options.json_out:
        with options.json_out.open("a") as out:
            out.write(json.dumps(result) + "\n")
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main()
