"""Request and response shapes of the facade endpoints (views in mappings/api/facades.py)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from mappings import secrets
from mappings.api.mapping_serializers import StrictCharField, StrictSlugField, VersionNumberField, storable_json
from mappings.engine import SOURCE_FORMATS, MappingError, split_messages
from mappings.fhir_types import R4_RESOURCE_TYPES, is_r4_resource_type, unknown_type_message
from mappings.models import DataSource, Deployment, Facade, ResourceBinding
from mappings.security import introspection

RESOURCE_TYPE = r"^[A-Z][A-Za-z]{1,63}$"


CONVERT_TEMPLATES_HELP = (
    "$convert-data runs the mappings bound to the facade and those named here: {name a client sends as rootTemplate "
    'or mapping: mapping slug}, e.g. Azure\'s root template names {"ADT_A01": "hl7v2-adt-a01"}'
)


class ConvertTemplatesField(serializers.DictField):
    child = StrictSlugField(max_length=100)

    def to_internal_value(self, data: object) -> dict:
        value = super().to_internal_value(data)
        if any(not name or len(name) > 100 or "\x00" in name for name in value):
            raise serializers.ValidationError("Names are 1 to 100 characters.")
        return value


class IntrospectionSettings(serializers.Serializer):
    """auth_mode "introspection": the external authorization server's RFC 7662 endpoint and the studio's credentials
    there. The URL's host must be in FHIR_STUDIO_INTROSPECTION_ALLOWED_HOSTS. The secret is stored encrypted and shown
    as "***"; sending "***" back (or leaving it out) keeps it."""

    url = serializers.URLField(max_length=500, required=False, help_text="The introspection endpoint (https://…)")
    client_id = StrictCharField(max_length=200, required=False, help_text="The studio's client id at that server")
    client_secret = StrictCharField(max_length=500, required=False, help_text='Write-only: shown as "***" when set')
    audience = StrictCharField(
        max_length=500,
        required=False,
        allow_blank=True,
        help_text="The `aud` a token must name when it names one (blank: the facade's base URL)",
    )
    timeout_s = serializers.FloatField(
        min_value=0.1,
        max_value=introspection.MAX_TIMEOUT_S,
        required=False,
        help_text="How long to wait for the server (5 s by default); past it the request gets a 503",
    )


class FacadeIn(serializers.Serializer):
    slug = StrictSlugField(max_length=100)
    title = StrictCharField(max_length=200)
    auth_mode = serializers.ChoiceField(choices=Facade.AuthMode.choices, default=Facade.AuthMode.OPEN)
    convert_templates = ConvertTemplatesField(required=False, default=dict, help_text=CONVERT_TEMPLATES_HELP)
    introspection = IntrospectionSettings(required=False, help_text="Required for auth_mode introspection")


class FacadePatch(serializers.Serializer):
    title = StrictCharField(max_length=200, required=False)
    status = serializers.ChoiceField(choices=Facade.Status.choices, required=False)
    convert_templates = ConvertTemplatesField(required=False, help_text=CONVERT_TEMPLATES_HELP)
    introspection = IntrospectionSettings(required=False, help_text="Changes to an introspection facade's settings")


class DeploymentOut(serializers.ModelSerializer):
    resource_type = serializers.CharField(source="binding.resource_type")
    mapping = serializers.CharField(source="version.mapping.slug")
    version = serializers.IntegerField(source="version.number")
    deployed_by = serializers.CharField(source="deployed_by.username", allow_null=True, default=None)
    rollback_of = serializers.IntegerField(source="rollback_of_id", allow_null=True)

    class Meta:
        model = Deployment
        fields = [
            "id",
            "resource_type",
            "mapping",
            "version",
            "variables",
            "deployed_by",
            "deployed_at",
            "rollback_of",
            "ready",
            "indexed",
            "index_errors",
        ]


def _deployment(deployment: Deployment | None) -> dict | None:
    return DeploymentOut(deployment).data if deployment else None


class BindingOut(serializers.ModelSerializer):
    """A binding; serializes rows of `ResourceBinding.objects.with_deployments()` (other rows cost a query each)."""

    mapping = serializers.CharField(source="mapping.slug")
    mapping_title = serializers.CharField(source="mapping.title")
    source = serializers.CharField(source="source.name")
    live = serializers.SerializerMethodField(
        help_text="The deployment that serves: the newest that finished indexing (null before the first is ready)"
    )
    pending = serializers.SerializerMethodField(
        help_text="The newest deployment still indexing, which serves once it is ready (null: none)"
    )
    rollback_to = serializers.IntegerField(
        source="rollback_version",
        allow_null=True,
        help_text="The version a rollback deploys again: the one deployed before the newest (null: none)",
    )

    class Meta:
        model = ResourceBinding
        fields = ["resource_type", "mapping", "mapping_title", "source", "live", "pending", "rollback_to"]

    @extend_schema_field(DeploymentOut(allow_null=True))
    def get_live(self, binding: ResourceBinding) -> dict | None:
        return _deployment(binding.live_deployment)

    @extend_schema_field(DeploymentOut(allow_null=True))
    def get_pending(self, binding: ResourceBinding) -> dict | None:
        return _deployment(binding.pending_deployment)


class ServedBindingOut(BindingOut):
    """A binding with its facade, for lists across facades (which facade serves a mapping, and which version)."""

    facade = serializers.CharField(source="facade.slug")
    facade_title = serializers.CharField(source="facade.title")

    class Meta(BindingOut.Meta):
        fields = ["facade", "facade_title", *BindingOut.Meta.fields]


class BindingQuery(serializers.Serializer):
    mapping = StrictSlugField(max_length=100, required=False, help_text="Only bindings served by this mapping")


class FacadeOut(serializers.ModelSerializer):
    base_url = serializers.SerializerMethodField()
    bindings = BindingOut(many=True)
    introspection = serializers.SerializerMethodField(
        help_text='auth_mode introspection: its settings, the secret as "***" (null for other modes)'
    )

    class Meta:
        model = Facade
        fields = [
            "slug",
            "title",
            "status",
            "auth_mode",
            "convert_templates",
            "introspection",
            "base_url",
            "created_at",
            "updated_at",
            "bindings",
        ]

    @extend_schema_field(IntrospectionSettings(allow_null=True))
    def get_introspection(self, facade: Facade) -> dict | None:
        return introspection.shown(facade)

    def get_base_url(self, facade: Facade) -> str:
        request = self.context.get("request")
        path = f"/fhir/{facade.slug}/"
        return request.build_absolute_uri(path) if request else path


class ResourceTypeField(serializers.ChoiceField):
    """One of FHIR R4's resource types, with the nearest one suggested for a typo."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(choices=R4_RESOURCE_TYPES, help_text="A FHIR R4 (4.0.1) resource type", **kwargs)

    def to_internal_value(self, data: object) -> str:
        if isinstance(data, str) and not is_r4_resource_type(data):
            raise serializers.ValidationError(unknown_type_message(data), code="invalid")
        return super().to_internal_value(data)


