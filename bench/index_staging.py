"""Benchmark of the database's cost per indexed record (issue 12): what staging a chunk's resources costs PostgreSQL,
measured as CPU time, so that a shared, loaded machine still gives comparable figures.

The demo mapping hl7v2-adt-a01 runs once over N ADT^A01 records (bench/index.py's messages, stored as the source
`bench-staging-<N>`), giving N Patients. Each round then stages them as a deployment's first index, exactly as an
index chunk's staging thread does (mappings/jobs/index_staging.stage, in pieces of 250 records, in one transaction
that commits), and reads:

- the backend's CPU time (utime + stime of the connection's server process, /proc/<pg_backend_pid()>/stat, 10 ms
  ticks) from the first piece to the commit: PostgreSQL's share (jsonb, TOAST, the search values' COPY and the
  indexes of both tables);
- this process's CPU time (time.process_time) over the same span: the staging thread's share (search values, JSON);
- the WAL written (pg_current_wal_lsn before and after), which does not depend on the load at all.

Between rounds the staged rows are deleted and both tables vacuumed, outside the measurement. The median round is
reported, per record. Needs a local PostgreSQL server (the backend's /proc entry is read):

    createdb -h 127.0.0.1 -U postgres fhirstudio_bench   # once
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/fhirstudio_bench .venv/bin/python bench/index_staging.py

Run by hand, never in CI."""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fhirstudio.settings")

import django  # noqa: E402

django.setup()

from django.db import connection, transaction  # noqa: E402

from bench.index import admin, adt_version, messages  # noqa: E402
from mappings.actions.index_rows import Staging, drop_staged  # noqa: E402
from mappings.facade.deployed import run_deployed  # noqa: E402
from mappings.jobs.index_staging import PIECE, Found, stage  # noqa: E402
from mappings.models import (  # noqa: E402
    DataSource,
    Deployment,
    Facade,
    FacadeResource,
    ResourceBinding,
    SearchValue,
    SourceRecord,
)
from mappings.profiles import studio_registry  # noqa: E402

SLUG = "bench-staging"


def binding_over(count: int) -> ResourceBinding:
    """The facade `bench-staging`'s Patient binding over the source `bench-staging-<count>` (stored once)."""
    version = adt_version()
    source, _ = DataSource.objects.get_or_create(name=f"bench-staging-{count}", defaults={"source_format": "hl7v2"})
    if SourceRecord.objects.filter(source=source).count() != count:
        SourceRecord.objects.filter(source=source).delete()
        SourceRecord.objects.bulk_create(
            (SourceRecord(source=source, key=key, payload=payload) for key, payload in messages(count)),
            batch_size=2_000,
        )
    facade, _ = Facade.objects.get_or_create(slug=SLUG, defaults={"title": "staging benchmark"})
    binding, _ = ResourceBinding.objects.update_or_create(
        facade=facade, resource_type="Patient", defaults={"mapping": version.mapping, "source": source}
    )
    return binding


def made_resources(binding: ResourceBinding, version) -> list[Found]:
    """The Patients the mapping makes of the source's records, in pieces as an index chunk hands them over."""
    deployment = Deployment(binding=binding, version=version)
    registry = studio_registry()
    pieces: list[Found] = [{}]
    rows = SourceRecord.objects.filter(source=binding.source).order_by("id").values_list("id", "payload")
    for number, (record_id, payload) in enumerate(rows, 1):
        resources, _ = run_deployed(deployment, payload, registry=registry)
        for resource in resources:
            pieces[-1][resource["id"]] = (resource, record_id)
        if number % PIECE == 0:
            pieces.append({})
    return [piece for piece in pieces if piece]


def backend_cpu(pid: int) -> float:
    stat = Path(f"/proc/{pid}/stat").read_text()
    utime, stime = stat[stat.rindex(")") + 2 :].split()[11:13]
    return (int(utime) + int(stime)) / os.sysconf("SC_CLK_TCK")


def wal_position() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn")
        return int(cursor.fetchone()[0])


def one_round(binding: ResourceBinding, version, pieces: list[Found], pid: int) -> tuple[float, float, int]:
    """(backend CPU s, this process's CPU s, WAL bytes) of staging every piece as a new deployment's first index."""
    deployment = Deployment.objects.create(binding=binding, version=version, deployed_by=admin())
    staging = Staging(deployment.pk, serving_as=deployment.pk)
    wal, backend, own = wal_position(), backend_cpu(pid), time.process_time()
    with transaction.atomic():
        for piece in pieces:
            stage(staging, "Patient", piece)
    figures = backend_cpu(pid) - backend, time.process_time() - own, wal_position() - wal
    drop_staged(staging)
    deployment.delete()
    with connection.cursor() as cursor:
        cursor.execute(f"VACUUM {SearchValue._meta.db_table}")
        cursor.execute(f"VACUUM {FacadeResource._meta.db_table}")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=2_000)
    parser.add_argument("--rounds", type=int, default=7)
    arguments = parser.parse_args()
    if connection.vendor != "postgresql":
        sys.exit("bench/index_staging.py measures PostgreSQL: set DATABASE_URL")
    binding = binding_over(arguments.records)
    version = adt_version()
    pieces = made_resources(binding, version)
    resources = sum(len(piece) for piece in pieces)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    one_round(binding, version, pieces, pid)  # warm up: caches, the tables' free space
    rounds = [one_round(binding, version, pieces, pid) for _ in range(arguments.rounds)]
    backend, own, wal = (statistics.median(column) for column in zip(*rounds, strict=True))
    load = ", ".join(f"{figure:.1f}" for figure in os.getloadavg())
    print(f"{resources:,} Patients from {arguments.records:,} records, {arguments.rounds} rounds, load {load}")
    per_round = ", ".join(f"{row[0]:.2f}" for row in rounds)
    print(f"  PostgreSQL backend CPU   {backend / resources * 1000:.3f} ms per record (rounds: {per_round} s)")
    print(f"  staging process CPU      {own / resources * 1000:.3f} ms per record")
    print(f"  WAL                      {wal / resources / 1024:.2f} KB per record")


if __name__ == "__main__":
    main()
