"""Serving a binding whose source is live (http, sql or another FHIR server): each FHIR request asks the source, runs
the deployed version on what comes back and keeps the resources of the bound type. Records the mapping cannot convert
are left out and reported in the searchset's OperationOutcome entry, so one bad record does not fail the whole
answer. A fhir-server source is read through its connection's client (mappings/sources/fhir_server.py)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from mappings import message_log, secrets
from mappings.connection_clients import shared_client
from mappings.connectors import FhirClient
from mappings.engine import operation_outcome
from mappings.errors import FhirError, RequestCode
from mappings.facade.deployed import run_deployed
from mappings.facade.search import DEFAULT_COUNT
from mappings.models import Connection, DataSource, Deployment
from mappings.sources import SourceError, fhir_server
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
    with _as_fhir_error():
        return fetch(source.config, keys[which], values)


@contextmanager
def _as_fhir_error() -> Iterator[None]:
    """A source's failure as the facade's OperationOutcome: 502/504 when it could not answer, else its status."""
    try:
        yield
    except SourceError as error:
        code = RequestCode.SOURCE_UNAVAILABLE if error.status >= 502 else RequestCode.SOURCE_FAILED
        raise FhirError(error.status, code, error.message) from error


def server_client(config: dict) -> FhirClient:
    """The client of the connection a fhir-server source names, kept across requests while the connection is
    unchanged (its sockets and token reused); SourceError (500) when it names none that exists."""
    connection = Connection.objects.filter(name=str(config.get("connection") or "")).first()
    if connection is None:
        raise SourceError(f"The source names no existing connection ({config.get('connection')!r}).", status=500)
    try:
        return shared_client(connection)
    except secrets.SecretsKeyError as error:  # the connection's stored secrets cannot be opened with this key
        raise SourceError(str(error), status=503) from error


def _read_payloads(deployment: Deployment, resource_id: str) -> list[str]:
    source = deployment.binding.source
    if source.kind != DataSource.Kind.FHIR_SERVER:
        return _fetch(deployment, 0, {"id": resource_id})
    with _as_fhir_error():
        client = server_client(source.config)
        return fhir_server.read(client, source.config, deployment.binding.resource_type, resource_id)


def live_read(deployment: Deployment, resource_id: str) -> dict:
    resources, problems = _convert(deployment, _read_payloads(deployment, resource_id))
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
    if deployment.binding.source.kind == DataSource.Kind.FHIR_SERVER:
        return _server_search(deployment, query, result_params)
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
    return resources, _left_out(problems, "source records")


def _server_search(
    deployment: Deployment, query: list[tuple[str, str]], result_params: set[str]
) -> tuple[list, dict | None]:
    """The facade's parameters passed on to the remote server's search, and one page of as many resources as the
    facade's page needs (_offset + _count: the view slices the page out of what comes back)."""
    source = deployment.binding.source
    values = dict(query)
    wanted = int(values.get("_count", DEFAULT_COUNT)) + int(values.get("_offset", 0))
    passed = [(name, value) for name, value in query if name not in result_params or name == "_sort"]
    with _as_fhir_error():
        client = server_client(source.config)
        payloads = fhir_server.search(client, source.config, deployment.binding.resource_type, passed, wanted)
    resources, problems = _convert(deployment, payloads)
    return resources, _left_out(problems, "resources of the server")


def _left_out(problems: list[str], what: str) -> dict | None:
    """The searchset's warning about records that did not convert (None when all did)."""
    if not problems:
        return None
    left_out = f"{len(problems)} {what} could not be converted: " + "; ".join(problems[:5])
    return operation_outcome([FhirError(200, RequestCode.SOURCE_FAILED, left_out, severity="warning")])
