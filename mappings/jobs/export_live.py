"""Bulk `$export` of types served from live sources (HTTP, SQL), through the source's list setting (`list_path`,
`list_query`; mappings/sources/), or another FHIR server's search paging (a fhir-server source follows `next` links). A
live source cannot be counted up front, so a type's export is planned as ONE chunk at the list's first page; a chunk
reads pages until it has read EXPORT_CHUNK_RESOURCES records, and if the list goes on it creates and sends the next
chunk (number + 1, cursor where it stopped) before it ends: its successor is committed while it is still running, so the
job cannot be seen finished in between (the job ends when no chunk is queued or running). get_or_create on (job, type,
number) makes a redelivered or taken-over chunk find the successor the first attempt made instead of making a second
one.

Parameters: `_since` exports everything from a live source (it has no lastUpdated; Bulk Data IG v2, `_since`: "for
resources where the server does not maintain a last updated time, the server MAY include these resources in a
response irrespective of the `_since` value"); `_typeFilter` is refused at kick-off
(`mappings.sources.live_type_filter_error`);
`_elements` and Patient/Group compartments apply to the mapped resources as for stored types."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable

import orjson
from django.conf import settings

from mappings.engine.formats.decimals import decimal_default
from mappings.facade.deployed import run_deployed
from mappings.facade.live import server_client
from mappings.facade.search_index import patient_compartment
from mappings.job_files import LineFiles
from mappings.jobs import chunks
from mappings.jobs.chunks import Heartbeat
from mappings.jobs.export_records import elements_for, record_outcome, subset
from mappings.models import ChunkStatus, DataSource, Deployment, ExportChunk, ExportJob, JobStatus
from mappings.profiles import studio_registry
from mappings.sources import SourceError, fhir_server
from mappings.sources import http as http_source
from mappings.sources import sql as sql_source

logger = logging.getLogger(__name__)
SOURCES = {DataSource.Kind.HTTP: http_source, DataSource.Kind.SQL: sql_source}
LIST_SETTING = {
    DataSource.Kind.HTTP: "list_path",
    DataSource.Kind.SQL: "list_query",
    DataSource.Kind.FHIR_SERVER: "its next link",
}
NAMED = {DataSource.Kind.HTTP: "an HTTP source", DataSource.Kind.SQL: "a SQL source"}
DEFAULT_PAGE_SIZE = 500  # records per list page; a source's page_size changes it (at most 10,000: actions/facades.py)


def plan_live_chunks(job: ExportJob, resource_type: str, deployment: Deployment) -> list[ExportChunk]:
    """The type's first chunk (unsaved), at the start of the source's list; the chunks after it are made as the
    list is read. Raises ValueError, which the client sees, when the source has no list setting."""
    source = deployment.binding.source
    module = _lister(deployment)
    if module is None:
        raise ValueError(f"{resource_type} comes from a {source.kind} source, which is not a live source")
    if module.list_mode(source.config) is None:
        setting = LIST_SETTING[source.kind]
        raise ValueError(f"{resource_type} comes from {NAMED[source.kind]} with no {setting}: it cannot be exported")
    cursor = {**module.start_cursor(source.config), "limit": int(source.config.get("page_size", DEFAULT_PAGE_SIZE))}
    return [ExportChunk(job=job, resource_type=resource_type, number=1, deployment=deployment, cursor=cursor)]


def write_live_chunk(
    chunk: ExportChunk, job: ExportJob, output: LineFiles, errors: LineFiles, heartbeat: Heartbeat
) -> tuple[int, int]:
    """Read the chunk's pages from its cursor, run the deployed version on every record and write each resource of
    the chunk's type to `output` (one NDJSON line) and an OperationOutcome per record that did not convert to
    `errors`. Returns (resources written, records failed); returns early when the heartbeat says stop. A page the
    source cannot give (SourceError, after the source's own retries) is raised: the chunk fails, and the export."""
    deployment = chunk.deployment
    source = deployment.binding.source
    module = _lister(deployment)
    keep = _kept_by(job, chunk.resource_type)
    elements = elements_for(job.parameters.get("elements") or [], chunk.resource_type)
    budget = settings.FHIR_STUDIO["EXPORT_CHUNK_RESOURCES"]
    registry = studio_registry()
    cursor: dict | None = dict(chunk.cursor)
    previous = cursor.pop("digest", None)
    read = written = failed = 0
    while cursor is not None and read < budget:
        payloads, following = module.list_page(source.config, cursor)
        # A source that ignores the page placeholder answers the same page forever: stop instead of exporting it
        # again and again until the disk is full.
        digest = hashlib.blake2b("\n".join(payloads).encode(), digest_size=8).hexdigest()
        if payloads and digest == previous:
            setting = LIST_SETTING[source.kind]
            raise SourceError(f"The source answered the same page twice at {_where(cursor)}: does {setting} page?")
        previous = digest
        for index, payload in enumerate(payloads):
            resources, fatal = run_deployed(deployment, payload, registry=registry)
            if fatal:  # the record did not convert, or made a resource that is not valid (left out)
                label = _record_label(source.config, cursor, index, payload)
                outcome = record_outcome(chunk.resource_type, label, fatal[0].code, fatal[0].message)
                errors.write(orjson.dumps(outcome))
                failed += 1
            for resource in resources:
                if keep(resource):
                    kept = resource if elements is None else subset(resource, elements)
                    output.write(orjson.dumps(kept, default=decimal_default))  # decimals keep their digits
                    written += 1
            if not heartbeat.beat():
                output.discard()  # cancelled or taken over: leave no half file behind the other attempt's
                errors.discard()
                return written, failed
        read += len(payloads)
        cursor = following
    if cursor is not None:
        _send_successor(chunk, {**cursor, "digest": previous})
    return written, failed


def _lister(deployment: Deployment):
    """What lists the source's records page by page: http.py or sql.py, or a fhir-server source's search paging
    through its connection (the client made here: mappings.sources may not read the Connection)."""
    source = deployment.binding.source
    if source.kind == DataSource.Kind.FHIR_SERVER:
        try:
            return fhir_server.Lister(server_client(source.config), deployment.binding.resource_type)
        except SourceError as error:
            raise ValueError(error.message) from error
    return SOURCES.get(source.kind)


def _send_successor(chunk: ExportChunk, cursor: dict) -> None:
    if not ExportJob.objects.filter(pk=chunk.job_id, status=JobStatus.RUNNING).exists():
        return  # failed or cancelled meanwhile: nothing would run it
    successor, created = ExportChunk.objects.get_or_create(
        job_id=chunk.job_id,
        resource_type=chunk.resource_type,
        number=chunk.number + 1,
        defaults={"deployment_id": chunk.deployment_id, "cursor": cursor},
    )
    # A successor made but never sent (the worker died in between) is sent by the attempt that finds it; one that was
    # sent is the stalled-chunk sweep's to send again.
    if created or (successor.status == ChunkStatus.QUEUED and successor.queued_at is None):
        logger.info("export %s: %s part %d sent", chunk.job_id, chunk.resource_type, successor.number)
        chunks.send_chunks(ExportChunk, [successor.pk])


def _kept_by(job: ExportJob, resource_type: str) -> Callable[[dict], bool]:
    """Which mapped resources the job exports: all of them at system level; a Patient or Group export keeps its
    patients and the resources in their compartments (what exports.exported_rows selects from an index)."""
    if job.level == ExportJob.Level.SYSTEM:
        return lambda resource: True
    patients = job.parameters.get("patients")  # None: every patient
    wanted = None if patients is None else {f"patient/{patient}".lower() for patient in patients}
    if resource_type == "Patient":
        return lambda resource: wanted is None or f"patient/{resource.get('id', '')}".lower() in wanted
    return lambda resource: bool(
        patient_compartment(resource) if wanted is None else wanted.intersection(patient_compartment(resource))
    )


def _record_label(config: dict, cursor: dict, index: int, payload: str) -> str:
    """How the error file names a record: its key when the source names a key field, else its place in the list."""
    key_name = config.get("key_field") or config.get("key_column")
    if key_name:
        try:
            record = orjson.loads(payload)
        except orjson.JSONDecodeError:
            record = None
        if isinstance(record, dict) and record.get(key_name) is not None:
            return f"{key_name}={record[key_name]}"
    if "offset" in cursor:
        return f"position {cursor['offset'] + index}"
    return f"{_where(cursor)}, record {index + 1}"


def _where(cursor: dict) -> str:
    if "page" in cursor:
        return f"page {cursor['page']}"
    if "offset" in cursor:
        return f"offset {cursor['offset']}"
    return "a page after a key"  # not the key: it is a record's data, and this text reaches the logs
