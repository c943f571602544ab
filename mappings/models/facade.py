"""FHIR facades: a FHIR R4 REST API in front of a legacy system. A facade binds resource types to a data source and
a published mapping version; a deployment records which version went live, when and by whom.

Stored sources are served from an index built at deploy time (FacadeResource + SearchValue): running the mapping on
every read would cost its 10-20 ms each time, and search needs values the raw HL7/C-CDA payloads do not expose."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from mappings.engine.formats.decimals import FhirJSONDecoder, FhirJSONEncoder
from mappings.fhir_types import R4_RESOURCE_TYPES


class Facade(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active"
        PAUSED = "paused"

    class AuthMode(models.TextChoices):
        OPEN = "open"
        SMART_BACKEND = "smart-backend"  # SMART Backend Services: the studio issues and checks the tokens
        INTROSPECTION = "introspection"  # tokens of an external authorization server, checked by RFC 7662

    slug = models.SlugField(max_length=100, unique=True)
    title = models.CharField(max_length=200)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.ACTIVE)
    auth_mode = models.CharField(max_length=20, choices=AuthMode.choices, default=AuthMode.OPEN)
    # $convert-data runs the mappings bound to the facade, and those named here: {name a client sends as
    # rootTemplate or mapping: mapping slug}, e.g. Azure's root template names {"ADT_A01": "hl7v2-adt-a01"}.
    convert_templates = models.JSONField(default=dict, blank=True)
    # auth_mode "introspection": where and as whom to ask about a bearer token (mappings/security/introspection.py).
    # The secret is stored sealed (mappings/secrets.py) and never shown back; the URL's host must be allow-listed.
    introspection_url = models.URLField(max_length=500, blank=True)
    introspection_client_id = models.CharField(max_length=200, blank=True)
    introspection_client_secret = models.TextField(blank=True)
    # The `aud` a token must name when it names one (blank: the facade's base URL).
    introspection_audience = models.CharField(max_length=500, blank=True)
    introspection_timeout_s = models.FloatField(default=5.0)
    # Grows on every change to what the facade serves (deploy, index finished, bind, pause): each worker compares it
    # with the one its cached lookups were made under, so a change is seen on the next request, by every worker.
    generation = models.PositiveBigIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return self.slug


class DataSource(models.Model):
    class Kind(models.TextChoices):
        STORED = "stored"  # payloads kept by the studio (SourceRecord), served from a deploy-time index
        HTTP = "http"  # a legacy REST API, asked on each request (hosts allowed by the administrator only)
        SQL = "sql"  # a read-only parameterised query against a database the administrator configured
        FHIR_STORE = "fhir-store"  # resources written by FHIR clients (mappings/models/store.py), served as indexed
        FHIR_SERVER = "fhir-server"  # another FHIR server through a Connection, asked on each request (pull)

    name = models.SlugField(max_length=100, unique=True)
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.STORED)
    source_format = models.CharField(max_length=20)
    # http: {base_url, read_path, search_path, search: {fhir param: placeholder}, headers, auth, timeout_s, retries,
    #        records_key}; sql: {database, read_query, search_query, search: {fhir param: placeholder}};
    #        fhir-server: {connection, resource_type, search: [params passed through] or absent for all, page_size}
    config = models.JSONField(default=dict, blank=True)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name


class SourceRecord(models.Model):
    """One raw payload (an HL7 message, a C-CDA document, a JSON record) as the legacy system sent it."""

    source = models.ForeignKey(DataSource, on_delete=models.CASCADE, related_name="records")
    key = models.CharField(max_length=200, help_text="The sender's id for it: a message control id, a file name")
    payload = models.TextField()
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["source", "key"], name="one_key_per_source")]


class ResourceBindingQuerySet(models.QuerySet):
    def with_deployments(self) -> ResourceBindingQuerySet:
        """Bindings with what their rows show prefetched: mapping and source, the live and pending deployments
        (`current_deployments`) and the two newest (`recent_deployments`, a rollback's pair). A list of facades is
        then a fixed number of queries, however many bindings and deployments they have."""
        deployments = Deployment.objects.select_related("version__mapping", "deployed_by").defer(
            "version__template", "version__snippets", "version__lookup_tables", "version__engine_settings"
        )
        return self.select_related("facade", "mapping", "source").prefetch_related(
            models.Prefetch(
                "deployments",
                deployments.filter(models.Q(ready=True) | models.Q(superseded=False)),
                to_attr="current_deployments",
            ),
            models.Prefetch("deployments", deployments[:2], to_attr="recent_deployments"),
        )


class ResourceBinding(models.Model):
    """Which mapping serves a resource type of a facade, from which source."""

    facade = models.ForeignKey(Facade, on_delete=models.CASCADE, related_name="bindings")
    # One of FHIR R4's types (a typo would be advertised in `metadata` and serve nothing); choices give the admin its
    # drop-down, the binding serializer and do_bind_resource check the same list.
    resource_type = models.CharField(max_length=64, choices=[(name, name) for name in R4_RESOURCE_TYPES])
    mapping = models.ForeignKey("Mapping", on_delete=models.PROTECT, related_name="bindings")
    source = models.ForeignKey(DataSource, on_delete=models.PROTECT, related_name="bindings")

    objects = ResourceBindingQuerySet.as_manager()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["facade", "resource_type"], name="one_binding_per_type")]

    def __str__(self) -> str:
        return f"{self.facade.slug}/{self.resource_type}"

    @property
    def live_deployment(self) -> Deployment | None:
        if hasattr(self, "current_deployments"):  # prefetched by with_deployments()
            return next((deployment for deployment in self.current_deployments if deployment.ready), None)
        return self.deployments.live().first()

    @property
    def pending_deployment(self) -> Deployment | None:
        """The newest deployment still indexing: it serves once ready (the live one serves until then)."""
        if hasattr(self, "current_deployments"):
            return next((deployment for deployment in self.current_deployments if not deployment.ready), None)
        return self.deployments.pending().first()

    def last_two_deployments(self) -> list[Deployment]:
        """The newest deployment and the one before it: a rollback deploys the second one's version again."""
        if hasattr(self, "recent_deployments"):
            return list(self.recent_deployments)
        return list(
            self.deployments.select_related("version").defer(
                "version__template", "version__snippets", "version__lookup_tables"
            )[:2]
        )

    @property
    def rollback_version(self) -> int | None:
        """The version number a rollback goes back to (None: nothing earlier was deployed)."""
        recent = self.last_two_deployments()
        return recent[1].version.number if len(recent) == 2 else None


class DeploymentQuerySet(models.QuerySet):
    def live(self) -> DeploymentQuerySet:
        """The deployments that serve: at most one per binding (a unique constraint), the newest that finished
        indexing. A newer one still indexing is pending; the live one keeps serving until it is ready."""
        return self.filter(ready=True)

    def pending(self) -> DeploymentQuerySet:
        return self.filter(ready=False, superseded=False)


class Deployment(models.Model):
    """A version going live for a binding. The newest ready deployment of a binding is the live one (`live()`); a
    rollback is a new deployment of the previous version, so the history reads in order."""

    binding = models.ForeignKey(ResourceBinding, on_delete=models.CASCADE, related_name="deployments")
    version = models.ForeignKey("MappingVersion", on_delete=models.PROTECT, related_name="deployments")
    variables = models.JSONField(default=dict, blank=True)  # read by templates as `vars`
    deployed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    deployed_at = models.DateTimeField(auto_now_add=True)
    rollback_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    ready = models.BooleanField(default=False)  # indexed: only then does it serve (a big index builds in Celery)
    indexed = models.PositiveIntegerField(default=0)  # resources in the index
    index_errors = models.JSONField(default=list, blank=True)  # [{record, code, message}] of records that failed
    # A newer deployment went live first, or this one served and was replaced: it will never serve again.
    superseded = models.BooleanField(default=False)
    # The key its served resources' search values carry (SearchValue.build): its id or minus its id, the other one
    # being where a new index of it is staged meanwhile (index_rows.staging_key).
    index_key = models.BigIntegerField(null=True, blank=True)
    # When its index started to serve (the swap): the lastUpdated of each of its resources staged before it, which
    # are stored without one (FacadeResource.last_updated None) so the swap does not rewrite them.
    served_since = models.DateTimeField(null=True, blank=True)

    objects = DeploymentQuerySet.as_manager()

    class Meta:
        ordering = ["-deployed_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["binding"], condition=models.Q(ready=True), name="one_live_per_binding")
        ]


class PatientGroup(models.Model):
    """A list of patients defined in the studio, exported with `Group/<group_id>/$export` (a facade that serves a
    bound Group type exports those too)."""

    facade = models.ForeignKey(Facade, on_delete=models.CASCADE, related_name="groups")
    group_id = models.CharField(max_length=64)  # the id clients use: Group/<group_id>
    name = models.CharField(max_length=200)
    patient_ids = models.JSONField(default=list)  # Patient ids the facade serves
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["facade", "group_id"], name="one_group_id_per_facade")]

    def __str__(self) -> str:
        return f"{self.facade_id}/Group/{self.group_id}"


