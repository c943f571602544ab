"""FHIR Bulk Data Access IG v2.0.0 on a facade: `$export` kick-off at system, Patient and Group level, the status
URL (202 with X-Progress and Retry-After while running, 200 with the manifest, 500 with an OperationOutcome when it
failed, DELETE to cancel or remove), and the NDJSON files, streamed from the jobs storage.

The kick-off checks every parameter before anything is queued: what it cannot honour is a 400 OperationOutcome,
unless the client sent `Prefer: handling=lenient`, when it is left out instead."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import parse_qsl

import orjson
from django.conf import settings
from django.db.models import Sum
from django.http import FileResponse, HttpRequest, HttpResponse
from django.utils.http import http_date
from django.views.decorators.csrf import csrf_exempt

from mappings import actions
from mappings.access import ServedFacade, access_export_job, access_facade_request, live_deployments
from mappings.engine import operation_outcome
from mappings.errors import FhirError, RequestCode
from mappings.facade.http import fhir_response, smart_endpoint
from mappings.facade.search import RESULT_PARAMS, search
from mappings.fhir_types import is_r4_resource_type
from mappings.job_files import open_file
from mappings.models import ExportJob, FacadeResource, JobStatus, PatientGroup
from mappings.security.enforcement import forbidden, grant_of, may, require
from mappings.sources import live_type_filter_error

OUTPUT_FORMATS = {"application/fhir+ndjson", "application/ndjson", "ndjson"}
ACCEPTED = {"", "*/*", "application/json", "application/fhir+json"}
KNOWN = {"_outputFormat", "_since", "_type", "_typeFilter", "_elements", "patient"}
ELEMENT = re.compile(r"^([A-Z][A-Za-z]+\.)?[a-z][A-Za-z0-9]*$")
# An instant whose "+hh:mm" offset arrived as " hh:mm": the client did not percent-encode the "+".
SPACED_OFFSET = re.compile(r" (\d{2}:?\d{2})$")
RETRY_AFTER = "2"  # seconds; an integer on every 202, as clients (and the IG) expect
NDJSON = "application/fhir+ndjson"


@dataclass
class Kickoff:
    """The checked parameters of a kick-off; `parameters` is what the job keeps."""

    lenient: bool
    parameters: dict = field(default_factory=dict)

    def unsupported(self, message: str) -> None:
        if not self.lenient:
            raise FhirError(400, RequestCode.PARAMETER, message + " (send Prefer: handling=lenient to skip it)")


@csrf_exempt
@smart_endpoint
def export_system(request: HttpRequest, slug: str) -> HttpResponse:
    return _kickoff(request, slug, ExportJob.Level.SYSTEM)


@csrf_exempt
@smart_endpoint
def export_patients(request: HttpRequest, slug: str) -> HttpResponse:
    return _kickoff(request, slug, ExportJob.Level.PATIENT)


@csrf_exempt
@smart_endpoint
def export_group(request: HttpRequest, slug: str, group_id: str) -> HttpResponse:
    return _kickoff(request, slug, ExportJob.Level.GROUP, group_id)


def _kickoff(request: HttpRequest, slug: str, level: str, group_id: str = "") -> HttpResponse:
    if request.method not in ("GET", "POST"):
        raise FhirError(405, RequestCode.METHOD, "$export is started with GET or POST.")
    facade = access_facade_request(slug, request)
    prefer = {part.strip().lower() for part in re.split("[,;]", request.headers.get("Prefer", ""))}
    if "respond-async" not in prefer:
        raise FhirError(
            400, RequestCode.REQUIRED, "$export runs asynchronously: send the header Prefer: respond-async."
        )
    accept = request.headers.get("Accept", "").split(";")[0].strip().lower()
    if accept not in ACCEPTED:
        raise FhirError(400, RequestCode.FORMAT, f"$export answers in application/fhir+json, not {accept}.")
    checked = Kickoff(lenient="handling=lenient" in prefer)
    served = {resource_type: live.source_kind for resource_type, live in live_deployments(facade).items()}
    pairs = _parameters(request)
    for name, _ in pairs:
        if name not in KNOWN:
            checked.unsupported(f"$export has no parameter '{name}'.")
    _check_format(checked, [value for name, value in pairs if name == "_outputFormat"])
    _check_since(checked, [value for name, value in pairs if name == "_since"])
    _check_types(checked, [value for name, value in pairs if name == "_type"], served)
    _check_type_filters(checked, [value for name, value in pairs if name == "_typeFilter"], served)
    _check_elements(checked, [value for name, value in pairs if name == "_elements"])
    patients = [value for name, value in pairs if name == "patient"]
    if patients and level == ExportJob.Level.SYSTEM:
        checked.unsupported("'patient' narrows a Patient or Group export, not a system one.")
    elif patients:
        checked.parameters["patients"] = _patient_ids(patients)
    _authorized_types(request, checked, served)
    if level == ExportJob.Level.GROUP:
        members = _group_members(request, facade, group_id)
        wanted = checked.parameters.get("patients")
        checked.parameters["patients"] = [member for member in members if wanted is None or member in wanted]
    grant = grant_of(request)
    job = actions.do_start_export(
        facade,
        client=grant.client_id if grant else request.META.get("REMOTE_ADDR", ""),
        level=level,
        group_id=group_id,
        request_url=request.build_absolute_uri(),
        parameters=checked.parameters,
        requires_access_token=grant is not None,  # its status and files then need the same client's token
    )
    accepted = {"resourceType": "OperationOutcome", "issue": [_info(f"Export {job.key} accepted.")]}
    response = fhir_response(request, accepted, status=202, fmt="json")
    response["Content-Location"] = _status_url(request, slug, job)
    return response


def _authorized_types(request: HttpRequest, checked: Kickoff, served: dict[str, str]) -> None:
    """On a protected facade every exported type needs read and search (mappings.security.enforcement): the types
    asked for each, or, without _type, the export narrowed to the served types the token covers."""
    if grant_of(request) is None:
        return
    if "types" in checked.parameters:
        for resource_type in checked.parameters["types"]:
            require(request, resource_type, "rs", "Exporting " + resource_type)
        return
    permitted = [resource_type for resource_type in sorted(served) if may(request, resource_type, "rs")]
    if not permitted:
        raise forbidden(request, "This token may read and search none of the types this facade serves.")
    checked.parameters["types"] = permitted


def _parameters(request: HttpRequest) -> list[tuple[str, str]]:
    """(name, value) pairs from the query string, or from a POSTed Parameters resource (IG v2 §kick-off)."""
    pairs = [(name, value) for name, values in request.GET.lists() for value in values]
    if request.method != "POST" or not request.body:
        return pairs
    try:
        body = orjson.loads(request.body)
    except orjson.JSONDecodeError as exc:
        raise FhirError(400, RequestCode.INVALID, "A POSTed $export takes a FHIR Parameters resource (JSON).") from exc
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        raise FhirError(400, RequestCode.INVALID, "A POSTed $export takes a FHIR Parameters resource.")
    for parameter in body.get("parameter") or []:
        name = parameter.get("name", "") if isinstance(parameter, dict) else ""
        values = [value for key, value in parameter.items() if key.startswith("value")] if name else []
        if not values:
            raise FhirError(400, RequestCode.INVALID, f"Parameter '{name}' has no value[x].")
        value = values[0]
        pairs.append((name, value.get("reference", "") if isinstance(value, dict) else str(value)))
    return pairs


def _check_format(checked: Kickoff, formats: list[str]) -> None:
    for value in formats:
        if value.strip().lower() not in OUTPUT_FORMATS:
            checked.unsupported(f"_outputFormat={value} is not supported: files are {NDJSON}.")


def _check_since(checked: Kickoff, values: list[str]) -> None:
    if not values:
        return
    text = SPACED_OFFSET.sub(r"+\1", values[-1].strip())
    try:
        since = datetime.fromisoformat(text)
    except ValueError as exc:
        raise FhirError(
            400, RequestCode.INVALID, f"_since={values[-1]} is not a FHIR instant.", expression="_since"
        ) from exc
    if since.tzinfo is None:
        raise FhirError(400, RequestCode.INVALID, f"_since={values[-1]} has no time zone: an instant needs one.")
    checked.parameters["since"] = since.isoformat()


def _check_types(checked: Kickoff, values: list[str], served: dict[str, str]) -> None:
    types = [name.strip() for value in values for name in value.split(",") if name.strip()]
    kept = []
    for name in types:
        if not is_r4_resource_type(name):
            raise FhirError(400, RequestCode.INVALID, f"_type: '{name}' is not a FHIR R4 resource type.")
        if name not in served:
            checked.unsupported(f"_type: this facade does not serve {name}.")
            continue
        kept.append(name)
    if types:  # lenient and none served: an empty export, not every type
        checked.parameters["types"] = list(dict.fromkeys(kept))


def _check_type_filters(checked: Kickoff, values: list[str], served: dict[str, str]) -> None:
    filters: dict[str, list[str]] = {}
    for value in values:
        resource_type, _, query = value.partition("?")
        if resource_type not in served or not query:
            checked.unsupported(f"_typeFilter={value}: give a type this facade serves and a query, Type?param=value.")
            continue
        if problem := live_type_filter_error(resource_type, served[resource_type]):
            checked.unsupported(problem)
            continue
        pairs = parse_qsl(query, keep_blank_values=True)
        try:
            search(FacadeResource.objects.none(), resource_type, pairs)
        except FhirError as error:
            checked.unsupported(f"_typeFilter={value}: {error.message}")
            continue
        if any(name in RESULT_PARAMS for name, _ in pairs):
            checked.unsupported(f"_typeFilter={value}: only search parameters, no _count, _sort or _include.")
            continue
        filters.setdefault(resource_type, []).append(query)
    if filters:
        checked.parameters["type_filters"] = filters


def _check_elements(checked: Kickoff, values: list[str]) -> None:
    elements = [name.strip() for value in values for name in value.split(",") if name.strip()]
    for name in elements:
        if not ELEMENT.match(name):
            raise FhirError(400, RequestCode.INVALID, f"_elements: '{name}' is not an element name (name, Type.name).")
    if elements:
        checked.parameters["elements"] = elements


def _patient_ids(references: list[str]) -> list[str]:
    ids = []
    for reference in references:
        kind, _, patient_id = reference.rpartition("/")
        if kind.rsplit("/", 1)[-1] not in ("Patient", "") or not patient_id:
            raise FhirError(400, RequestCode.INVALID, f"patient: '{reference}' is not a Patient reference.")
        ids.append(patient_id)
    return ids


def _group_members(request: HttpRequest, facade: ServedFacade, group_id: str) -> list[str]:
    """A group defined in the studio for this facade, or a Group resource the facade serves (read: `r` on Group)."""
    defined = PatientGroup.objects.filter(facade_id=facade.id, group_id=group_id).values_list("patient_ids", flat=True)
    for patient_ids in defined:
        return [str(patient_id) for patient_id in patient_ids]
    live = live_deployments(facade).get("Group")
    require(request, "Group", "r", f"Exporting Group/{group_id}")
    served = (
        FacadeResource.objects.filter(deployment_id=live.id, resource_type="Group", resource_id=group_id).first()
        if live
        else None
    )
    if served is None:
        raise FhirError(404, RequestCode.NOT_FOUND, f"Group/{group_id} is not known to this facade.")
    members = [member.get("entity", {}).get("reference", "") for member in served.content.get("member") or []]
    return [reference.removeprefix("Patient/") for reference in members if reference.startswith("Patient/")]


@csrf_exempt
@smart_endpoint
def export_status(request: HttpRequest, slug: str, key: str) -> HttpResponse:
    job = _client_job(request, slug, key)
    _require_exported(request, job, job.parameters.get("types") or [])
    if request.method == "DELETE":
        actions.do_cancel_export(job, client=request.META.get("REMOTE_ADDR", ""))
        return fhir_response(
            request, {"resourceType": "OperationOutcome", "issue": [_info("Export deleted.")]}, 202, "json"
        )
    if request.method != "GET":
        raise FhirError(405, RequestCode.METHOD, "An export's status is read with GET and removed with DELETE.")
    if job.status in (JobStatus.QUEUED, JobStatus.RUNNING):
        response = HttpResponse(status=202)
        response["X-Progress"] = _progress(job)
        response["Retry-After"] = RETRY_AFTER
        return response
    if job.status == JobStatus.FAILED:
        return fhir_response(request, job.error or operation_outcome([]), status=500, fmt="json")
    response = HttpResponse(orjson.dumps(manifest(request, slug, job)), content_type="application/json")
    expires = job.finished_at + timedelta(hours=settings.FHIR_STUDIO["EXPORT_RETENTION_HOURS"])
    response["Expires"] = http_date(expires.timestamp())
    return response


def _progress(job: ExportJob) -> str:
    if job.status == JobStatus.QUEUED:
        return "planning"
    done = job.chunks.aggregate(done=Sum("done"))["done"] or 0
    if not job.planned:
        return f"{done} resources"
    return f"{min(99, done * 100 // job.planned)}% ({done} of {job.planned} resources)"


def manifest(request: HttpRequest, slug: str, job: ExportJob) -> dict:
    """The completion manifest: every file with its type, absolute URL and count; `error` always present."""
    output, errors = [], []
    for chunk in job.chunks.order_by("resource_type", "number"):
        for file in chunk.files:
            entry = {"type": file["type"], "url": _file_url(request, slug, job, file["name"]), "count": file["count"]}
            (errors if file["kind"] == "error" else output).append(entry)
    return {
        "transactionTime": job.transaction_time.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "request": job.request,
        "requiresAccessToken": job.requires_access_token,
        "output": output,
        "error": errors,
    }


@csrf_exempt
@smart_endpoint
def export_file(request: HttpRequest, slug: str, key: str, name: str) -> HttpResponse:
    if request.method != "GET":
        raise FhirError(405, RequestCode.METHOD, "Export files are read with GET.")
    job = _client_job(request, slug, key)
    stored = f"{job.storage_prefix}{name}"
    found = [file for files in job.chunks.values_list("files", flat=True) for file in files if file["name"] == stored]
    if job.status != JobStatus.COMPLETED or not found:
        raise FhirError(404, RequestCode.NOT_FOUND, f"This export has no file {name}.")
    _require_exported(request, job, [found[0]["type"]])
    return FileResponse(open_file(stored), content_type=NDJSON)


def _client_job(request: HttpRequest, slug: str, key: str) -> ExportJob:
    """The export `key` of the facade; on a protected facade only for the client that kicked it off (another
    client's export is answered as one that does not exist, so keys cannot be probed)."""
    job = access_export_job(access_facade_request(slug, request), key)
    grant = grant_of(request)
    if grant is not None and not (job.requires_access_token and job.client == grant.client_id):
        raise FhirError(404, RequestCode.NOT_FOUND, f"There is no export {key} on this facade (finished and removed?).")
    return job


def _require_exported(request: HttpRequest, job: ExportJob, types: list[str]) -> None:
    for resource_type in types:
        require(request, resource_type, "rs", f"Export {job.key} of {resource_type}")


def _status_url(request: HttpRequest, slug: str, job: ExportJob) -> str:
    return request.build_absolute_uri(f"/fhir/{slug}/$export-status/{job.key}")


def _file_url(request: HttpRequest, slug: str, job: ExportJob, name: str) -> str:
    return request.build_absolute_uri(f"/fhir/{slug}/$export-file/{job.key}/{name.rsplit('/', 1)[1]}")


def _info(text: str) -> dict:
    return {"severity": "information", "code": "informational", "details": {"text": text}}
