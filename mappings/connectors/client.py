"""A FHIR R4 REST client for other servers: read, vread, search with automatic paging, create (conditional too),
update with If-Match (conditional too), JSON Patch, delete, history, batch and transaction, $everything. Resources are
plain dicts; answers that are errors raise FhirError with the server's OperationOutcome. Bulk Data is bulk.py.

    client = FhirClient("https://fhir.example.org/r4", auth=BearerAuth("..."))
    for patient in client.search("Patient", {"family": "Smith"}):  # follows `next` links
        ...
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

import requests

from mappings.connectors.auth import Auth
from mappings.connectors.errors import FhirError, code_of_status, outcome_text
from mappings.connectors.transport import RetryPolicy, Transport

logger = logging.getLogger(__name__)

FHIR_JSON = "application/fhir+json"
JSON_PATCH = "application/json-patch+json"
Params = Mapping[str, object] | list[tuple[str, object]] | None


@dataclass(frozen=True)
class WriteResult:
    """What a write answered: status, Location, ETag and the resource when the server returned one."""

    status: int
    location: str
    etag: str
    resource: dict | None

    @property
    def id(self) -> str:
        """The id from Location ([base]/Type/id/_history/vid) or from the returned resource."""
        if self.resource and self.resource.get("id"):
            return str(self.resource["id"])
        parts = urlsplit(self.location).path.rstrip("/").split("/")
        if "_history" in parts:
            parts = parts[: parts.index("_history")]
        return parts[-1] if self.location else ""

    @property
    def version_id(self) -> str:
        if self.etag:
            return self.etag.removeprefix("W/").strip('"')
        meta = (self.resource or {}).get("meta") or {}
        if meta.get("versionId"):
            return str(meta["versionId"])
        parts = urlsplit(self.location).path.rstrip("/").split("/")
        return parts[-1] if len(parts) > 2 and parts[-2] == "_history" else ""


def etag_of(version: str | int) -> str:
    """If-Match wants a weak ETag, W/"3"; a bare version id is wrapped."""
    text = str(version)
    return text if text.startswith(("W/", '"')) else f'W/"{text}"'


class FhirClient:
    def __init__(
        self,
        base_url: str,
        *,
        auth: Auth | None = None,
        timeout_seconds: float = 30.0,
        retry: RetryPolicy | None = None,
        transport: Transport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.auth = auth or Auth()
        self.transport = transport or Transport(timeout_seconds=timeout_seconds, retry=retry or RetryPolicy())

    # --- plumbing ---------------------------------------------------------------------------------------------

    def url(self, path: str) -> str:
        return path if path.startswith(("http://", "https://")) else f"{self.base_url}/{path.lstrip('/')}"

    def request(
        self, method: str, path: str, *, headers: dict | None = None, retry_posts: bool = False, **kwargs: object
    ) -> requests.Response:
        """One authenticated request; a 401 drops a cached token and tries once more with a new one (static
        credentials are not sent again: they would be refused again)."""
        url = self.url(path)
        sent = {"Accept": FHIR_JSON, **(headers or {})}
        response = self.transport.request(
            method, url, headers={**sent, **self._auth_headers(url)}, retry_posts=retry_posts, **kwargs
        )
        if response.status_code == 401 and self._same_host(url) and self.auth.renewable:
            self.auth.forget()
            response.close()
            response = self.transport.request(
                method, url, headers={**sent, **self._auth_headers(url)}, retry_posts=retry_posts, **kwargs
            )
        return response

    def _auth_headers(self, url: str) -> dict[str, str]:
        # Credentials go to the connection's own host only (a bulk file on object storage, a `next` link elsewhere).
        return self.auth.headers(self.transport, self.base_url) if self._same_host(url) else {}

    def _same_host(self, url: str) -> bool:
        return urlsplit(url).netloc == urlsplit(self.base_url).netloc

    def _json(self, response: requests.Response, *, what: str) -> dict:
        """The answer's JSON object, or FhirError: the server's OperationOutcome for an error status."""
        try:
            body = response.json() if response.content else None
        except ValueError:
            body = None
            if response.ok:
                raise FhirError(
                    "not_json",
                    f"{what}: the server answered {response.status_code} with no JSON.",
                    status=response.status_code,
                ) from None
        if not response.ok:
            outcome = body if isinstance(body, dict) and body.get("resourceType") == "OperationOutcome" else None
            said = outcome_text(outcome) or response.reason or ""
            raise FhirError(
                code_of_status(response.status_code),
                f"{what}: {response.status_code} {said}".strip(),
                status=response.status_code,
                outcome=outcome,
            )
        if not isinstance(body, dict):
            raise FhirError(
                "not_json", f"{what}: the server's answer is not a JSON object.", status=response.status_code
            )
        return body

    def _write(self, response: requests.Response, *, what: str) -> WriteResult:
        body = self._json(response, what=what) if response.content else None
        if not response.ok:  # an error without a body
            self._json(response, what=what)
        return WriteResult(
            status=response.status_code,
            location=response.headers.get("Location") or response.headers.get("Content-Location", ""),
            etag=response.headers.get("ETag", ""),
            resource=body,
        )

    # --- reads ------------------------------------------------------------------------------------------------

    def capabilities(self) -> dict:
        return self._json(self.request("GET", "metadata"), what="metadata")

    def read(self, resource_type: str, resource_id: str) -> dict:
        return self._json(self.request("GET", f"{resource_type}/{resource_id}"), what=f"read {resource_type}")

    def vread(self, resource_type: str, resource_id: str, version_id: str | int) -> dict:
        path = f"{resource_type}/{resource_id}/_history/{version_id}"
        return self._json(self.request("GET", path), what=f"vread {resource_type}")

    def pages(self, path: str, params: Params = None, *, max_pages: int | None = None) -> Iterator[dict]:
        """Each Bundle of a search or history, following `next` links (absolute, allow-listed like any URL)."""
        url: str | None = path + (f"?{urlencode(params, doseq=True)}" if params else "")
        seen = 0
        while url and (max_pages is None or seen < max_pages):
            bundle = self._json(self.request("GET", url), what=f"GET {urlsplit(self.url(url)).path}")
            if bundle.get("resourceType") != "Bundle":
                raise FhirError("not_fhir", f"Expected a Bundle, got {bundle.get('resourceType')!r}.")
            yield bundle
            seen += 1
            url = next((link.get("url") for link in bundle.get("link", []) if link.get("relation") == "next"), None)

    def search(
        self, resource_type: str | None = None, params: Params = None, *, max_pages: int | None = None
    ) -> Iterator[dict]:
        """The matching resources, page after page (included resources and OperationOutcomes left out)."""
        for bundle in self.pages(resource_type or "", params, max_pages=max_pages):
            for entry in bundle.get("entry", []):
                if (entry.get("search") or {}).get("mode", "match") == "match" and "resource" in entry:
                    yield entry["resource"]

    def history(
        self,
        resource_type: str | None = None,
        resource_id: str | None = None,
        params: Params = None,
        *,
        max_pages: int | None = None,
    ) -> Iterator[dict]:
        """History entries (resource, request, response), newest first, across pages."""
        path = "/".join(part for part in (resource_type, resource_id) if part) + "/_history"
        for bundle in self.pages(path.lstrip("/"), params, max_pages=max_pages):
            yield from bundle.get("entry", [])

    def everything(self, patient_id: str, params: Params = None, *, max_pages: int | None = None) -> Iterator[dict]:
        """Patient/{id}/$everything's resources across pages."""
        for bundle in self.pages(f"Patient/{patient_id}/$everything", params, max_pages=max_pages):
            for entry in bundle.get("entry", []):
                if "resource" in entry:
                    yield entry["resource"]

    # --- writes -----------------------------------------------------------------------------------------------

    def create(self, resource: dict, *, if_none_exist: Params | str = None) -> WriteResult:
        """POST [type]; with `if_none_exist` (search parameters) a conditional create: 200 when one matched."""
        headers = {"Content-Type": FHIR_JSON, "Prefer": "return=representation"}
        if if_none_exist:
            headers["If-None-Exist"] = if_none_exist if isinstance(if_none_exist, str) else urlencode(if_none_exist)
        response = self.request(
            "POST", resource["resourceType"], json=resource, headers=headers, retry_posts=bool(if_none_exist)
        )
        return self._write(response, what=f"create {resource['resourceType']}")

    def update(
        self, resource: dict, *, if_match: str | int | None = None, condition: Params | str = None
    ) -> WriteResult:
        """PUT [type]/[id] (If-Match: the version the change was made from), or PUT [type]?[condition]."""
        headers = {"Content-Type": FHIR_JSON, "Prefer": "return=representation"}
        if if_match is not None:
            headers["If-Match"] = etag_of(if_match)
        path = resource["resourceType"]
        if condition:
            path += "?" + (condition if isinstance(condition, str) else urlencode(condition))
        else:
            path += f"/{resource['id']}"
        return self._write(self.request("PUT", path, json=resource, headers=headers), what=f"update {path}")

    def patch(
        self, resource_type: str, resource_id: str, operations: list[dict], *, if_match: str | int | None = None
    ) -> WriteResult:
        """JSON Patch (RFC 6902) of one resource."""
        headers = {"Content-Type": JSON_PATCH, "Prefer": "return=representation"}
        if if_match is not None:
            headers["If-Match"] = etag_of(if_match)
        path = f"{resource_type}/{resource_id}"
        return self._write(self.request("PATCH", path, json=operations, headers=headers), what=f"patch {path}")

    def delete(self, resource_type: str, resource_id: str | None = None, *, condition: Params | str = None) -> int:
        """DELETE one resource (or by condition); the status (200/204, or 404/410 where the server says so)."""
        path = f"{resource_type}/{resource_id}" if resource_id else resource_type
        if condition:
            path += "?" + (condition if isinstance(condition, str) else urlencode(condition))
        response = self.request("DELETE", path)
        if not response.ok:
            self._json(response, what=f"delete {path}")
        return response.status_code

    def batch(self, bundle: dict) -> dict:
        """POST a batch Bundle; the response Bundle (per-entry status). Entries fail on their own."""
        return self._bundle(bundle, "batch")

    def transaction(self, bundle: dict) -> dict:
        """POST a transaction Bundle; the response Bundle. All or nothing: a failure raises with the outcome."""
        return self._bundle(bundle, "transaction")

    def _bundle(self, bundle: dict, kind: str) -> dict:
        sent = {**bundle, "resourceType": "Bundle", "type": kind}
        response = self.request("POST", "", json=sent, headers={"Content-Type": FHIR_JSON})
        return self._json(response, what=kind)

    def operation(self, path: str, parameters: dict | None = None, *, method: str = "POST") -> dict:
        """Any other operation ([type/][id/]$name): a Parameters resource in, the answer's resource out."""
        if method == "GET":
            return self._json(self.request("GET", path), what=path)
        response = self.request("POST", path, json=parameters or {"resourceType": "Parameters"})
        return self._json(response, what=path)
