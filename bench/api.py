"""The render endpoint's overhead over the bare engine: `POST /api/mappings/{slug}/render` against `run_mapping` with
the same compiled mapping, for the ADT^A01 demo (ADT-A01-01.hl7, 8.5 KB), validation on and off.

    .venv/bin/python bench/api.py                    # in-process (Django test client) and over HTTP (gunicorn)
    .venv/bin/python bench/api.py --no-http --runs 7 --seconds 2

It builds a throw-away studio first: settings point FHIR_STUDIO_VAR_DIR at a temporary folder before Django starts,
so the SQLite database is a new file there (with DATABASE_URL set, Django's test-database machinery creates and
drops a `test_…` database beside it instead); then migrate, load the demo content (mappings/demo.py) and make a
token for an author (a user in the `author` group, as editors are). DEBUG is off, as in production.

Rows: the engine alone; the endpoint in-process through Django's test client (the whole Django and DRF stack:
middleware, token authentication, the access checks, request validation, the compiled-mapping cache, JSON rendering —
but no socket; after the start-up freeze a web worker does, fhirstudio/wsgi.py), rendering version 1 and the draft;
and optionally the same over HTTP to a gunicorn worker on 127.0.0.1 (one sync worker on its own core, keep-alive off
as gunicorn's sync workers do, a bounded number of requests). Each figure is the median of --runs runs; a run lasts
about --seconds (HTTP: --http-requests requests). In-process rows count this process's CPU time; HTTP rows count wall
time (the work is in the server's process).
Run by hand (never in CI) and copy the table into bench/README.md with the machine it ran on.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SLUG = "hl7v2-adt-a01"
SAMPLE = "fhir-converter/hl7v2/ADT-A01-01.hl7"
CORPUS = Path(os.environ.get("FHIR_STUDIO_CORPUS_DIR", ROOT.parent / "shared" / "corpus"))


@dataclass
class Variant:
    validate: bool | None  # None: a component row, not a whole request
    label: str
    work: Callable[[], object]
    calls: int = 0  # per run; 0: sized from the warm-up to last about --seconds
    queries: int | None = None
    clock: Callable[[], float] = time.process_time  # CPU time of this process; HTTP rows: wall time (perf_counter)
    times: list[float] = field(default_factory=list)

    @property
    def ms(self) -> float:
        return statistics.median(self.times)


def time_interleaved(variants: list[Variant], seconds: float, runs: int) -> None:
    """Median over `runs` of the mean time per call. Runs are interleaved (run 1 of every variant, then run 2, …) so
    a slow patch of the machine — other processes share it — hits all variants alike instead of one. In-process rows
    count this process's CPU time, so time the scheduler gives other processes is not counted."""
    for variant in variants:
        started, calls = time.perf_counter(), 0
        while time.perf_counter() - started < 0.3 or calls < 3:  # warm-up (caches, connections), and sizing
            variant.work()
            calls += 1
        variant.calls = variant.calls or max(3, int(calls * seconds / (time.perf_counter() - started)))
    for _ in range(runs):
        for variant in variants:
            started = variant.clock()
            for _ in range(variant.calls):
                variant.work()
            variant.times.append((variant.clock() - started) * 1000 / variant.calls)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_django(var_dir: Path) -> str | None:
    """Django on a new, empty database; returns the DATABASE_URL a server subprocess must use (None: SQLite in
    var_dir, which the subprocess finds through FHIR_STUDIO_VAR_DIR)."""
    os.environ["FHIR_STUDIO_VAR_DIR"] = str(var_dir)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fhirstudio.settings")
    os.environ["DEBUG"] = "false"
    os.environ.setdefault("SECRET_KEY", "bench-only-not-a-secret")
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    if "DATABASE_URL" not in os.environ:
        call_command("migrate", verbosity=0)
        return None
    connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    parts = urlsplit(os.environ["DATABASE_URL"])
    return urlunsplit(parts._replace(path="/" + connection.settings_dict["NAME"]))


def stop_django() -> None:
    from django.db import connection

    if "DATABASE_URL" in os.environ:
        connection.creation.destroy_test_db(connection.settings_dict["NAME"], verbosity=0)