class BindingIn(serializers.Serializer):
    resource_type = ResourceTypeField()
    mapping = StrictSlugField(max_length=100)
    source = StrictSlugField(max_length=100)


class DeployIn(serializers.Serializer):
    resource_type = serializers.RegexField(RESOURCE_TYPE)
    version = VersionNumberField(help_text="The published version of the bound mapping to make live")
    variables = serializers.DictField(
        required=False, default=dict, validators=[storable_json], help_text="Read by templates as `vars`"
    )


class RollbackIn(serializers.Serializer):
    resource_type = serializers.RegexField(RESOURCE_TYPE)


class DataSourceIn(serializers.Serializer):
    name = StrictSlugField(max_length=100)
    source_format = serializers.ChoiceField(choices=SOURCE_FORMATS)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    kind = serializers.ChoiceField(choices=DataSource.Kind.choices, default=DataSource.Kind.STORED)
    config = serializers.DictField(
        required=False,
        default=dict,
        validators=[storable_json],
        help_text="http: base_url, read_path, search_path (placeholders like {id}, {family}), search {FHIR param: "
        "placeholder}, headers, auth {type: basic|bearer, …}, timeout_s, retries, records_key. sql: database (a name "
        "from FHIR_STUDIO_SQL_SOURCES), read_query and search_query with %(id)s-style parameters, search.",
    )


