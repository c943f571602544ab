"""Writes to the message log beyond its own rows: reprocessing a failed message and purging old ones.

Reprocess runs the message's kept payload through its mapping's latest published version (a fix is published, then
its failures are run again, before or without a deploy), validating the output as the studio does, with the
variables of the facade's live deployment for a live source's or index's record; the new row points at the one it
reprocesses. The engine runs first, outside the transaction that records the outcome."""

from __future__ import annotations

from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction

from mappings.actions.common import audit
from mappings.compiling import compile_version
from mappings.conf import engine_limits
from mappings.engine import MappingResult, run_mapping
from mappings.errors import StudioError
from mappings.message_log import COLUMNS, message_row
from mappings.models import AuditAction, Deployment, MappingVersion, MessageChannel, MessageStatus, ProcessedMessage
from mappings.profiles import studio_registry


def do_reprocess_message(
    message: ProcessedMessage, *, acting_user: AbstractBaseUser | None
) -> tuple[ProcessedMessage, MappingResult]:
    """Run a failed message again; returns the new log row and the engine's result (output or OperationOutcome).
    Refused with 409 `conflict` when the message converted, was already reprocessed into a converted one, has no
    payload kept (cut at the cap), or its mapping has no published version."""
    _check_reprocessable(message)
    version = MappingVersion.objects.filter(mapping__slug=message.mapping_slug).order_by("-number").first()
    if version is None:
        raise StudioError(
            "conflict", f"'{message.mapping_slug}' has no published version to run the message with.", status_code=409
        )
    result = run_mapping(
        compile_version(version),
        message.payload,
        source_format=message.source_format or version.engine_settings.get("source_format", ""),
        limits=engine_limits(),
        registry=studio_registry(),
        variables=_facade_variables(message),
    )
    return _record_reprocess(message, version, result, acting_user), result


def _facade_variables(message: ProcessedMessage) -> dict:
    """A live source's or index's record runs with the variables its facade's live deployment of the mapping has
    (a code system, a site id…), as the facade would run it; other messages run with none, as they did."""
    if message.channel not in (MessageChannel.READ, MessageChannel.INDEX):
        return {}
    live = Deployment.objects.live().filter(
        binding__facade__slug=message.facade_slug, binding__mapping__slug=message.mapping_slug
    )
    return live.order_by("-pk").values_list("variables", flat=True).first() or {}


def _check_reprocessable(message: ProcessedMessage) -> None:
    if message.status != MessageStatus.FAILED:
        raise StudioError(
            "conflict", f"Message {message.pk} converted: only failed ones are reprocessed.", status_code=409
        )
    if not message.payload or message.payload_truncated:
        raise StudioError(
            "conflict",
            f"Message {message.pk}'s payload was not kept whole (over the log's cap), so it cannot be run again.",
            status_code=409,
        )
    done = message.reprocessed.filter(status=MessageStatus.CONVERTED).values_list("pk", flat=True).first()
    if done is not None:
        raise StudioError(
            "conflict", f"Message {message.pk} was already reprocessed: message {done} converted.", status_code=409
        )


@transaction.atomic(durable=True)
def _record_reprocess(
    message: ProcessedMessage, version: MappingVersion, result: MappingResult, acting_user: AbstractBaseUser | None
) -> ProcessedMessage:
    row = message_row(
        message.channel,
        mapping_slug=message.mapping_slug,
        version_number=version.number,
        source_format=message.source_format,
        payload=message.payload,
        output=result.output,
        errors=result.errors,
        outcome=None if result.ok else result.issues,
        facade_slug=message.facade_slug,
        batch_id=message.batch_id,
        record_key=message.record_key,
    )
    created = ProcessedMessage.objects.create(**dict(zip(COLUMNS, row, strict=True)), reprocessed_from=message)
    again = ProcessedMessage.objects.with_reprocessable().get(pk=created.pk)
    audit(
        acting_user,
        AuditAction.MESSAGE_REPROCESSED,
        again,
        mapping_slug=message.mapping_slug,
        before={"message": message.pk, "status": message.status, "code": message.error_code},
        after={"message": again.pk, "status": again.status, "code": again.error_code, "version": version.number},
    )
    return again


@transaction.atomic(durable=True)
def do_purge_messages(before: datetime, *, acting_user: AbstractBaseUser | None) -> int:
    """Delete the log rows older than `before` (failed ones hold patient data); one audit row when any went."""
    old = ProcessedMessage.objects.filter(created_at__lt=before)
    # The ORM's delete() loads every row to apply on_delete to reprocessed_from; done here as two statements instead.
    ProcessedMessage.objects.filter(reprocessed_from__in=old).update(reprocessed_from=None)
    with connection.cursor() as cursor:
        table = ProcessedMessage._meta.db_table
        cursor.execute(f"DELETE FROM {table} WHERE created_at < %s", [connection.ops.adapt_datetimefield_value(before)])
        deleted = cursor.rowcount
    if deleted:
        audit(
            acting_user,
            AuditAction.MESSAGES_PURGED,
            ProcessedMessage(),
            after={"deleted": deleted},
            older_than=before.isoformat(),
        )
    return deleted
