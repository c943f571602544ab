"""Facades, the data sources they read and the records stored in them, and bindings of resource types. Every change
to what a facade serves grows its generation, so each web worker sees it on its next request (mappings/caches.py);
deploying is in deployments.py.

Deletes remove what depends on the deleted row (a facade's bindings, a binding's deployments and index) but refuse
to take away what something else still uses: a data source a binding reads is `in_use`."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from mappings import secrets
from mappings.actions.common import apply_changes, audit
from mappings.actions.deployments import grow_generation, queue_indexing
from mappings.actions.index_rows import drop_index
from mappings.errors import StudioError
from mappings.fhir_types import is_r4_resource_type, unknown_type_message
from mappings.models import (
    AuditAction,
    Connection,
    DataSource,
    Facade,
    FacadeRequest,
    Mapping,
    ResourceBinding,
    SourceRecord,
)
from mappings.security.introspection import introspection_changes, without_secret
from mappings.sources import http as http_source
from mappings.sources import sql as sql_source

FACADE_FIELDS = ("title", "status", "convert_templates", "introspection_url", "introspection_client_id")
FACADE_FIELDS += ("introspection_client_secret", "introspection_audience", "introspection_timeout_s")


@transaction.atomic(durable=True)
def do_create_facade(
    *,
    acting_user: AbstractBaseUser | None,
    slug: str,
    title: str,
    auth_mode: str = "open",
    convert_templates: dict[str, str] | None = None,
    introspection: dict | None = None,
) -> Facade:
    if Facade.objects.filter(slug=slug).exists():
        raise StudioError("conflict", f"A facade '{slug}' already exists.")
    facade = Facade.objects.create(
        slug=slug,
        title=title,
        auth_mode=auth_mode,
        convert_templates=_checked_templates(convert_templates or {}),
        **introspection_changes(auth_mode, introspection, None),  # checked, the secret sealed
    )
    audit(
        acting_user,
        AuditAction.FACADE_CREATED,
        facade,
        after={"slug": slug, "auth_mode": auth_mode, "convert_templates": facade.convert_templates},
    )
    return facade


def _checked_templates(templates: dict[str, str]) -> dict[str, str]:
    """$convert-data names → mapping slugs: every slug must name a mapping (a typo would answer 404 to clients)."""
    known = set(Mapping.objects.filter(slug__in=templates.values()).values_list("slug", flat=True))
    unknown = sorted(set(templates.values()) - known)
    if unknown:
        raise StudioError(
            "invalid",
            f"convert_templates names mappings that do not exist: {', '.join(unknown)}.",
            details={"convert_templates": unknown},
        )
    return templates


@transaction.atomic(durable=True)
def do_update_facade(facade: Facade, *, acting_user: AbstractBaseUser, **fields: object) -> Facade:
    if "convert_templates" in fields:
        _checked_templates(fields["convert_templates"])
    if "introspection" in fields:
        fields.update(introspection_changes(facade.auth_mode, fields.pop("introspection"), facade))
    before = apply_changes(facade, fields, FACADE_FIELDS)
    grow_generation(facade.pk)
    after = {key: fields[key] for key in before}
    audit(acting_user, AuditAction.FACADE_UPDATED, facade, before=without_secret(before), after=without_secret(after))
    return facade


SOURCE_NEEDS = {
    "http": ("base_url", "read_path", "search_path"),
    "sql": ("database", "read_query", "search_query"),
    "fhir-server": ("connection",),  # the name of a Connection (mappings/sources/fhir_server.py)
}
# The optional list setting (list_path, list_query) that lets a bulk $export page through every record.
LIST_CHECKS = {"http": http_source.list_problems, "sql": sql_source.list_problems}
MAX_PAGE_SIZE = 10_000  # records per list page: more makes one answer (and one worker's memory) too large


def _checked_config(kind: str, config: dict | None) -> dict:
    """A live source's settings must say where to ask (the API, the admin and the demo all create through here)."""
    config = config or {}
    missing = [key for key in SOURCE_NEEDS.get(kind, ()) if not isinstance(config.get(key), str)]
    if missing:
        raise StudioError(
            "invalid",
            "The source's settings are incomplete.",
            details={"config": [f"A {kind} source needs {', '.join(missing)}."]},
        )
    if kind == DataSource.Kind.FHIR_SERVER and not Connection.objects.filter(name=config["connection"]).exists():
        raise StudioError(
            "invalid",
            "The source names an unknown connection.",
            details={
                "config": [f"connection must name a connection of /api/connections/, not {config['connection']!r}."]
            },
        )
    if kind == DataSource.Kind.SQL and config["database"] not in settings.FHIR_STUDIO["SQL_SOURCES"]:
        raise StudioError(
            "invalid",
            "The source names an unknown database.",
            details={"config": ["database must be a name from FHIR_STUDIO_SQL_SOURCES."]},
        )
    problems = LIST_CHECKS[kind](config) if kind in LIST_CHECKS else []
    page_size = config.get("page_size", 1)  # absent: the default (mappings/jobs/export_live.py)
    if isinstance(page_size, bool) or not isinstance(page_size, int) or not 1 <= page_size <= MAX_PAGE_SIZE:
        problems.append(f"page_size must be a whole number from 1 to {MAX_PAGE_SIZE:,}.")
    if problems:
        raise StudioError("invalid", "The source's list settings are wrong.", details={"config": problems})
    return config


