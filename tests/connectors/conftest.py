"""Fixtures of the connector tests: the demo facade on a live server (tests/facade), a worker for bulk exports, and a
small stub FHIR server on 127.0.0.1 (ports 18600-18699) used only for failure modes a real server will not produce
on demand: slow answers, 429 with Retry-After, 5xx, broken JSON, redirects, 401."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest

from mappings.security.clients import NewClient, create_smart_client
from tests.api.conftest import api, json_patient, users  # noqa: F401 — token clients; what the facade builds on
from tests.facade.conftest import demo  # noqa: F401 — the demo facade on a live server
from tests.store.conftest import live_store  # noqa: F401 — a FHIR store facade on a live server

PORTS = range(18600, 18700)
R4_METADATA = {
    "resourceType": "CapabilityStatement",
    "status": "active",
    "kind": "instance",
    "fhirVersion": "4.0.1",
    "format": ["json"],
    "software": {"name": "Stub", "version": "1.0"},
    "rest": [{"mode": "server", "resource": [{"type": "Patient", "interaction": [{"code": "read"}]}]}],
}


@dataclass
class Answer:
    status: int = 200
    body: object = None  # dict/list → JSON; str/bytes → as they are
    headers: dict = field(default_factory=dict)
    delay_seconds: float = 0.0
    body_delay_seconds: float = 0.0  # after the headers: a body that stops coming
    cut_short: bool = False  # only half the body declared in Content-Length, then the connection closes


@dataclass
class Seen:
    method: str
    path: str
    headers: dict
    at: float


class Stub:
    """Scripted answers per path: each request takes the next answer; the last one repeats."""

    def __init__(self) -> None:
        self.routes: dict[str, list[Answer]] = {}
        self.seen: list[Seen] = []
        self.base = ""
        self.host = ""

    def on(self, path: str, *answers: Answer) -> None:
        self.routes[path] = list(answers)

    def next_answer(self, path: str) -> Answer:
        answers = self.routes.get(path.split("?")[0])
        if not answers:
            return Answer(404, {"resourceType": "OperationOutcome", "issue": [{"diagnostics": f"no {path}"}]})
        return answers.pop(0) if len(answers) > 1 else answers[0]

    def requests_to(self, path: str) -> list[Seen]:
        return [seen for seen in self.seen if seen.path.split("?")[0] == path]


def _handler(stub: Stub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            stub.seen.append(Seen(self.command, self.path, dict(self.headers), time.monotonic()))
            answer = stub.next_answer(self.path)
            if answer.delay_seconds:
                time.sleep(answer.delay_seconds)
            body = answer.body
            payload = body if isinstance(body, bytes) else (body.encode() if isinstance(body, str) else b"")
            if isinstance(body, dict | list):
                payload = json.dumps(body).encode()
            try:
                self.send_response(answer.status)
                self.send_header("Content-Type", "application/fhir+json")
                for name, value in answer.headers.items():
                    self.send_header(name, value.replace("{base}", stub.base))
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.flush()
                time.sleep(answer.body_delay_seconds)
                self.wfile.write(payload[: len(payload) // 2] if answer.cut_short else payload)
                self.close_connection = answer.cut_short
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (a timeout test)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _answer  # noqa: N815 - http.server's names

        def log_message(self, *args) -> None:
            pass

    return Handler


def bound_server(handler: type[BaseHTTPRequestHandler]) -> ThreadingHTTPServer:
    for port in PORTS:
        try:
            return ThreadingHTTPServer(("127.0.0.1", port), handler)
        except OSError:
            continue
    raise RuntimeError("No free port in 18600-18699 for the stub FHIR server.")


@pytest.fixture
def stub() -> Iterator[Stub]:
    found = Stub()
    server = bound_server(_handler(found))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    found.host = f"127.0.0.1:{server.server_address[1]}"
    found.base = f"http://{found.host}/fhir"
    found.on("/fhir/metadata", Answer(body=R4_METADATA))
    try:
        yield found
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def free_port() -> int:
    """A port in our range that nothing listens on (a refused connection)."""
    server = bound_server(BaseHTTPRequestHandler)
    port = server.server_address[1]
    server.server_close()
    return port


SMART_SCOPE = "system/*.cruds"


def connect_with_smart(admin, facade, base: str, settings, out_dir) -> tuple[NewClient, dict]:
    """What an admin does to reach a protected store facade: register a SMART client app of `facade` (its keys
    written to `out_dir`), allow `base`'s host, add the connection `ehr` with SMART Backend Services (ES384) through
    the API and test it. Returns the client's keys and the test's diagnosis."""
    settings.FHIR_STUDIO = {**settings.FHIR_STUDIO, "CONNECTION_ALLOWED_HOSTS": [urlsplit(base).netloc]}
    keys = create_smart_client(facade, scopes=[SMART_SCOPE], out_dir=out_dir)
    connection = {
        "name": "ehr",
        "base_url": base,
        "auth_mode": "smart-backend",
        "auth": {"client_id": keys.client.client_id, "algorithm": "ES384", "scope": SMART_SCOPE},
        "secrets": {"private_key": keys.private_key.read_text()},
    }
    assert admin.post("/api/connections/", connection, format="json").status_code == 201
    return keys, admin.post("/api/connections/ehr/test").json()
