"""FHIR IG packages (`.tgz`, the npm layout): read one safely and say what it defines and what it needs.

A package is `package/package.json` (name, version, dependencies) and its resources as `package/*.json`
(`package/.index.json` and `package/other/`, `package/example/` are optional). An upload is untrusted: the archive is
read in memory with limits on its compressed and unpacked size, its number of members and each file's size; only
regular files are read (no symlinks, hard links or devices), only JSON, never written to disk, and a member whose
name is absolute or climbs out with `..` refuses the whole package.

`read_package(data)` answers a `Package`: its manifest and its conformance resources (StructureDefinition,
ValueSet, CodeSystem, SearchParameter, …); examples and other resources are counted, not kept.
`missing_dependencies(package, loaded)` names the dependencies not among the packages already loaded (the R4 core,
`hl7.fhir.r4.core` 4.0.1, is always there).
"""

from __future__ import annotations

import gzip
import io
import posixpath
import tarfile
import zlib
from dataclasses import dataclass, field

import orjson

CORE_PACKAGE = ("hl7.fhir.r4.core", "4.0.1")
CONFORMANCE_TYPES = frozenset(
    {
        "StructureDefinition",
        "ValueSet",
        "CodeSystem",
        "SearchParameter",
        "ConceptMap",
        "NamingSystem",
        "CapabilityStatement",
        "OperationDefinition",
        "ImplementationGuide",
    }
)


@dataclass(frozen=True)
class PackageLimits:
    max_compressed_bytes: int = 20 * 1024 * 1024
    max_unpacked_bytes: int = 200 * 1024 * 1024
    max_members: int = 5_000
    max_file_bytes: int = 20 * 1024 * 1024


class PackageError(ValueError):
    """The package cannot be read or is refused; the message says why."""


@dataclass
class Package:
    name: str
    version: str
    dependencies: dict[str, str]
    description: str = ""
    fhir_versions: list[str] = field(default_factory=list)
    resources: list[dict] = field(default_factory=list)  # the conformance resources, in archive order
    skipped: int = 0  # JSON resources that are not conformance resources (examples …)

    @property
    def key(self) -> str:
        return f"{self.name}#{self.version}"


DEFAULT_LIMITS = PackageLimits()


def read_package(data: bytes, limits: PackageLimits = DEFAULT_LIMITS) -> Package:
    """Read a package archive (gzip'd tar) from memory. Raises PackageError with a message a person can act on."""
    if len(data) > limits.max_compressed_bytes:
        raise PackageError(f"The package is over {limits.max_compressed_bytes:,} bytes.")
    if data[:2] != b"\x1f\x8b":
        raise PackageError("Not a package: an IG package is a .tgz (gzip'd tar) file.")
    manifest: dict | None = None
    resources: list[dict] = []
    skipped = 0
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
            unpacked = 0
            for count, member in enumerate(archive, start=1):
                if count > limits.max_members:
                    raise PackageError(f"The package has more than {limits.max_members:,} files.")
                name = _checked_name(member)
                if member.isdir():
                    continue
                if not member.isfile():
                    raise PackageError(f"{name}: only regular files are allowed in a package (no links or devices).")
                unpacked += member.size
                if unpacked > limits.max_unpacked_bytes:
                    raise PackageError(f"The package unpacks to more than {limits.max_unpacked_bytes:,} bytes.")
                if not name.startswith("package/") or not name.endswith(".json") or name.startswith("package/."):
                    continue  # .index.json, READMEs, openapi/… are not needed
                if name.startswith(("package/example/", "package/examples/")):
                    skipped += 1  # examples are not definitions: counted, not even parsed
                    continue
                if member.size > limits.max_file_bytes:
                    raise PackageError(f"{name} is over {limits.max_file_bytes:,} bytes.")
                content = _json(archive, member, name)
                if name == "package/package.json":
                    manifest = content
                elif isinstance(content, dict) and content.get("resourceType") in CONFORMANCE_TYPES:
                    resources.append(content)
                else:
                    skipped += 1
    except (tarfile.TarError, EOFError, OSError, zlib.error, gzip.BadGzipFile) as exc:
        raise PackageError(f"The package archive is damaged: {exc}") from exc
    if manifest is None:
        raise PackageError("No package/package.json: not an IG package (npm layout).")
    return _package(manifest, resources, skipped)


def _checked_name(member: tarfile.TarInfo) -> str:
    name = member.name.replace("\\", "/")
    normal = posixpath.normpath(name)
    if name.startswith("/") or normal.startswith("..") or "/../" in f"/{name}/" or "\x00" in name:
        raise PackageError(f"{member.name!r}: a path outside the package is refused.")
    return normal


def _json(archive: tarfile.TarFile, member: tarfile.TarInfo, name: str) -> object:
    stream = archive.extractfile(member)
    if stream is None:
        raise PackageError(f"{name} cannot be read.")
    try:
        return orjson.loads(stream.read(member.size))
    except orjson.JSONDecodeError as exc:
        raise PackageError(f"{name} is not valid JSON: {exc}") from exc


def _package(manifest: object, resources: list[dict], skipped: int) -> Package:
    if not isinstance(manifest, dict):
        raise PackageError("package/package.json is not a JSON object.")
    name, version = manifest.get("name"), manifest.get("version")
    if not isinstance(name, str) or not name or not isinstance(version, str) or not version:
        raise PackageError("package/package.json needs a name and a version.")
    dependencies = manifest.get("dependencies") or {}
    if not isinstance(dependencies, dict) or not all(
        isinstance(key, str) and isinstance(value, str) for key, value in dependencies.items()
    ):
        raise PackageError("package/package.json: dependencies must map package names to versions.")
    fhir_versions = manifest.get("fhirVersions") or []
    if any(not str(v).startswith("4.0") for v in fhir_versions):
        versions = ", ".join(map(str, fhir_versions))
        raise PackageError(f"{name}#{version} is for FHIR {versions}; the studio is R4 (4.0.1).")
    return Package(
        name=name,
        version=version,
        dependencies=dependencies,
        description=str(manifest.get("description") or ""),
        fhir_versions=[str(v) for v in fhir_versions],
        resources=resources,
        skipped=skipped,
    )


def version_matches(wanted: str, have: str) -> bool:
    """npm-ish: an exact version, `x` wildcards (`4.0.x`), or `current`/`latest`/`*` for any."""
    if wanted in ("current", "latest", "*", "") or wanted == have:
        return True
    wanted_parts, have_parts = wanted.split("."), have.split(".")
    if len(wanted_parts) > len(have_parts):
        return False
    return all(w in ("x", "*") or w == h for w, h in zip(wanted_parts, have_parts, strict=False))


def missing_dependencies(package: Package, loaded: dict[str, set[str]]) -> list[str]:
    """The `name#version` of each dependency no loaded package satisfies. `loaded` maps names to their versions;
    the R4 core is always loaded."""
    available = {key: set(versions) for key, versions in loaded.items()}
    available.setdefault(CORE_PACKAGE[0], set()).add(CORE_PACKAGE[1])
    missing = []
    for name, wanted in sorted(package.dependencies.items()):
        if not any(version_matches(wanted, have) for have in available.get(name, ())):
            missing.append(f"{name}#{wanted}")
    return missing
