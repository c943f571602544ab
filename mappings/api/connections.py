"""Connections to other FHIR servers (issue 16): anyone with a studio role reads them (never their secrets); admins
add, change, remove and test them. Writes go through mappings/actions/connections.py."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from mappings.access import (
    ADMIN,
    AUTHOR,
    VIEWER,
    access_connection,
    access_draft_to_run,
    access_test_run,
    access_version_to_run,
    require_role,
)
from mappings.actions import connections as actions
from mappings.api.base import PAGE_PARAMETERS, StudioAPIView, errors, page_of, paginated
from mappings.api.connection_serializers import (
    ConnectionIn,
    ConnectionOut,
    ConnectionPatch,
    DiagnosisOut,
    PushOut,
    PushRequest,
    diagnosis_of,
)
from mappings.api.mappings import render_preview
from mappings.compiling import compile_draft, compile_version
from mappings.errors import StudioError
from mappings.models import Connection

TAG = "connections"


class ConnectionList(StudioAPIView):
    @extend_schema(
        operation_id="connections_list",
        parameters=PAGE_PARAMETERS,
        tags=[TAG],
        summary="Connections to FHIR servers, by name",
        responses={200: page_of(ConnectionOut), **errors(404)},
    )
    def get(self, request: Request) -> Response:
        require_role(request.user, VIEWER)
        return paginated(self, request, Connection.objects.order_by("name"), ConnectionOut)

    @extend_schema(
        tags=[TAG],
        summary="Add a connection to a FHIR server (admin)",
        description="Its host must be on FHIR_STUDIO_CONNECTION_ALLOWED_HOSTS to be reached. Secrets are stored "
        "encrypted and never returned.",
        request=ConnectionIn,
        responses={201: ConnectionOut, **errors(409)},
    )
    def post(self, request: Request) -> Response:
        require_role(request.user, ADMIN)
        form = ConnectionIn(data=request.data)
        form.is_valid(raise_exception=True)
        connection = actions.do_create_connection(acting_user=request.user, **form.validated_data)
        return Response(ConnectionOut(connection).data, status=201)


class ConnectionDetail(StudioAPIView):
    @extend_schema(tags=[TAG], summary="One connection", responses={200: ConnectionOut, **errors(404)})
    def get(self, request: Request, name: str) -> Response:
        return Response(ConnectionOut(access_connection(request.user, name)).data)

    @extend_schema(
        tags=[TAG],
        summary="Change a connection (admin)",
        description='Secrets left out or sent as "***" are kept while the auth mode uses them. A new base URL or auth '
        "clears the last test.",
        request=ConnectionPatch,
        responses={200: ConnectionOut, **errors(404)},
    )
    def patch(self, request: Request, name: str) -> Response:
        connection = access_connection(request.user, name, write=True)
        form = ConnectionPatch(data=request.data)
        form.is_valid(raise_exception=True)
        connection = actions.do_update_connection(connection, acting_user=request.user, **form.validated_data)
        return Response(ConnectionOut(connection).data)

    @extend_schema(
        tags=[TAG],
        summary="Remove a connection (admin); 409 in_use while a data source reads it",
        responses={204: None, **errors(404, 409)},
    )
    def delete(self, request: Request, name: str) -> Response:
        connection = access_connection(request.user, name, write=True)
        actions.do_delete_connection(connection, acting_user=request.user)
        return Response(status=204)


class ConnectionTest(StudioAPIView):
    @extend_schema(
        tags=[TAG],
        summary="Test a connection: read its metadata and say what is wrong (admin)",
        description="Always 200 with a diagnosis: `code` ok (with the server's software, FHIR version, resource "
        "types and interactions) or what failed. The result is kept on the connection.",
        request=None,
        responses={200: DiagnosisOut, **errors(404)},
    )
    def post(self, request: Request, name: str) -> Response:
        connection = access_connection(request.user, name, write=True)
        actions.do_test_connection(connection, acting_user=request.user)
        connection.refresh_from_db()
        return Response(DiagnosisOut(diagnosis_of(connection)).data)


def rendered_output(user: object, data: dict) -> dict:
    """The output of a mapping's draft or version on the payload; `render_failed` with the run's errors otherwise."""
    options = {"source_format": data.get("source_format"), "validate": True, "locate": False}
    if data.get("version") is not None:
        version = access_version_to_run(user, data["mapping"], data["version"])
        result = render_preview(lambda: compile_version(version), data["payload"], options)
    else:
        mapping = access_draft_to_run(user, data["mapping"])
        result = render_preview(lambda: compile_draft(mapping), data["payload"], options)
    if not result["ok"] or not isinstance(result["output"], dict):
        raise StudioError(
            "render_failed",
            "The mapping did not render a FHIR output: nothing was sent.",
            details={"errors": result["errors"]},
        )
    return result["output"]


class ConnectionPush(StudioAPIView):
    @extend_schema(
        tags=[TAG],
        summary="Send a render's output, or a test run's, to a connection as transaction or batch Bundles (author)",
        description="Give the output, or a mapping (draft or version) and a payload to render first, or a mapping "
        "and one of its `test_run`s: each sample of the run rendered again with the run's version (or the draft, "
        "while it is at the run's revision: else 409 conflict) and sent as its own Bundle, answered per sample in "
        "`samples`. A resource or a non-transaction Bundle becomes entries (PUT Type/id when it has an id, POST "
        "otherwise). 200 with what the server said per entry, also when it refused; 400 render_failed when the "
        "render had errors.",
        request=PushRequest,
        responses={200: PushOut, **errors(404)},
    )
    def post(self, request: Request, name: str) -> Response:
        require_role(request.user, AUTHOR)  # before the lookup: a refused caller learns nothing of which exist
        connection = access_connection(request.user, name)
        form = PushRequest(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        if "test_run" in data:
            return Response(PushOut(_test_run_pushed(request, connection, data)).data)
        output = data["output"] if "output" in data else rendered_output(request.user, data)
        result = actions.do_push_to_connection(
            connection, acting_user=request.user, output=output, kind=data["kind"], mapping_slug=data.get("mapping", "")
        )
        return Response(PushOut({**_answer(result), "samples": None}).data)


def _answer(result: actions.PushResult) -> dict:
    return {
        "code": result.code,
        "message": result.message,
        "status": result.status,
        "entries": [vars(entry) for entry in result.entries],
        "outcome": result.outcome,
    }


def _test_run_pushed(request: Request, connection: Connection, data: dict) -> dict:
    run = access_test_run(request.user, data["mapping"], data["test_run"])
    if run.version_id is None:
        access_draft_to_run(request.user, data["mapping"])  # as a render push of the draft
    pushes = actions.do_push_test_run(connection, run, acting_user=request.user, kind=data["kind"])
    kept = sum(push.result.ok for push in pushes)
    return {
        "code": "ok" if kept == len(pushes) else "samples_failed",
        "message": f"{kept} of {len(pushes)} samples kept whole by the server.",
        "status": None,
        "entries": [],
        "outcome": None,
        "samples": [{"case": push.case, **_answer(push.result), "errors": push.errors} for push in pushes],
    }
