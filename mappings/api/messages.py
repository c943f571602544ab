"""/api/messages/: the message log (mappings/models/messages.py), searched by status, channel, facade, batch,
mapping, business keys (MSH-10, patient identifier, record key), FS code and time; one message with its
OperationOutcome and kept payload; and reprocessing a failed one through its mapping's latest published version.
Viewers read; authors reprocess."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from mappings import message_log
from mappings.access import AUTHOR, VIEWER, require_role
from mappings.actions.messages import do_reprocess_message
from mappings.api.base import PAGE_PARAMETERS, StudioAPIView, errors, page_of, paginated
from mappings.api.message_serializers import MessageDetailOut, MessageOut, MessageQuery, ReprocessOut
from mappings.errors import StudioError
from mappings.models import ProcessedMessage

TAG = "messages"
# Query parameter → the column it matches exactly (code matches a prefix, since/until a range).
EXACT = {
    "status": "status",
    "channel": "channel",
    "facade": "facade_slug",
    "batch": "batch_id",
    "mapping": "mapping_slug",
    "message_control_id": "message_control_id",
    "patient_identifier": "patient_identifier",
    "record_key": "record_key",
}


def access_message(user: AbstractBaseUser, message_id: int, *, write: bool = False) -> ProcessedMessage:
    """A log row for a viewer (reading) or an author (reprocessing); the role is checked before the lookup, so a
    missing row and a refused one cannot be told apart by someone without it."""
    require_role(user, AUTHOR if write else VIEWER)
    message = ProcessedMessage.objects.with_reprocessable().filter(pk=message_id).first()
    if message is None:
        raise StudioError("not_found", f"No message {message_id} in the log (purged after the retention?).")
    return message


def search_messages(filters: dict) -> object:
    """The log rows matching MessageQuery's validated `filters`, newest first."""
    rows = ProcessedMessage.objects.defer("payload", "outcome").with_reprocessable()
    for name, column in EXACT.items():
        if name in filters:
            rows = rows.filter(**{column: filters[name]})
    if "code" in filters:
        rows = rows.filter(error_code__startswith=filters["code"])
    if "since" in filters:
        rows = rows.filter(created_at__gte=filters["since"])
    if "until" in filters:
        rows = rows.filter(created_at__lt=filters["until"])
    return rows.order_by("-created_at", "-id")


class MessageList(StudioAPIView):
    @extend_schema(
        operation_id="messages_list",
        parameters=[MessageQuery, *PAGE_PARAMETERS],
        tags=[TAG],
        summary="The message log, newest first",
        description="Every message a facade ($convert-data, live source reads), a batch or an index build ran through "
        "a mapping, kept for FHIR_STUDIO_MESSAGE_RETENTION_DAYS. Facade rows are written in batches (every 200 "
        "rows, or at a worker's first request 2 seconds after its last write), so another worker's newest rows may "
        "show a moment later.",
        responses={200: page_of(MessageOut), **errors(400, 404)},
    )
    def get(self, request: Request) -> Response:
        require_role(request.user, VIEWER)
        query = MessageQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        message_log.flush()  # this process's waiting rows are shown too (other workers' within 2 s of their next)
        return paginated(self, request, search_messages(query.validated_data), MessageOut)


class MessageDetail(StudioAPIView):
    @extend_schema(
        tags=[TAG],
        summary="One message: its keys, status, OperationOutcome and (failed ones) payload",
        responses={200: MessageDetailOut, **errors(404)},
    )
    def get(self, request: Request, message_id: int) -> Response:
        return Response(MessageDetailOut(access_message(request.user, message_id)).data)


class MessageReprocess(StudioAPIView):
    @extend_schema(
        tags=[TAG],
        summary="Run a failed message again with its mapping's latest published version (author)",
        description="The kept payload runs through the latest published version of the message's mapping, validated; "
        "a new log row records the outcome, linked by `reprocessed_from`. The answer holds the output or the "
        "OperationOutcome. 409 `conflict` when the message converted, was already reprocessed into a converted one, "
        "its payload was cut at the cap, or the mapping has no published version.",
        request=None,
        responses={201: ReprocessOut, **errors(404, 409)},
    )
    def post(self, request: Request, message_id: int) -> Response:
        message = access_message(request.user, message_id, write=True)
        again, result = do_reprocess_message(message, acting_user=request.user)
        answer = {"message": MessageDetailOut(again).data, "output": result.output, "outcome": result.issues}
        return Response(answer, status=201)