@transaction.atomic(durable=True)
def do_create_data_source(
    *,
    acting_user: AbstractBaseUser,
    name: str,
    source_format: str,
    description: str = "",
    kind: str = "stored",
    config: dict | None = None,
) -> DataSource:
    if DataSource.objects.filter(name=name).exists():
        raise StudioError("conflict", f"A data source '{name}' already exists.")
    config = _sealed(_checked_config(kind, config))
    source = DataSource.objects.create(
        name=name, source_format=source_format, description=description, kind=kind, config=config
    )
    audit(acting_user, AuditAction.SOURCE_CREATED, source, after={"name": name, "source_format": source_format})
    return source


def _sealed(config: dict, previous: dict | None = None) -> dict:
    """Credentials encrypted for storage (mappings/secrets.py); "***" keeps the stored one."""
    try:
        return secrets.seal(config, previous)
    except secrets.MaskWithoutValue as exc:
        raise StudioError("invalid", "The source's settings are wrong.", details={"config": [str(exc)]}) from exc


@transaction.atomic(durable=True)
def do_update_data_source(
    source: DataSource, *, acting_user: AbstractBaseUser, description: str | None = None, config: dict | None = None
) -> DataSource:
    """Change a source's description or settings. Secrets not sent again (or sent as "***") are kept; the audit
    row shows settings masked. Facades reading the source see the change on their next request."""
    source = DataSource.objects.select_for_update().get(pk=source.pk)
    before = {"description": source.description, "config": secrets.masked(source.config)}
    if description is not None:
        source.description = description
    if config is not None:
        source.config = _sealed(_checked_config(source.kind, config), source.config)
    source.save(update_fields=["description", "config"])
    after = {"description": source.description, "config": secrets.masked(source.config)}
    audit(acting_user, AuditAction.SOURCE_UPDATED, source, before=before, after=after)
    for facade_id in set(source.bindings.values_list("facade_id", flat=True)):
        grow_generation(facade_id)  # workers keep a binding's source with its deployment: they reload it
    return source


@transaction.atomic(durable=True)
def do_upload_records(source: DataSource, *, acting_user: AbstractBaseUser, records: list[tuple[str, str]]) -> dict:
    """Store payloads by their key; a key already stored is replaced (the sender re-sent it)."""
    if source.kind == DataSource.Kind.FHIR_STORE:  # indexing records would replace what clients wrote
        raise StudioError("invalid", f"'{source.name}' is a FHIR store: write to it through its facade's FHIR API.")
    keys = [key for key, _ in records]
    existing = dict(SourceRecord.objects.filter(source=source, key__in=keys).values_list("key", "id"))
    new = [SourceRecord(source=source, key=key, payload=payload) for key, payload in records if key not in existing]
    SourceRecord.objects.bulk_create(new, batch_size=1000)
    replaced = [SourceRecord(id=existing[key], payload=payload) for key, payload in records if key in existing]
    SourceRecord.objects.bulk_update(replaced, ["payload"], batch_size=1000)
    counts = {"created": len(new), "replaced": len(replaced)}
    audit(acting_user, AuditAction.RECORDS_UPLOADED, source, after=counts)
    reindexed = []
    for binding in source.bindings.select_related("facade", "source"):
        # The live deployment serves the new records too, and one still indexing must not miss them.
        for deployment in binding.deployments.filter(superseded=False):
            deployment.binding = binding
            queue_indexing(deployment)
            reindexed.append(f"{binding.facade.slug}/{binding.resource_type}")
    return {**counts, "reindexed": sorted(set(reindexed))}


