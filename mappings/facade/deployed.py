"""Running a deployment's version on one record, as a facade serves it: in the source's format, with the
deployment's variables, unvalidated (validation is the samples' job, at deploy time). One function for the three
places that do it: live reads and searches, index building, and bulk export of live sources."""

from __future__ import annotations

from mappings.compiling import compile_version
from mappings.conf import engine_limits
from mappings.engine import MappingError, run_mapping
from mappings.facade.search_index import resources_of_type
from mappings.models import Deployment


def run_deployed(deployment: Deployment, payload: str) -> tuple[list[dict], list[MappingError]]:
    """(the resources of the bound type the record made, the errors that stopped it); compiled once per version."""
    result = run_mapping(
        compile_version(deployment.version),
        payload,
        source_format=deployment.binding.source.source_format,
        limits=engine_limits(),
        validate=False,
        variables=deployment.variables,
    )
    fatal = [error for error in result.errors if error.severity in ("error", "fatal")]
    if fatal or result.output is None:
        return [], fatal
    return resources_of_type(result.output, deployment.binding.resource_type), []