def load_studio() -> str:
    """The demo content, loaded by an admin, and a token for an author who renders with it: an editor's role is a
    group, which the access checks read (a superuser's is not)."""
    from django.contrib.auth.models import Group, User
    from rest_framework.authtoken.models import Token

    from mappings.demo import load_demo

    admin = User.objects.create_superuser("bench", "bench@example.org", "bench-only")
    summary = load_demo(admin)
    if summary.warnings:
        raise SystemExit("demo content did not load cleanly: " + "; ".join(summary.warnings))
    author = User.objects.create_user("bench-author", "author@example.org", "bench-only")
    author.groups.add(Group.objects.get_or_create(name="author")[0])
    return Token.objects.create(user=author).key


class HttpServer:
    """gunicorn serving the studio on 127.0.0.1, one sync worker, pinned to the last core."""

    def __init__(self, var_dir: Path, database_url: str | None) -> None:
        self.port = free_port()
        env = {**os.environ, "FHIR_STUDIO_VAR_DIR": str(var_dir)}
        if database_url:
            env["DATABASE_URL"] = database_url
        cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
        pin = (lambda: os.sched_setaffinity(0, {cores[-1]})) if len(cores) > 1 else None
        self.log = (var_dir / "gunicorn.log").open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "fhirstudio.wsgi", "--workers", "1", "--bind", f"127.0.0.1:{self.port}"],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            preexec_fn=pin,  # safe: this process has started no threads
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                if self.process.poll() is not None:
                    break
                time.sleep(0.1)
        self.stop()
        raise SystemExit(f"gunicorn did not start; see {self.log.name}")

    def post(self, path: str, body: bytes, token: str) -> bytes:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            connection.request(
                "POST",
                path,
                body,
                {"Content-Type": "application/json", "Authorization": f"Token {token}"},
            )
            response = connection.getresponse()
            data = response.read()
            if response.status != 200:
                raise SystemExit(f"HTTP {response.status}: {data[:500]!r}")
            return data
        finally:
            connection.close()

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)
        self.log.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="runs per figure; the median is reported (default 5)")
    parser.add_argument("--seconds", type=float, default=1.0, help="length of an in-process run (default 1 s)")
    parser.add_argument("--http-requests", type=int, default=40, help="requests per HTTP run (default 40)")
    parser.add_argument("--no-http", action="store_true", help="skip the gunicorn rows")
    args = parser.parse_args()
    if args.runs < 5:
        parser.error("--runs: at least 5, so the median means something")
    payload = (CORPUS / SAMPLE).read_text()
    with tempfile.TemporaryDirectory(prefix="fhirstudio-bench-") as tmp:
        var_dir = Path(tmp)
        database_url = start_django(var_dir)
        try:
            token = load_studio()
            # What a web worker does once started (fhirstudio/wsgi.py: the start-up freeze and the collector's
            # threshold), so the in-process rows collect garbage as a worker does.
            import fhirstudio.wsgi  # noqa: F401

            rows = measure(args, payload, token, var_dir, database_url)
        finally:
            stop_django()
    report(args, rows)


def count_queries(work: Callable[[], object]) -> int:
    from django.db import connection

    executed = []

    def counting(execute, sql, params, many, context):
        executed.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(counting):
        work()
    return len(executed)


