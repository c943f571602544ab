"""A legacy REST API on a loopback port for the HTTP-source tests: handlers answer JSON through `JsonHandler.send_json`,
and `allowed_server` serves one and puts its host on the source allow-list (FHIR_STUDIO_SOURCE_ALLOWED_HOSTS).
`free_port` gives a loopback port for a server a test starts in another process (gunicorn, moto)."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def free_port() -> int:
    """A loopback port nothing listens on now, chosen by the system."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class JsonHandler(BaseHTTPRequestHandler):
    def send_json(self, status: int, body: object) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args) -> None:
        pass


@contextmanager
def allowed_server(handler: type[BaseHTTPRequestHandler], settings) -> Iterator[str]:
    """Serve `handler` on 127.0.0.1 (a free port) with its host allowed for HTTP sources; yields its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    host = f"127.0.0.1:{server.server_address[1]}"
    settings.FHIR_STUDIO = {**settings.FHIR_STUDIO, "SOURCE_ALLOWED_HOSTS": [host]}
    try:
        yield f"http://{host}"
    finally:
        server.shutdown()
