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
a chunk run twice updates what its first run wrote.

What the server answered for every message pushed is kept on its item (`BatchItem.push`, compact: each entry's status,
location `Type/id/_history/v` and ETag, an outcome only for a failed entry; no resource) and counted on its chunk
(messages pushed and refused, entries created, updated, failed): the batch API and page show both."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from mappings import secrets
from mappings.actions.common import audit
from mappings.connection_clients import client_for
from mappings.connectors import BulkClient, EntryResult, FhirClient, FhirError, as_bundle, entry_results
from mappings.connectors.errors import TRANSPORT_CODES
from mappings.models import AuditAction, BatchChunk, BatchItem, BatchJob, Connection

REFUSED = "push_refused"
UNREACHABLE = "push_unreachable"
SAVE_ROWS = 1000  # items per UPDATE when saving a chunk's push results
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


MAX_ENTRIES_KEPT = 1000  # per message: what one row holds of a huge Bundle's answer; the rest is counted in `more`
MAX_ISSUES_KEPT = 5  # of a failed entry's OperationOutcome
MAX_TEXT_CHARS = 500  # of a diagnostics text, a location or a status line the server wrote


def _short(text: object) -> str:
    return str(text or "")[:MAX_TEXT_CHARS]


def kept_outcome(outcome: dict | None) -> dict | None:
    """A failed entry's OperationOutcome cut to what says why (its first issues, their codes and words): a server's
    outcome may be long or echo the resource back, and a 100,000-message batch keeps one per failed entry."""
    if not isinstance(outcome, dict):
        return None
    issues = [issue for issue in outcome.get("issue") or [] if isinstance(issue, dict)][:MAX_ISSUES_KEPT]
    kept = []
    for issue in issues:
        short = {key: issue[key] for key in ("severity", "code", "expression") if key in issue}
        if issue.get("diagnostics"):
            short["diagnostics"] = _short(issue["diagnostics"])
        if isinstance(issue.get("details"), dict) and issue["details"].get("text"):
            short["details"] = {"text": _short(issue["details"]["text"])}
        kept.append(short)
    return {"resourceType": "OperationOutcome", "issue": kept}


def compact_result(code: str, status: int | None, entries: list[EntryResult]) -> dict:
    """What BatchItem.push keeps of the server's answer to one message: each entry as [status, location, etag] (the
    entry number is its place), with its outcome only when it failed; no resource, nothing the server did not say."""
    kept = []
    for entry in entries[:MAX_ENTRIES_KEPT]:
        row = [_short(entry.status), _short(entry.location), _short(entry.etag)]
        if not entry.ok:
            row.append(kept_outcome(entry.outcome))
        kept.append(row)
    return {"code": code, "status": status, "entries": kept, "more": max(0, len(entries) - MAX_ENTRIES_KEPT)}


@dataclass
class PushCounts:
    """A chunk's push figures (BatchChunk's fields of the same names)."""

    pushed: int = 0
    push_failed: int = 0
    entries_created: int = 0
    entries_updated: int = 0
    entries_failed: int = 0

    def add(self, entries: list[EntryResult]) -> None:
        for entry in entries:
            if entry.status[:3] == "201":
                self.entries_created += 1
            elif entry.ok:
                self.entries_updated += 1
            else:
                self.entries_failed += 1


@dataclass
class Pusher:
    """Sends a chunk's outputs to the batch's connection one Bundle each; keeps what the server answered for each
    message (saved on its item with `save`, in the transaction that records the chunk) and the counts."""

    batch: BatchJob
    sent: int = 0
    failed: int = 0
    counts: PushCounts = field(default_factory=PushCounts)
    results: dict[int, dict] = field(default_factory=dict, repr=False)  # item id → compact_result
    _client: FhirClient | None = field(default=None, repr=False)

    @property
    def kind(self) -> str:
        return str(self.batch.push_to.get("kind") or "transaction")

    def push(self, output: dict, item_id: int | None = None) -> dict | None:
        """None when the server kept everything; else the BatchItem fields of the failure (the dead letter)."""
        self.sent += 1
        bundle = as_bundle(output, self.kind)
        if not bundle["entry"]:
            return None  # nothing to send (an empty Bundle): converted, nothing refused
        self.counts.pushed += 1
        try:
            if self._client is None:
                self._client = _client(str(self.batch.push_to.get("connection", "")))
            response = getattr(self._client, self.kind)(bundle)
        except PullError as error:
            return self._failed(item_id, len(bundle["entry"]), UNREACHABLE, str(error), None, None)
        except FhirError as error:
            code = UNREACHABLE if _not_the_content(error) else REFUSED
            said = f"The server refused the {self.kind} ({error.code}): {error.message}"
            return self._failed(item_id, len(bundle["entry"]), code, said, error.outcome, error.status)
        entries = entry_results(response)
        self.counts.add(entries)
        bad = [(number, entry) for number, entry in enumerate(entries) if not entry.ok]
        self._keep(item_id, compact_result("entries_failed" if bad else "ok", 200, entries))
        if not bad:
            return None
        self.counts.push_failed += 1
        issues = [
            {**issue, "diagnostics": f"Entry {number} ({entry.status}): {issue.get('diagnostics', '')}".rstrip(": ")}
            for number, entry in bad
            for issue in (entry.outcome or {}).get("issue") or [{"severity": "error", "code": "processing"}]
        ]
        said = f"{len(bad)} of {len(entries)} entries failed on the server: entry {bad[0][0]} {bad[0][1].status}."
        self.failed += 1
        return _dead_letter(REFUSED, said, {"resourceType": "OperationOutcome", "issue": issues})

    def _keep(self, item_id: int | None, result: dict) -> None:
        if item_id is not None:
            self.results[item_id] = result

    def _failed(
        self, item_id: int | None, sent: int, code: str, message: str, outcome: dict | None, status: int | None
    ) -> dict:
        """The whole Bundle was not kept: every entry counts as failed; the server's outcome goes to the dead letter."""
        self.failed += 1
        self.counts.push_failed += 1
        self.counts.entries_failed += sent
        self._keep(item_id, {"code": code, "status": status, "entries": [], "more": 0, "sent": sent})
        return _dead_letter(code, message, outcome)

    def save(self, chunk: BatchChunk) -> None:
        """Each pushed message's answer on its item, and the chunk's counts; called in the transaction that records
        the chunk done, so a chunk run twice rewrites both."""
        items = [BatchItem(pk=item_id, push=result) for item_id, result in self.results.items()]
        BatchItem.objects.bulk_update(items, ["push"], batch_size=SAVE_ROWS)
        BatchChunk.objects.filter(pk=chunk.pk).update(**vars(self.counts))

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
            "entries_created": self.counts.entries_created,
            "entries_updated": self.counts.entries_updated,
            "entries_failed": self.counts.entries_failed,
            "code": "entries_failed" if self.failed else "ok",
        }
        audit(
            None, AuditAction.CONNECTION_PUSHED, connection, mapping_slug=self.batch.version.mapping.slug, after=after
        )


def _dead_letter(code: str, message: str, outcome: dict | None) -> dict:
    if outcome is None:
        outcome = {
            "resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": "exception", "diagnostics": message}],
        }
    return {"error_code": code, "error_message": message, "error_line": None, "issues": outcome}


def _not_the_content(error: FhirError) -> bool:
    """A failure that says nothing about the output (sending it again later may work)."""
    return (
        error.code in TRANSPORT_CODES
        or error.code in ("timeout", "unauthorized", "too_many_requests")
        or (error.status is not None and error.status >= 500)
    )
