"""IG packages read safely: manifest, conformance resources, and every way an archive is refused."""

from __future__ import annotations

import gzip
import io
import json
import tarfile

import pytest

from mappings.engine.packages import (
    PackageError,
    PackageLimits,
    missing_dependencies,
    read_package,
    version_matches,
)

MANIFEST = {
    "name": "example.fhir.test",
    "version": "1.0.0",
    "fhirVersions": ["4.0.1"],
    "dependencies": {"hl7.fhir.r4.core": "4.0.1"},
    "description": "A test IG",
}
PROFILE = {
    "resourceType": "StructureDefinition",
    "url": "http://example.org/StructureDefinition/p",
    "type": "Patient",
    "derivation": "constraint",
    "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Patient",
}
VALUE_SET = {"resourceType": "ValueSet", "url": "http://example.org/ValueSet/v", "status": "active"}


def tgz(files: dict[str, object], *, links: dict[str, str] | None = None) -> bytes:
    """A package archive from {member name: JSON value or bytes}, plus symbolic links {name: target}."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, content in files.items():
            data = content if isinstance(content, bytes) else json.dumps(content).encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            archive.addfile(info)
    return buffer.getvalue()


def test_it_reads_the_manifest_and_keeps_only_conformance_resources() -> None:
    package = read_package(
        tgz(
            {
                "package/package.json": MANIFEST,
                "package/.index.json": {"index-version": 1, "files": []},
                "package/StructureDefinition-p.json": PROFILE,
                "package/ValueSet-v.json": VALUE_SET,
                "package/Patient-example.json": {"resourceType": "Patient", "id": "x"},
                "package/example/Observation-1.json": {"resourceType": "Observation"},
                "package/README.md": b"# hello",
            }
        )
    )
    assert (package.name, package.version, package.key) == ("example.fhir.test", "1.0.0", "example.fhir.test#1.0.0")
    assert package.dependencies == {"hl7.fhir.r4.core": "4.0.1"}
    assert package.description == "A test IG"
    assert [resource["resourceType"] for resource in package.resources] == ["StructureDefinition", "ValueSet"]
    assert package.skipped == 2


REFUSED = [
    ({"package/StructureDefinition-p.json": PROFILE}, "No package/package.json"),
    ({"package/package.json": {"name": "x"}}, "needs a name and a version"),
    ({"package/package.json": [1, 2]}, "is not a JSON object"),
    ({"package/package.json": {**MANIFEST, "dependencies": ["a"]}}, "dependencies must map"),
    ({"package/package.json": {**MANIFEST, "fhirVersions": ["5.0.0"]}}, "is for FHIR 5.0.0"),
    ({"package/package.json": MANIFEST, "package/bad.json": b"{not json"}, "package/bad.json is not valid JSON"),
    ({"package/package.json": MANIFEST, "../evil.json": PROFILE}, "a path outside the package is refused"),
    ({"package/package.json": MANIFEST, "/etc/evil.json": PROFILE}, "a path outside the package is refused"),
    ({"package/package.json": MANIFEST, "package/../../evil.json": PROFILE}, "a path outside the package"),
]


@pytest.mark.parametrize(("files", "message"), REFUSED, ids=[message for _, message in REFUSED])
def test_it_refuses_a_package_it_cannot_trust_or_read(files: dict, message: str) -> None:
    with pytest.raises(PackageError, match=message):
        read_package(tgz(files))


def test_it_refuses_symbolic_links() -> None:
    data = tgz({"package/package.json": MANIFEST}, links={"package/passwd.json": "/etc/passwd"})
    with pytest.raises(PackageError, match="only regular files"):
        read_package(data)


def test_it_refuses_what_is_not_a_gzip_archive_or_is_damaged() -> None:
    with pytest.raises(PackageError, match="gzip'd tar"):
        read_package(b'{"resourceType": "StructureDefinition"}')
    with pytest.raises(PackageError, match="damaged"):
        read_package(gzip.compress(b"this is not a tar archive at all" * 40))
    with pytest.raises(PackageError, match="damaged"):
        read_package(tgz({"package/package.json": MANIFEST})[:60])


def test_it_enforces_its_size_and_member_limits() -> None:
    data = tgz({"package/package.json": MANIFEST, "package/a.json": PROFILE, "package/b.json": VALUE_SET})
    with pytest.raises(PackageError, match="more than 2 files"):
        read_package(data, PackageLimits(max_members=2))
    with pytest.raises(PackageError, match="over 100 bytes"):
        read_package(data, PackageLimits(max_compressed_bytes=100))
    with pytest.raises(PackageError, match="unpacks to more than 300 bytes"):
        read_package(data, PackageLimits(max_unpacked_bytes=300))
    with pytest.raises(PackageError, match=r"package/package\.json is over 50 bytes"):
        read_package(data, PackageLimits(max_file_bytes=50))


def test_a_zip_bomb_stops_at_the_unpacked_limit_without_being_read() -> None:
    # 50 MB of zeros compress to ~50 KB: refused from the member's declared size, before it is decompressed.
    bomb = tgz({"package/package.json": MANIFEST, "package/zeros.json": b"0" * 50_000_000})
    assert len(bomb) < 200_000
    with pytest.raises(PackageError, match="unpacks to more than"):
        read_package(bomb, PackageLimits(max_unpacked_bytes=10_000_000))


@pytest.mark.parametrize(
    ("wanted", "have", "matches"),
    [
        ("4.0.1", "4.0.1", True),
        ("4.0.x", "4.0.1", True),
        ("4.0.1", "4.0.0", False),
        ("current", "0.1.0", True),
        ("5.0.x", "4.0.1", False),
        ("1.0.0.0", "1.0.0", False),
    ],
)
def test_versions_match_exactly_or_by_wildcard(wanted: str, have: str, matches: bool) -> None:
    assert version_matches(wanted, have) is matches


def test_it_names_each_missing_dependency_and_knows_the_core_is_there() -> None:
    package = read_package(
        tgz(
            {
                "package/package.json": {
                    **MANIFEST,
                    "dependencies": {"hl7.fhir.r4.core": "4.0.1", "hl7.terminology.r4": "5.0.0", "a.b": "1.x"},
                }
            }
        )
    )
    assert missing_dependencies(package, {}) == ["a.b#1.x", "hl7.terminology.r4#5.0.0"]
    assert missing_dependencies(package, {"a.b": {"1.2.0"}, "hl7.terminology.r4": {"5.0.0"}}) == []
