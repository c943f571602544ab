"""The one toolkit of the studio API: what every view shares.

- `StudioAPIView`: authenticated JSON views (access is decided by mappings.access, errors are rendered by
  mappings.errors — views raise, never build error JSON).
- `errors(...)`: the error responses an operation documents in the OpenAPI schema, all of the one `ErrorOut` shape.
- `paginated(...)` answers a page of rows; `page_of(...)` describes that answer in the schema.
- ETags. Writes are optimistically locked by `if_match(...)` with one rule for every object a client edits by
  revision (drafts, snippets, lookup tables); `with_etag(...)` sets the ETag a client sends back.
  Read-only answers that are costly to send (completion data) get a strong ETag and 304s from `cacheable(...)`.
"""

from __future__ import annotations

import hashlib
import json

from django.contrib.auth import get_user_model
from django.db.models import QuerySet
from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework import serializers
from rest_framework.authentication import SessionAuthentication, TokenAuthentication
from rest_framework.authtoken.models import Token
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.pagination import PageNumberPagination
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from mappings.access import loaded_row
from mappings.actions.auth import do_record_api_token_refused
from mappings.api.parsers import StudioJSONParser
from mappings.api.renderers import StudioJSONRenderer
from mappings.errors import StudioError

User = get_user_model()
USER_FIELDS = tuple(field.attname for field in User._meta.concrete_fields)
TOKEN_USER = (
    f"SELECT {', '.join('u.' + User._meta.get_field(name).column for name in USER_FIELDS)} FROM {User._meta.db_table} u"
    f" JOIN {Token._meta.db_table} t ON t.user_id = u.{User._meta.pk.column} WHERE t.key = %s"
)


class StudioTokenAuthentication(TokenAuthentication):
    """DRF's token authentication, same header and answers, with its one query written out: the ORM spent longer
    building `Token.objects.select_related("user").get(key=…)` than the database answering it, on every request (a
    third of a render's fixed cost, bench/api.py). access.loaded_row converts each column as the ORM does (0.166 →
    0.070 ms against User.objects.raw, which works its columns out again on every call)."""

    def authenticate(self, request: Request) -> tuple | None:
        try:
            return super().authenticate(request)
        except AuthenticationFailed as refused:  # a token refused is an audit row (issue 15); the key is not in it
            do_record_api_token_refused(address=request.META.get("REMOTE_ADDR", ""), reason=str(refused.detail))
            raise

    def authenticate_credentials(self, key: str) -> tuple:
        user = loaded_row(User, USER_FIELDS, TOKEN_USER, [key])
        if user is None:
            raise AuthenticationFailed(_("Invalid token."))
        if not user.is_active:
            raise AuthenticationFailed(_("User inactive or deleted."))
        return user, Token(key=key, user=user)


class StudioAPIView(APIView):
    """Authenticated JSON views; access decisions are made by mappings.access, errors by mappings.errors."""

    authentication_classes = [StudioTokenAuthentication, SessionAuthentication]  # as settings.py lists them
    permission_classes = [IsAuthenticated]
    renderer_classes = [StudioJSONRenderer]  # orjson: FHIR decimals keep their digits
    parser_classes = [StudioJSONParser]


# --- errors -----------------------------------------------------------------------------------------------------------


class ErrorOut(serializers.Serializer):
    """Every error of the studio API (mappings/errors.py)."""

    code = serializers.CharField(help_text="Stable: DRF's (invalid, not_found, …), ours (stale_draft, …) or FS-*.")
    message = serializers.CharField()
    details = serializers.JSONField(help_text="For `invalid`: {field: [messages]}; otherwise code-specific.")


ERROR_MEANINGS = {
    400: "Bad input: `invalid` with details {field: [messages]}, or a stable code (`too_many_parameters` and "
    "`invalid_host` for any operation: mappings.guard)",
    414: "`uri_too_long`: the URL is longer than the studio takes (FHIR_STUDIO_MAX_URL_BYTES)",
    401: "Not authenticated (`not_authenticated`)",
    403: "The role does not allow this (`permission_denied`)",
    404: "No such object (`not_found`)",
    409: "Conflict with what is stored: `conflict` (the name is taken), `in_use`, `deployed`, `tests_failing`",
    412: "The object changed since the ETag sent in If-Match: `stale_draft` (drafts; details.current_revision, "
    "details.etag, details.template) or `stale_revision` (snippets, lookup tables; details.current_revision)",
    428: "`precondition_required`: send the ETag you read in If-Match (details.etag is the current one)",
}


def errors(*statuses: int) -> dict[int, OpenApiResponse]:
    """The error responses of an operation, for its schema: 400 and 414 (mappings.guard refuses a request of too many
    parameters, a foreign host or too long a URL, whatever it asks), 401 and 403 (every view authenticates and checks
    a role), and the `statuses` it adds."""
    return {
        status: OpenApiResponse(ErrorOut, description=ERROR_MEANINGS[status])
        for status in sorted({400, 401, 403, 414, *statuses})
    }


