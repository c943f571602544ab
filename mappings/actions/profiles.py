"""Profiles: uploading StructureDefinitions (JSON or XML), ValueSets, CodeSystems and IG packages, and deleting
them when nothing uses them. Each write is one durable transaction with its audit row.

An upload is checked against the studio registry as it is (the core plus what is uploaded): a profile's base must
be known (refused with the missing URL), so must the extension definitions it names; a profile given with only a
differential gets its snapshot generated here (mappings.engine.snapshots), once. A package's dependencies must be
loaded already (refused naming each missing one); its definitions are checked together, so they may build on each
other. "Used" means: another uploaded profile builds on it (baseDefinition) or names it as an extension
(`type.profile`), or another package depends on the package."""

from __future__ import annotations

import logging

import orjson
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from mappings.actions.common import audit
from mappings.engine import MappingError
from mappings.engine.definitions import Registry, core
from mappings.engine.formats.decimals import decimal_default
from mappings.engine.packages import PackageError, missing_dependencies, read_package
from mappings.engine.snapshots import SnapshotError, check_shape, generate_snapshot
from mappings.errors import StudioError
from mappings.models import AuditAction, DefinitionType, ProfileDefinition, ProfilePackage
from mappings.profiles import definitions_using, packages_needing, studio_registry

logger = logging.getLogger(__name__)

DEFINITION_TYPES = {choice.value for choice in DefinitionType}
MAX_URL_LENGTH = 500


# --- reading what was sent ------------------------------------------------------------------------------------------


def parse_definition(text: str | bytes, *, filename: str = "") -> dict:
    """A definition sent as JSON or FHIR XML (by its first character, whatever the file is called)."""
    raw = text.decode("utf-8-sig", errors="replace") if isinstance(text, bytes) else text
    if raw.lstrip().startswith("<"):
        return _parse_xml(raw)
    try:
        resource = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise StudioError("invalid", f"{filename or 'The definition'} is not valid JSON: {exc}") from exc
    if not isinstance(resource, dict):
        raise StudioError("invalid", "A definition is a JSON object (a FHIR resource).")
    return resource


def _parse_xml(text: str) -> dict:
    try:
        from mappings.engine import formats  # written alongside (issue 13): FHIR XML ⇄ JSON
    except ImportError as exc:
        raise StudioError("invalid", "FHIR XML cannot be read yet here: upload the definition as JSON.") from exc
    try:
        resource = formats.parse(text, "xml")
    except MappingError as exc:
        raise StudioError("invalid", f"The definition is not readable FHIR XML: {exc.message}") from exc
    if not isinstance(resource, dict):
        raise StudioError("invalid", "The XML is not a FHIR resource.")
    return resource


def _concepts_are_codes(concepts: object, depth: int = 0) -> bool:
    return (
        isinstance(concepts, list)
        and depth < 20
        and all(
            isinstance(c, dict)
            and isinstance(c.get("code"), str)
            and _concepts_are_codes(c.get("concept", []), depth + 1)
            and isinstance(c.get("display", ""), str)
            for c in concepts
        )
    )


def _terminology_problem(resource: dict) -> str | None:
    """What is not shaped as FHIR says in a ValueSet's compose/expansion or a CodeSystem's concepts (validation
    expands them later: a list where an object belongs must stop at the upload)."""
    if resource["resourceType"] == "CodeSystem":
        return None if _concepts_are_codes(resource.get("concept", [])) else "concept must be a list of {code, …}"
    compose = resource.get("compose", {})
    if not isinstance(compose, dict):
        return "compose must be an object"
    for key in ("include", "exclude"):
        parts = compose.get(key, [])
        if not isinstance(parts, list) or not all(
            isinstance(p, dict)
            and isinstance(p.get("system", ""), str)
            and _concepts_are_codes(p.get("concept", []))
            and isinstance(p.get("valueSet", []), list)
            and all(isinstance(v, str) for v in p.get("valueSet", []))
            and isinstance(p.get("filter", []), list)
            and all(isinstance(f, dict) for f in p.get("filter", []))
            for p in parts
        ):
            return f"compose.{key} must be a list of {{system, concept, valueSet, filter}}"
    expansion = resource.get("expansion", {})
    if not isinstance(expansion, dict) or not isinstance(expansion.get("contains", []), list):
        return "expansion must be an object with a contains list"
    return None


