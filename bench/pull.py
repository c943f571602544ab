"""Benchmark of a pull facade (issue 16): reads by id of a facade whose Patient source is another FHIR server (data
source kind `fhir-server`), here the studio's own store served over HTTP on 127.0.0.1 by gunicorn (a subprocess, as
scripts/run serves it), with a client built for every read (as before) beside one client kept per connection
(mappings.connection_clients.shared_client), interleaved round by round. Two connections: one without auth to an
open store, one with SMART Backend Services (ES384) to a protected store, where a fresh client also asks the store's
token endpoint for a token on every read.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/<db> .venv/bin/python bench/pull.py --rounds 5 --reads 200

The facade's requests go through Django's test client (no HTTP on the facade's side); the pull itself is real HTTP to
the upstream store. Figures: p50 and p99 per mode and auth, and the ratio of the medians taken in the same run."""

from __future__ import annotations

import argparse
import atexit
import cProfile
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fhirstudio.settings")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.contrib.auth.models import User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402

from mappings import actions, caches  # noqa: E402
from mappings.actions.connections import do_create_connection  # noqa: E402
from mappings.actions.store import Change, do_store_changes, store_target  # noqa: E402
from mappings.actions.store_facades import do_create_store_facade  # noqa: E402
from mappings.caches import freeze_long_lived  # noqa: E402
from mappings.connection_clients import client_for, forget_shared_clients, shared_client  # noqa: E402
from mappings.facade import live  # noqa: E402
from mappings.models import Connection, Facade  # noqa: E402
from mappings.security.clients import create_smart_client  # noqa: E402

PORT = int(os.environ.get("BENCH_PULL_PORT", "18200"))
UPSTREAM = f"http://127.0.0.1:{PORT}/fhir"
PATIENTS = 50
TEMPLATE = """{"resourceType": "Patient", "id": {{ msg.id | tojson }},
 "name": [{"family": {{ (msg.name[0].family | upper) | tojson }}}], "gender": {{ msg.gender | tojson }}}"""
SCOPE = "system/*.rs"


def serve() -> subprocess.Popen:
    """The studio itself on 127.0.0.1:PORT as scripts/run serves it (gunicorn, one gthread worker of 4 threads): the
    upstream server. Not Django's runserver: its answers wait ~40 ms on delayed ACKs (scripts/run says why)."""
    # No token rate limit: a client built per read asks for a token per read, and the default limit (20 a minute per
    # client) would answer it 429 after 20 reads; the bench measures the cost, not the throttle.
    env = {**os.environ, "FHIR_STUDIO_TOKEN_REQUESTS_PER_MINUTE": "0"}
    command = [str(Path(sys.executable).parent / "gunicorn"), "fhirstudio.wsgi", "--bind", f"127.0.0.1:{PORT}"]
    command += ["--workers", "1", "--threads", "4", "-c", "fhirstudio/gunicorn_conf.py", "--log-level", "warning"]
    server = subprocess.Popen(command, cwd=ROOT, env=env)
    atexit.register(server.terminate)
    for _ in range(300):
        try:
            if requests.get(f"{UPSTREAM}/bench-upstream/metadata", timeout=30).status_code == 200:
                return server
        except (requests.ConnectionError, requests.Timeout):  # not listening yet, or still loading
            pass
        time.sleep(0.1)
    raise SystemExit(f"the upstream server did not start on port {PORT}")


def build() -> None:
    """Two upstream stores (open, SMART) holding PATIENTS Patients, and a pull facade over each."""
    admin = User.objects.filter(username="bench").first() or User.objects.create_superuser("bench", password="bench")
    settings.FHIR_STUDIO = {**settings.FHIR_STUDIO, "CONNECTION_ALLOWED_HOSTS": [f"127.0.0.1:{PORT}"]}
    for suffix, auth_mode in (("", "open"), ("-smart", "smart-backend")):
        store_slug, pull_slug, name = f"bench-upstream{suffix}", f"bench-pull{suffix}", f"bench-upstream{suffix}"
        if Facade.objects.filter(slug=pull_slug).exists():
            continue
        store = do_create_store_facade(
            acting_user=admin,
            slug=store_slug,
            title=store_slug,
            store=store_slug,
            auth_mode=auth_mode,
            resource_types=["Patient"],
        )
        live_store = store.bindings.get(resource_type="Patient").deployments.latest("pk")
        target = store_target(live_store.pk, "Patient")
        patients = [
            {"resourceType": "Patient", "id": f"p{n}", "name": [{"family": f"Family{n}"}], "gender": "female"}
            for n in range(PATIENTS)
        ]
        do_store_changes({"Patient": target}, [Change("PUT", "Patient", p["id"], p) for p in patients])
        options: dict = {}
        if auth_mode != "open":
            keys = create_smart_client(store, scopes=[SCOPE], out_dir=Path(tempfile.mkdtemp(prefix="bench-pull-")))
            options = {
                "auth_mode": "smart-backend",
                "auth": {"client_id": keys.client.client_id, "algorithm": "ES384", "scope": SCOPE},
                "secrets": {"private_key": keys.private_key.read_text()},
            }
        do_create_connection(acting_user=None, name=name, base_url=f"{UPSTREAM}/{store_slug}", **options)
        mapping = actions.do_create_mapping(
            acting_user=admin, slug=f"{pull_slug}-map", title="Pulled", source_format="fhir", template=TEMPLATE
        )
        version = actions.do_publish_version(mapping, acting_user=admin, message="v1")
        source = actions.do_create_data_source(
            acting_user=admin, name=pull_slug, source_format="fhir", kind="fhir-server", config={"connection": name}
        )
        facade = actions.do_create_facade(acting_user=admin, slug=pull_slug, title=pull_slug)
        binding = actions.do_bind_resource(
            facade, acting_user=admin, resource_type="Patient", mapping=mapping, source=source
        )
        actions.do_deploy(binding, acting_user=admin, version=version)