# --- pagination -------------------------------------------------------------------------------------------------------


class StudioPagination(PageNumberPagination):
    """DRF's page numbers, held to the schema: `page` and `page_size` are whole numbers in range or a 400, where DRF
    would quietly answer page 1 for `page=` or the default size for `page_size=false` (schemathesis found them)."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500

    def get_page_size(self, request: Request) -> int:
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        return _whole_number(self.page_size_query_param, raw, self.max_page_size)

    def get_page_number(self, request: Request, paginator: object) -> str:
        raw = request.query_params.get(self.page_query_param)
        if raw is not None and raw not in self.last_page_strings:
            _whole_number(self.page_query_param, raw, None)
        return super().get_page_number(request, paginator)


def _whole_number(name: str, raw: str, highest: int | None) -> int:
    number = int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 10 else 0
    if number < 1 or (highest is not None and number > highest):
        limit = f"1 to {highest}" if highest else "1 or more"
        message = f"{name} must be a whole number, {limit}; got {raw[:40]!r}."
        raise StudioError("invalid", message, details={name: [message]})
    return number


PAGE_PARAMETERS = [
    OpenApiParameter(
        "page", {"type": "integer", "minimum": 1}, description="1-based page number (past the last one: 404)"
    ),
    OpenApiParameter(
        "page_size",
        {"type": "integer", "minimum": 1, "maximum": 500},
        description="Rows per page (default 50, at most 500)",
    ),
]

_pages: dict[type[serializers.Serializer], serializers.Serializer] = {}


def page_of(item: type[serializers.Serializer]) -> serializers.Serializer:
    """The schema of the page `paginated` answers with `item` rows."""
    if item not in _pages:
        fields = {
            "count": serializers.IntegerField(),
            "next": serializers.URLField(allow_null=True),
            "previous": serializers.URLField(allow_null=True),
            "results": item(many=True),
        }
        name = f"Paginated{item.__name__}List"  # drf-spectacular's own name for a paginated list
        _pages[item] = type(name, (serializers.Serializer,), fields)()
    return _pages[item]


def paginated(view: APIView, request: Request, rows: QuerySet, out: type[serializers.Serializer]) -> Response:
    """One page of `rows` serialized by `out` (with the request in its context): {count, next, previous, results}."""
    paginator = StudioPagination()
    page = paginator.paginate_queryset(rows, request, view=view)
    return paginator.get_paginated_response(out(page, many=True, context={"request": request}).data)


# --- ETags ------------------------------------------------------------------------------------------------------------


def if_match_parameter(what: str, etag_example: str) -> OpenApiParameter:
    return OpenApiParameter(
        "If-Match",
        OpenApiTypes.STR,
        location=OpenApiParameter.HEADER,
        required=True,
        description=f"The ETag of the {what} you read (`{etag_example}`), or `*` for whatever is current. "
        "Without it: 428; another one: 412.",
    )


def _bare(tag: str) -> str:
    return tag.strip().removeprefix("W/").strip('"')


def if_match(request: Request, *, etag: str, revision: int) -> int | None:
    """Optimistic locking, one rule for every object a client edits by revision (drafts, snippets, lookup tables):
    a write names the ETag it read in If-Match. The answer is the `expected_revision` to hand the action:

    - no If-Match: refused here, 428 `precondition_required` with the current ETag in details.etag;
    - `*`: None — the write applies to whatever is current;
    - the current ETag (strong or weak `W/`, quoted or not, alone or in a list): the current `revision`, which the
      action compares again under its row lock, so of two writes of the same revision exactly one wins;
    - any other: 0, a revision no object has, so the action refuses the write as stale (412 `stale_draft` or
      `stale_revision`) with the current state in details."""
    sent = request.headers.get("If-Match", "")
    if not sent.strip():
        raise StudioError(
            "precondition_required",
            "Send the ETag you read in an If-Match header, or * to write over whatever is current.",
            details={"etag": etag},
        )
    tags = {_bare(tag) for tag in sent.split(",")}
    if "*" in tags:
        return None
    return revision if _bare(etag) in tags else 0


def with_etag(response: Response, etag: str) -> Response:
    response["ETag"] = etag
    return response


def cacheable(request: Request, answer: object, *, max_age: int = 300) -> Response:
    """A read-only answer with a strong ETag over its bytes, so the browser revalidates for free once max-age has
    passed: If-None-Match naming it (or `*`) gets 304 without a body."""
    body = json.dumps(answer, sort_keys=True, separators=(",", ":"), default=str).encode()
    etag = f'"{hashlib.sha256(body).hexdigest()[:32]}"'
    sent = {tag.strip().removeprefix("W/") for tag in request.headers.get("If-None-Match", "").split(",")}
    headers = {"ETag": etag, "Cache-Control": f"private, max-age={max_age}"}
    if etag in sent or "*" in sent:
        return Response(status=304, headers=headers)
    return Response(answer, headers=headers)