def _checked_shape(resource: dict) -> None:
    kind = resource.get("resourceType")
    if kind not in DEFINITION_TYPES:
        raise StudioError(
            "invalid", f"Only StructureDefinition, ValueSet and CodeSystem can be uploaded here, not {kind!r}."
        )
    url = resource.get("url")
    if not isinstance(url, str) or not url.strip() or len(url) > MAX_URL_LENGTH or "\x00" in url:
        raise StudioError("invalid", f"A {kind} needs a canonical url (at most {MAX_URL_LENGTH} characters).")
    if b"\\u0000" in orjson.dumps(resource, default=decimal_default):  # PostgreSQL stores no NUL: bad input, not a 500
        raise StudioError("invalid", f"{url}: the definition must not contain a NUL character.")
    if kind == "StructureDefinition":
        try:
            check_shape(resource)
        except SnapshotError as exc:
            raise StudioError("invalid", f"{url}: {exc}") from exc
    elif problem := _terminology_problem(resource):
        raise StudioError("invalid", f"{url}: {kind}.{problem}.")


# --- checking against the registry ----------------------------------------------------------------------------------


def _extension_urls(resource: dict) -> list[str]:
    urls = set()
    for view in ("snapshot", "differential"):
        for element in resource.get(view, {}).get("element", []):
            for kind in element.get("type", []) or []:
                if kind.get("code") == "Extension":
                    urls.update(kind.get("profile") or [])
    return sorted(urls)


def _prepared(resource: dict, registry: Registry) -> tuple[dict, bool]:
    """The resource ready to store (a snapshot generated if it had none) and whether it was generated."""
    if resource["resourceType"] != "StructureDefinition":
        return resource, False
    where = resource["url"]
    if resource.get("derivation") == "specialization" and core().structure(resource.get("type") or "") is not None:
        raise StudioError("invalid", f"{where} defines the R4 type {resource['type']} again: profile it instead.")
    base = resource.get("baseDefinition")
    if base and registry.structure(base) is None:
        raise StudioError(
            "invalid",
            f"{where}: unknown base definition {base}. Upload it (or its package) first.",
            details={"missing": [base]},
        )
    if base:  # kind and type are required; a profile left without them means its base's (validation reads them)
        inherited = {key: registry.structure(base).get(key) for key in ("kind", "type") if not resource.get(key)}
        resource = {**resource, **{key: value for key, value in inherited.items() if value}}
    missing = [url for url in _extension_urls(resource) if registry.structure(url) is None]
    if missing:
        raise StudioError(
            "invalid",
            f"{where}: unknown extension definition {', '.join(missing)}. Upload it first.",
            details={"missing": missing},
        )
    if resource.get("snapshot", {}).get("element"):
        return resource, False
    if not resource.get("differential", {}).get("element"):
        raise StudioError("invalid", f"{where} has neither a snapshot nor a differential.")
    try:
        elements = generate_snapshot(resource, registry)
    except SnapshotError as exc:
        raise StudioError("invalid", f"{where}: {exc}") from exc
    return {**resource, "snapshot": {"element": elements}}, True


def _row(resource: dict, generated: bool, *, acting_user, package: ProfilePackage | None) -> ProfileDefinition:
    return ProfileDefinition(
        resource_type=resource["resourceType"],
        url=resource["url"],
        version=str(resource.get("version") or "")[:100],
        name=str(resource.get("name") or "")[:200],
        title=str(resource.get("title") or "")[:300],
        type=str(resource.get("type") or "")[:100],
        kind=str(resource.get("kind") or "")[:30],
        derivation=str(resource.get("derivation") or "")[:20],
        base_definition=str(resource.get("baseDefinition") or "")[:500],
        extension_urls=_extension_urls(resource),
        snapshot_generated=generated,
        content=resource,
        package=package,
        uploaded_by=acting_user if acting_user is not None and acting_user.is_authenticated else None,
    )


def _refuse_taken(urls: list[str]) -> None:
    taken = sorted(ProfileDefinition.objects.filter(url__in=urls).values_list("url", flat=True))
    if taken:
        shown = ", ".join(taken[:5]) + (f" and {len(taken) - 5} more" if len(taken) > 5 else "")
        raise StudioError(
            "conflict", f"Already uploaded: {shown}. Delete it first to replace it.", details={"urls": taken}
        )


# --- the actions ----------------------------------------------------------------------------------------------------


