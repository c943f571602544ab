"""FHIR operations of a facade: $convert-data (parameter names compatible with Azure's: inputData, inputDataType,
plus mapping and version) and $validate (base resource rules, as the studio validates mapping output)."""

from __future__ import annotations

import orjson
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from mappings.compiling import compile_version
from mappings.conf import engine_limits
from mappings.engine import MappingError, operation_outcome, run_mapping
from mappings.engine.validate import validate_output
from mappings.facade.http import FhirError, fhir_endpoint, fhir_response
from mappings.facade.views import _facade
from mappings.models import Mapping

FHIR_JSON_TYPES = ("application/fhir+json", "application/json")
# Azure's inputDataType values, and ours, to the engine's source formats.
DATA_TYPES = {
    "hl7v2": "hl7v2",
    "ccda": "xml",
    "xml": "xml",
    "json": "json",
    "ndjson": "ndjson",
    "csv": "csv",
    "fhir": "fhir",
}


def _json_body(request: HttpRequest) -> dict:
    if request.content_type not in FHIR_JSON_TYPES:
        raise FhirError(415, "not-supported", f"Send application/fhir+json, not {request.content_type or 'nothing'}.")
    try:
        body = orjson.loads(request.body)
    except orjson.JSONDecodeError as exc:
        raise FhirError(400, "invalid", f"The body is not JSON: {exc}.") from exc
    if not isinstance(body, dict) or not isinstance(body.get("resourceType"), str):
        raise FhirError(400, "invalid", "The body must be a FHIR resource (an object with a resourceType).")
    return body


def _parameters(body: dict) -> dict[str, object]:
    if body["resourceType"] != "Parameters":
        raise FhirError(400, "invalid", "Send a Parameters resource.")
    found = {}
    for parameter in body.get("parameter") or []:
        if isinstance(parameter, dict) and isinstance(parameter.get("name"), str):
            value = next((v for k, v in parameter.items() if k.startswith("value")), parameter.get("resource"))
            found[parameter["name"]] = value
    return found


@csrf_exempt
@fhir_endpoint
def convert_data(request: HttpRequest, slug: str) -> HttpResponse:
    if request.method != "POST":
        raise FhirError(405, "not-supported", "$convert-data is POSTed with a Parameters resource.")
    _facade(slug)
    given = _parameters(_json_body(request))
    data, data_type, name = given.get("inputData"), given.get("inputDataType"), given.get("mapping")
    if not isinstance(data, str) or not data:
        raise FhirError(400, "required", "Parameter inputData (valueString) is required.")
    if not isinstance(name, str):
        name = given.get("rootTemplate")  # Azure's name for the template to run
    if not isinstance(name, str):
        raise FhirError(400, "required", "Parameter mapping (valueString: a mapping's slug) is required.")
    mapping = Mapping.objects.filter(slug=name).select_related("latest_version").first()
    if mapping is None:
        raise FhirError(404, "not-found", f"There is no mapping '{name}'.")
    number = given.get("version")
    version = mapping.latest_version if number is None else mapping.versions.filter(number=_number(number)).first()
    if version is None:
        raise FhirError(404, "not-found", f"'{name}' has no published version {number or ''}".strip() + ".")
    source_format = DATA_TYPES.get(str(data_type).lower()) if data_type else None
    if data_type and source_format is None:
        raise FhirError(400, "invalid", f"inputDataType {data_type} is not one of {', '.join(DATA_TYPES)}.")
    result = run_mapping(compile_version(version), data, source_format=source_format, limits=engine_limits())
    if not result.ok:
        return fhir_response(request, result.issues, 422)
    return fhir_response(request, result.output)


def _number(value: object) -> int:
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise FhirError(400, "invalid", "Parameter version must be a version number.") from exc


@csrf_exempt
@fhir_endpoint
def validate(request: HttpRequest, slug: str, resource_type: str | None = None) -> HttpResponse:
    if request.method != "POST":
        raise FhirError(405, "not-supported", "$validate is POSTed with the resource (or Parameters with it).")
    _facade(slug)
    body = _json_body(request)
    profile = request.GET.get("profile")
    if body["resourceType"] == "Parameters" and resource_type != "Parameters":
        given = _parameters(body)
        profile = profile or given.get("profile")
        body = given.get("resource")
        if not isinstance(body, dict):
            raise FhirError(400, "required", "Parameter resource is required.")
    if profile:
        raise FhirError(
            400,
            "not-supported",
            f"Unknown profile {profile}: this studio validates against the base "
            "FHIR R4 resources only (profiles arrive with the profiles work).",
        )
    if resource_type and body.get("resourceType") != resource_type:
        raise FhirError(
            400, "invalid", f"This is {resource_type}/$validate but the resource is a {body.get('resourceType')}."
        )
    try:
        issues = validate_output(body)
    except MappingError as error:
        issues = [error]
    outcome = operation_outcome(issues)
    if not issues:
        outcome = {
            "resourceType": "OperationOutcome",
            "issue": [{"severity": "information", "code": "informational", "diagnostics": "The resource is valid."}],
        }
    return fhir_response(request, outcome, 200)
