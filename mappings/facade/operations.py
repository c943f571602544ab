"""FHIR operations of a facade: $convert-data (Azure's parameters: inputData, inputDataType, rootTemplate; or our
mapping and version) and $validate (as the studio validates mapping output; `profile` adds that profile)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from mappings import message_log
from mappings.access import access_convert_mapping, access_facade_request
from mappings.compiling import compile_version
from mappings.conf import engine_limits
from mappings.engine import MappingError, operation_outcome, run_mapping
from mappings.engine.validate import validate_output
from mappings.errors import FhirError, RequestCode
from mappings.facade.formats import read_body
from mappings.facade.http import fhir_response, smart_endpoint
from mappings.profiles import studio_registry
from mappings.security.enforcement import forbidden, grant_of, require

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
    return read_body(request)  # FHIR JSON, XML or Turtle by Content-Type (facade/formats.py)


def _parameters(body: dict) -> dict[str, object]:
    if body["resourceType"] != "Parameters":
        raise FhirError(400, RequestCode.INVALID, "Send a Parameters resource.")
    found = {}
    for parameter in body.get("parameter") or []:
        if isinstance(parameter, dict) and isinstance(parameter.get("name"), str):
            value = next((v for k, v in parameter.items() if k.startswith("value")), parameter.get("resource"))
            found[parameter["name"]] = value
    return found


@csrf_exempt
@smart_endpoint
def convert_data(request: HttpRequest, slug: str) -> HttpResponse:
    """Azure's $convert-data, unchanged for its clients: `inputData`, `inputDataType` (Hl7v2, Ccda, Json, Fhir, or
    one of our source formats) and `rootTemplate` (a name the facade lists in its convert_templates, such as
    ADT_A01), or our `mapping` (a slug) with an optional `version`. `templateCollectionReference` is accepted and
    ignored: the facade's own list decides what runs. Only the facade's mappings run (mappings.access)."""
    if request.method != "POST":
        raise FhirError(405, RequestCode.METHOD, "$convert-data is POSTed with a Parameters resource.")
    facade = access_facade_request(slug, request)
    grant = grant_of(request)
    if grant is not None and not any("r" in scope.letters for scope in grant.scopes):
        raise forbidden(request, "$convert-data needs a token that may read (r) the types it converts to.")
    given = _parameters(_json_body(request))
    data, data_type = given.get("inputData"), given.get("inputDataType")
    name = given.get("mapping") if isinstance(given.get("mapping"), str) else given.get("rootTemplate")
    if not isinstance(data, str) or not data:
        raise FhirError(400, RequestCode.REQUIRED, "Parameter inputData (valueString) is required.")
    if not isinstance(name, str) or not name:
        raise FhirError(400, RequestCode.REQUIRED, "Parameter rootTemplate (or mapping: a mapping's slug) is required.")
    version = access_convert_mapping(facade, name, _number(given.get("version")))
    reads = version.engine_settings.get("source_format")
    source_format = DATA_TYPES.get(str(data_type).lower()) if data_type is not None else reads
    if source_format is None:
        raise FhirError(400, RequestCode.INVALID, f"inputDataType {data_type} is not one of {', '.join(DATA_TYPES)}.")
    if source_format != reads:
        raise FhirError(
            400,
            RequestCode.INVALID,
            f"'{name}' reads {reads}, not inputDataType {data_type}.",
            expression="inputDataType",
        )
    result = run_mapping(compile_version(version), data, source_format=source_format, limits=engine_limits())
    message_log.record_convert(slug, facade.convert_templates.get(name) or name, version, data, result)
    if not result.ok:
        return fhir_response(request, result.issues, 422)
    for resource_type in sorted(_types_in(result.output)):
        require(request, resource_type, "r", "$convert-data's answer holds " + resource_type + ": it")
    return fhir_response(request, result.output)


def _types_in(output: object) -> set[str]:
    """The resource types of a conversion's output: the Bundle's entries' (and the Bundle's own, when not one)."""
    if not isinstance(output, dict):
        return set()
    entries = output.get("entry") if output.get("resourceType") == "Bundle" else None
    if entries is None:
        return {str(output.get("resourceType"))}
    return {str(entry.get("resource", {}).get("resourceType")) for entry in entries if isinstance(entry, dict)}


def _number(value: object) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise FhirError(400, RequestCode.INVALID, "Parameter version must be a version number.") from exc


@csrf_exempt
@smart_endpoint
def validate(request: HttpRequest, slug: str, resource_type: str | None = None) -> HttpResponse:
    if request.method != "POST":
        raise FhirError(405, RequestCode.METHOD, "$validate is POSTed with the resource (or Parameters with it).")
    access_facade_request(slug, request)
    body = _json_body(request)
    profile = request.GET.get("profile")
    if body["resourceType"] == "Parameters" and resource_type != "Parameters":
        given = _parameters(body)
        profile = profile or given.get("profile")
        body = given.get("resource")
        if not isinstance(body, dict):
            raise FhirError(400, RequestCode.REQUIRED, "Parameter resource is required.")
    registry = studio_registry()  # the core and the studio's uploaded profiles
    if profile and (not isinstance(profile, str) or registry.structure(profile) is None):
        raise FhirError(
            400,
            RequestCode.PARAMETER,
            f"Unknown profile {profile}: upload it to the studio (Profiles, or /api/profiles/) first.",
            expression="profile",
        )
    if resource_type and body.get("resourceType") != resource_type:
        raise FhirError(
            400,
            RequestCode.INVALID,
            f"This is {resource_type}/$validate but the resource is a {body.get('resourceType')}.",
        )
    require(request, str(body.get("resourceType")), "r", "$validate")
    try:
        issues = validate_output(body, profiles=[profile] if profile else (), registry=registry)
    except MappingError as error:
        issues = [error]
    outcome = operation_outcome(issues)
    if not issues:
        outcome = {
            "resourceType": "OperationOutcome",
            "issue": [{"severity": "information", "code": "informational", "diagnostics": "The resource is valid."}],
        }
    return fhir_response(request, outcome, 200)
