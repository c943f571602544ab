"""Mappings: create, change settings, delete (refused while a facade serves one)."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from mappings.actions.common import apply_changes, audit
from mappings.compiling import references
from mappings.errors import StudioError
from mappings.models import (
    AuditAction,
    Draft,
    Mapping,
    SampleCase,
)
from mappings.starters import starter

MAPPING_FIELDS = ("title", "description", "source_format", "source_options", "output_kind", "timezone", "strict")


# --- mappings -----------------------------------------------------------------------------------------------------


@transaction.atomic(durable=True)
def do_create_mapping(
    *,
    acting_user: AbstractBaseUser,
    slug: str,
    title: str,
    source_format: str,
    template: str = "",
    from_starter: bool = False,
    **fields: object,
) -> Mapping:
    """`from_starter`: the draft starts from the source format's starter template, with its sample as `starter`."""
    if Mapping.objects.filter(slug=slug).exists():
        raise StudioError("conflict", f"A mapping '{slug}' already exists.")
    first = starter(source_format) if from_starter else None
    if first is not None:
        template = first["template"]
    mapping = Mapping.objects.create(
        slug=slug,
        title=title,
        source_format=source_format,
        owner=acting_user,
        **{key: value for key, value in fields.items() if key in MAPPING_FIELDS},
    )
    snippet_names, table_names = references(template)
    Draft.objects.create(
        mapping=mapping, template=template, snippet_names=snippet_names, table_names=table_names, updated_by=acting_user
    )
    if first is not None:
        SampleCase.objects.create(mapping=mapping, name="starter", payload=first["sample"])
    audit(
        acting_user,
        AuditAction.MAPPING_CREATED,
        mapping,
        mapping_slug=slug,
        after={"draft_revision": 1, "from_starter": from_starter},
    )
    return mapping


@transaction.atomic(durable=True)
def do_update_mapping(mapping: Mapping, *, acting_user: AbstractBaseUser, **fields: object) -> Mapping:
    before = apply_changes(mapping, fields, MAPPING_FIELDS)
    audit(
        acting_user,
        AuditAction.MAPPING_UPDATED,
        mapping,
        mapping_slug=mapping.slug,
        before=before,
        after={key: getattr(mapping, key) for key in before},
    )
    return mapping


@transaction.atomic(durable=True)
def do_delete_mapping(mapping: Mapping, *, acting_user: AbstractBaseUser) -> None:
    bound = list(mapping.bindings.select_related("facade").values_list("facade__slug", "resource_type"))
    if bound:
        where = ", ".join(f"{facade}/{resource_type}" for facade, resource_type in bound)
        raise StudioError("deployed", f"'{mapping.slug}' serves facades ({where}); unbind it first.")
    slug, versions = mapping.slug, mapping.versions.count()
    audit(acting_user, AuditAction.MAPPING_DELETED, mapping, mapping_slug=slug, before={"versions": versions})
    mapping.delete()