def measure(args: argparse.Namespace, payload: str, token: str, var_dir: Path, database_url: str | None) -> list:
    from django.test import Client
    from rest_framework.authentication import TokenAuthentication

    from mappings import access
    from mappings.api import base as api_base
    from mappings.api.mapping_serializers import RenderRequest
    from mappings.api.renderers import StudioJSONRenderer
    from mappings.compiling import compile_draft, compile_version
    from mappings.conf import engine_limits
    from mappings.engine import run_mapping
    from mappings.models import Mapping
    from mappings.profiles import studio_registry

    server = None if args.no_http else HttpServer(var_dir, database_url)  # on the last core, before we pin ourselves
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    mapping = Mapping.objects.select_related("draft", "latest_version").get(slug=SLUG)
    version = mapping.latest_version
    compiled = compile_version(version)
    limits = engine_limits()
    client = Client()
    path = f"/api/mappings/{SLUG}/render"

    def body(validate: bool, target: str) -> bytes:
        pinned = {"version": version.number} if target == "version 1" else {}
        # locate false: the editor's render on each pause in typing (a second one locates issues, when there are
        # any, by rendering again with line markers: engine work, not the endpoint's, which the engine row omits).
        return json.dumps({"payload": payload, "validate": validate, "locate": False, **pinned}).encode()

    def in_process(data: bytes) -> Callable[[], object]:
        def call() -> object:
            response = client.post(path, data, content_type="application/json", HTTP_AUTHORIZATION=f"Token {token}")
            # Checked without decoding the whole body (orjson writes the view's keys in order), which is the
            # client's cost, not the endpoint's.
            if response.status_code != 200 or not response.content.startswith(b'{"ok":true,'):
                raise SystemExit(f"render failed: {response.status_code} {response.content[:500]!r}")
            return response

        return call

    variants = []
    for validate in (True, False):
        variants.append(
            Variant(
                validate,
                "engine: run_mapping (compiled v1)",
                lambda validate=validate: run_mapping(compiled, payload, limits=limits, validate=validate),
            )
        )
        for target in ("version 1", "draft"):
            call = in_process(body(validate, target))
            variants.append(Variant(validate, f"endpoint in-process, {target}", call, queries=count_queries(call)))
        if server is not None:
            data = body(validate, "version 1")
            variants.append(
                Variant(
                    validate,
                    "endpoint over HTTP (gunicorn), version 1",
                    lambda data=data: server.post(path, data, token),
                    calls=args.http_requests,
                    clock=time.perf_counter,  # the work is in the server process: wall time
                )
            )
    result = run_mapping(compiled, payload, limits=limits)
    request_body = body(True, "version 1")
    response_body = {
        "ok": True,
        "output": result.output,
        "issues": result.issues,
        "errors": [],
        "timings": result.timings,
        "trace": result.trace,
    }

    # The view's token authentication: the studio's own since 2026-12-06, DRF's before.
    token_authentication = getattr(api_base, "StudioTokenAuthentication", TokenAuthentication)

    def authenticate() -> object:  # a new user object each time, as each request gets
        return token_authentication().authenticate_credentials(token)[0]

    # What the view calls to check access (the lean *_to_run functions since 2026-12-06; before, these two).
    version_to_run = getattr(access, "access_version_to_run", access.access_version)
    draft_to_run = getattr(access, "access_draft_to_run", access.access_mapping)

    def access_for_version() -> object:  # the role, the mapping and the version
        return version_to_run(authenticate(), SLUG, version.number)

    def access_for_draft() -> object:  # the role, the mapping and its draft
        return draft_to_run(authenticate(), SLUG)

    def validate_request() -> object:
        form = RenderRequest(data=json.loads(request_body))
        form.is_valid(raise_exception=True)
        return form.validated_data

    def parts(label: str, work: Callable[[], object]) -> Variant:
        return Variant(None, label, work, queries=count_queries(work))

    variants += [
        parts("token authentication", authenticate),
        parts("token authentication + a version render's access checks", access_for_version),
        parts("token authentication + a draft render's access checks", access_for_draft),
        parts("RenderRequest validation (json.loads + serializer)", validate_request),
        parts("compile_version, cache hit", lambda: compile_version(version)),
        parts("compile_draft, cache hit (the library as stored now)", lambda: compile_draft(mapping)),
        parts("studio_registry() (what is uploaded, checked per run)", studio_registry),
        parts("JSON response body: StudioJSONRenderer", lambda: StudioJSONRenderer().render(response_body)),
    ]
    try:
        time_interleaved(variants, args.seconds, args.runs)
    finally:
        if server is not None:
            server.stop()
    return variants


def report(args: argparse.Namespace, variants: list[Variant]) -> None:
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    http_note = "" if args.no_http else f"; HTTP runs of {args.http_requests} requests"
    print(f"# median of {args.runs} interleaved runs of ~{args.seconds:g} s each{http_note}; {SLUG}, {SAMPLE}")
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"# in-process rows: CPU time; HTTP rows: wall time; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(f"# load average at the end: {load}\n")
    print("| validate | path | ms/request | overhead ms | overhead % | SQL queries |")
    print("|---|---|---:|---:|---:|---:|")
    engine_ms = {}
    for variant in variants:
        if variant.validate is None:
            continue
        queries = "—" if variant.queries is None else variant.queries
        if variant.label.startswith("engine"):
            engine_ms[variant.validate] = variant.ms
            extra = percent = "—"
        else:
            overhead = variant.ms - engine_ms[variant.validate]
            extra, percent = f"{overhead:.2f}", f"{overhead / engine_ms[variant.validate] * 100:.0f} %"
        validate = "on" if variant.validate else "off"
        print(f"| {validate} | {variant.label} | {variant.ms:.2f} | {extra} | {percent} | {queries} |")
    print("\n| part of a request (validate on) | ms | SQL queries |")
    print("|---|---:|---:|")
    for variant in variants:
        if variant.validate is None:
            print(f"| {variant.label} | {variant.ms:.3f} | {'—' if variant.queries is None else variant.queries} |")


if __name__ == "__main__":
    main()
