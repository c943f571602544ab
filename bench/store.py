"""Benchmark of the FHIR store (issue 16): a 1,000-entry transaction Bundle (500 Patients and 500 Observations that
reference them by urn:uuid) POSTed to a store facade and committed in one database transaction, and reads by id of
the store beside reads by id of a stored facade (json-patient over stored records), interleaved round by round.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/<db> .venv/bin/python bench/store.py --rounds 5

Requests go through Django's test client in this process (the whole view: parsing, validation, writes, the answer;
no HTTP server or network), so store and facade reads pay the same overhead. Target: the transaction in ≤ 1 s on
PostgreSQL (Medplum 5.0.10 built here took 4.46 s for the same Bundle over HTTP); store reads as fast as the
facade's. `--profile` prints where one transaction's time goes (cProfile, top 25 by cumulative time)."""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import os
import pstats
import statistics
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fhirstudio.settings")

import django  # noqa: E402

django.setup()

from django.contrib.auth.models import User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402

from mappings import actions, caches  # noqa: E402
from mappings.actions.store_facades import do_create_store_facade  # noqa: E402
from mappings.caches import freeze_long_lived  # noqa: E402
from mappings.models import Facade, FacadeResource, Mapping  # noqa: E402

STORE, FACADE = "bench-store", "bench-stored"
FAMILIES = ["Smith", "Jones", "Garcia", "Nguyen", "Okafor", "Kowalski", "Haddad", "Silva", "Tanaka", "Novak"]


def transaction_bundle(patients: int) -> dict:
    entries = []
    for number in range(patients):
        full_url = f"urn:uuid:{uuid.uuid4()}"
        patient = {
            "resourceType": "Patient",
            "identifier": [{"system": "urn:bench:mrn", "value": f"M{number:07d}-{uuid.uuid4().hex[:6]}"}],
            "name": [{"family": FAMILIES[number % 10], "given": [f"Given{number}"]}],
            "gender": "male" if number % 2 else "female",
            "birthDate": f"{1930 + number % 90}-{1 + number % 12:02d}-{1 + number % 28:02d}",
        }
        observation = {
            "resourceType": "Observation",
            "status": "final",
            "category": [
                {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                            "code": "vital-signs",
                        }
                    ]
                }
            ],
            "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"}]},
            "subject": {"reference": full_url},
            "effectiveDateTime": "2024-05-01T10:00:00Z",
            "valueQuantity": {"value": 60 + number % 40, "unit": "/min", "system": "http://unitsofmeasure.org"},
        }
        entries.append({"fullUrl": full_url, "resource": patient, "request": {"method": "POST", "url": "Patient"}})
        entries.append({"resource": observation, "request": {"method": "POST", "url": "Observation"}})
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def build(records: int) -> tuple[list[str], list[str]]:
    """The store facade and a stored facade of `records` Patients; the Patient ids each serves."""
    admin = User.objects.filter(username="bench").first() or User.objects.create_superuser("bench", password="bench")
    if not Facade.objects.filter(slug=STORE).exists():
        do_create_store_facade(
            acting_user=admin, slug=STORE, title="Store bench", store=STORE, resource_types=["Patient", "Observation"]
        )
    if not Facade.objects.filter(slug=FACADE).exists():
        from mappings.demo import load_demo
        from mappings.jobs.indexing import index_deployment_direct

        if not Mapping.objects.filter(slug="json-patient").exists():
            load_demo(admin)
        mapping = Mapping.objects.select_related("latest_version").get(slug="json-patient")
        source = actions.do_create_data_source(acting_user=admin, name=FACADE, source_format="json")
        rows = [
            (
                f"r{number}",
                json.dumps(
                    {
                        "PatientId": number,
                        "MRN": f"M{number:07d}",
                        "FirstName": f"Given{number}",
                        "LastName": FAMILIES[number % 10],
                        "Gender": "MF"[number % 2],
                        "DOB": f"{1930 + number % 90}{1 + number % 12:02d}{1 + number % 28:02d}",
                    }
                ),
            )
            for number in range(records)
        ]
        actions.do_upload_records(source, acting_user=admin, records=rows)
        facade = actions.do_create_facade(acting_user=admin, slug=FACADE, title="Stored bench")
        binding = actions.do_bind_resource(
            facade, acting_user=admin, resource_type="Patient", mapping=mapping, source=source
        )
        deployment = actions.do_deploy(binding, acting_user=admin, version=mapping.latest_version)
        if not deployment.ready:
            index_deployment_direct(deployment.pk)

    def ids(slug: str) -> list[str]:
        served = FacadeResource.objects.filter(
            deployment__binding__facade__slug=slug, deployment__ready=True, resource_type="Patient"
        )
        return list(served.order_by("id").values_list("resource_id", flat=True)[:records])

    return ids(STORE), ids(FACADE)


