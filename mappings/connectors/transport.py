"""HTTP for the FHIR client, on requests: every URL (redirects and paging links included) checked against the
caller's host allow-list with mappings/outbound.py (listed host, public addresses only unless listed, connection
pinned to the checked address), timeouts, and retries with exponential backoff and jitter on 429, 5xx and connection
failures, honouring Retry-After within a bound. Logs carry method, host, status and attempt, never URLs' queries,
headers or bodies (search parameters and resources are PHI; headers hold credentials)."""

from __future__ import annotations

import email.utils
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

import requests
from requests.exceptions import ConnectionError as RequestsConnectionError
from requests.exceptions import ConnectTimeout, ReadTimeout, RequestException, SSLError

from mappings.connectors.errors import FhirError
from mappings.outbound import OutboundRefusedError, check_outbound_url, pinned_session

logger = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
MAX_REDIRECTS = 5


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 3
    backoff_seconds: float = 0.5  # the first wait; doubled each attempt, then jittered
    max_wait_seconds: float = 30.0  # no Retry-After or backoff makes the client wait longer than this at once


@dataclass
class Transport:
    timeout_seconds: float = 30.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    # None: any host, resolved as usual (a script's own choice). A list (the studio's): mappings/outbound.py's rules.
    allowed_hosts: tuple[str, ...] | None = None
    sleep: Callable[[float], None] = time.sleep
    session: requests.Session = field(default_factory=requests.Session)
    user_agent: str = "fhir-studio-connector"
    # An answer is read into memory up to this size (bulk files are streamed, never held): a server cannot exhaust
    # the studio's memory with one answer.
    max_response_bytes: int = 64 * 1024 * 1024
    _pinned: dict[str, requests.Session] = field(default_factory=dict, init=False, repr=False)

    def check_host(self, url: str, *, redirected_from: str = "") -> requests.Session:
        """The session to call `url` with, or FhirError: host_refused, redirect_refused or dns_failed."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise FhirError("host_refused", f"{url!r} is not an http(s) URL.")
        if self.allowed_hosts is None:
            return self.session
        try:
            address = check_outbound_url(url, self.allowed_hosts)
        except OutboundRefusedError as exc:
            if str(exc).endswith("does not resolve."):
                raise FhirError("dns_failed", f"The name {parts.hostname} could not be resolved.") from exc
            if redirected_from:
                raise FhirError(
                    "redirect_refused", f"{urlsplit(redirected_from).netloc} redirected to a refused host: {exc}"
                ) from exc
            raise FhirError("host_refused", f"Not an allowed host for connections: {exc}") from exc
        if address not in self._pinned:
            self._pinned[address] = pinned_session(address)  # kept: connections to it are reused
        return self._pinned[address]

    def close(self) -> None:
        """Close every session (the plain one and one pinned per checked address): their idle sockets go now, not
        when the collector finds them. Calls in flight finish; a later call opens new connections."""
        for session in [self.session, *list(self._pinned.values())]:
            session.close()

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: dict | None = None,
        retry_posts: bool = False,
        **kwargs: object,
    ) -> requests.Response:
        """One answer, after retries and allowed redirects. Answers of any status come back; only transport failures
        (and redirects to refused hosts) raise. `retry_posts`: a POST the server may safely see twice (a conditional
        create, a search) is retried on 5xx and read timeouts as well; a plain POST only on 429 and failed connects."""
        headers = {"User-Agent": self.user_agent, **(headers or {})}
        retry_any = method.upper() in IDEMPOTENT or retry_posts
        attempt = 0
        while True:
            try:
                response = self._follow(method, url, headers, kwargs)
            except FhirError as error:
                if attempt >= self.retry.max_retries or not _retryable(error, retry_any):
                    raise
                wait = self._backoff(attempt)
            else:
                if response.status_code not in RETRY_STATUSES or attempt >= self.retry.max_retries:
                    return response
                if response.status_code != 429 and not retry_any:
                    return response
                wait = self._wait_for(response, attempt)
                response.close()
            logger.info("fhir client retry %s %s attempt %d wait %.2fs", method, urlsplit(url).netloc, attempt, wait)
            self.sleep(wait)
            attempt += 1

    def _follow(self, method: str, url: str, headers: dict, kwargs: dict) -> requests.Response:
        session = self.check_host(url)
        for _ in range(MAX_REDIRECTS + 1):
            response = self._send(session, method, url, headers, kwargs)
            location = response.headers.get("Location")
            if response.status_code not in (301, 302, 303, 307, 308) or not location:
                return response
            target = urljoin(url, location)
            response.close()
            session = self.check_host(target, redirected_from=url)
            if response.status_code == 303 or (response.status_code in (301, 302) and method.upper() != "HEAD"):
                method, kwargs = "GET", {key: value for key, value in kwargs.items() if key in ("params", "stream")}
            if urlsplit(target).netloc != urlsplit(url).netloc:
                headers = {key: value for key, value in headers.items() if key.lower() != "authorization"}
            url = target
        raise FhirError("http_error", f"More than {MAX_REDIRECTS} redirects from {urlsplit(url).netloc}.")

    def _send(self, session: requests.Session, method: str, url: str, headers: dict, kwargs: dict) -> requests.Response:
        host = urlsplit(url).netloc
        streaming = bool(kwargs.get("stream"))
        sent = {key: value for key, value in kwargs.items() if key != "stream"}
        try:
            response = session.request(
                method, url, headers=headers, timeout=self.timeout_seconds, allow_redirects=False, stream=True, **sent
            )
            if not streaming:
                _read_body(response, self.max_response_bytes, host)
        except ConnectTimeout as exc:
            raise FhirError(
                "timeout", f"{host} did not accept a connection within {self.timeout_seconds:g} s."
            ) from exc
        except ReadTimeout as exc:
            error = FhirError("timeout", f"{host} did not answer within {self.timeout_seconds:g} s.")
            error.read_timeout = True
            raise error from exc
        except SSLError as exc:
            raise FhirError("tls_failed", f"TLS with {host} failed: {_reason(exc)}") from exc
        except RequestsConnectionError as exc:
            raise _connection_error(host, exc) from exc
        except RequestException as exc:  # a broken chunked body, an undecodable encoding, a URL requests refuses
            raise FhirError("unreachable", f"The exchange with {host} failed: {type(exc).__name__}.") from exc
        logger.debug("fhir client %s %s -> %d", method, host, response.status_code)
        return response

    def _backoff(self, attempt: int) -> float:
        # Full jitter between half and all of the doubled wait: many clients retrying do not stay in step.
        ceiling = min(self.retry.max_wait_seconds, self.retry.backoff_seconds * (2**attempt))
        return ceiling * random.uniform(0.5, 1.0)

    def _wait_for(self, response: requests.Response, attempt: int) -> float:
        told = retry_after_seconds(response.headers.get("Retry-After"))
        if told is None:
            return self._backoff(attempt)
        return min(told, self.retry.max_wait_seconds)


def retry_after_seconds(value: str | None) -> float | None:
    """Retry-After as seconds: delta-seconds or an HTTP date (RFC 9110 §10.2.3); None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _read_body(response: requests.Response, limit: int, host: str) -> None:
    """Read the answer's body, refusing one past `limit` bytes (too_large) before it is all in memory."""
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > limit:
        response.close()
        raise FhirError("too_large", f"{host} answered {int(declared):,} bytes, more than the {limit:,} allowed.")
    chunks, size = [], 0
    for chunk in response.iter_content(chunk_size=65536):
        size += len(chunk)
        if size > limit:
            response.close()
            raise FhirError("too_large", f"{host} answered more than the {limit:,} bytes allowed.")
        chunks.append(chunk)
    response._content = b"".join(chunks)  # what requests itself sets when it reads a body (Response.content)
    response._content_consumed = True


