"""The message log: one ProcessedMessage row per message a facade, a batch or $convert-data ran through a mapping,
with the business keys people search by (MSH-10, the patient's identifier, the source record's key), its status and,
when it failed, the FS code, template line, OperationOutcome and the payload (capped) so it can be reprocessed.
Converted messages keep their keys only, so the log stays small; rows older than the retention are purged."""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class MessageChannel(models.TextChoices):
    CONVERT = "facade-convert"  # a facade's $convert-data
    READ = "facade-read"  # a live (HTTP/SQL) source record mapped for a read or search
    BATCH = "batch"  # a batch conversion's message
    INDEX = "index"  # a stored record mapped while a deployment was indexed


class MessageStatus(models.TextChoices):
    CONVERTED = "converted"
    FAILED = "failed"


class ProcessedMessageQuerySet(models.QuerySet):
    def with_reprocessable(self) -> ProcessedMessageQuerySet:
        """Rows with `reprocessable`: failed, payload kept whole, and not yet reprocessed into a converted message
        (in the row's own query: a list reads neither the payloads nor the reprocessed rows one by one)."""
        converted = ProcessedMessage.objects.filter(
            reprocessed_from=models.OuterRef("pk"), status=MessageStatus.CONVERTED
        )
        runnable = models.Q(status=MessageStatus.FAILED, payload_truncated=False) & ~models.Q(payload="")
        return self.annotate(
            reprocessable=models.Case(
                models.When(runnable & ~models.Exists(converted), then=models.Value(True)),
                default=models.Value(False),
                output_field=models.BooleanField(),
            )
        )


class ProcessedMessage(models.Model):
    channel = models.CharField(max_length=20, choices=MessageChannel.choices)
    facade_slug = models.CharField(max_length=100, blank=True)
    batch_id = models.BigIntegerField(null=True, blank=True)  # not a foreign key: the log outlives a deleted batch
    mapping_slug = models.CharField(max_length=100)
    version_number = models.PositiveIntegerField(null=True, blank=True)
    source_format = models.CharField(max_length=20, blank=True)
    message_control_id = models.CharField(max_length=200, blank=True)  # MSH-10
    patient_identifier = models.CharField(max_length=255, blank=True)  # PID-3's first id, or the Patient's
    record_key = models.CharField(max_length=255, blank=True)  # the source's key: a record key, file#n, a live id
    status = models.CharField(max_length=10, choices=MessageStatus.choices)
    error_code = models.CharField(max_length=20, blank=True)
    error_line = models.PositiveIntegerField(null=True, blank=True)  # the template line, when the engine knows it
    error_message = models.TextField(blank=True)
    outcome = models.JSONField(null=True, blank=True)  # the OperationOutcome, failed messages only
    payload = models.TextField(blank=True)  # failed messages only: what reprocess runs again
    payload_truncated = models.BooleanField(default=False)  # over the cap: kept for reading, not reprocessable
    created_at = models.DateTimeField(default=timezone.now)
    reprocessed_from = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="reprocessed"
    )

    objects = ProcessedMessageQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        # One index per search the page offers that a scan by date would not answer quickly; each costs every insert.
        indexes = [
            models.Index(fields=["-created_at", "-id"], name="message_created"),
            models.Index(fields=["message_control_id"], name="message_control_id"),
            models.Index(fields=["patient_identifier"], name="message_patient"),
            models.Index(fields=["record_key"], name="message_record_key"),
            models.Index(fields=["status", "-created_at"], name="message_status"),
            models.Index(fields=["mapping_slug", "-created_at"], name="message_mapping"),
            models.Index(fields=["batch_id"], name="message_batch"),
        ]

    def __str__(self) -> str:
        return f"{self.channel} {self.mapping_slug} {self.status} #{self.pk}"
