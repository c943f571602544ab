"""Writing the message log (mappings/models/messages.py): a row per message a facade's $convert-data, a live source's
read or search, or a batch chunk ran. Facade requests add their row to a RowBuffer (one INSERT per 200 rows or 2
seconds, never a query of the request's own); a batch chunk writes its rows in one bulk write when it ends.

Business keys come from the raw text, not a second parse: MSH-10 and PID-3's first identifier are read off the MSH
and PID lines (the encoding characters of MSH-1/MSH-2), and when the source has no PID the output's first Patient
identifier is used. Converted messages keep their keys only; a failed one keeps its FS code, template line,
OperationOutcome and payload (up to PAYLOAD_CHARS) for reprocessing."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from django.db import DatabaseError
from django.utils import timezone

from mappings.caches import LRU
from mappings.engine import MappingError, MappingResult, operation_outcome
from mappings.models import (
    BatchChunk,
    BatchItem,
    Deployment,
    MappingVersion,
    MessageChannel,
    MessageStatus,
    ProcessedMessage,
)
from mappings.row_buffer import RowBuffer

logger = logging.getLogger(__name__)
PAYLOAD_CHARS = 256 * 1024  # a failed message's payload kept for reprocess; longer ones are kept cut, not runnable
COLUMNS = (
    "channel",
    "facade_slug",
    "batch_id",
    "mapping_slug",
    "version_number",
    "source_format",
    "message_control_id",
    "patient_identifier",
    "record_key",
    "status",
    "error_code",
    "error_line",
    "error_message",
    "outcome",
    "payload",
    "payload_truncated",
    "created_at",
)
buffer = RowBuffer(ProcessedMessage, COLUMNS, batch_rows=200, batch_seconds=2.0)
# (facade slug, mapping slug) of a live deployment, so a live read's row costs no query; a deployment's binding and
# version never change, and the version id in the key tells apart databases whose deployment ids repeat (tests).
_deployment_slugs: LRU[tuple[str, str]] = LRU(256)


# --- business keys ----------------------------------------------------------------------------------------------------


def hl7_keys(payload: str) -> tuple[str, str]:
    """(MSH-10, PID-3's first identifier) of an ER7 message, from its MSH and PID lines only; '' when absent."""
    start = payload.find("MSH")
    if start < 0 or len(payload) < start + 8:
        return "", ""
    field_sep = payload[start + 3]
    component_sep, repetition_sep = payload[start + 4], payload[start + 5]
    msh = _line_at(payload, start).split(field_sep)
    control_id = msh[9].strip() if len(msh) > 9 else ""  # MSH-1 is the separator itself: MSH-10 is the 10th split
    patient = ""
    for marker in ("\rPID" + field_sep, "\nPID" + field_sep):
        at = payload.find(marker, start)
        if at >= 0:
            pid = _line_at(payload, at + 1).split(field_sep)
            if len(pid) > 3:
                patient = pid[3].split(repetition_sep, 1)[0].split(component_sep, 1)[0].strip()
            break
    return control_id, patient


def _line_at(text: str, start: int) -> str:
    ends = [at for at in (text.find("\r", start), text.find("\n", start)) if at >= 0]
    return text[start : min(ends)] if ends else text[start:]


def output_patient_identifier(output: object) -> str:
    """The first identifier value of the output's first Patient (the resource itself, or a Bundle's entry)."""
    if not isinstance(output, dict):
        return ""
    resources: Iterable = [output]
    if output.get("resourceType") == "Bundle":
        resources = (entry.get("resource") for entry in output.get("entry") or () if isinstance(entry, dict))
    for resource in resources:
        if isinstance(resource, dict) and resource.get("resourceType") == "Patient":
            for identifier in resource.get("identifier") or ():
                if isinstance(identifier, dict) and identifier.get("value"):
                    return str(identifier["value"])
            return ""
    return ""


def business_keys(payload: str, source_format: str, output: object) -> tuple[str, str]:
    """(message control id, patient identifier) of a message and what it converted to."""
    control_id, patient = hl7_keys(payload) if source_format == "hl7v2" else ("", "")
    return control_id, patient or output_patient_identifier(output)


# --- rows -------------------------------------------------------------------------------------------------------------


def message_row(
    channel: str,
    *,
    mapping_slug: str,
    version_number: int | None,
    source_format: str,
    payload: str,
    output: object,
    errors: list[MappingError],
    outcome: dict | None = None,
    facade_slug: str = "",
    batch_id: int | None = None,
    record_key: str = "",
) -> tuple:
    """One log row in COLUMNS order: failed when `errors` holds a fatal error (its first is the row's code)."""
    control_id, patient = business_keys(payload, source_format, output)
    first = next((error for error in errors if error.fatal), None)
    failed = first is not None or output is None
    kept = payload[:PAYLOAD_CHARS] if failed else ""
    return (
        channel,
        facade_slug[:100],
        batch_id,
        mapping_slug[:100],
        version_number,
        source_format[:20],
        control_id[:200],
        patient[:255],
        record_key[:255],
        MessageStatus.FAILED if failed else MessageStatus.CONVERTED,
        first.code[:20] if first else "",
        first.line if first else None,
        first.message if first else "",
        (outcome or operation_outcome(errors)) if failed else None,
        kept.replace("\x00", "\ufffd"),  # PostgreSQL text holds no NUL; such a payload failed at the source stage
        failed and len(payload) > PAYLOAD_CHARS,
        timezone.now(),
    )


def record_convert(
    facade_slug: str, mapping_slug: str, version: MappingVersion, payload: str, result: MappingResult
) -> None:
    """A facade's $convert-data ran `version` (of `mapping_slug`) on `payload`."""
    source_format = version.engine_settings.get("source_format", "")
    row = message_row(
        MessageChannel.CONVERT,
        mapping_slug=mapping_slug,
        version_number=version.number,
        source_format=str(source_format),
        payload=payload,
        output=result.output,
        errors=result.errors,
        outcome=result.issues if not result.ok else None,
        facade_slug=facade_slug,
    )
    buffer.add(row)


def record_read(deployment: Deployment, payload: str, made: list[dict], errors: list[MappingError]) -> None:
    """A live source's record mapped for a read or search: converted when it made a resource of the bound type."""
    facade_slug, mapping_slug = _slugs(deployment)
    row = message_row(
        MessageChannel.READ,
        mapping_slug=mapping_slug,
        version_number=deployment.version.number,
        source_format=deployment.binding.source.source_format,
        payload=payload,
        output={"resourceType": "Bundle", "entry": [{"resource": resource} for resource in made]},
        errors=errors,
        facade_slug=facade_slug,
        record_key=str(made[0].get("id", "")) if made else "",
    )
    buffer.add(row)


def record_index_failure(deployment: Deployment, record_key: str, payload: str, errors: list[MappingError]) -> None:
    """A stored record that did not index. Records that index are not logged: every deploy indexes every record
    again, and the index itself says what each one made."""
    facade_slug, mapping_slug = _slugs(deployment)
    row = message_row(
        MessageChannel.INDEX,
        mapping_slug=mapping_slug,
        version_number=deployment.version.number,
        source_format=deployment.binding.source.source_format,
        payload=payload,
        output=None,
        errors=errors,
        facade_slug=facade_slug,
        record_key=record_key,
    )
    buffer.add(row)


def _slugs(deployment: Deployment) -> tuple[str, str]:
    def load() -> tuple[str, str]:
        binding = Deployment.objects.filter(pk=deployment.pk).values_list(
            "binding__facade__slug", "binding__mapping__slug"
        )
        return binding.get()

    return _deployment_slugs.get_or_build((deployment.pk, deployment.version_id, deployment.binding_id), load)


def flush() -> int:
    return buffer.flush()


def discard() -> None:
    buffer.discard()
    _deployment_slugs.clear()


# --- batches ----------------------------------------------------------------------------------------------------------


class BatchLog:
    """A batch chunk's log rows: each message's keys taken as it runs (add), written with one read of the chunk's
    items (their keys, and the errors of those that failed) once the chunk is recorded done (write)."""

    def __init__(self, chunk: BatchChunk) -> None:
        self.chunk = chunk
        self.keys: dict[int, tuple[str, str]] = {}

    def add(self, item_id: int, payload: str, source_format: str, result: MappingResult) -> None:
        self.keys[item_id] = business_keys(payload, source_format, result.output)

    def write(self) -> int:
        chunk, now = self.chunk, timezone.now()
        version = chunk.batch.version
        items = BatchItem.objects.filter(batch_id=chunk.batch_id, seq__gte=chunk.first_seq, seq__lte=chunk.last_seq)
        fields = ("pk", "key", "source_format", "status", "error_code", "error_line", "error_message", "issues")
        rows: dict[int, list] = {}
        for pk, key, source_format, status, code, line, message, issues in items.order_by("seq").values_list(*fields):
            control_id, patient = self.keys.get(pk, ("", ""))
            failed = status == BatchItem.Status.FAILED
            rows[pk] = [
                MessageChannel.BATCH, "", chunk.batch_id, version.mapping.slug, version.number, source_format,
                control_id[:200], patient[:255], key[:255],
                MessageStatus.FAILED if failed else MessageStatus.CONVERTED,
                code[:20] if failed else "", line if failed else None, message if failed else "",
                issues if failed else None, "", False, now,
            ]  # fmt: skip
        failed_ids = [pk for pk, row in rows.items() if row[9] == MessageStatus.FAILED]
        if failed_ids:
            self._add_payloads(rows, failed_ids)
        try:
            buffer.write([tuple(row) for row in rows.values()])
        except DatabaseError:  # the chunk is recorded done already: its log rows are lost, its messages are not
            logger.exception("could not write the message log rows of batch chunk %s", chunk.pk)
            return 0
        return len(rows)

    def _add_payloads(self, rows: dict[int, list], failed_ids: list[int]) -> None:
        """Failed messages' payloads (the item's, or its stored record's), and keys of those failed when split."""
        items = BatchItem.objects.filter(pk__in=failed_ids).values_list("pk", "payload", "record__payload")
        for pk, payload, record_payload in items:
            row, text = rows[pk], payload or record_payload or ""
            if not row[6] and not row[7]:  # failed when it was split: never run, so its keys were not read yet
                row[6], row[7] = (key[:255] for key in business_keys(text, row[5], None))
            row[14] = text[:PAYLOAD_CHARS].replace("\x00", "\ufffd")
            row[15] = len(text) > PAYLOAD_CHARS