class DataSourceUpdate(serializers.Serializer):
    description = serializers.CharField(required=False, allow_blank=True)
    config = serializers.DictField(
        required=False,
        validators=[storable_json],
        help_text=f"The whole settings (as in DataSourceIn). Credentials are write-only: {secrets.MASK!r}, or a "
        "token/password left out of an auth of the same type, keeps the stored one; send a new value to change it.",
    )


class DataSourceOut(serializers.ModelSerializer):
    """A data source; serializes rows annotated with `record_count` and with `bindings__facade` prefetched."""

    records = serializers.IntegerField(source="record_count", read_only=True)
    config = serializers.SerializerMethodField(
        help_text=f"The source's settings; a credential that is set reads {secrets.MASK!r} (auth.token, auth.password, "
        "and the values of headers like Authorization or X-Api-Key)"
    )
    used_by = serializers.SerializerMethodField(help_text="The bindings that read it, as facade/type")

    def get_used_by(self, source: DataSource) -> list[str]:
        return sorted(f"{binding.facade.slug}/{binding.resource_type}" for binding in source.bindings.all())

    def get_config(self, source: DataSource) -> dict:
        return secrets.masked(source.config)  # tokens, passwords, secret headers: written, never read back

    class Meta:
        model = DataSource
        fields = ["name", "kind", "source_format", "description", "config", "created_at", "records", "used_by"]


class RecordIn(serializers.Serializer):
    key = StrictCharField(max_length=200, help_text="The sender's id for it; a key already stored is replaced")
    payload = StrictCharField(trim_whitespace=False)


class RecordsIn(serializers.Serializer):
    """Records for one source; the view passes context={"source_format": …}. Each record is mapped on its own, so an
    HL7 v2 record must be one message: a file of several is refused here, not stored to fail later."""

    records = RecordIn(many=True, max_length=10000)  # none is a valid upload of nothing, as the schema says

    def validate_records(self, records: list[dict]) -> list[dict]:
        if self.context.get("source_format") != "hl7v2":
            return records
        for record in records:
            found = _hl7_message_count(record["payload"])
            if found > 1:
                raise serializers.ValidationError(
                    f"Record '{record['key']}' holds {found} HL7 v2 messages; a record is one message. Upload each "
                    "message as its own record (or convert the file as a batch, which splits it)."
                )
        return records


def _hl7_message_count(payload: str) -> int:
    if payload.count("MSH") < 2:  # most records: no need to split
        return 1
    try:
        return sum(1 for _ in split_messages(payload.encode(), source_format="hl7v2"))
    except MappingError:
        return 1  # not HL7 this check can read (text before MSH, …): the conversion reports it, as before


class RecordsOut(serializers.Serializer):
    created = serializers.IntegerField()
    replaced = serializers.IntegerField()
    reindexed = serializers.ListField(child=serializers.CharField(), help_text="Bindings whose index was rebuilt")


class FacadeQuery(serializers.Serializer):
    search = serializers.CharField(
        required=False, allow_blank=True, max_length=200, help_text="Part of the slug or title, any case"
    )


class DataSourceQuery(serializers.Serializer):
    search = serializers.CharField(
        required=False, allow_blank=True, max_length=200, help_text="Part of the name or description, any case"
    )
    kind = serializers.ChoiceField(choices=DataSource.Kind.choices, required=False, help_text="Only this kind")


class MetricsQuery(serializers.Serializer):
    minutes = serializers.IntegerField(min_value=1, max_value=7 * 24 * 60, default=60, help_text="The window")
