"""A mapping's output as the Bundle a push sends, and the answer read back per entry. Pure dicts, no FHIR models.

A transaction or batch Bundle is sent as it is (as the type asked for); any other Bundle's entries, or a single
resource, become entries of one: PUT [type]/[id] for a resource with an id (mappings make deterministic ids, so a
re-run updates what the last one wrote), POST [type] otherwise; fullUrls are kept so urn:uuid references resolve."""

from __future__ import annotations

from dataclasses import dataclass


def as_bundle(output: dict, kind: str) -> dict:
    if kind not in ("transaction", "batch"):
        raise ValueError(f"A push is a transaction or a batch, not {kind!r}.")
    if output.get("resourceType") == "Bundle" and output.get("type") in ("transaction", "batch"):
        return {**output, "type": kind, "entry": [_with_request(entry) for entry in output.get("entry", [])]}
    if output.get("resourceType") == "Bundle":
        entries = [_with_request(entry) for entry in output.get("entry", []) if isinstance(entry.get("resource"), dict)]
    else:
        entries = [_with_request({"resource": output})]
    return {"resourceType": "Bundle", "type": kind, "entry": entries}


def _with_request(entry: dict) -> dict:
    if entry.get("request"):
        return entry
    resource = entry.get("resource") or {}
    kind, given = resource.get("resourceType", ""), resource.get("id")
    request = {"method": "PUT", "url": f"{kind}/{given}"} if given else {"method": "POST", "url": kind}
    return {**entry, "request": request}


@dataclass(frozen=True)
class EntryResult:
    status: str  # "201 Created", as the server wrote it
    location: str
    etag: str
    outcome: dict | None

    @property
    def ok(self) -> bool:
        return self.status[:1] == "2"


def entry_results(response: dict) -> list[EntryResult]:
    """Each entry's response of a transaction-response or batch-response Bundle, in the order sent."""
    results = []
    for entry in response.get("entry", []):
        answer = entry.get("response") or {}
        outcome = answer.get("outcome")
        if outcome is None and (entry.get("resource") or {}).get("resourceType") == "OperationOutcome":
            outcome = entry["resource"]
        results.append(
            EntryResult(str(answer.get("status", "")), answer.get("location", ""), answer.get("etag", ""), outcome)
        )
    return results
