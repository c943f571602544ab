"""Request and response shapes of the batch endpoints (views in mappings/api/batches.py)."""

from __future__ import annotations

import json

from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.fields import empty

from mappings.api.mapping_serializers import StrictCharField, VersionNumberField, storable_json
from mappings.models import BatchItem, BatchJob, JobStatus


def _no_nul(value: str) -> None:
    if "\x00" in value:  # PostgreSQL stores no NUL: bad input, not a 500
        raise serializers.ValidationError("Must not contain a NUL character.")


class FormBooleanField(serializers.BooleanField):
    """A boolean that keeps its default when a multipart form leaves it out (DRF's reads that as false)."""

    default_empty_html = empty


class PullExportIn(serializers.Serializer):
    type = serializers.CharField(max_length=2000, required=False, allow_blank=True, help_text="_type: Patient,...")
    level = serializers.CharField(
        max_length=200, required=False, allow_blank=True, help_text="'' (system), Patient or Group/{id}"
    )


class PullIn(serializers.Serializer):
    """Resources pulled from a connection: a search (resource_type, params) or a bulk export (export)."""

    connection = serializers.SlugField(max_length=100, help_text="A connection's name")
    resource_type = serializers.CharField(max_length=64, required=False, help_text="The type to search")
    params = serializers.DictField(
        required=False, validators=[storable_json], help_text="Search parameters: name → value or list of values"
    )
    export = PullExportIn(required=False, help_text="A Bulk Data export of the server instead of a search")

    def validate(self, data: dict) -> dict:
        if ("export" in data) == ("resource_type" in data):
            raise serializers.ValidationError("Give resource_type (a search) or export (a bulk export), not both.")
        return data


@extend_schema_field(
    {
        "oneOf": [
            {"type": "string", "description": "A stored data source's name"},
            {
                "type": "object",
                "description": "Resources pulled from a connection: a search, or a bulk export",
                "properties": {
                    "connection": {"type": "string"},
                    "resource_type": {"type": "string"},
                    "params": {"type": "object", "additionalProperties": True},
                    "export": {
                        "type": "object",
                        "properties": {"type": {"type": "string"}, "level": {"type": "string"}},
                    },
                },
                "required": ["connection"],
            },
        ]
    }
)
class BatchSourceField(serializers.Field):
    """`source`: a stored data source's name, or {connection, ...}: resources pulled from a connection."""

    def to_internal_value(self, data: object) -> str | dict:
        if isinstance(data, str):
            return serializers.SlugField(max_length=100).run_validation(data)
        if isinstance(data, dict):
            pull = PullIn(data=data)
            pull.is_valid(raise_exception=True)
            return dict(pull.validated_data)
        raise serializers.ValidationError("A stored source's name, or {connection, resource_type | export}.")

    def to_representation(self, value: object) -> object:
        return value


class PushToIn(serializers.Serializer):
    connection = serializers.SlugField(max_length=100, help_text="A connection's name")
    kind = serializers.ChoiceField(choices=[("transaction", "transaction"), ("batch", "batch")], default="transaction")


@extend_schema_field(PushToIn)
class PushToField(serializers.Field):
    """`push_to`: {connection, kind}, as JSON, or as a JSON text in a multipart form (next to the files)."""

    def to_internal_value(self, data: object) -> dict:
        if isinstance(data, str):
            try:
                data = json.loads(data)
            except ValueError:
                raise serializers.ValidationError("push_to is a JSON object: {connection, kind}.") from None
        push_to = PushToIn(data=data)
        push_to.is_valid(raise_exception=True)
        return dict(push_to.validated_data)

    def to_representation(self, value: object) -> object:
        return value


class BatchIn(serializers.Serializer):
    """multipart/form-data with `files`, or JSON with `source` (a stored source, or a pull from a connection)."""

    mapping = serializers.SlugField(max_length=100, help_text="The mapping's slug")
    version = VersionNumberField(required=False, help_text="A published version number (default: the latest)")
    files = serializers.ListField(
        child=serializers.FileField(allow_empty_file=True),
        required=False,
        help_text="One or more files (multipart): HL7 v2 files of many messages (FHS/BHS, MLLP too), NDJSON, JSON "
        "arrays, CSV (a row a message), or zips of those",
    )
    source = BatchSourceField(
        required=False,
        help_text="A stored data source's name, or {connection, resource_type, params} (a search of a connection) "
        "or {connection, export: {type, level}} (a bulk export of it): each resource pulled is a message",
    )
    push_to = PushToField(
        required=False,
        help_text="Send each converted output to a connection as its own transaction (or batch) Bundle; what the "
        "server refuses joins the dead-letter list with its OperationOutcome (code push_refused or push_unreachable)",
    )
    validate = FormBooleanField(required=False, default=True, help_text="Validate every output (default true)")
    key_column = StrictCharField(
        max_length=200,
        required=False,
        validators=[_no_nul],
        help_text="CSV: the column whose value names each row (default: the row's number)",
    )

    # Not in validate(): a field of that name takes the method's place.
    def to_internal_value(self, data: object) -> dict:
        data = super().to_internal_value(data)
        if bool(data.get("files")) == bool(data.get("source")):
            raise serializers.ValidationError(
                {"files": ["Send one or more files, or name a stored source in `source` (not both)."]}
            )
        return data


