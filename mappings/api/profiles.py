"""/api/profiles/: the R4 core's profiles and extensions and uploaded definitions (StructureDefinitions, ValueSets,
CodeSystems, IG packages). Viewers read; authors upload and delete (mappings/actions/profiles.py).

A definition is addressed by its id (uploaded ones) or its canonical URL, slashes and all
(`/api/profiles/http://hl7.org/fhir/StructureDefinition/bp`); packages live under /api/profiles/packages/, routed
first (no canonical URL is `packages/…`)."""

from __future__ import annotations

from django.core.exceptions import RequestDataTooBig
from django.db.models import Count
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from mappings import actions
from mappings.access import AUTHOR, VIEWER, require_role
from mappings.actions.profiles import parse_definition
from mappings.api.base import PAGE_PARAMETERS, StudioAPIView, errors, page_of, paginated
from mappings.api.parsers import StudioJSONParser
from mappings.api.profile_serializers import (
    PackageOut,
    ProfileDetailOut,
    ProfileQuery,
    ProfileSummaryOut,
    ProfileUploadIn,
    UploadOut,
)
from mappings.engine.packages import DEFAULT_LIMITS
from mappings.errors import StudioError
from mappings.models import ProfileDefinition, ProfilePackage
from mappings.profiles import (
    access_definition,
    access_package,
    core_summary,
    definitions_using,
    element_rows,
    extension_value_types,
    extensions_of,
    studio_registry,
    summaries,
    summary_of,
)

TAG = "profiles"
MAX_UPLOAD_BYTES = DEFAULT_LIMITS.max_compressed_bytes
REF = OpenApiParameter(
    "ref",
    OpenApiTypes.STR,
    location=OpenApiParameter.PATH,
    description="An uploaded definition's id, or a canonical URL (slashes as they are, or percent-encoded)",
)


def _too_large() -> StudioError:
    return StudioError(
        "too_large",
        f"An upload takes at most {MAX_UPLOAD_BYTES:,} bytes.",
        details={"max_bytes": MAX_UPLOAD_BYTES},
        status_code=413,
    )


def _detail(found: ProfileDefinition | dict) -> dict:
    if isinstance(found, ProfileDefinition):
        content, summary = found.content, summary_of(found)
        uploaded = {
            "snapshot_generated": found.snapshot_generated,
            "used_by": definitions_using({found.url}),
            "uploaded_by": found.uploaded_by.username if found.uploaded_by else None,
            "uploaded_at": found.uploaded_at,
        }
    else:
        content, summary = found, core_summary(found)
        uploaded = {"snapshot_generated": False, "used_by": [], "uploaded_by": None, "uploaded_at": None}
    is_structure = content.get("resourceType") == "StructureDefinition"
    return {
        **ProfileSummaryOut(summary).data,
        **uploaded,
        "description": str(content.get("description") or ""),
        "differential": element_rows(content.get("differential", {}).get("element", [])),
        "snapshot": element_rows(content.get("snapshot", {}).get("element", [])),
        "extensions": extensions_of(content),
        "extension_value_types": extension_value_types(summary.url, studio_registry())
        if summary.type == "Extension"
        else None,
        "content": None if is_structure else content,
    }


def _upload_out(rows: list[ProfileDefinition], package: ProfilePackage | None) -> dict:
    if package is not None:
        package.definition_count = len(rows)
    return UploadOut({"definitions": [summary_of(row) for row in rows], "package": package}).data


