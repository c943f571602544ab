"""The one place that turns (user, identifier) into an object or refuses. Missing and invisible give the same
not_found, so ids cannot be probed; one condition per line, each with its own early raise.

Facade requests pass the same gate (`access_facade_request` and the helpers after it): open, paused or protected,
which types a facade serves and from which live deployment, and which mappings its $convert-data may run.

Roles are Django groups: `viewer` reads, `author` also edits drafts, samples, snippets and tables and publishes,
`admin` (or a superuser) does everything, users and the audit log included. A user in no group can do nothing."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from django.contrib.auth.backends import BaseBackend
from django.contrib.auth.models import AbstractBaseUser, Group, User
from django.db import connection
from django.db.models import Model
from django.db.models.expressions import Col
from django.http import HttpRequest

from mappings import caches
from mappings.errors import FhirError, RequestCode, StudioError
from mappings.models import (
    BatchJob,
    ClientApp,
    Connection,
    DataSource,
    Deployment,
    Draft,
    ExportJob,
    Facade,
    JobStatus,
    LookupTable,
    Mapping,
    MappingVersion,
    PatientGroup,
    ResourceBinding,
    SampleCase,
    Snippet,
    TestRun,
)
from mappings.security.enforcement import authorize
from mappings.security.introspection import authorize_introspected

VIEWER, AUTHOR, ADMIN = "viewer", "author", "admin"
RANK = {VIEWER: 1, AUTHOR: 2, ADMIN: 3}


# Every studio request reads its user's role: written out, a tenth of the ORM's cost (see the render queries below).
ROLE_GROUPS = (
    f"SELECT g.name FROM {Group._meta.db_table} g"
    f" JOIN {User.groups.through._meta.db_table} ug ON ug.group_id = g.id WHERE ug.user_id = %s"
)


def role_of(user: AbstractBaseUser) -> str | None:
    if not user or not user.is_authenticated or not user.is_active:
        return None
    if user.is_superuser:
        return ADMIN
    with connection.cursor() as cursor:
        cursor.execute(ROLE_GROUPS, [user.pk])
        names = {name for (name,) in cursor.fetchall()}
    for role in (ADMIN, AUTHOR, VIEWER):
        if role in names:
            return role
    return None


def require_role(user: AbstractBaseUser, role: str) -> str:
    have = role_of(user)
    if have is None:
        raise StudioError("permission_denied", "Your account has no studio role; ask an admin for one.")
    if RANK[have] < RANK[role]:
        raise StudioError("permission_denied", f"This needs the {role} role; you are a {have}.")
    return have


def may_use_admin_console(request: HttpRequest) -> bool:
    """The admin console (AdminSite.has_permission) is for admins: superusers, or staff in the admin group. Django's
    own rule, is_staff alone, would let a staff author change there what the studio lets only admins change."""
    user = request.user
    if not user.is_active:
        return False
    if not user.is_staff:
        return False
    return role_of(user) == ADMIN


class AdminRoleBackend(BaseBackend):
    """Every permission the admin console asks about, for admins (staff in the admin group): the studio's roles are
    groups without Django permissions attached. It signs no one in (AUTHENTICATION_BACKENDS lists it after the
    sign-in backend); superusers have every permission without it."""

    def has_perm(self, user_obj: AbstractBaseUser, perm: str, obj: object = None) -> bool:
        return self._is_admin(user_obj)

    def has_module_perms(self, user_obj: AbstractBaseUser, app_label: str) -> bool:
        return self._is_admin(user_obj)

    @staticmethod
    def _is_admin(user: AbstractBaseUser) -> bool:
        if not user.is_active or not getattr(user, "is_staff", False):
            return False
        if not hasattr(user, "_studio_role"):  # the admin index asks once per model: one query per request
            user._studio_role = role_of(user)
        return user._studio_role == ADMIN


FROZEN = ("template", "snippets", "lookup_tables")  # a version's content: tens of KB of JSON, read only to compile


def access_mapping(user: AbstractBaseUser, slug: str, *, write: bool = False) -> Mapping:
    require_role(user, AUTHOR if write else VIEWER)
    # latest_version's frozen snippets and tables can be tens of KB of JSON: callers need only its number.
    mapping = (
        Mapping.objects.select_related("draft", "latest_version")
        .defer(*(f"latest_version__{name}" for name in FROZEN))
        .filter(slug=slug)
        .first()
    )
    if mapping is None:
        raise StudioError("not_found", f"No mapping '{slug}'.")
    return mapping


def access_version(user: AbstractBaseUser, slug: str, number: int) -> MappingVersion:
    mapping = access_mapping(user, slug)
    # The frozen template, snippets and tables load only when read (a compile-cache miss or the detail view).
    version = mapping.versions.select_related("author").defer(*FROZEN).filter(number=number).first()
    if version is None:
        raise StudioError("not_found", f"Mapping '{slug}' has no version {number}.")
    version.mapping = mapping
    return version


# --- what a render runs ---------------------------------------------------------------------------------------------
# The editor renders on every pause in typing. These give the same answers as access_mapping and access_version
# with one short query each, written out: the ORM took ten times longer to build them (with select_related and
# defer, about 1 ms) than SQLite takes to answer (bench/api.py). Each selects its model's columns in field order.

VERSION_TO_RUN = (
    f"SELECT v.id, v.mapping_id, v.number, v.content_hash FROM {MappingVersion._meta.db_table} v"
    f" JOIN {Mapping._meta.db_table} m ON m.id = v.mapping_id WHERE m.slug = %s AND v.number = %s"
)
MAPPING_TO_RUN = (
    f"SELECT id, slug, source_format, source_options, timezone, strict FROM {Mapping._meta.db_table} WHERE slug = %s"
)
DRAFT_TO_RUN = f"SELECT id, mapping_id, template, table_names FROM {Draft._meta.db_table} WHERE mapping_id = %s"


def access_version_to_run(user: AbstractBaseUser, slug: str, number: int) -> MappingVersion:
    """The version `number` of `slug` to run, with only its id and content hash (the compile cache's key): its
    frozen content loads on a cache miss (mappings.compiling.compile_version)."""
    require_role(user, VIEWER)
    version = loaded_row(MappingVersion, ("id", "mapping_id", "number", "content_hash"), VERSION_TO_RUN, [slug, number])
    if version is None:
        access_mapping(user, slug)  # a missing mapping is answered as such
        raise StudioError("not_found", f"Mapping '{slug}' has no version {number}.")
    return version


def access_draft_to_run(user: AbstractBaseUser, slug: str) -> Mapping:
    """The mapping `slug` with only its engine settings, and its draft with only its template and table names."""
    require_role(user, VIEWER)
    fields = ("id", "slug", "source_format", "source_options", "timezone", "strict")
    mapping = loaded_row(Mapping, fields, MAPPING_TO_RUN, [slug])
    if mapping is None:
        raise StudioError("not_found", f"No mapping '{slug}'.")
    mapping.draft = loaded_row(Draft, ("id", "mapping_id", "template", "table_names"), DRAFT_TO_RUN, [mapping.pk])
    return mapping


ModelT = TypeVar("ModelT", bound=Model)


def loaded_row(model: type[ModelT], fields: tuple[str, ...], sql: str, params: list) -> ModelT | None:
    """The first row of `sql`, which selects `fields` (attnames, in the model's field order), as a `model` instance
    with only those fields loaded (the rest load when read, as with defer), each value converted as the ORM
    converts it. Model.objects.raw does the same but works its columns out again on every call: 0.15 ms of a
    render's 0.18 ms access check."""
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:
        return None
    values = []
    for value, (column, converters) in zip(row, _converters(model, fields, connection.vendor), strict=True):
        for convert in converters:
            value = convert(value, column, connection)
        values.append(value)
    return model.from_db(connection.alias, fields, values)


@functools.cache
def _converters(model: type[Model], fields: tuple[str, ...], vendor: str) -> list[tuple[Col, list]]:
    order = [field.attname for field in model._meta.concrete_fields if field.attname in fields]
    if order != list(fields):
        raise ValueError(f"{model.__name__}: select {fields} in the model's field order, {tuple(order)}")
    columns = [model._meta.get_field(name).get_col(model._meta.db_table) for name in fields]
    ops = connection.ops
    return [(column, ops.get_db_converters(column) + column.get_db_converters(connection)) for column in columns]


def access_sample(user: AbstractBaseUser, slug: str, name: str, *, write: bool = False) -> SampleCase:
    mapping = access_mapping(user, slug, write=write)
    sample = mapping.samples.filter(name=name).first()
    if sample is None:
        raise StudioError("not_found", f"Mapping '{slug}' has no sample '{name}'.")
    return sample


def access_snippet(user: AbstractBaseUser, name: str, *, write: bool = False) -> Snippet:
    require_role(user, AUTHOR if write else VIEWER)
    snippet = Snippet.objects.filter(name=name).first()
    if snippet is None:
        raise StudioError("not_found", f"No snippet '{name}'.")
    return snippet


def access_lookup_table(user: AbstractBaseUser, name: str, *, write: bool = False) -> LookupTable:
    require_role(user, AUTHOR if write else VIEWER)
    table = LookupTable.objects.filter(name=name).first()
    if table is None:
        raise StudioError("not_found", f"No lookup table '{name}'.")
    return table


def access_audit(user: AbstractBaseUser) -> None:
    require_role(user, ADMIN)


# Added for the mapping API's /test-runs/{id} (mappings/api/mappings.py): same rule as access_version.
def access_test_run(user: AbstractBaseUser, slug: str, run_id: int) -> TestRun:
    mapping = access_mapping(user, slug)
    run = mapping.test_runs.select_related("version", "created_by").filter(pk=run_id).first()
    if run is None:
        raise StudioError("not_found", f"Mapping '{slug}' has no test run {run_id}.")
    return run


def access_facade(user: AbstractBaseUser, slug: str, *, write: bool = False) -> Facade:
    require_role(user, AUTHOR if write else VIEWER)
    facade = Facade.objects.filter(slug=slug).first()
    if facade is None:
        raise StudioError("not_found", f"No facade '{slug}'.")
    return facade


def access_client_app(user: AbstractBaseUser, client_id: str, *, write: bool = False) -> ClientApp:
    require_role(user, ADMIN)  # reading one too: its facades and scopes say how to reach patient data
    client = ClientApp.objects.prefetch_related("facades").filter(client_id=client_id).first()
    if client is None:
        raise StudioError("not_found", f"No client app '{client_id}'.")
    return client


def access_connection(user: AbstractBaseUser, name: str, *, write: bool = False) -> Connection:
    """A connection to a FHIR server: every role reads it (never its secrets: the API has no field for them), admins
    change it, since it holds credentials."""
    require_role(user, ADMIN if write else VIEWER)  # before the lookup: a refused caller learns nothing of which exist
    connection = Connection.objects.filter(name=name).first()
    if connection is None:
        raise StudioError("not_found", f"No connection '{name}'.")
    return connection


def access_binding(user: AbstractBaseUser, slug: str, resource_type: str, *, write: bool = False) -> ResourceBinding:
    facade = access_facade(user, slug, write=write)
    binding = facade.bindings.select_related("facade", "mapping", "source").filter(resource_type=resource_type).first()
    if binding is None:
        raise StudioError("not_found", f"Facade '{slug}' does not serve {resource_type}; bind it first.")
    return binding


def access_data_source(user: AbstractBaseUser, name: str, *, write: bool = False) -> DataSource:
    require_role(user, AUTHOR if write else VIEWER)
    source = DataSource.objects.filter(name=name).first()
    if source is None:
        raise StudioError("not_found", f"No data source '{name}'.")
    return source


def access_batch(user: AbstractBaseUser, batch_id: int, *, write: bool = False) -> BatchJob:
    require_role(user, AUTHOR if write else VIEWER)
    batch = BatchJob.objects.select_related("version__mapping", "created_by", "source").defer(
        "version__template", "version__snippets", "version__lookup_tables"
    )
    found = batch.filter(pk=batch_id).first()
    if found is None:
        raise StudioError("not_found", f"No batch {batch_id}.")
    return found


# --- facade requests ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServedFacade:
    """What one request needs of its facade, read fresh on every request (one indexed query)."""

    id: int
    slug: str
    title: str
    generation: int
    updated_at: datetime
    convert_templates: dict[str, str]


@dataclass(frozen=True)
class LiveDeployment:
    id: int
    resource_type: str
    source_kind: str
    source_config: dict
    mapping_slug: str
    version_id: int
    index_key: int | None  # which index its search values are keyed by (stored sources): it changes only with a swap


# A facade's state is read on every request. The ORM spends longer building this query than the database answering
# it (0.3 of a read's 1 ms), so it is written out; the rest of the row is cached per generation.
FACADE_STATE = f"SELECT id, generation, status, auth_mode FROM {Facade._meta.db_table} WHERE slug = %s"


def access_facade_request(slug: str, request: HttpRequest | None = None) -> ServedFacade:
    """The facade a FHIR request addresses, if it may be answered at all. Anyone may call an open facade; a protected
    one needs the request's bearer token (mappings.security.enforcement), whose grant the view then checks."""
    with connection.cursor() as cursor:
        cursor.execute(FACADE_STATE, [slug])
        return served_facade(slug, cursor.fetchone(), request)


def access_facade_discovery(slug: str) -> tuple[ServedFacade, bool]:
    """A facade's discovery documents (metadata, smart-configuration), which SMART keeps open even on a protected
    facade: (the facade, whether it is protected). Paused or missing facades are refused as for any request."""
    with connection.cursor() as cursor:
        cursor.execute(FACADE_STATE, [slug])
        state = cursor.fetchone()
    protected = state is not None and state[3] != Facade.AuthMode.OPEN
    return served_facade(slug, (*state[:3], Facade.AuthMode.OPEN) if state else None), protected


def served_facade(slug: str, state: Sequence | None, request: HttpRequest | None = None) -> ServedFacade:
    """access_facade_request's checks on the facade's (id, generation, status, auth_mode) as the caller read them:
    a read reads them in the statement that reads its resource (mappings.facade.views.instance)."""
    if state is None:
        raise FhirError(404, RequestCode.NOT_FOUND, f"There is no facade '{slug}'.")
    facade_id, generation, status, auth_mode = state
    if status != Facade.Status.ACTIVE:
        raise FhirError(503, RequestCode.PAUSED, f"The facade '{slug}' is paused.")
    # Open: nothing more to read. Protected: the token is checked without the database (a signed JWT), and a request
    # without one (or a caller passing no request) is refused.
    if auth_mode == Facade.AuthMode.INTROSPECTION:  # tokens of an external authorization server (RFC 7662)
        authorize_introspected(request, slug, facade_id, generation)
    else:
        authorize(request, slug, protected=auth_mode != Facade.AuthMode.OPEN)
    caches.facade_generations.put(slug, (facade_id, generation))

    def load() -> ServedFacade:
        fields = ("id", "slug", "title", "generation", "updated_at", "convert_templates")
        return ServedFacade(**Facade.objects.filter(pk=facade_id).values(*fields).get())

    return caches.facades.get_or_build((facade_id, generation), load)


def last_served(slug: str, resource_type: str) -> LiveDeployment | None:
    """The deployment this worker last served `resource_type` of facade `slug` from, at the last generation it read:
    a guess, never an answer. A read looks its resource up in that deployment in the statement that reads the
    facade's generation, and keeps what it found only if that generation's live deployment is the same one."""
    seen = caches.facade_generations.get(slug)
    served = caches.live_deployments.get(seen) if seen is not None else None
    return served.get(resource_type) if served is not None else None


def live_deployments(facade: ServedFacade) -> dict[str, LiveDeployment]:
    """Each type the facade serves → its live deployment. Cached by the facade's generation, which every change to
    what it serves grows: a deploy is served by every worker from its next request."""

    def load() -> dict[str, LiveDeployment]:
        rows = Deployment.objects.live().filter(binding__facade_id=facade.id)
        fields = ("id", "binding__resource_type", "binding__source__kind", "binding__source__config")
        return {
            row[1]: LiveDeployment(*row)
            for row in rows.values_list(*fields, "binding__mapping__slug", "version_id", "index_key").order_by("id")
        }

    return caches.live_deployments.get_or_build((facade.id, facade.generation), load)


def access_served_type(facade: ServedFacade, resource_type: str) -> LiveDeployment:
    live = live_deployments(facade).get(resource_type)
    if live is None:
        raise FhirError(404, RequestCode.NOT_SERVED, f"This facade does not serve {resource_type}.")
    return live


def access_patient_group(user: AbstractBaseUser, slug: str, group_id: str, *, write: bool = False) -> PatientGroup:
    facade = access_facade(user, slug, write=write)
    group = PatientGroup.objects.select_related("facade").filter(facade=facade, group_id=group_id).first()
    if group is None:
        raise StudioError("not_found", f"The facade '{slug}' has no group '{group_id}'.")
    return group


def access_export_job(facade: ServedFacade, key: str) -> ExportJob:
    """An export of this facade by its key, while it has something to show: a cancelled export, or one whose files
    were deleted, is gone (404) like one that never was."""
    job = ExportJob.objects.filter(facade_id=facade.id, key=key, files_deleted_at__isnull=True).first()
    if job is None or job.status == JobStatus.CANCELLED:
        raise FhirError(404, RequestCode.NOT_FOUND, f"There is no export {key} on this facade (finished and removed?).")
    return job


def access_convert_mapping(facade: ServedFacade, name: str, number: int | None = None) -> MappingVersion:
    """The version `$convert-data` may run for `name`: a mapping bound to the facade (by its slug) or one its
    `convert_templates` names (Azure's root template names, say). Nothing else of the studio, whoever asks: the
    same 404 for a mapping that does not exist and one that is not the facade's. Without a version number, a bound
    mapping runs the version the facade serves and a listed one its latest published version."""
    served = {live.mapping_slug: live.version_id for live in live_deployments(facade).values()}
    slug = facade.convert_templates.get(name) or (name if name in served else None)
    unknown = FhirError(404, RequestCode.NOT_FOUND, f"This facade has no mapping or template '{name}' to convert with.")
    if slug is None:
        raise unknown
    versions = MappingVersion.objects.defer("template", "snippets", "lookup_tables").filter(mapping__slug=slug)
    if number is not None:
        version = versions.filter(number=number).first()
    elif slug in served:
        version = versions.filter(pk=served[slug]).first()
    else:
        version = versions.order_by("-number").first()
    if version is None:
        raise FhirError(
            404, RequestCode.NOT_FOUND, f"'{name}' has no published version {number if number else ''}".strip() + "."
        )
    return version
