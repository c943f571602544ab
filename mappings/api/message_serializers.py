"""Request and response shapes of the message log endpoints (views in mappings/api/messages.py)."""

from __future__ import annotations

from rest_framework import serializers

from mappings.models import MessageChannel, MessageStatus


class MessageQuery(serializers.Serializer):
    """The log's filters; every one optional, all of them ANDed."""

    status = serializers.ChoiceField(choices=MessageStatus.choices, required=False)
    channel = serializers.ChoiceField(choices=MessageChannel.choices, required=False)
    facade = serializers.CharField(max_length=100, required=False, help_text="A facade's slug")
    batch = serializers.IntegerField(min_value=1, max_value=2**63 - 1, required=False, help_text="A batch's id")
    mapping = serializers.CharField(max_length=100, required=False, help_text="A mapping's slug")
    message_control_id = serializers.CharField(max_length=200, required=False, help_text="MSH-10, exactly")
    patient_identifier = serializers.CharField(
        max_length=255, required=False, help_text="PID-3's first identifier (or the output Patient's), exactly"
    )
    record_key = serializers.CharField(max_length=255, required=False, help_text="The source record's key, exactly")
    code = serializers.CharField(
        max_length=20, required=False, help_text="An FS code, or its start: FS-VAL finds every validation failure"
    )
    since = serializers.DateTimeField(required=False, help_text="Processed at or after (ISO 8601)")
    until = serializers.DateTimeField(required=False, help_text="Processed before (ISO 8601)")

    def validate(self, data: dict) -> dict:
        if "since" in data and "until" in data and data["since"] >= data["until"]:
            raise serializers.ValidationError({"until": ["Must be later than since."]})
        return data


class MessageOut(serializers.Serializer):
    id = serializers.IntegerField()
    channel = serializers.CharField(help_text="facade-convert, facade-read, batch or index")
    facade = serializers.CharField(source="facade_slug", help_text="The facade's slug ('' for a batch)")
    batch = serializers.IntegerField(source="batch_id", allow_null=True)
    mapping = serializers.CharField(source="mapping_slug")
    version = serializers.IntegerField(source="version_number", allow_null=True)
    source_format = serializers.CharField()
    message_control_id = serializers.CharField(help_text="MSH-10 ('' when the source is not HL7 v2)")
    patient_identifier = serializers.CharField()
    record_key = serializers.CharField()
    status = serializers.CharField(help_text="converted or failed")
    error_code = serializers.CharField(help_text="The first error's FS code ('' when converted)")
    error_line = serializers.IntegerField(allow_null=True, help_text="The template line of that error, when known")
    error_message = serializers.CharField()
    created_at = serializers.DateTimeField()
    reprocessed_from = serializers.IntegerField(source="reprocessed_from_id", allow_null=True)
    reprocessable = serializers.BooleanField(
        help_text="Failed, its payload kept whole, not yet reprocessed into a converted message: POST …/reprocess "
        "runs it again"
    )


class MessageDetailOut(MessageOut):
    outcome = serializers.JSONField(allow_null=True, help_text="The OperationOutcome of a failed message")
    payload = serializers.CharField(help_text="A failed message's payload (cut at 256 KiB); '' when converted")
    payload_truncated = serializers.BooleanField()
    reprocessed = serializers.SerializerMethodField(help_text="Ids of the messages that reprocessed this one")

    def get_reprocessed(self, message: object) -> list[int]:
        return list(message.reprocessed.order_by("pk").values_list("pk", flat=True))


class ReprocessOut(serializers.Serializer):
    message = MessageDetailOut(help_text="The new log row, linked by reprocessed_from")
    output = serializers.JSONField(allow_null=True, help_text="The FHIR output, when it converted")
    outcome = serializers.JSONField(help_text="The OperationOutcome: errors when it failed, warnings otherwise")
