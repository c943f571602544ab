"""Serving a binding whose source is live (http or sql): each FHIR request asks the legacy system, runs the deployed
version on what comes back and keeps the resources of the bound type. Records the mapping cannot convert are left out
and reported in the searchset's OperationOutcome entry, so one bad record does not fail the whole answer."""

from __future__ import annotations

from mappings import message_log
from mappings.engine import operation_outcome
from mappings.errors import FhirError, RequestCode
from mappings.facade.deployed import run_deployed
from mappings.models import DataSource, Deployment
from mappings.sources import SourceError
from mappings.sources import http as http_source
from mappings.sources import sql as sql_source

FETCHERS = {
    DataSource.Kind.HTTP: (http_source.fetch, "read_path", "search_path"),
    DataSource.Kind.SQL: (sql_source.fetch, "read_query", "search_query"),
}


def _convert(deployment: Deployment, payloads: list[str]) -> tuple[list[dict], list[str]]:
    resources, problems = [], []
    for payload in payloads:
        made, fatal = run_deployed(deployment, payload)
        message_log.record_read(deployment, payload, made, fatal)
        resources += made
        if fatal:
            problems.append(f"{fatal[0].code}: {fatal[0].message}")
    return resources, problems


def _fetch(deployment: Deployment, which: int, values: dict[str, str]) -> list[str]:
    source = deployment.binding.source
    fetch, *keys = FETCHERS[source.kind]
    try:
        return fetch(source.config, keys[which], values)
    except SourceError as error:
        code = RequestCode.SOURCE_UNAVAILABLE if error.status >= 502 else RequestCode.SOURCE_FAILED
        raise FhirError(error.status, code, error.message) from error


def live_read(deployment: Deployment, resource_id: str) -> dict:
    resources, problems = _convert(deployment, _fetch(deployment, 0, {"id": resource_id}))
    for resource in resources:
        if resource.get("id") == resource_id or len(resources) == 1:
            return resource
    if problems:  # the source has the record, but it makes no valid resource: the source's data, not a 404
        raise FhirError(502, RequestCode.SOURCE_FAILED, f"The source record could not be served as FHIR: {problems[0]}")
    raise FhirError(404, RequestCode.NOT_FOUND, f"{deployment.binding.resource_type}/{resource_id} is not known.")


def live_search(
    deployment: Deployment, query: list[tuple[str, str]], result_params: set[str]
) -> tuple[list, dict | None]:
    """(matching resources, an OperationOutcome about records left out or None)."""
    mapped = deployment.binding.source.config.get("search") or {}
    values: dict[str, str] = {}
    for name, value in query:
        if name in result_params:
            continue
        if name == "_id":
            return [live_read(deployment, value)], None
        if name not in mapped:
            known = ", ".join(sorted(["_id", *mapped]))
            raise FhirError(400, RequestCode.PARAMETER, f"This source searches by {known} only, not '{name}'.")
        values[mapped[name]] = value
    resources, problems = _convert(deployment, _fetch(deployment, 1, values))
    note = None
    if problems:
        left_out = f"{len(problems)} source records could not be converted: " + "; ".join(problems[:5])
        note = operation_outcome([FhirError(200, RequestCode.SOURCE_FAILED, left_out, severity="warning")])
    return resources, note
