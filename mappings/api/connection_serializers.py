"""Request and response shapes of the connection endpoints (views in mappings/api/connections.py). Secrets go in,
never out: an answer says which secrets are set (`secrets_set`), not what they are."""

from __future__ import annotations

from rest_framework import serializers

from mappings.api.mapping_serializers import StrictCharField, storable_json
from mappings.engine import SOURCE_FORMATS
from mappings.models import AuthMode, Connection

AUTH_HELP = (
    "Settings that are not secret: basic → username; client-credentials → client_id, scope, token_url (default: from "
    ".well-known/smart-configuration); smart-backend → client_id, scope, token_url, key_id, algorithm (RS384|ES384)"
)
SECRETS_HELP = (
    "Write-only: basic → password; bearer → token; client-credentials → client_secret; smart-backend → private_key "
    '(PEM). Left out or "***": the stored one is kept'
)


class SecretsField(serializers.DictField):
    child = StrictCharField(allow_blank=True, trim_whitespace=False)
    default_validators = [storable_json]  # the keys too: jsonb holds no NUL


class ConnectionIn(serializers.Serializer):
    name = serializers.RegexField(r"^[a-z0-9][a-z0-9_-]{0,99}$", help_text="Lower-case letters, digits, - and _")
    base_url = serializers.URLField(max_length=500, help_text="The server's FHIR base, e.g. https://fhir.example/r4")
    auth_mode = serializers.ChoiceField(choices=AuthMode.choices, default=AuthMode.NONE)
    auth = serializers.DictField(
        child=StrictCharField(allow_blank=True), default=dict, validators=[storable_json], help_text=AUTH_HELP
    )
    secrets = SecretsField(default=dict, write_only=True, help_text=SECRETS_HELP)
    timeout_seconds = serializers.FloatField(min_value=0.1, max_value=300, default=30.0)
    max_retries = serializers.IntegerField(min_value=0, max_value=10, default=3)


class ConnectionPatch(serializers.Serializer):
    base_url = serializers.URLField(max_length=500, required=False)
    auth_mode = serializers.ChoiceField(choices=AuthMode.choices, required=False)
    auth = serializers.DictField(
        child=StrictCharField(allow_blank=True), required=False, validators=[storable_json], help_text=AUTH_HELP
    )
    secrets = SecretsField(required=False, write_only=True, help_text=SECRETS_HELP)
    timeout_seconds = serializers.FloatField(min_value=0.1, max_value=300, required=False)
    max_retries = serializers.IntegerField(min_value=0, max_value=10, required=False)


class DiagnosisOut(serializers.Serializer):
    code = serializers.CharField(
        help_text="ok, or what failed: host_refused, redirect_refused, dns_failed, refused, tls_failed, timeout, "
        "unreachable, unauthorized, invalid_auth, not_fhir, not_r4"
    )
    message = serializers.CharField()
    software = serializers.CharField()
    fhir_version = serializers.CharField()
    resource_types = serializers.ListField(child=serializers.CharField())
    interactions = serializers.DictField(child=serializers.ListField(child=serializers.CharField()))
    checked_at = serializers.DateTimeField(allow_null=True)


class ConnectionOut(serializers.ModelSerializer):
    secrets_set = serializers.ListField(
        child=serializers.CharField(), read_only=True, help_text="Which secrets are stored (never their values)"
    )
    check = serializers.SerializerMethodField(help_text="The last test; null before the first")

    class Meta:
        model = Connection
        fields = [
            "name",
            "base_url",
            "auth_mode",
            "auth",
            "secrets_set",
            "timeout_seconds",
            "max_retries",
            "check",
            "created_at",
            "updated_at",
        ]

    def get_check(self, connection: Connection) -> dict | None:
        if connection.checked_at is None:
            return None
        return DiagnosisOut(diagnosis_of(connection)).data


def diagnosis_of(connection: Connection) -> dict:
    return {
        "code": connection.check_code,
        "message": connection.check_message,
        "software": connection.software,
        "fhir_version": connection.fhir_version,
        "resource_types": connection.resource_types,
        "interactions": connection.interactions,
        "checked_at": connection.checked_at,
    }


class PushRequest(serializers.Serializer):
    kind = serializers.ChoiceField(choices=["transaction", "batch"], default="transaction")
    output = serializers.JSONField(
        required=False, help_text="A FHIR resource or Bundle to send (a render's output); or give mapping and payload"
    )
    mapping = serializers.SlugField(required=False, help_text="Render this mapping on `payload` and send the output")
    version = serializers.IntegerField(min_value=1, required=False, help_text="Its published version (default: draft)")
    payload = StrictCharField(required=False, allow_blank=True, trim_whitespace=False)
    source_format = serializers.ChoiceField(choices=SOURCE_FORMATS, required=False, allow_blank=True)
    test_run = serializers.IntegerField(
        min_value=1,
        max_value=2**63 - 1,
        required=False,
        help_text="A test run of `mapping`: its samples rendered again with the run's version and each output sent",
    )

    def validate(self, data: dict) -> dict:
        if ("output" in data) == ("mapping" in data):
            raise serializers.ValidationError("Give either output, or mapping with payload or test_run.")
        if "test_run" in data and ("payload" in data or "version" in data or "source_format" in data):
            raise serializers.ValidationError({"test_run": ["A test run brings its samples and version."]})
        if "mapping" in data and "payload" not in data and "test_run" not in data:
            raise serializers.ValidationError({"payload": ["A mapping needs a payload to render, or a test_run."]})
        if "output" in data and not isinstance(data["output"], dict):
            raise serializers.ValidationError({"output": ["Must be a FHIR resource or Bundle (a JSON object)."]})
        return data


class EntryResultOut(serializers.Serializer):
    status = serializers.CharField(help_text='As the server wrote it, e.g. "201 Created"')
    location = serializers.CharField()
    etag = serializers.CharField()
    outcome = serializers.JSONField(allow_null=True, help_text="The server's OperationOutcome for this entry")


PUSH_CODE_HELP = (
    "ok; entries_failed (batch entries failed on their own); or why nothing was kept: the server's refusal "
    "(bad_request, unprocessable, conflict, precondition_failed, server_error…) or a connection failure "
    "(host_refused, dns_failed, refused, tls_failed, timeout, unauthorized…)"
)


class SamplePushOut(serializers.Serializer):
    case = serializers.CharField(help_text="The sample's name")
    code = serializers.CharField(help_text=f"{PUSH_CODE_HELP}; render_failed or empty: nothing was sent")
    message = serializers.CharField()
    status = serializers.IntegerField(allow_null=True, help_text="The server's HTTP status, when it answered")
    entries = EntryResultOut(many=True, help_text="Per entry, in the order sent")
    outcome = serializers.JSONField(allow_null=True, help_text="The server's OperationOutcome for the whole Bundle")
    errors = serializers.ListField(child=serializers.JSONField(), help_text="The render's errors (render_failed)")


class PushOut(serializers.Serializer):
    code = serializers.CharField(help_text=f"{PUSH_CODE_HELP}; for a test run: ok or samples_failed")
    message = serializers.CharField()
    status = serializers.IntegerField(allow_null=True, help_text="The server's HTTP status, when it answered")
    entries = EntryResultOut(many=True, help_text="Per entry, in the order sent (a test run: in `samples`)")
    outcome = serializers.JSONField(allow_null=True, help_text="The server's OperationOutcome for the whole Bundle")
    samples = SamplePushOut(
        many=True, allow_null=True, required=False, help_text="A test run: each sample's push (null otherwise)"
    )