@transaction.atomic(durable=True)
def do_upload_definition(*, acting_user: AbstractBaseUser, resource: dict) -> ProfileDefinition:
    _checked_shape(resource)
    _refuse_taken([resource["url"]])
    registry = studio_registry().layered([resource])
    prepared, generated = _prepared(resource, registry)
    row = _row(prepared, generated, acting_user=acting_user, package=None)
    row.save()
    audit(
        acting_user,
        AuditAction.PROFILE_UPLOADED,
        row,
        after={"url": row.url, "version": row.version},
        resource_type=row.resource_type,
        snapshot_generated=generated,
    )
    return row


@transaction.atomic(durable=True)
def do_upload_package(*, acting_user: AbstractBaseUser, data: bytes) -> ProfilePackage:
    try:
        package = read_package(data)
    except PackageError as exc:
        raise StudioError("invalid", str(exc)) from exc
    if len(package.name) > 200 or len(package.version) > 50:
        raise StudioError("invalid", "package.json: a name has at most 200 characters, a version 50.")
    if "\x00" in package.key + package.description or b"\\u0000" in orjson.dumps(package.dependencies):
        raise StudioError("invalid", "package.json must not contain a NUL character.")
    if ProfilePackage.objects.filter(name=package.name, version=package.version).exists():
        raise StudioError("conflict", f"The package {package.key} is already loaded.")
    loaded: dict[str, set[str]] = {}
    for name, version in ProfilePackage.objects.values_list("name", "version"):
        loaded.setdefault(name, set()).add(version)
    missing = missing_dependencies(package, loaded)
    if missing:
        raise StudioError(
            "invalid",
            f"{package.key} needs {', '.join(missing)}: upload that package first.",
            details={"missing": missing},
        )
    definitions = [r for r in package.resources if r.get("resourceType") in DEFINITION_TYPES and r.get("url")]
    for resource in definitions:
        _checked_shape(resource)
    urls = [resource["url"] for resource in definitions]
    duplicated = sorted({url for url in urls if urls.count(url) > 1})
    if duplicated:
        raise StudioError("invalid", f"{package.key} defines {', '.join(duplicated)} more than once.")
    _refuse_taken(urls)
    registry = studio_registry().layered(definitions)
    stored = ProfilePackage.objects.create(
        name=package.name,
        version=package.version,
        description=package.description[:2000],
        dependencies=package.dependencies,
        skipped=package.skipped + len(package.resources) - len(definitions),
        uploaded_by=acting_user if acting_user is not None and acting_user.is_authenticated else None,
    )
    rows = [_row(*_prepared(resource, registry), acting_user=acting_user, package=stored) for resource in definitions]
    ProfileDefinition.objects.bulk_create(rows)
    audit(
        acting_user,
        AuditAction.PACKAGE_UPLOADED,
        stored,
        after={"package": package.key, "definitions": len(rows)},
        generated_snapshots=sum(row.snapshot_generated for row in rows),
    )
    logger.info("package %s loaded: %d definitions", package.key, len(rows))
    return stored


@transaction.atomic(durable=True)
def do_delete_definition(definition: ProfileDefinition, *, acting_user: AbstractBaseUser) -> None:
    definition = (
        ProfileDefinition.objects.select_for_update(of=("self",)).select_related("package").get(pk=definition.pk)
    )
    if definition.package_id is not None:
        raise StudioError(
            "in_use",
            f"{definition.url} comes with the package {definition.package.key}: delete the package as a whole.",
            details={"package": definition.package.key},
        )
    users = definitions_using({definition.url})
    if users:
        raise StudioError(
            "in_use",
            f"{definition.url} is used by {', '.join(users)}: delete those first.",
            details={"used_by": users},
        )
    before = {"url": definition.url, "version": definition.version}
    audit(acting_user, AuditAction.PROFILE_DELETED, definition, before=before, resource_type=definition.resource_type)
    definition.delete()


@transaction.atomic(durable=True)
def do_delete_package(package: ProfilePackage, *, acting_user: AbstractBaseUser) -> None:
    package = ProfilePackage.objects.select_for_update().get(pk=package.pk)
    needing = packages_needing(package)
    if needing:
        raise StudioError(
            "in_use", f"{', '.join(needing)} depend on {package.key}: delete them first.", details={"used_by": needing}
        )
    urls = set(package.definitions.values_list("url", flat=True))
    users = definitions_using(urls, outside_package=package.pk)
    if users:
        raise StudioError(
            "in_use",
            f"Definitions of {package.key} are used by {', '.join(users)}: delete those first.",
            details={"used_by": users},
        )
    audit(acting_user, AuditAction.PACKAGE_DELETED, package, before={"package": package.key, "definitions": len(urls)})
    package.definitions.all().delete()
    package.delete()