class ReprocessIn(serializers.Serializer):
    version = VersionNumberField(
        required=False, help_text="A version of the batch's mapping (default: its latest published version)"
    )


class BatchQuery(serializers.Serializer):
    mapping = serializers.SlugField(max_length=100, required=False)
    status = serializers.ChoiceField(choices=JobStatus.choices, required=False)


class ResultsQuery(serializers.Serializer):
    format = serializers.ChoiceField(
        choices=[("ndjson", "ndjson"), ("bundles", "bundles"), ("push", "push")],
        default="ndjson",
        help_text="ndjson: every resource on its own line (Bundle entries flattened); bundles: every output as it "
        "came out of the mapping, one per line; push: what the push_to server answered for each message pushed "
        "(as /pushes/ lists them), one per line",
    )


class PushesQuery(serializers.Serializer):
    failed = serializers.BooleanField(
        required=False, allow_null=True, default=None, help_text="true: only the messages the server did not keep whole"
    )


class PushSummaryOut(serializers.Serializer):
    messages = serializers.IntegerField(help_text="Messages sent to the push_to connection")
    refused = serializers.IntegerField(help_text="Messages the server did not keep whole (in the dead-letter list)")
    entries_created = serializers.IntegerField(help_text="Entries the server answered 201")
    entries_updated = serializers.IntegerField(help_text="Entries answered another 2xx (an update, a match)")
    entries_failed = serializers.IntegerField(help_text="Entries refused, or not kept because their transaction was")


class InputOut(serializers.Serializer):
    name = serializers.CharField()
    bytes = serializers.IntegerField()
    messages = serializers.IntegerField(allow_null=True, help_text="Found by the split (null until it ran)")


class BatchOut(serializers.ModelSerializer):
    """A batch; serializes rows of `with_counts(...)` (mappings/api/batches.py), which sum their chunks' counts."""

    mapping = serializers.CharField(source="version.mapping.slug")
    version = serializers.IntegerField(source="version.number")
    source = serializers.CharField(source="source.name", allow_null=True, default=None)
    pull = serializers.JSONField(help_text="What was pulled from a connection ({} for files or a stored source)")
    push_to = serializers.JSONField(help_text="Where outputs are pushed ({} when nowhere)")
    created_by = serializers.CharField(source="created_by.username", allow_null=True, default=None)
    reprocess_of = serializers.IntegerField(source="reprocess_of_id", allow_null=True)
    inputs = serializers.SerializerMethodField()
    done = serializers.IntegerField(source="done_count", help_text="Messages converted")
    failed = serializers.IntegerField(source="failed_count", help_text="Messages that did not convert")
    pending = serializers.SerializerMethodField(help_text="Messages not converted yet")
    rate = serializers.SerializerMethodField(help_text="Messages per second since the batch started")
    eta_seconds = serializers.SerializerMethodField(help_text="Time left at the current rate (null unless running)")
    push = serializers.SerializerMethodField(help_text="What the pushes did, summed (null without push_to)")
    urls = serializers.SerializerMethodField()

    class Meta:
        model = BatchJob
        fields = [
            "id",
            "status",
            "mapping",
            "version",
            "source",
            "pull",
            "push_to",
            "inputs",
            "validate",
            "reprocess_of",
            "total",
            "done",
            "failed",
            "pending",
            "rate",
            "eta_seconds",
            "error",
            "created_by",
            "created_at",
            "started_at",
            "finished_at",
            "push",
            "urls",
        ]

    @extend_schema_field(InputOut(many=True))
    def get_inputs(self, batch: BatchJob) -> list[dict]:
        return [
            {"name": spec.get("name", ""), "bytes": spec.get("bytes", 0), "messages": spec.get("messages")}
            for spec in batch.inputs
        ]

    def get_pending(self, batch: BatchJob) -> int:
        return max(0, batch.total - batch.done_count - batch.failed_count)

    @extend_schema_field(serializers.FloatField(allow_null=True))
    def get_rate(self, batch: BatchJob) -> float | None:
        if batch.started_at is None:
            return None
        seconds = ((batch.finished_at or timezone.now()) - batch.started_at).total_seconds()
        return round((batch.done_count + batch.failed_count) / seconds, 1) if seconds > 0 else None

    @extend_schema_field(serializers.IntegerField(allow_null=True))
    def get_eta_seconds(self, batch: BatchJob) -> int | None:
        rate = self.get_rate(batch)
        if batch.status != JobStatus.RUNNING or not rate:
            return None
        return round(self.get_pending(batch) / rate)

    @extend_schema_field(PushSummaryOut(allow_null=True))
    def get_push(self, batch: BatchJob) -> dict | None:
        if not batch.push_to:
            return None
        return {
            "messages": batch.pushed_count,
            "refused": batch.push_failed_count,
            "entries_created": batch.entries_created_count,
            "entries_updated": batch.entries_updated_count,
            "entries_failed": batch.entries_failed_count,
        }

    @extend_schema_field(serializers.DictField(child=serializers.CharField()))
    def get_urls(self, batch: BatchJob) -> dict[str, str]:
        base = f"/api/batches/{batch.pk}/"
        urls = {
            "self": base,
            "failures": f"{base}failures/",
            "results_ndjson": f"{base}results?format=ndjson",
            "results_bundles": f"{base}results?format=bundles",
        }
        if batch.push_to:
            urls |= {"pushes": f"{base}pushes/", "push_results": f"{base}results?format=push"}
        return urls


