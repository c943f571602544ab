"""The FHIR R4 validator: one pass over parsed JSON against StructureDefinitions compiled once per type and profile.

    issues = validate_resource(resource, profiles=["http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient"])

Checks structure and JSON types, cardinality, every primitive's R4 regex (and real calendar dates), required and
extensible bindings, fixed and pattern values, FHIRPath invariants, references, slicing, `meta.profile` and extension
definitions. Issues are MappingErrors (FS-VAL-*) with a severity and a FHIRPath `expression`.

Modules: compile (snapshots → TypeSpec/ElementSpec), walk (the pass), checkers (each TypeSpec's walk as generated
Python), primitives, terminology, invariants + natives, references, slicing, patterns.
"""

from __future__ import annotations

from collections.abc import Sequence

from mappings.engine.definitions import Registry, core
from mappings.engine.errors import ErrorCode, MappingError

from .compile import compiler_for
from .walk import check_resource, walk


class Run:
    """The state of one validation: issues found (each once), the resource and reference scopes being walked."""

    __slots__ = ("bundle", "compiler", "issues", "registry", "resource", "scope", "seen", "trail")

    def __init__(self, registry: Registry) -> None:
        self.issues: list[MappingError] = []
        self.registry = registry
        self.compiler = compiler_for(registry)
        self.resource: dict | None = None
        self.scope = None
        self.bundle = None
        self.seen: set[tuple] = set()
        self.trail: list[tuple] = []  # every finding as added, repeated ones included: what the memos go by

    def add(self, code: ErrorCode, path: str, message: str, *, severity: str = "error") -> None:
        # A profile re-walks what the base walk saw: the same finding is reported once.
        self.trail.append((code, path, message, severity))
        seen = self.seen
        size = len(seen)
        seen.add((code, path, message))  # one hash of the key (an ErrorCode hashes in Python)
        if len(seen) == size:
            return
        self.issues.append(MappingError(code, f"{path} {message}", expression=[path], severity=severity))

    def conforms(self, value: object, url: str) -> bool:
        """Whether value has no error against the profile (profile discriminators of slicing)."""
        spec = self.compiler.profile_spec(url)
        if spec is None or not isinstance(value, dict):
            return False
        trial = Run(self.registry)
        trial.compiler = self.compiler  # the same walkers and caches (a test may give a run a compiler of its own)
        trial.resource, trial.scope, trial.bundle = self.resource, self.scope, self.bundle
        walk(value, spec, "$", trial)
        return not any(issue.severity == "error" for issue in trial.issues)


def validate_resource(
    resource: dict, *, profiles: Sequence[str] = (), registry: Registry | None = None
) -> list[MappingError]:
    """Every issue of this resource against the R4 base definitions, its meta.profile and `profiles`."""
    run = Run(registry if registry is not None else core())
    resource_type = resource.get("resourceType") if isinstance(resource, dict) else None
    check_resource(resource, resource_type if isinstance(resource_type, str) else "Resource", run, profiles=profiles)
    return run.issues


__all__ = ["validate_resource"]
