"""Profiles in the studio: the registry every part of the studio validates and completes against, and the read side
of definitions (the core's and uploaded ones) that the API and the pages show.

`studio_registry()` is the R4 core (mappings.engine.definitions.core) with every uploaded definition layered over
it. Uploaded definitions never change, so what is uploaded is named by (count, newest id, newest upload time): one
aggregate query per call, and a process rebuilds its registry on the first call after any upload or delete made by
any worker, never later (the layering copies nothing of the core: a rebuild costs what the uploads weigh).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser
from django.db import connection
from django.db.models import Q

from mappings import caches
from mappings.access import AUTHOR, VIEWER, require_role
from mappings.engine.definitions import Registry, core
from mappings.engine.packages import version_matches
from mappings.errors import StudioError
from mappings.models import ProfileDefinition, ProfilePackage

CORE_SOURCE, UPLOADED_SOURCE = "core", "uploaded"
MAX_ID_DIGITS = 18  # a longer number is no id a bigint holds: not found, not a database error


# Read on every render, facade $validate and sample run: written out, since the ORM took 0.3 ms to build this
# aggregate and the database a few microseconds to answer it (bench/api.py).
UPLOADED_STAMP = f"SELECT COUNT(*), MAX(id), MAX(uploaded_at) FROM {ProfileDefinition._meta.db_table}"


def studio_registry() -> Registry:
    """The core definitions plus every uploaded one (uploads shadow the core's at the same URL)."""
    with connection.cursor() as cursor:
        cursor.execute(UPLOADED_STAMP)
        key = tuple(cursor.fetchone())

    def build() -> Registry:
        return core().layered(ProfileDefinition.objects.values_list("content", flat=True).iterator(chunk_size=200))

    return caches.profile_registries.get_or_build(key, build)


# --- access ---------------------------------------------------------------------------------------------------------


def access_definition(user: AbstractBaseUser, ref: str, *, write: bool = False) -> ProfileDefinition | dict:
    """An uploaded definition by id or canonical URL, or else a core StructureDefinition by URL (a dict, read-only).
    Viewers read; writing (deleting) needs an author and an uploaded definition."""
    require_role(user, AUTHOR if write else VIEWER)
    ref = ref.strip()
    if "\x00" in ref or not ref:
        raise StudioError("not_found", "No definition with that id or URL.")
    uploaded = ProfileDefinition.objects.select_related("package", "uploaded_by")
    is_id = ref.isascii() and ref.isdigit()
    if is_id:
        found = uploaded.filter(pk=int(ref)).first() if len(ref) <= MAX_ID_DIGITS else None
    else:
        found = uploaded.filter(url=ref.split("|")[0]).first()
    if found is not None:
        return found
    structure = None if is_id else core().structure(ref)
    if structure is None or "/" not in ref:  # a bare type name (Patient) is not a definition's address
        raise StudioError("not_found", f"No definition {ref!r}.")
    if write:
        raise StudioError("permission_denied", f"{ref} is part of the R4 core definitions: it cannot be deleted.")
    return structure


def access_package(user: AbstractBaseUser, package_id: int, *, write: bool = False) -> ProfilePackage:
    require_role(user, AUTHOR if write else VIEWER)
    package = ProfilePackage.objects.filter(pk=package_id).first() if 0 < package_id < 2**63 else None
    if package is None:
        raise StudioError("not_found", f"No package {package_id}.")
    return package


# --- what uses what -------------------------------------------------------------------------------------------------


def definitions_using(urls: set[str], *, outside_package: int | None = None) -> list[str]:
    """URLs of uploaded definitions that build on one of `urls` (their baseDefinition) or name one as an extension
    (`type.profile`), leaving out those of the package `outside_package` (deleted with it)."""
    rows = ProfileDefinition.objects.filter(resource_type="StructureDefinition")
    if outside_package is not None:
        rows = rows.exclude(package_id=outside_package)
    users = []
    for url, base, extensions in rows.values_list("url", "base_definition", "extension_urls"):
        if url not in urls and (base in urls or urls.intersection(extensions)):
            users.append(url)
    return sorted(users)


def packages_needing(package: ProfilePackage) -> list[str]:
    """Other packages whose dependencies name this one (any version of it that is loaded would do for them, but a
    package deleted as a whole must not leave a dependent behind)."""
    return sorted(
        other.key
        for other in ProfilePackage.objects.exclude(pk=package.pk)
        if package.name in other.dependencies and version_matches(other.dependencies[package.name], package.version)
    )


# --- summaries and element trees ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Summary:
    """One row of the profile list, the core's and uploaded alike."""

    url: str
    name: str
    title: str
    version: str
    resource_type: str
    type: str
    kind: str
    derivation: str
    base_definition: str
    source: str
    id: int | None = None
    package: str | None = None

    @property
    def is_extension(self) -> bool:
        return self.type == "Extension"


@functools.cache
def _core_summaries() -> list[Summary]:
    """The core's profiles and extensions: read once per process, the core never changes."""
    rows = [core_summary(sd) for sd in core().structures.values() if sd.get("derivation") == "constraint"]
    return sorted(rows, key=lambda row: row.url)


def summaries(
    *, resource_type: str = "", type_name: str = "", kind: str = "", search: str = "", source: str = ""
) -> list[Summary]:
    """Uploaded definitions and the core's profiles and extensions (StructureDefinitions with derivation
    `constraint`), filtered; uploaded ones first, then by URL. An uploaded definition shadows a core one."""
    rows = ProfileDefinition.objects.select_related("package").order_by("url")
    if resource_type:
        rows = rows.filter(resource_type=resource_type)
    if type_name:
        rows = rows.filter(type=type_name)
    if kind:
        rows = rows.filter(kind=kind)
    if search:
        rows = rows.filter(Q(url__icontains=search) | Q(name__icontains=search) | Q(title__icontains=search))
    uploaded = [] if source == CORE_SOURCE else [summary_of(row) for row in rows]
    if source == UPLOADED_SOURCE or resource_type not in ("", "StructureDefinition"):
        return uploaded
    shadowed = set(ProfileDefinition.objects.values_list("url", flat=True))
    needle = search.lower()
    core_rows = [
        row
        for row in _core_summaries()
        if row.url not in shadowed
        and (not type_name or row.type == type_name)
        and (not kind or row.kind == kind)
        and (not needle or needle in row.url.lower() or needle in row.name.lower() or needle in row.title.lower())
    ]
    return uploaded + core_rows


# What a summary shows of a definition, uploaded (a model field of each name) or core (these JSON keys).
SUMMARY_KEYS = {
    "url": "url",
    "name": "name",
    "title": "title",
    "version": "version",
    "resource_type": "resourceType",
    "type": "type",
    "kind": "kind",
    "derivation": "derivation",
    "base_definition": "baseDefinition",
}


def summary_of(row: ProfileDefinition) -> Summary:
    return Summary(
        **{field: getattr(row, field) for field in SUMMARY_KEYS},
        source=UPLOADED_SOURCE,
        id=row.pk,
        package=row.package.key if row.package_id else None,
    )


def core_summary(sd: dict) -> Summary:
    values = {field: sd.get(key, "") for field, key in SUMMARY_KEYS.items()}
    return Summary(**{**values, "resource_type": sd.get("resourceType", "StructureDefinition")}, source=CORE_SOURCE)


def element_rows(elements: list[dict]) -> list[dict]:
    """An element list as the tree the pages show: depth from the path, cardinality, type codes with their
    profiles, binding, fixed and pattern values, must-support and the short description."""
    rows = []
    for element in elements:
        path = element.get("path", "")
        element_id = element.get("id") or path
        rows.append(
            {
                "id": element_id,
                "path": path,
                "depth": element_id.count("."),
                "slice_name": element.get("sliceName"),
                "min": element.get("min"),
                "max": element.get("max"),
                "types": [
                    {
                        "code": kind.get("code", ""),
                        "profiles": kind.get("profile", []),
                        "target_profiles": kind.get("targetProfile", []),
                    }
                    for kind in element.get("type", [])
                ],
                "binding": element.get("binding"),
                "fixed": {k: v for k, v in element.items() if k.startswith("fixed")},
                "pattern": {k: v for k, v in element.items() if k.startswith("pattern")},
                "must_support": bool(element.get("mustSupport")),
                "short": element.get("short", ""),
                "slicing": element.get("slicing"),
            }
        )
    return rows


def extensions_of(sd: dict) -> list[dict]:
    """The extension slices of a profile's snapshot: where, which definition, cardinality."""
    found = []
    for element in sd.get("snapshot", {}).get("element", []):
        for kind in element.get("type", []):
            if kind.get("code") == "Extension" and kind.get("profile") and element.get("sliceName"):
                found.append(
                    {
                        "id": element.get("id") or element.get("path"),
                        "slice_name": element["sliceName"],
                        "url": kind["profile"][0],
                        "min": element.get("min"),
                        "max": element.get("max"),
                        "must_support": bool(element.get("mustSupport")),
                    }
                )
    return found


def extension_value_types(url: str, registry: Registry | None = None) -> list[str] | None:
    """The value types an extension definition allows (`[]` for a complex one, which has sub-extensions instead),
    or None when the URL is not a known extension definition."""
    sd = (registry or core()).structure(url)
    if sd is None or sd.get("type") != "Extension":
        return None
    for element in sd.get("snapshot", {}).get("element", []):
        if element.get("path") == "Extension.value[x]" and ":" not in element.get("id", ""):
            if element.get("max") == "0":
                return []
            return [kind.get("code", "") for kind in element.get("type", [])]
    return []
