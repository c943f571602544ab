"""A Bulk Data Access (v2) client: kick off an $export with Prefer: respond-async, poll the status URL honouring
Retry-After and reporting X-Progress, read the manifest, stream each NDJSON file line by line, delete the export.

    bulk = BulkClient(client)
    manifest = bulk.export("Patient", {"_type": "Patient,Observation"})
    for entry in manifest["output"]:
        for resource in bulk.stream(entry):
            ...
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from urllib.parse import urlencode

import orjson
from requests.exceptions import RequestException

from mappings.connectors.client import FhirClient
from mappings.connectors.errors import FhirError
from mappings.connectors.transport import retry_after_seconds

DEFAULT_POLL_SECONDS = 2.0  # when the server gives no Retry-After


class BulkClient:
    def __init__(self, client: FhirClient, *, max_poll_seconds: float = 60.0) -> None:
        self.client = client
        self.max_poll_seconds = max_poll_seconds  # no Retry-After makes a poll wait longer than this

    def kick_off(self, level: str = "", params: dict | None = None) -> str:
        """Start an export at system level (""), "Patient" or "Group/{id}"; the status URL."""
        path = "/".join(part for part in (level.strip("/"), "$export") if part)
        if params:
            path += "?" + urlencode(params, doseq=True)
        response = self.client.request("GET", path, headers={"Prefer": "respond-async"})
        if response.status_code != 202:
            self.client._json(response, what="$export kick-off")
            raise FhirError("http_error", f"$export kick-off answered {response.status_code}, not 202.")
        location = response.headers.get("Content-Location")
        if not location:
            raise FhirError("not_fhir", "$export kick-off answered 202 without a Content-Location status URL.")
        return location

    def poll(
        self,
        status_url: str,
        *,
        timeout_seconds: float = 3600.0,
        on_progress: Callable[[str], None] | None = None,
    ) -> dict:
        """Wait for the export to finish; its manifest. Each 202 waits what Retry-After says (bounded)."""
        deadline = time.monotonic() + timeout_seconds
        sleep = self.client.transport.sleep
        while True:
            response = self.client.request("GET", status_url)
            if response.status_code != 202:
                return self.client._json(response, what="$export status")
            if on_progress:
                on_progress(response.headers.get("X-Progress", ""))
            told = retry_after_seconds(response.headers.get("Retry-After"))
            wait = min(self.max_poll_seconds, DEFAULT_POLL_SECONDS if told is None else told)
            if time.monotonic() + wait > deadline:
                raise FhirError("timeout", f"The export did not finish within {timeout_seconds:g} s.")
            sleep(wait)

    def export(self, level: str = "", params: dict | None = None, **poll: object) -> dict:
        return self.poll(self.kick_off(level, params), **poll)

    def stream(self, entry: dict | str) -> Iterator[dict]:
        """The resources of one output file (a manifest entry or its URL), read line by line, never all at once.
        Its URL gets the connection's token only when it is on the connection's own host (requiresAccessToken)."""
        url = entry if isinstance(entry, str) else entry["url"]
        response = self.client.request("GET", url, headers={"Accept": "application/fhir+ndjson"}, stream=True)
        with response:
            if not response.ok:
                self.client._json(response, what="bulk file")
            try:
                for number, line in enumerate(response.iter_lines(), start=1):
                    if line.strip():
                        yield _resource(line, number)
            except RequestException as exc:
                raise FhirError("unreachable", f"The bulk file broke off: {exc}") from exc

    def delete(self, status_url: str) -> int:
        """Cancel the export, or let the server delete its files."""
        response = self.client.request("DELETE", status_url)
        if not response.ok:
            self.client._json(response, what="$export delete")
        return response.status_code


def _resource(line: bytes, number: int) -> dict:
    try:
        found = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise FhirError("not_json", f"Line {number} of the bulk file is not JSON: {exc}") from exc
    if not isinstance(found, dict) or "resourceType" not in found:
        raise FhirError("not_fhir", f"Line {number} of the bulk file is not a FHIR resource.")
    return found
