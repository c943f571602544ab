"""Facades, the data sources they read and the records stored in them, and bindings of resource types. Every change
to what a facade serves grows its generation, so each web worker sees it on its next request (mappings/caches.py);
deploying is in deployments.py."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from mappings.actions.common import apply_changes, audit
from mappings.actions.deployments import grow_generation, queue_indexing
from mappings.errors import StudioError
from mappings.models import (
    AuditAction,
    DataSource,
    Facade,
    Mapping,
    ResourceBinding,
    SourceRecord,
)

FACADE_FIELDS = ("title", "status", "convert_templates")


@transaction.atomic(durable=True)
def do_create_facade(
    *,
    acting_user: AbstractBaseUser | None,
    slug: str,
    title: str,
    auth_mode: str = "open",
    convert_templates: dict[str, str] | None = None,
) -> Facade:
    if Facade.objects.filter(slug=slug).exists():
        raise StudioError("conflict", f"A facade '{slug}' already exists.")
    facade = Facade.objects.create(
        slug=slug, title=title, auth_mode=auth_mode, convert_templates=_checked_templates(convert_templates or {})
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
    before = apply_changes(facade, fields, FACADE_FIELDS)
    grow_generation(facade.pk)
    audit(acting_user, AuditAction.FACADE_UPDATED, facade, before=before, after={key: fields[key] for key in before})
    return facade


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
    source = DataSource.objects.create(
        name=name, source_format=source_format, description=description, kind=kind, config=config or {}
    )
    audit(acting_user, AuditAction.SOURCE_CREATED, source, after={"name": name, "source_format": source_format})
    return source


@transaction.atomic(durable=True)
def do_upload_records(source: DataSource, *, acting_user: AbstractBaseUser, records: list[tuple[str, str]]) -> dict:
    """Store payloads by their key; a key already stored is replaced (the sender re-sent it)."""
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