class JSONText(models.JSONField):
    """A JSONField kept as PostgreSQL `json`, the text as written, rather than `jsonb` (elsewhere as JSONField).

    An index writes each resource once and serves it as text (CAST(content AS TEXT)): `jsonb` parsed every resource
    into its binary form on insert, a quarter of PostgreSQL's CPU when staging an ADT Patient (bench/index_staging.py),
    for operators nothing here uses. Read as text and decoded by the field's decoder (psycopg would parse `json`
    itself, decimals as floats). `json` has no equality: never DISTINCT, GROUP BY or compare it."""

    def db_type(self, connection):
        return "json" if connection.vendor == "postgresql" else super().db_type(connection)

    def select_format(self, compiler, sql, params):
        if compiler.connection.vendor == "postgresql":
            return f"CAST({sql} AS TEXT)", params
        return super().select_format(compiler, sql, params)


class FacadeResource(models.Model):
    """A resource as the live deployment produced it from a stored record: what read and search return.

    While an index is built its rows are staged: no deployment (so nothing reads them), `staged_for` the id of the
    deployment they are built for. Indexing workers write them in parallel; the swap gives them their deployment in
    one UPDATE (mappings/actions/index_rows.py). `staged_for` is the index's key (index_rows.staging_key)."""

    # No index of its own: the unique (deployment, type, id) index leads with it (one fewer index per row written).
    # Neither foreign key has a database constraint (migration 0036): their checks, a trigger and a locking lookup a
    # row each, cost 10–20 µs a staged resource; the ORM's cascade and SET_NULL do what deletes need, and staging
    # share-locks its deployment's row and checks it is still wanted before it commits (jobs/index_staging.py).
    deployment = models.ForeignKey(
        Deployment, null=True, on_delete=models.CASCADE, related_name="resources", db_index=False, db_constraint=False
    )
    staged_for = models.BigIntegerField(null=True)  # the key of the index it is staged for, then None
    resource_type = models.CharField(max_length=64)
    resource_id = models.CharField(max_length=64)
    record = models.ForeignKey(
        SourceRecord, null=True, on_delete=models.SET_NULL, related_name="+", db_constraint=False
    )
    content = JSONText(encoder=FhirJSONEncoder, decoder=FhirJSONDecoder)  # decimals keep their digits
    # None: staged as the deployment's own row before its index served, and last updated when it started to serve
    # (Deployment.served_since; content's meta.lastUpdated is index_rows.UNSTAMPED until read, index_rows.stamped).
    last_updated = models.DateTimeField(null=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["deployment", "resource_type", "resource_id"], name="one_resource_per_id"),
            models.UniqueConstraint(
                fields=["staged_for", "resource_type", "resource_id"],
                condition=models.Q(staged_for__isnull=False),
                name="one_staged_resource_per_id",
            ),
        ]


