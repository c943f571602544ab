"""The studio side of FHIR stores: a store facade made in one call, the bindings that serve a store, and the identity
mapping those bindings name (a binding needs a mapping version; a store serves FHIR as written and runs none). Each
is an action with its audit row; what FHIR clients write is in mappings/actions/store.py."""

from __future__ import annotations

from collections.abc import Iterable

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from mappings.actions.common import audit
from mappings.actions.deployments import grow_generation
from mappings.actions.store import serve_store
from mappings.errors import StudioError
from mappings.fhir_types import R4_RESOURCE_TYPES, is_r4_resource_type
from mappings.models import AuditAction, DataSource, Deployment, Facade, MappingVersion, ResourceBinding

STORE_MAPPING = "fhir-store"
STORE_TEMPLATE = "{{ msg | tojson }}"  # its input, should anyone run it


def store_version() -> MappingVersion:
    """The identity mapping's published version, made on first use by the studio itself (no owner, no acting user:
    it is nobody's work, and no user's list of mappings counts it)."""
    from mappings.actions.mappings import do_create_mapping
    from mappings.actions.versions import do_publish_version
    from mappings.models import Mapping

    mapping = Mapping.objects.filter(slug=STORE_MAPPING).first()
    if mapping is None:
        mapping = do_create_mapping(
            acting_user=None,
            slug=STORE_MAPPING,
            title="FHIR store (serves resources as written)",
            source_format="fhir",
            template=STORE_TEMPLATE,
        )
    version = mapping.versions.order_by("-number").first()
    if version is None:
        version = do_publish_version(mapping, acting_user=None, message="FHIR store bindings")
    return version


def do_create_store_facade(
    *,
    acting_user: AbstractBaseUser | None,
    slug: str,
    title: str,
    store: str,
    auth_mode: str = Facade.AuthMode.OPEN,
    resource_types: Iterable[str] | None = None,
) -> Facade:
    """A facade that serves a store (made if missing), read and write, for `resource_types` (all of R4's when None).
    Each step is its own action (a facade, a source, the identity mapping, the bindings), each with its audit row."""
    from mappings.actions.facades import do_create_data_source, do_create_facade

    source = DataSource.objects.filter(name=store).first()
    if source is None:
        source = do_create_data_source(
            acting_user=acting_user, name=store, source_format="fhir", kind=DataSource.Kind.FHIR_STORE
        )
    version = store_version()
    facade = do_create_facade(acting_user=acting_user, slug=slug, title=title, auth_mode=auth_mode)
    do_bind_store(facade, acting_user=acting_user, source=source, version=version, resource_types=resource_types)
    facade.refresh_from_db()
    return facade


@transaction.atomic(durable=True)
def do_bind_store(
    facade: Facade,
    *,
    acting_user: AbstractBaseUser | None,
    source: DataSource,
    version: MappingVersion,
    resource_types: Iterable[str] | None = None,
) -> list[ResourceBinding]:
    """Serve these types (every R4 type when None) of the facade from a store: a binding and a live deployment each,
    serving at once what the store already holds of the type."""
    if source.kind != DataSource.Kind.FHIR_STORE:
        raise StudioError("invalid", f"'{source.name}' is a {source.kind} source, not a fhir-store.")
    types = sorted(set(resource_types) if resource_types is not None else R4_RESOURCE_TYPES)
    unknown = [name for name in types if not is_r4_resource_type(name)]
    if unknown:
        raise StudioError("invalid", f"Not FHIR R4 resource types: {', '.join(unknown)}.")
    bindings = []
    for resource_type in types:
        binding, _ = ResourceBinding.objects.update_or_create(
            facade=facade, resource_type=resource_type, defaults={"mapping_id": version.mapping_id, "source": source}
        )
        binding.deployments.filter(ready=True).update(ready=False, superseded=True)
        deployment = Deployment.objects.create(binding=binding, version=version, deployed_by=acting_user, ready=True)
        serve_store(deployment)
        bindings.append(binding)
    audit(
        acting_user,
        AuditAction.BINDING_SAVED,
        facade,
        mapping_slug=STORE_MAPPING,
        after={"facade": facade.slug, "store": source.name, "resource_types": len(types)},
    )
    grow_generation(facade.pk)
    return bindings