class ProfileList(StudioAPIView):
    parser_classes = [MultiPartParser, StudioJSONParser]

    @extend_schema(
        operation_id="profiles_list",
        tags=[TAG],
        summary="Profiles, extensions and uploaded definitions",
        description="Uploaded definitions first, then the R4 core's profiles and extensions (US Core Patient and "
        "Observation profiles, vital signs, …), each by URL. An uploaded definition shadows a core one.",
        parameters=[ProfileQuery, *PAGE_PARAMETERS],
        responses={200: page_of(ProfileSummaryOut), **errors(400, 404)},
    )
    def get(self, request: Request) -> Response:
        require_role(request.user, VIEWER)
        query = ProfileQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        given = query.validated_data
        rows = summaries(
            resource_type=given.get("resource_type", ""),
            type_name=given.get("type", ""),
            kind=given.get("kind", ""),
            search=given.get("search", ""),
            source=given.get("source", ""),
        )
        return paginated(self, request, rows, ProfileSummaryOut)

    @extend_schema(
        operation_id="profiles_upload",
        tags=[TAG],
        summary="Upload a definition or an IG package (author)",
        description="multipart/form-data with `file`: a StructureDefinition, ValueSet or CodeSystem as JSON or FHIR "
        "XML, or an IG package (.tgz, recognised by its content). Or a JSON body that is the definition itself. "
        "A profile with only a differential gets its snapshot generated. Refused (400 `invalid`, details.missing) "
        "when its base, an extension it names or a package dependency is not loaded; 409 `conflict` when a URL or "
        "the package is already uploaded; 413 `too_large` over the size limit.",
        request={"multipart/form-data": ProfileUploadIn, "application/json": OpenApiTypes.OBJECT},
        responses={
            201: UploadOut,
            413: OpenApiResponse(description="`too_large`: over the upload limit (details.max_bytes)"),
            **errors(400, 409),
        },
    )
    def post(self, request: Request) -> Response:
        require_role(request.user, AUTHOR)
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > MAX_UPLOAD_BYTES + 64 * 1024:  # refused before the body is read
            raise _too_large()
        try:
            data = request.data
        except RequestDataTooBig as exc:
            raise _too_large() from exc
        if request.content_type.startswith("multipart/"):
            form = ProfileUploadIn(data=data)
            form.is_valid(raise_exception=True)
            upload = form.validated_data["file"]
            if upload.size > MAX_UPLOAD_BYTES:
                raise _too_large()
            content = upload.read()
            if content[:2] == b"\x1f\x8b":
                package = actions.do_upload_package(acting_user=request.user, data=content)
                return Response(_upload_out(list(package.definitions.all()), package), status=201)
            resource = parse_definition(content, filename=upload.name)
        else:
            if not isinstance(data, dict):
                raise StudioError("invalid", "Send the definition as a JSON object, or a file as multipart.")
            resource = dict(data)
        row = actions.do_upload_definition(acting_user=request.user, resource=resource)
        return Response(_upload_out([row], None), status=201)


class ProfileDetail(StudioAPIView):
    @extend_schema(
        operation_id="profiles_retrieve",
        tags=[TAG],
        summary="A definition with its element tree (differential and snapshot)",
        parameters=[REF],
        responses={200: ProfileDetailOut, **errors(404)},
    )
    def get(self, request: Request, ref: str) -> Response:
        return Response(_detail(access_definition(request.user, ref)))

    @extend_schema(
        operation_id="profiles_destroy",
        tags=[TAG],
        summary="Delete an uploaded definition (author)",
        description="409 `in_use` while another uploaded profile builds on it or names it as an extension, or when "
        "it came with a package (delete the package). Core definitions cannot be deleted (403).",
        parameters=[REF],
        responses={204: None, **errors(404, 409)},
    )
    def delete(self, request: Request, ref: str) -> Response:
        found = access_definition(request.user, ref, write=True)
        actions.do_delete_definition(found, acting_user=request.user)
        return Response(status=204)


class PackageList(StudioAPIView):
    @extend_schema(
        operation_id="profile_packages_list",
        tags=[TAG],
        summary="Loaded IG packages (the R4 core, hl7.fhir.r4.core#4.0.1, is always there and not listed)",
        parameters=PAGE_PARAMETERS,
        responses={200: page_of(PackageOut), **errors(404)},
    )
    def get(self, request: Request) -> Response:
        require_role(request.user, VIEWER)
        rows = ProfilePackage.objects.select_related("uploaded_by").annotate(definition_count=Count("definitions"))
        return paginated(self, request, rows.order_by("name", "version"), PackageOut)


class PackageDetail(StudioAPIView):
    def _package(self, request: Request, package_id: int, *, write: bool = False) -> ProfilePackage:
        access_package(request.user, package_id, write=write)
        rows = ProfilePackage.objects.select_related("uploaded_by").annotate(definition_count=Count("definitions"))
        return rows.get(pk=package_id)

    @extend_schema(
        operation_id="profile_packages_retrieve",
        tags=[TAG],
        summary="A loaded IG package",
        responses={200: PackageOut, **errors(404)},
    )
    def get(self, request: Request, package_id: int) -> Response:
        return Response(PackageOut(self._package(request, package_id)).data)

    @extend_schema(
        operation_id="profile_packages_destroy",
        tags=[TAG],
        summary="Delete a package and its definitions (author)",
        description="409 `in_use` while another package depends on it or an uploaded profile outside it uses one "
        "of its definitions.",
        responses={204: None, **errors(404, 409)},
    )
    def delete(self, request: Request, package_id: int) -> Response:
        package = access_package(request.user, package_id, write=True)
        actions.do_delete_package(package, acting_user=request.user)
        return Response(status=204)