class SearchValue(models.Model):
    """One searchable value of an indexed resource: a token or string (lower-cased) or a date range.

    Derived rows, written and dropped only with their resource's index (mappings/actions/index_rows.py), millions at
    a time: the foreign key has no database constraint, whose check cost a 100,000-resource index 10 s. The
    (build, param, value) index is per database (migrations 0004, 0011, 0015, 0016): on PostgreSQL one
    varchar_pattern_ops index serves both = and LIKE 'prefix%', and it and the date index carry the resource id,
    so searches scan indexes only. A `name` value that repeats a family or given name is not stored (a `name`
    search reads those params too: index_staging.staged, search.stored_params)."""

    resource = models.ForeignKey(
        FacadeResource, on_delete=models.CASCADE, related_name="search_values", db_constraint=False
    )
    # The key of the index it belongs to (Deployment.index_key once served): a search reads the live index's values
    # alone, and counts its matches without visiting FacadeResource.
    build = models.BigIntegerField(null=True)
    param = models.CharField(max_length=40)
    value = models.CharField(max_length=255, blank=True)
    start = models.DateTimeField(null=True)
    end = models.DateTimeField(null=True)  # exclusive

    class Meta:
        # Dates only (3 of a Patient's 33 values): a date criterion says `start IS NOT NULL` (mappings/facade/search.py)
        # so PostgreSQL can use it. It carries the resource id, the end and the value (a single-valued date's tag of
        # its resource's tokens, search_index.TAGS) (PostgreSQL only) for index-only scans.
        indexes = [
            models.Index(
                fields=["build", "param", "start"],
                include=["resource", "end", "value"],
                condition=models.Q(start__isnull=False),
                name="search_date_idx",
            )
        ]


class FacadeRequest(models.Model):
    """One request to a facade's FHIR API: what the metrics (volume, latency, errors per type) are computed from."""

    facade_slug = models.CharField(max_length=100)
    resource_type = models.CharField(max_length=64, blank=True)
    interaction = models.CharField(max_length=30)  # read, search-type, capabilities, operation, unknown
    status = models.PositiveSmallIntegerField()
    latency_ms = models.FloatField()
    created_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["facade_slug", "created_at"], name="facade_request_idx")]