@transaction.atomic(durable=True)
def do_bind_resource(
    facade: Facade, *, acting_user: AbstractBaseUser, resource_type: str, mapping: Mapping, source: DataSource
) -> ResourceBinding:
    # A type FHIR R4 does not have would be advertised in `metadata` and never match a resource the mapping makes.
    if not is_r4_resource_type(resource_type):
        raise StudioError(
            "invalid",
            unknown_type_message(resource_type),
            details={"resource_type": [unknown_type_message(resource_type)]},
        )
    binding, _ = ResourceBinding.objects.update_or_create(
        facade=facade, resource_type=resource_type, defaults={"mapping": mapping, "source": source}
    )
    audit(
        acting_user,
        AuditAction.BINDING_SAVED,
        binding,
        mapping_slug=mapping.slug,
        after={"facade": facade.slug, "resource_type": resource_type, "source": source.name},
    )
    grow_generation(facade.pk)
    return binding


def _drop_indexes(bindings) -> None:
    """Delete the index rows of these bindings' deployments in bulk, before the bindings themselves (a cascade from
    the binding would load every indexed resource to find its search values)."""
    for binding in bindings:
        drop_index(binding)


@transaction.atomic(durable=True)
def do_delete_binding(binding: ResourceBinding, *, acting_user: AbstractBaseUser) -> None:
    """Stop serving a resource type: the binding, its deployments (live, indexing and past) and its index go, and the
    facade's generation grows so every worker stops serving the type from its next request. A deployment still
    indexing on a worker finds its row gone and leaves nothing behind (do_finish_index)."""
    binding = (
        ResourceBinding.objects.select_for_update().select_related("facade", "mapping", "source").get(pk=binding.pk)
    )
    live = binding.deployments.live().select_related("version").first()
    before = {
        "facade": binding.facade.slug,
        "resource_type": binding.resource_type,
        "mapping": binding.mapping.slug,
        "source": binding.source.name,
        "live_version": live.version.number if live else None,
        "deployments": binding.deployments.count(),
    }
    audit(acting_user, AuditAction.BINDING_DELETED, binding, mapping_slug=binding.mapping.slug, before=before)
    _drop_indexes([binding])
    binding.delete()
    grow_generation(binding.facade_id)


@transaction.atomic(durable=True)
def do_delete_facade(facade: Facade, *, acting_user: AbstractBaseUser) -> None:
    """Delete a facade with its bindings, their deployments and indexes, and its request log (a new facade of the same
    slug starts with no metrics). Its FHIR API answers 404 from the next request: each request reads the facade's
    row afresh. The data sources and mappings it used stay."""
    facade = Facade.objects.select_for_update().get(pk=facade.pk)
    bindings = list(facade.bindings.select_related("mapping", "source").order_by("resource_type"))
    served = [f"{binding.resource_type} ← {binding.mapping.slug} from {binding.source.name}" for binding in bindings]
    audit(
        acting_user,
        AuditAction.FACADE_DELETED,
        facade,
        before={"slug": facade.slug, "title": facade.title, "bindings": served},
    )
    _drop_indexes(bindings)
    FacadeRequest.objects.filter(facade_slug=facade.slug).delete()
    facade.delete()


@transaction.atomic(durable=True)
def do_delete_data_source(source: DataSource, *, acting_user: AbstractBaseUser) -> None:
    """Delete a data source and its stored records; refused with 409 `in_use` while a binding reads it (details name
    those bindings as facade/type: delete or rebind them first)."""
    source = DataSource.objects.select_for_update().get(pk=source.pk)
    users = sorted(
        f"{facade}/{resource_type}"
        for facade, resource_type in source.bindings.values_list("facade__slug", "resource_type")
    )
    if users:
        raise StudioError(
            "in_use",
            f"'{source.name}' is read by {', '.join(users)}; remove those bindings first.",
            details={"bindings": users},
        )
    records = source.records.count()
    audit(
        acting_user,
        AuditAction.SOURCE_DELETED,
        source,
        before={"name": source.name, "kind": source.kind, "source_format": source.source_format, "records": records},
    )
    source.delete()
