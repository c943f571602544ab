"""Another FHIR server as a facade's data source (kind `fhir-server`, "pull"): the facade reads it through a
connection's client on each request and maps what it returns (profiles it, re-codes it through lookup tables).

This module knows no models: the caller opens the connection (mappings.connection_clients.client_for) and hands the
client in. Config: {connection, resource_type (the remote type, when it differs from the bound one), search (the
parameter names passed through to the remote search; absent: any), page_size (resources per page of an $export)}.

Every answer is a list of payloads (one resource's JSON each), as http.py and sql.py answer; the connector's errors
become SourceError with the status the facade answers: the remote being down 502, too slow 504, a 404 on a read no
record, a search the remote refuses 400."""

from __future__ import annotations

import json
from collections.abc import Iterable

from mappings.connectors import FhirClient, FhirError
from mappings.sources import SourceError

# Connector codes that mean "the server could not be reached or would not talk to us" (mappings/connectors/errors.py).
UNREACHABLE = {"dns_failed", "refused", "tls_failed", "unreachable", "redirect_refused", "not_json", "not_fhir"}
DEFAULT_PAGE_SIZE = 500


def remote_type(config: dict, bound_type: str) -> str:
    return str(config.get("resource_type") or bound_type)


def source_error(error: FhirError, what: str) -> SourceError:
    """The connector's failure as the facade answers it."""
    if error.code == "timeout":
        return SourceError(f"The FHIR server did not answer the {what} in time.", status=504)
    if error.code == "host_refused":  # the connection names a host the administrator has not allowed
        return SourceError(f"The connection's server is not an allowed host: {error.message}", status=500)
    if error.code in ("bad_request", "unprocessable"):  # the search itself (a parameter the remote does not know)
        return SourceError(f"The FHIR server refused the {what}: {error.message}", status=400)
    if error.code in UNREACHABLE:
        return SourceError(f"The FHIR server could not be reached for the {what}: {error.message}", status=502)
    return SourceError(f"The FHIR server answered the {what} with an error: {error.message}", status=502)


def _payloads(resources: Iterable[dict]) -> list[str]:
    return [json.dumps(resource) for resource in resources]


def read(client: FhirClient, config: dict, bound_type: str, resource_id: str) -> list[str]:
    """The remote resource as one payload; none when the server has no such resource (404 or 410)."""
    kind = remote_type(config, bound_type)
    try:
        return _payloads([client.read(kind, resource_id)])
    except FhirError as error:
        if error.code in ("not_found", "gone"):
            return []
        raise source_error(error, f"read of {kind}/{resource_id}") from error


def passed_params(config: dict, query: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The facade's search parameters sent on to the remote: all of them, or only those config["search"] names.
    A parameter not passed is refused (400) rather than dropped: dropping it would answer more than was asked."""
    allowed = config.get("search")
    if allowed is None:
        return list(query)
    refused = sorted({name for name, _ in query if name.split(":")[0] not in allowed})
    if refused:
        known = ", ".join(sorted(allowed)) or "nothing"
        raise SourceError(f"This source searches by {known} only, not {', '.join(refused)}.", status=400)
    return list(query)


def search(client: FhirClient, config: dict, bound_type: str, query: list[tuple[str, str]], count: int) -> list[str]:
    """One page of the remote search with the facade's parameters and `_count` passed through."""
    kind = remote_type(config, bound_type)
    params = [*passed_params(config, query), ("_count", str(count))]
    try:
        return _payloads(client.search(kind, params, max_pages=1))
    except FhirError as error:
        raise source_error(error, f"search of {kind}") from error


class Lister:
    """Lists every resource of the remote type for a bulk $export, by following the search's `next` links. It has
    the shape export_live.py reads http.py and sql.py through (list_mode, start_cursor, list_page)."""

    def __init__(self, client: FhirClient, bound_type: str) -> None:
        self.client = client
        self.bound_type = bound_type

    def list_mode(self, config: dict) -> str:
        return "next"

    def start_cursor(self, config: dict) -> dict:
        return {"next": None}

    def list_page(self, config: dict, cursor: dict) -> tuple[list[str], dict | None]:
        """One page at `cursor` (the first when `next` is None, else the `next` link the last page gave)."""
        kind = remote_type(config, self.bound_type)
        limit = int(cursor.get("limit") or config.get("page_size") or DEFAULT_PAGE_SIZE)
        where = cursor.get("next") or kind
        params = None if cursor.get("next") else {"_count": limit}
        try:
            bundle = next(self.client.pages(where, params, max_pages=1), None)
        except FhirError as error:
            raise source_error(error, f"listing of {kind}") from error
        if bundle is None:
            return [], None
        matches = [
            entry["resource"]
            for entry in bundle.get("entry", [])
            if (entry.get("search") or {}).get("mode", "match") == "match" and isinstance(entry.get("resource"), dict)
        ]
        following = next((link.get("url") for link in bundle.get("link", []) if link.get("relation") == "next"), None)
        if not matches:
            return [], None
        return _payloads(matches), ({**cursor, "next": following} if following else None)
