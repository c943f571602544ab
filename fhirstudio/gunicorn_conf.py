"""gunicorn settings of the run command (scripts/run passes `-c fhirstudio/gunicorn_conf.py`; its other flags come from
the environment there).

Requests gunicorn refuses before Django sees them answer in the studio's shapes (mappings.guard.shaped_error: an
OperationOutcome under /fhir/, the API's {code, message, details} under /api/, the error page elsewhere), not as
gunicorn's HTML: a request line past 8,190 bytes is a 414, a header past limit_request_field_size (or more than
limit_request_fields headers) a 431, any other unreadable request a 400. Request lines up to gunicorn's maximum reach
the studio, so a URL longer than MAX_URL_BYTES (8,000 by default) gets the guard's own 414.

Concurrency: the run command's gthread workers (--workers, --threads) each keep up to `worker_connections` open
connections (idle keep-alive ones wait in the worker's poller, not in a thread), and the listen `backlog` holds
connections not yet accepted: 1,000 clients at once (bench/load.py) are queued and served, not refused."""

from __future__ import annotations

from http import HTTPStatus
from urllib.parse import urlsplit

from gunicorn.http import parser
from gunicorn.http.errors import LimitRequestHeaders, LimitRequestLine, ParseException
from gunicorn.http.message import Request
from gunicorn.workers.gthread import ThreadWorker

limit_request_line = 8190  # gunicorn's maximum: 0 would mean unlimited, so unbounded memory per request line
limit_request_field_size = 8190  # gunicorn's default, said here: one header line, name and value
limit_request_fields = 100
backlog = 2048  # connections the kernel queues before accept (capped by net.core.somaxconn, 4096 here)
worker_connections = 1000  # per gthread worker: open connections it keeps, busy or idle (keep-alive)

SET_HERE = ("connection", "content-length")
REFUSED_STATUS = {LimitRequestLine: 414, LimitRequestHeaders: 431}
REFUSED_MESSAGE = {
    414: "The request line is longer than {limit} bytes.",
    431: "A request header is too large, or there are too many of them.",
}


def _target_path(head: bytes) -> str:
    """The path of a request line (or its start): b"GET /fhir/x?y HTTP/1.1" → "/fhir/x"; "" if there is none."""
    parts = head.split(b" ", 2)
    if len(parts) < 2:
        return ""
    target = parts[1][:1000].decode("latin-1")
    return urlsplit(target).path if "://" in target else target.split("?", 1)[0]


class StudioRequest(Request):
    """gunicorn's request parser, noting on a refusal the path it was for (so the answer can take its shape)."""

    def read_line(self, unreader, buf, limit=0):
        try:
            return super().read_line(unreader, buf, limit)
        except LimitRequestLine as error:
            error.studio_path = _target_path(buf.getvalue()[:2000])
            raise

    def parse(self, unreader):
        try:
            return super().parse(unreader)
        except ParseException as error:
            if not hasattr(error, "studio_path"):
                error.studio_path = self.path or ""  # known once the request line was read
                error.studio_method = self.method or "GET"
            raise


class StudioWorker(ThreadWorker):
    """The gthread worker (as `--threads` chooses), answering the requests gunicorn refuses in the studio's shapes."""

    def init_process(self) -> None:
        parser.RequestParser.mesg_class = StudioRequest  # this worker process's parser notes refused paths
        super().init_process()

    def handle_error(self, req, client, addr, exc) -> None:
        if not isinstance(exc, ParseException):
            super().handle_error(req, client, addr, exc)  # a fault of the app: gunicorn's 500 (logged)
            return
        status = next((code for kind, code in REFUSED_STATUS.items() if isinstance(exc, kind)), 400)
        message = REFUSED_MESSAGE.get(status, "The request cannot be read: {error}").format(
            limit=self.cfg.limit_request_line, error=str(exc)[:200]
        )
        self.log.warning("Refused request from ip=%s: %s", (addr or ("",))[0], str(exc)[:200])
        try:
            client.sendall(
                _shaped(getattr(exc, "studio_path", ""), getattr(exc, "studio_method", "GET"), status, message)
            )
        except OSError:
            self.log.debug("Failed to send the refusal.")


def _shaped(path: str, method: str, status: int, message: str) -> bytes:
    """The raw HTTP answer the guard would give (its body, type and headers), closing the connection."""
    # Imported here: gunicorn's master reads this file before Django is set up; workers have loaded the app by now
    from mappings.guard import shaped_error, with_policy

    response = with_policy(shaped_error(path, method, status, message))
    headers = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}", "Connection: close"]
    headers += [f"{name}: {value}" for name, value in response.items() if name.lower() not in SET_HERE]
    headers.append(f"Content-Length: {len(response.content)}")
    return ("\r\n".join(headers) + "\r\n\r\n").encode("latin-1") + response.content


worker_class = StudioWorker
