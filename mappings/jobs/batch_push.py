"""A batch's connections to other FHIR servers: the resources it pulls from one as its items (a search, or a bulk
export), and the outputs it pushes to one (`push_to`).

Pull (`BatchJob.pull`): {connection, resource_type, params} reads every page of a search; {connection, export: {type,
level}} runs a Bulk Data export on the server (kick-off, poll, stream each NDJSON file). Each resource becomes one
item keyed by its type/id, its JSON the payload the mapping runs on.

Push (`BatchJob.push_to`: {connection, kind: transaction|batch}): each converted message's output is sent as its own
Bundle (mappings.connectors.as_bundle), not a chunk's outputs as one: a message is the unit that succeeds or fails
(an ADT message's transaction is all or nothing on the server, one bad message does not refuse its neighbours), and
a failed one is exactly one dead letter, reprocessed alone. A refused push fails its item with the server's
OperationOutcome (BatchItem.issues) and a code: `push_refused` (the server said no to the content: fix and reprocess)
or `push_unreachable` (transport, sign-in, 5xx: send again later). Outputs carry deterministic ids (PUT type/id), so
a chunk run twice updates what its first run wrote."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from mappings import secrets
from mappings.actions.common import audit
from mappings.connection_clients import client_for
from mappings.connectors import BulkClient, FhirClient, FhirError, as_bundle, entry_results
from mappings.connectors.errors import TRANSPORT_CODES
from mappings.models import AuditAction, BatchJob, Connection

REFUSED = "push_refused"
UNREACHABLE = "push_unreachable"
PULL_POLL_SECONDS = 540.0  # an export must finish within the plan task's time (soft limit 600 s)


class PullError(Exception):
    """The resources could not be pulled: the batch fails with this message."""


def _client(name: str) -> FhirClient:
    connection = Connection.objects.filter(name=name).first()
    if connection is None:
        raise PullError(f"The connection '{name}' does not exist (any more).")
    try:
        return client_for(connection)
    except secrets.SecretsKeyError as error:
        raise PullError(f"The connection '{name}' cannot sign in: {error}") from error


def pulled_resources(pull: dict) -> Iterator[dict]:
    """Every resource the pull names, page after page or file after file; PullError when the server fails."""
    client = _client(str(pull.get("connection", "")))
    try:
        if "export" in pull:
            export = pull["export"] or {}
            bulk = BulkClient(client)
            params = {"_type": export["type"]} if export.get("type") else None
            manifest = bulk.export(str(export.get("level") or ""), params, timeout_seconds=PULL_POLL_SECONDS)
            for entry in manifest.get("output", []):
                yield from bulk.stream(entry)
        else:
            yield from client.search(pull["resource_type"], pull.get("params") or None)
    except FhirError as error:
        raise PullError(f"Pulling from '{pull.get('connection')}' failed ({error.code}): {error.message}") from error


def pulled_key(resource: dict) -> str:
    return f"{resource.get('resourceType', '')}/{resource.get('id', '')}"[:255]


@dataclass
class Pusher:
    """Sends a chunk's outputs to the batch's connection one Bundle each, and counts them for the audit row."""

    batch: BatchJob
    sent: int = 0
    failed: int = 0
    _client: FhirClient | None = field(default=None, repr=False)

    @property
    def kind(self) -> str:
        return str(self.batch.push_to.get("kind") or "transaction")

    def push(self, output: dict) -> dict | None:
        """None when the server kept everything; else the BatchItem fields of the failure (the dead letter)."""
        self.sent += 1
        bundle = as_bundle(output, self.kind)
        if not bundle["entry"]:
            return None  # nothing to send (an empty Bundle): converted, nothing refused
        try:
            if self._client is None:
                self._client = _client(str(self.batch.push_to.get("connection", "")))
            response = getattr(self._client, self.kind)(bundle)
        except PullError as error:
            return self._failed(UNREACHABLE, str(error), None)
        except FhirError as error:
            code = UNREACHABLE if _not_the_content(error) else REFUSED
            said = f"The server refused the {self.kind} ({error.code}): {error.message}"
            return self._failed(code, said, error.outcome)
        entries = entry_results(response)
        bad = [(number, entry) for number, entry in enumerate(entries) if not entry.ok]
        if not bad:
            return None
        issues = [
            {**issue, "diagnostics": f"Entry {number} ({entry.status}): {issue.get('diagnostics', '')}".rstrip(": ")}
            for number, entry in bad
            for issue in (entry.outcome or {}).get("issue") or [{"severity": "error", "code": "processing"}]
        ]
        said = f"{len(bad)} of {len(entries)} entries failed on the server: entry {bad[0][0]} {bad[0][1].status}."
        return self._failed(REFUSED, said, {"resourceType": "OperationOutcome", "issue": issues})

    def _failed(self, code: str, message: str, outcome: dict | None) -> dict:
        self.failed += 1
        if outcome is None:
            outcome = {
                "resourceType": "OperationOutcome",
                "issue": [{"severity": "error", "code": "exception", "diagnostics": message}],
            }
        return {"error_code": code, "error_message": message, "error_line": None, "issues": outcome}

    def audit(self, first_seq: int, last_seq: int) -> None:
        """One row per chunk pushed: counts, never the resources (they are PHI)."""
        if not self.sent:
            return
        connection = Connection.objects.filter(name=self.batch.push_to.get("connection", "")).first()
        if connection is None:
            return
        after = {
            "batch": self.batch.pk,
            "messages": f"{first_seq}-{last_seq}",
            "kind": self.kind,
            "entries": self.sent,
            "failed": self.failed,
            "code": "entries_failed" if self.failed else "ok",
        }
        audit(
            None, AuditAction.CONNECTION_PUSHED, connection, mapping_slug=self.batch.version.mapping.slug, after=after
        )


def _not_the_content(error: FhirError) -> bool:
    """A failure that says nothing about the output (sending it again later may work)."""
    return (
        error.code in TRANSPORT_CODES
        or error.code in ("timeout", "unauthorized", "too_many_requests")
        or (error.status is not None and error.status >= 500)
    )