class FailureOut(serializers.ModelSerializer):
    """A message that did not convert (the dead-letter list)."""

    code = serializers.CharField(
        source="error_code", help_text="The engine's FS code, or push_refused / push_unreachable (the server's answer)"
    )
    message = serializers.CharField(source="error_message")
    line = serializers.IntegerField(source="error_line", allow_null=True, help_text="The template line, when known")
    template = serializers.SerializerMethodField(help_text="The template or snippet of that line")
    payload_url = serializers.SerializerMethodField()

    class Meta:
        model = BatchItem
        fields = ["seq", "key", "origin", "code", "message", "line", "template", "issues", "payload_url"]

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_template(self, item: BatchItem) -> str | None:
        return template_of(item.issues)

    def get_payload_url(self, item: BatchItem) -> str:
        return f"/api/batches/{item.batch_id}/items/{item.seq}/payload"


def template_of(outcome: dict | None) -> str | None:
    """The template named by the first error of an OperationOutcome (the engine's location extension)."""
    for issue in (outcome or {}).get("issue", []):
        if issue.get("severity") not in ("error", "fatal"):
            continue
        for extension in issue.get("extension", []):
            for part in extension.get("extension", []):
                if part.get("url") == "template":
                    return part.get("valueString")
        return None
    return None


class PushedEntryOut(serializers.Serializer):
    number = serializers.IntegerField(help_text="The entry's place in the Bundle sent, from 0")
    status = serializers.CharField(help_text='As the server wrote it, e.g. "201 Created"')
    location = serializers.CharField(help_text="Type/id/_history/version of what the server created or updated")
    etag = serializers.CharField()
    outcome = serializers.JSONField(allow_null=True, help_text="The server's OperationOutcome, for a failed entry")


class PushedMessageOut(serializers.ModelSerializer):
    """A message pushed to the batch's push_to connection and what the server answered, entry by entry."""

    code = serializers.SerializerMethodField(
        help_text="ok; entries_failed (a batch Bundle's entries failed on their own); push_refused (the server "
        "refused the whole Bundle: its outcome is in the dead-letter list) or push_unreachable"
    )
    status = serializers.SerializerMethodField(help_text="The server's HTTP status for the Bundle, when it answered")
    entries = serializers.SerializerMethodField()
    more = serializers.SerializerMethodField(help_text="Entries past the ones kept (a message keeps at most 1,000)")
    payload_url = serializers.SerializerMethodField()

    class Meta:
        model = BatchItem
        fields = ["seq", "key", "code", "status", "entries", "more", "payload_url"]

    def get_code(self, item: BatchItem) -> str:
        return item.push.get("code", "")

    @extend_schema_field(serializers.IntegerField(allow_null=True))
    def get_status(self, item: BatchItem) -> int | None:
        return item.push.get("status")

    @extend_schema_field(PushedEntryOut(many=True))
    def get_entries(self, item: BatchItem) -> list[dict]:
        return expanded_entries(item.push)

    def get_more(self, item: BatchItem) -> int:
        return item.push.get("more", 0)

    def get_payload_url(self, item: BatchItem) -> str:
        return f"/api/batches/{item.batch_id}/items/{item.seq}/payload"


def expanded_entries(push: dict) -> list[dict]:
    """BatchItem.push's compact entries ([status, location, etag(, outcome)]) as the API shows them."""
    return [
        {
            "number": number,
            "status": row[0],
            "location": row[1],
            "etag": row[2],
            "outcome": row[3] if len(row) > 3 else None,
        }
        for number, row in enumerate(push.get("entries") or [])
    ]