def per_read_client(config: dict):
    """What the facade did before: a client built for each read (mappings/facade/live.py's server_client)."""
    return client_for(Connection.objects.get(name=config["connection"]))


def kept_client(config: dict):
    return shared_client(Connection.objects.get(name=config["connection"]))


MODES = {"per-read": per_read_client, "shared": kept_client}


def reads(client: Client, slug: str, count: int, cpu: list[float] | None = None) -> list[float]:
    """Wall milliseconds of each read; the reading thread's CPU milliseconds appended to `cpu`. CPU time leaves out
    the waits on the upstream and the database, so it shows what building a client costs the facade's worker even
    on a loaded machine."""
    timings = []
    for number in range(count):
        url = f"/fhir/{slug}/Patient/p{number % PATIENTS}"
        started, started_cpu = time.perf_counter(), time.thread_time()
        response = client.get(url)
        timings.append((time.perf_counter() - started) * 1000)
        if cpu is not None:
            cpu.append((time.thread_time() - started_cpu) * 1000)
        if response.status_code != 200:
            raise SystemExit(f"read {url}: {response.status_code} {response.content[:300]!r}")
    return timings


def percentile(timings: list[float], fraction: float) -> float:
    ordered = sorted(timings)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--reads", type=int, default=200, help="reads per round, mode and auth")
    parser.add_argument("--profile", choices=["none", "smart"], help="profile 200 shared reads of one auth instead")
    options = parser.parse_args()
    call_command("migrate", verbosity=0)
    print(f"database: {connection.vendor} {connection.settings_dict['NAME']}; upstream {UPSTREAM}")
    caches.clear()
    build()
    serve()
    freeze_long_lived()
    client = Client(SERVER_NAME="localhost")
    timings: dict[tuple[str, str], list[float]] = {}
    cpu: dict[tuple[str, str], list[float]] = {}
    slugs = {"none": "bench-pull", "smart": "bench-pull-smart"}
    for fetch in MODES.values():  # warm: compiled mappings, the definitions, connections to the upstream
        live.server_client = fetch
        for slug in slugs.values():
            reads(client, slug, 20)
    if options.profile:
        live.server_client = kept_client
        profile = cProfile.Profile()
        profile.enable()
        reads(client, slugs[options.profile], 200)
        profile.disable()
        pstats.Stats(profile).sort_stats("cumulative").print_stats(40)
        return
    for round_number in range(options.rounds):
        # Interleaved, alternating which goes first, so drift in the machine's load falls on both modes.
        order = list(MODES) if round_number % 2 == 0 else list(reversed(MODES))
        for mode in order:
            live.server_client = MODES[mode]
            for auth, slug in slugs.items():
                into = cpu.setdefault((auth, mode), [])
                timings.setdefault((auth, mode), []).extend(reads(client, slug, options.reads, into))
        forget_shared_clients()  # each round's shared mode starts cold too: its first read builds the client
        print(f"round {round_number + 1} done")
    for auth in slugs:
        per_read, shared = timings[(auth, "per-read")], timings[(auth, "shared")]
        for mode, found in (("per-read", per_read), ("shared", shared)):
            print(
                f"auth {auth:5} {mode:8}: p50 {statistics.median(found):6.2f} ms, "
                f"p99 {percentile(found, 0.99):6.2f} ms, CPU mean {statistics.fmean(cpu[(auth, mode)]):5.2f} ms "
                f"({len(found)} reads)"
            )
        ratio = statistics.median(per_read) / statistics.median(shared)
        cpu_ratio = statistics.fmean(cpu[(auth, "per-read")]) / statistics.fmean(cpu[(auth, "shared")])
        print(f"auth {auth:5} per-read/shared: p50 {ratio:.2f}x, CPU {cpu_ratio:.2f}x")
    print(f"load average: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
