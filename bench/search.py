"""Benchmark of facade searches over a big index (issue 14, "broad searches"), in process: the Django test client
sends each search N times, pinned to one core, and the median and p90 wall time of a request are printed with the
match count: each time as a first visit (the total counted) and again (its total known: a client paging). The index
is bench/facade.py's: json-patient deployed over N synthetic registrations (built once, by the real indexer).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/fhirstudio_search \\
        .venv/bin/python bench/search.py --records 100000 --repeat 30

Target: ≤ 30 ms for the first page, with its exact `total`, of `gender=female&birthdate=ge1980` over 100,000
Patients (22,220 matches). Run by hand, never in CI."""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.benchsite")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402

from bench.facade import build  # noqa: E402
from mappings import caches  # noqa: E402

SEARCHES = [
    "gender=female&birthdate=ge1980&_count=20",
    "gender=female&_count=20",
    "birthdate=ge1980&_count=20",
    "family=smith1&_count=20",
    "family=smith&_count=20",
    "gender=male&birthdate=lt1950&family=jones&_count=20",
    "gender=female&birthdate=ge1980&_count=20&_offset=10000",
    "gender=female&birthdate=ge1980&_summary=count",
]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--core", type=int, default=0)
    options = parser.parse_args()
    if connection.vendor != "postgresql":
        raise SystemExit("set DATABASE_URL=postgres://…: the benchmark measures the production database")
    call_command("migrate", verbosity=0)
    build(options.records)
    os.sched_setaffinity(0, {options.core})
    client = Client(SERVER_NAME="localhost")  # a host the settings allow by default ("testserver" is refused)
    load = subprocess.run(["uptime"], capture_output=True, text=True, check=True).stdout.strip()
    print(f"{options.records:,} Patients, {options.repeat} requests each, core {options.core}; {load}")
    print(f"{'search':58} {'matches':>8} {'p50 ms':>8} {'p90 ms':>8} {'again p50':>10}")
    # The next link of the page before _offset=10000: the same page, found from its cursor (_after).
    before = client.get("/fhir/bench/Patient?gender=female&birthdate=ge1980&_count=20&_offset=9980").json()
    cursor_page = next(link["url"] for link in before["link"] if link["relation"] == "next").split("/fhir/bench/")[1]
    for search in [*SEARCHES, cursor_page.removeprefix("Patient?")]:
        url = f"/fhir/bench/Patient?{search}"
        first = client.get(url)  # warm up, and the match count
        assert first.status_code == 200, first.content[:500]
        times, again = [], []
        for _ in range(options.repeat):
            caches.search_totals.clear()  # a first visit: the total is counted
            started = time.perf_counter()
            client.get(url)
            times.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()  # the same search again (a client paging): its total is known
            client.get(url)
            again.append((time.perf_counter() - started) * 1000)
        times.sort()
        p90 = times[int(len(times) * 0.9) - 1]
        print(
            f"{search:58} {first.json()['total']:>8,} {statistics.median(times):>8.1f} {p90:>8.1f} "
            f"{statistics.median(again):>10.1f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
