"""Writes of connections to other FHIR servers, each with its audit row: created, changed, removed, tested. Secrets
(password, bearer token, client secret, private key) are sealed with mappings/secrets.py as they arrive and opened
only in `client_for`, right before a request; audit rows name which secrets are set, never their values.

`client_for(connection)` (mappings/connection_clients.py, outside the actions so the facade can read through a
connection too) is how the studio talks to a connection."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from mappings import secrets
from mappings.actions.common import audit
from mappings.compiling import compile_draft, compile_version
from mappings.connection_clients import client_for
from mappings.connectors import Diagnosis, EntryResult, FhirError, as_bundle, diagnose, entry_results
from mappings.connectors.auth import ALGORITHMS, signing_key
from mappings.engine import CompiledMapping
from mappings.errors import StudioError
from mappings.models import AuditAction, AuthMode, Connection, DataSource, Draft, TestRun
from mappings.models.connection import SECRETS_OF_MODE
from mappings.profiles import studio_registry
from mappings.samples import run_case

# The settings (not secret) each mode reads from Connection.auth, and which of them it needs.
SETTINGS_OF_MODE = {
    AuthMode.NONE: ((), ()),
    AuthMode.BASIC: (("username",), ("username",)),
    AuthMode.BEARER: ((), ()),
    AuthMode.CLIENT_CREDENTIALS: (("client_id", "scope", "token_url"), ("client_id",)),
    AuthMode.SMART_BACKEND: (("client_id", "scope", "token_url", "key_id", "algorithm"), ("client_id",)),
}
NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,99}$")
MAX_TIMEOUT_SECONDS = 300.0
MAX_RETRIES = 10
MAX_SAMPLES_PUSHED = 50  # a test run's push runs in the request, one Bundle a sample


def _checked_url(base_url: str) -> str:
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise StudioError("invalid", "base_url must be an http(s) URL.", details={"base_url": ["Not an http(s) URL."]})
    if parts.username or parts.password:
        raise StudioError(
            "invalid", "Put credentials in the auth settings, not the URL.", details={"base_url": ["Has credentials."]}
        )
    return base_url.rstrip("/")


def _checked_limits(timeout_seconds: float, max_retries: int) -> None:
    if not 0 < timeout_seconds <= MAX_TIMEOUT_SECONDS:
        raise StudioError("invalid", f"timeout_seconds must be above 0 and at most {MAX_TIMEOUT_SECONDS:g}.")
    if not 0 <= max_retries <= MAX_RETRIES:
        raise StudioError("invalid", f"max_retries must be between 0 and {MAX_RETRIES}.")


def _checked_auth(mode: str, auth: dict) -> dict:
    if mode not in AuthMode.values:
        raise StudioError("invalid", f"auth_mode must be one of {', '.join(AuthMode.values)}.")
    known, needed = SETTINGS_OF_MODE[AuthMode(mode)]
    unknown = sorted(set(auth) - set(known))
    if unknown:
        raise StudioError(
            "invalid", f"auth has settings {mode} does not use: {', '.join(unknown)}.", details={"auth": unknown}
        )
    missing = [key for key in needed if not str(auth.get(key) or "").strip()]
    if missing:
        raise StudioError(
            "invalid",
            f"auth mode {mode} needs {', '.join(missing)}.",
            details={"auth": [f"{key} is required." for key in missing]},
        )
    if mode == AuthMode.SMART_BACKEND and auth.get("algorithm", "RS384") not in ALGORITHMS:
        raise StudioError("invalid", "auth.algorithm must be RS384 or ES384.", details={"auth": ["algorithm"]})
    return {key: str(value) for key, value in auth.items() if value not in (None, "")}


def _sealed_secrets(mode: str, auth: dict, given: dict, stored: dict) -> dict:
    """The secrets to store for `mode`: a new value is sealed; one left out or sent as "***" keeps the stored one;
    "" removes it. Secrets the mode does not use are dropped. A mode missing a secret it needs is `invalid`."""
    names = SECRETS_OF_MODE[AuthMode(mode)]
    unknown = sorted(set(given) - set(names))
    if unknown:
        raise StudioError(
            "invalid", f"secrets has values {mode} does not use: {', '.join(unknown)}.", details={"secrets": unknown}
        )
    result = {}
    for name in names:
        value = given.get(name, secrets.MASK)
        if value == secrets.MASK:
            if stored.get(name):
                result[name] = stored[name]
            continue
        if not isinstance(value, str):
            raise StudioError("invalid", f"secrets.{name} must be a string.", details={"secrets": [name]})
        if value:
            if name == "private_key":
                _check_private_key(value, auth.get("algorithm", "RS384"))
            result[name] = secrets.encrypt(value)
    missing = [name for name in names if name not in result]
    if missing:
        raise StudioError(
            "invalid",
            f"auth mode {mode} needs {', '.join(missing)} in secrets.",
            details={"secrets": [f"{name} is required." for name in missing]},
        )
    return result


def _check_private_key(pem: str, algorithm: str) -> None:
    try:
        signing_key(pem, algorithm)
    except FhirError as error:
        raise StudioError("invalid", error.message, details={"secrets": ["private_key"]}) from error


def _state(connection: Connection) -> dict:
    """What an audit row says about a connection: no secret, only which are set."""
    return {
        "name": connection.name,
        "base_url": connection.base_url,
        "auth_mode": connection.auth_mode,
        "auth": connection.auth,
        "secrets_set": connection.secrets_set,
        "timeout_seconds": connection.timeout_seconds,
        "max_retries": connection.max_retries,
    }


@transaction.atomic(durable=True)
def do_create_connection(
    *,
    acting_user: AbstractBaseUser | None,
    name: str,
    base_url: str,
    auth_mode: str = AuthMode.NONE,
    auth: dict | None = None,
    secrets: dict | None = None,
    timeout_seconds: float = 30.0,
    max_retries: int = 3,
) -> Connection:
    if not NAME.match(name):
        raise StudioError("invalid", "name: lower-case letters, digits, '-' or '_', at most 100.", details={"name": []})
    if Connection.objects.filter(name=name).exists():
        raise StudioError("conflict", f"A connection '{name}' already exists.")
    _checked_limits(timeout_seconds, max_retries)
    auth = _checked_auth(auth_mode, auth or {})
    connection = Connection.objects.create(
        name=name,
        base_url=_checked_url(base_url),
        auth_mode=auth_mode,
        auth=auth,
        secrets=_sealed_secrets(auth_mode, auth, secrets or {}, {}),
        timeout_seconds=timeout_seconds,
        max_retries=max_retries,
    )
    audit(acting_user, AuditAction.CONNECTION_CREATED, connection, after=_state(connection))
    return connection


@transaction.atomic(durable=True)
def do_update_connection(
    connection: Connection,
    *,
    acting_user: AbstractBaseUser | None,
    base_url: str | None = None,
    auth_mode: str | None = None,
    auth: dict | None = None,
    secrets: dict | None = None,
    timeout_seconds: float | None = None,
    max_retries: int | None = None,
) -> Connection:
    """Change a connection. Secrets left out (or "***") are kept while the mode still uses them; a new base URL or
    auth clears the last check, which no longer says anything about the connection."""
    connection = Connection.objects.select_for_update().get(pk=connection.pk)
    before = _state(connection)
    changed = []
    if timeout_seconds is not None or max_retries is not None:
        connection.timeout_seconds = connection.timeout_seconds if timeout_seconds is None else timeout_seconds
        connection.max_retries = connection.max_retries if max_retries is None else max_retries
        _checked_limits(connection.timeout_seconds, connection.max_retries)
        changed += ["timeout_seconds", "max_retries"]
    reach = []
    if base_url is not None:
        connection.base_url = _checked_url(base_url)
        reach.append("base_url")
    if auth_mode is not None or auth is not None or secrets is not None:
        mode = auth_mode or connection.auth_mode
        kept_auth = connection.auth if auth is None and mode == connection.auth_mode else {}
        connection.auth = _checked_auth(mode, kept_auth if auth is None else auth)
        stored = connection.secrets if mode == connection.auth_mode else {}
        connection.secrets = _sealed_secrets(mode, connection.auth, secrets or {}, stored)
        connection.auth_mode = mode
        reach += ["auth_mode", "auth", "secrets"]
    if reach:
        connection.check_code, connection.checked_at = "", None
        reach += ["check_code", "checked_at"]
    connection.save(update_fields=[*changed, *reach, "updated_at"])
    audit(acting_user, AuditAction.CONNECTION_UPDATED, connection, before=before, after=_state(connection))
    return connection


@transaction.atomic(durable=True)
def do_delete_connection(connection: Connection, *, acting_user: AbstractBaseUser | None) -> None:
    """Refused with 409 `in_use` while a data source reads through it (details name them: delete those first)."""
    sources = sorted(
        DataSource.objects.filter(kind=DataSource.Kind.FHIR_SERVER, config__connection=connection.name).values_list(
            "name", flat=True
        )
    )
    if sources:
        raise StudioError(
            "in_use",
            f"The connection '{connection.name}' is read by the data sources {', '.join(sources)}; delete them first.",
            details={"sources": sources},
        )
    audit(acting_user, AuditAction.CONNECTION_DELETED, connection, before=_state(connection))
    connection.delete()


def do_test_connection(connection: Connection, *, acting_user: AbstractBaseUser | None) -> Diagnosis:
    """Ask the server for its metadata (outside any transaction: it may take the whole timeout), then keep what it
    said on the connection, with an audit row of the code."""
    try:
        found = diagnose(client_for(connection))
    except FhirError as error:  # a stored key that no longer loads, a bad algorithm
        found = Diagnosis(error.code, error.message)
    except secrets.SecretsKeyError as error:
        found = Diagnosis("invalid_auth", str(error))
    _save_diagnosis(connection, found, acting_user)
    return found


@transaction.atomic(durable=True)
def _save_diagnosis(connection: Connection, found: Diagnosis, acting_user: AbstractBaseUser | None) -> None:
    connection.check_code = found.code
    connection.check_message = found.message
    connection.checked_at = timezone.now()
    fields = ["check_code", "check_message", "checked_at"]
    if found.software or found.fhir_version:
        connection.software = found.software[:200]
        connection.fhir_version = found.fhir_version[:20]
        connection.resource_types = found.resource_types
        connection.interactions = found.interactions
        fields += ["software", "fhir_version", "resource_types", "interactions"]
    connection.save(update_fields=fields)
    audit(acting_user, AuditAction.CONNECTION_TESTED, connection, after={"code": found.code})


@dataclass(frozen=True)
class PushResult:
    """What a push did: `code` ok, entries_failed (a batch's entries failed on their own), or why nothing was kept
    (the server refused the transaction, or a transport or sign-in failure: the diagnosis codes)."""

    code: str
    message: str
    status: int | None = None
    entries: list[EntryResult] = field(default_factory=list)
    outcome: dict | None = None

    @property
    def ok(self) -> bool:
        return self.code == "ok"


def do_push_to_connection(
    connection: Connection,
    *,
    acting_user: AbstractBaseUser | None,
    output: dict,
    kind: str = "transaction",
    mapping_slug: str = "",
) -> PushResult:
    """Send a mapping's output (a resource or a Bundle) to the connection as one transaction or batch Bundle, then
    record it: an audit row with the counts, never the resources (they are PHI)."""
    bundle = as_bundle(output, kind)
    if not bundle["entry"]:
        raise StudioError("invalid", "Nothing to push: the output holds no resource.", details={"output": []})
    result = _pushed(connection, bundle, kind)
    _audit_push(connection, acting_user, result, kind=kind, sent=len(bundle["entry"]), mapping_slug=mapping_slug)
    return result


def _pushed(connection: Connection, bundle: dict, kind: str) -> PushResult:
    """What the server said to one Bundle (outside any transaction: it may take the whole timeout)."""
    try:
        response = getattr(client_for(connection), kind)(bundle)
    except FhirError as error:
        return PushResult(error.code, error.message, error.status, [], error.outcome)
    except secrets.SecretsKeyError as error:
        return PushResult("invalid_auth", str(error))
    entries = entry_results(response)
    failed = sum(not entry.ok for entry in entries)
    said = f"{len(entries) - failed} of {len(entries)} entries succeeded."
    return PushResult("entries_failed" if failed else "ok", said, 200, entries)


@dataclass(frozen=True)
class SamplePush:
    """One sample of a pushed test run: its case name and what the server said to its output (`render_failed` and
    the engine's errors when it rendered none: nothing was sent)."""

    case: str
    result: PushResult
    errors: list[dict] = field(default_factory=list)
    sent: int = 0  # entries sent

    @property
    def entries_failed(self) -> int:
        """Entries the server did not keep: those it refused, or all that were sent when it refused the Bundle."""
        if self.result.entries:
            return sum(not entry.ok for entry in self.result.entries)
        return 0 if self.result.ok else self.sent


def do_push_test_run(
    connection: Connection, run: TestRun, *, acting_user: AbstractBaseUser | None, kind: str = "transaction"
) -> list[SamplePush]:
    """Render the samples of a test run again with the run's version (or the draft, while it is still at the run's
    revision), exactly as the run did (mappings.samples.run_case), and send each output as its own Bundle; one audit
    row for the run with the counts, never the resources."""
    compiled = _compiled_for_run(run)
    names = [result["case"] for result in run.results]
    samples = {sample.name: sample for sample in run.mapping.samples.filter(name__in=names)}
    if not samples:
        raise StudioError("invalid", f"Test run {run.pk} has no sample left to push.", details={"test_run": []})
    if len(samples) > MAX_SAMPLES_PUSHED:
        raise StudioError(
            "invalid",
            f"A test run pushes at most {MAX_SAMPLES_PUSHED} samples; run a batch over them instead.",
            details={"test_run": [f"{len(samples)} samples"]},
        )
    registry = studio_registry()  # uploaded profiles an output names in meta.profile, as the run had them
    pushes = []
    for name in (name for name in names if name in samples):
        sample = samples[name]
        outcome = run_case(
            compiled, name, sample.payload, source_format=sample.source_format or None, registry=registry
        )
        output = outcome.result.output
        bundle = as_bundle(output, kind) if outcome.result.ok and isinstance(output, dict) else None
        if bundle is None or not bundle["entry"]:
            errors = [error.as_dict() for error in outcome.result.errors if error.fatal]
            said = "The sample did not render a FHIR output: nothing was sent." if errors else "Nothing to push."
            pushes.append(SamplePush(name, PushResult("render_failed" if errors else "empty", said), errors))
            continue
        pushes.append(SamplePush(name, _pushed(connection, bundle, kind), sent=len(bundle["entry"])))
    _audit_test_run_push(connection, acting_user, run, pushes, kind=kind)
    return pushes


def _compiled_for_run(run: TestRun) -> CompiledMapping:
    if run.version_id is not None:
        return compile_version(run.version)
    draft = Draft.objects.get(mapping_id=run.mapping_id)
    if draft.revision != run.draft_revision:
        raise StudioError(
            "conflict",
            f"The draft changed since test run {run.pk} (revision {run.draft_revision}, now {draft.revision}): run "
            "the tests again and push that run, or push a run of a published version.",
        )
    return compile_draft(run.mapping, draft=draft)


@transaction.atomic(durable=True)
def _audit_test_run_push(
    connection: Connection,
    acting_user: AbstractBaseUser | None,
    run: TestRun,
    pushes: list[SamplePush],
    *,
    kind: str,
) -> None:
    after = {
        "code": "ok" if all(push.result.ok for push in pushes) else "samples_failed",
        "kind": kind,
        "test_run": run.pk,
        "samples": len(pushes),
        "samples_failed": sum(not push.result.ok for push in pushes),
        "entries": sum(push.sent for push in pushes),
        "failed": sum(push.entries_failed for push in pushes),
    }
    audit(acting_user, AuditAction.CONNECTION_PUSHED, connection, mapping_slug=run.mapping.slug, after=after)


@transaction.atomic(durable=True)
def _audit_push(
    connection: Connection,
    acting_user: AbstractBaseUser | None,
    result: PushResult,
    *,
    kind: str,
    sent: int,
    mapping_slug: str,
) -> None:
    failed = sum(not entry.ok for entry in result.entries) if result.entries else (0 if result.ok else sent)
    after = {"code": result.code, "kind": kind, "entries": sent, "failed": failed, "status": result.status}
    audit(acting_user, AuditAction.CONNECTION_PUSHED, connection, mapping_slug=mapping_slug, after=after)
