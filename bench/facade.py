"""Benchmark of a deployed facade (issue 6): read-by-id and a 20-result search over a stored source of N records,
under concurrent load from wrk against gunicorn on loopback, beside a static Django JSON view on the same server.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/fhirstudio_bench .venv/bin/python bench/facade.py --records 100000

Builds the data once (json-patient v1 deployed over N synthetic registration records, indexed), then runs wrk for
each endpoint. Targets: read p50 ≤ 5 ms, p99 ≤ 20 ms; facade throughput ≥ 60 % of the static view's."""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
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


def wrk(url: str, seconds: int, connections: int, script: str | None = None) -> dict:
    command = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", url]
    if script:
        command[1:1] = ["-s", script]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout

    def ms(label: str) -> float:
        value, unit = re.search(rf"{label}%\s+([\d.]+)(us|ms|s)", output).groups()
        return float(value) * {"us": 0.001, "ms": 1, "s": 1000}[unit]

    return {
        "requests_per_s": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),
        "p50_ms": ms("50"),
        "p90_ms": ms("90"),
        "p99_ms": ms("99"),
        "non_2xx": int(m.group(1)) if (m := re.search(r"Non-2xx or 3xx responses: (\d+)", output)) else 0,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--port", type=int, default=8799)
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
        pick = "request = function() return wrk.format('GET', paths[math.random(#paths)]) end"
        lua.write(f"local paths = {{{paths}}}\n{pick}\n")
    server = subprocess.Popen(
        [
            str(ROOT / ".venv/bin/gunicorn"),
            "fhirstudio.wsgi",
            "--bind",
            f"127.0.0.1:{options.port}",
            "--workers",
            str(options.workers),
            "--threads",
            "1",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "bench.benchsite",
            "DEBUG": "false",
            "SECRET_KEY": "bench-only",
            "ALLOWED_HOSTS": "127.0.0.1",
        },
    )
    try:
        time.sleep(3)
        results = {}
        for name, url, script in (
            ("static Django JSON view", f"{base}/bench/static", None),
            ("read Patient by id (random of 5,000)", base, lua.name),
            ("search Patient?family=smith1&_count=20", f"{base}/fhir/bench/Patient?family=smith1&_count=20", None),
            (
                "search Patient?gender=female&birthdate=ge1980&_count=20",
                f"{base}/fhir/bench/Patient?gender=female&birthdate=ge1980&_count=20",
                None,
            ),
        ):
            wrk(url, 3, options.connections, script)  # warm up
            results[name] = wrk(url, options.seconds, options.connections, script)
            print(f"{name:58} {results[name]}")
        static = results["static Django JSON view"]["requests_per_s"]
        for name, figures in results.items():
            print(f"{name:58} {figures['requests_per_s'] / static:6.1%} of static")
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