def post_transaction(client: Client, patients: int) -> tuple[float, int]:
    body = json.dumps(transaction_bundle(patients))
    started = time.perf_counter()
    response = client.post(f"/fhir/{STORE}/", body, content_type="application/fhir+json")
    elapsed = time.perf_counter() - started
    if response.status_code != 200:
        raise SystemExit(f"transaction failed: {response.status_code} {response.content[:500]!r}")
    return elapsed, len(response.json()["entry"])


def reads(client: Client, slug: str, ids: list[str], count: int) -> list[float]:
    timings = []
    for number in range(count):
        url = f"/fhir/{slug}/Patient/{ids[number % len(ids)]}"
        started = time.perf_counter()
        response = client.get(url)
        timings.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            raise SystemExit(f"read {url}: {response.status_code}")
    return timings


def summary(timings: list[float]) -> str:
    ordered = sorted(timings)
    p95 = ordered[int(len(ordered) * 0.95) - 1]
    return f"p50 {statistics.median(ordered):.3f} ms, p95 {p95:.3f} ms, mean {statistics.fmean(ordered):.3f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--patients", type=int, default=500, help="Patients per Bundle (each with an Observation)")
    parser.add_argument("--reads", type=int, default=2000, help="reads by id per round and facade")
    parser.add_argument("--records", type=int, default=1000, help="Patients of the stored facade")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--sort", default="cumulative", help="the profile's order: cumulative or tottime")
    options = parser.parse_args()
    call_command("migrate", verbosity=0)
    print(f"database: {connection.vendor} {connection.settings_dict['NAME']}")
    caches.clear()
    store_ids, facade_ids = build(options.records)
    client = Client(SERVER_NAME="localhost")  # a host the studio serves (ALLOWED_HOSTS)
    # As a web worker runs (fhirstudio/wsgi.py): the definitions loaded and frozen out of the collector's scans, young
    # collections every 10,000 allocations. Without it a collection walking the ~1 M definition objects landed in a
    # transaction at random (one of 7 rounds took 1.1 s, 0.5 s of it in the collector).
    freeze_long_lived()
    gc.set_threshold(10_000, 10, 10)
    post_transaction(client, options.patients)  # warm: the definitions load, caches fill
    if options.profile:
        profile = cProfile.Profile()
        profile.enable()
        post_transaction(client, options.patients)
        profile.disable()
        pstats.Stats(profile).sort_stats(options.sort).print_stats(30)
        return
    store_ids = build(options.records)[0]
    with connection.cursor() as cursor:
        # Fresh statistics, as autovacuum would gather: with none the planner reads a resource by id through the
        # (deployment, type) index, filtering every row of the type (the deploy-time indexer analyzes when done).
        cursor.execute("ANALYZE mappings_facaderesource, mappings_searchvalue, mappings_storeversion")
    reads(client, STORE, store_ids, 200)
    reads(client, FACADE, facade_ids, 200)
    transactions, store_reads, facade_reads = [], [], []
    for round_number in range(options.rounds):
        elapsed, entries = post_transaction(client, options.patients)
        transactions.append(elapsed)
        # Interleaved, alternating which goes first, so drift in the machine's load falls on both.
        pair = [(STORE, store_ids, store_reads), (FACADE, facade_ids, facade_reads)]
        for slug, ids, into in pair if round_number % 2 == 0 else reversed(pair):
            into.extend(reads(client, slug, ids, options.reads))
        print(
            f"round {round_number + 1}: transaction of {entries} entries {elapsed * 1000:.0f} ms; "
            f"store read p50 {statistics.median(store_reads[-options.reads :]):.3f} ms, "
            f"facade read p50 {statistics.median(facade_reads[-options.reads :]):.3f} ms"
        )
    print(
        f"transaction ({options.patients * 2} entries): best {min(transactions) * 1000:.0f} ms, "
        f"median {statistics.median(transactions) * 1000:.0f} ms, worst {max(transactions) * 1000:.0f} ms "
        f"(target ≤ 1000 ms)"
    )
    print(f"store reads:  {summary(store_reads)}")
    print(f"facade reads: {summary(facade_reads)}")
    print(f"load average: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
