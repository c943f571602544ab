"""Running a deployment's version on one record, as a facade serves it: in the source's format, with the
deployment's variables, each resource of the bound type validated (the R4 base, its meta.profile, uploaded profiles)
so a facade never serves an invalid resource: one that fails is left out and its first error reported. One function
for the three places that do it: live reads and searches, index building, and bulk export of live sources."""

from __future__ import annotations

from mappings.compiling import compile_version
from mappings.conf import engine_limits
from mappings.engine import MappingError, run_mapping
from mappings.engine.definitions import Registry
from mappings.engine.validate import validate_output
from mappings.facade.search_index import resources_of_type
from mappings.models import Deployment
from mappings.profiles import studio_registry


def run_deployed(
    deployment: Deployment, payload: str, *, registry: Registry | None = None
) -> tuple[list[dict], list[MappingError]]:
    """(the valid resources of the bound type the record made, the errors that stopped it or left a resource out);
    compiled once per version. Callers running many records pass `registry` (studio_registry()) once."""
    registry = registry or studio_registry()
    result = run_mapping(
        compile_version(deployment.version),
        payload,
        source_format=deployment.binding.source.source_format,
        limits=engine_limits(),
        validate=False,  # the whole output is not served: only the bound type's resources are validated, below
        variables=deployment.variables,
        registry=registry,  # extension() checks uploaded extension definitions too
    )
    fatal = [error for error in result.errors if error.fatal]
    if fatal or result.output is None:
        return [], fatal
    kept, invalid = [], []
    for resource in resources_of_type(result.output, deployment.binding.resource_type):
        errors = [issue for issue in validate_output(resource, registry=registry) if issue.fatal]
        if not errors:
            kept.append(resource)
            continue
        first = errors[0]
        where = f"{resource.get('resourceType')}/{resource.get('id', '?')}"
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        invalid.append(
            MappingError(first.error, f"{where} is not valid: {first.message}{more}", expression=first.expression)
        )
    return kept, invalid