def _retryable(error: FhirError, retry_any: bool) -> bool:
    if error.code == "refused":
        return True  # nothing reached the server: safe for any method
    if error.code == "timeout":
        return retry_any or not getattr(error, "read_timeout", False)
    return error.code == "unreachable" and retry_any  # a dropped connection may have delivered the request


def _reason(exc: Exception) -> str:
    inner = exc.args[0] if exc.args else exc
    return str(getattr(inner, "reason", inner))


def _connection_error(host: str, exc: RequestsConnectionError) -> FhirError:
    inner = exc.args[0] if exc.args else None
    reason = getattr(inner, "reason", inner)
    kind = type(reason).__name__
    if kind == "ReadTimeoutError":  # the body stopped coming (requests wraps it so when reading it)
        error = FhirError("timeout", f"{host} stopped sending its answer.")
        error.read_timeout = True
        return error
    if kind == "NameResolutionError":
        return FhirError("dns_failed", f"The name {urlsplit('//' + host).hostname} could not be resolved.")
    if isinstance(getattr(reason, "__cause__", None), ConnectionRefusedError) or "refused" in str(reason).lower():
        return FhirError("refused", f"{host} refused the connection (nothing listens on that port).")
    return FhirError("unreachable", f"{host} could not be reached: {reason}")
