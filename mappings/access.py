"""The one place that turns (user, identifier) into an object or refuses. Missing and invisible give the same
not_found, so ids cannot be probed; one condition per line, each with its own early raise.

Roles are Django groups: `viewer` reads, `author` also edits drafts, samples, snippets and tables and publishes,
`admin` (or a superuser) does everything, users and the audit log included. A user in no group can do nothing."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser

from mappings.errors import StudioError
from mappings.models import (
    DataSource,
    Facade,
    LookupTable,
    Mapping,
    MappingVersion,
    ResourceBinding,
    SampleCase,
    Snippet,
    TestRun,
)

VIEWER, AUTHOR, ADMIN = "viewer", "author", "admin"
RANK = {VIEWER: 1, AUTHOR: 2, ADMIN: 3}


def role_of(user: AbstractBaseUser) -> str | None:
    if not user or not user.is_authenticated or not user.is_active:
        return None
    if user.is_superuser:
        return ADMIN
    names = {group.name for group in user.groups.all()}
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


def access_mapping(user: AbstractBaseUser, slug: str, *, write: bool = False) -> Mapping:
    require_role(user, AUTHOR if write else VIEWER)
    # latest_version's frozen snippets and tables can be tens of KB of JSON: callers need only its number.
    mapping = (
        Mapping.objects.select_related("draft", "latest_version")
        .defer("latest_version__snippets", "latest_version__lookup_tables", "latest_version__template")
        .filter(slug=slug)
        .first()
    )
    if mapping is None:
        raise StudioError("not_found", f"No mapping '{slug}'.")
    return mapping


def access_version(user: AbstractBaseUser, slug: str, number: int) -> MappingVersion:
    mapping = access_mapping(user, slug)
    # The frozen template, snippets and tables load only when read (a compile-cache miss or the detail view).
    version = (
        mapping.versions.select_related("author")
        .defer("template", "snippets", "lookup_tables")
        .filter(number=number)
        .first()
    )
    if version is None:
        raise StudioError("not_found", f"Mapping '{slug}' has no version {number}.")
    version.mapping = mapping
    return version


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
