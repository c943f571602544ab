"""SMART Backend Services client apps of the studio's protected facades: who may get a token, with which keys and
scopes, for which facades (mappings/security/). Admins only: a client app is a way into patient data."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from mappings.access import ADMIN, access_client_app, require_role
from mappings.api.base import PAGE_PARAMETERS, StudioAPIView, errors, page_of, paginated
from mappings.api.client_app_serializers import ClientAppIn, ClientAppOut, ClientAppPatch
from mappings.errors import StudioError
from mappings.models import ClientApp, Facade
from mappings.security import actions

TAG = "client apps"


def _facades(slugs: list[str]) -> list[Facade]:
    found = list(Facade.objects.filter(slug__in=slugs))
    unknown = sorted(set(slugs) - {facade.slug for facade in found})
    if unknown:
        raise StudioError("invalid", f"No facade {', '.join(unknown)}.", details={"facades": unknown})
    return found


def _out(request: Request, client: ClientApp) -> dict:
    client = ClientApp.objects.prefetch_related("facades").get(pk=client.pk)
    return ClientAppOut(client, context={"request": request}).data


class ClientAppList(StudioAPIView):
    @extend_schema(
        operation_id="client_apps_list",
        parameters=PAGE_PARAMETERS,
        tags=[TAG],
        summary="Client apps, by client id (admin)",
        responses={200: page_of(ClientAppOut), **errors(404)},
    )
    def get(self, request: Request) -> Response:
        require_role(request.user, ADMIN)
        clients = ClientApp.objects.prefetch_related("facades").order_by("client_id")
        return paginated(self, request, clients, ClientAppOut)

    @extend_schema(
        tags=[TAG],
        summary="Register a client app with its public keys, allowed scopes and facades (admin)",
        request=ClientAppIn,
        responses={201: ClientAppOut, **errors(409)},
    )
    def post(self, request: Request) -> Response:
        require_role(request.user, ADMIN)
        form = ClientAppIn(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        client = actions.do_register_client_app(
            acting_user=request.user,
            client_id=data.get("client_id", ""),
            name=data["name"],
            jwks=data["jwks"],
            jwks_url=data["jwks_url"],
            scopes=data["scopes"],
            facades=_facades(data["facades"]),
        )
        return Response(_out(request, client), status=201)


class ClientAppDetail(StudioAPIView):
    @extend_schema(tags=[TAG], summary="One client app (admin)", responses={200: ClientAppOut, **errors(404)})
    def get(self, request: Request, client_id: str) -> Response:
        return Response(_out(request, access_client_app(request.user, client_id)))

    @extend_schema(
        tags=[TAG],
        summary="Change a client app's keys, scopes, facades or active flag (admin)",
        request=ClientAppPatch,
        responses={200: ClientAppOut, **errors(404)},
    )
    def patch(self, request: Request, client_id: str) -> Response:
        client = access_client_app(request.user, client_id, write=True)
        form = ClientAppPatch(data=request.data)
        form.is_valid(raise_exception=True)
        data = dict(form.validated_data)
        if "facades" in data:
            data["facades"] = _facades(data["facades"])
        client = actions.do_update_client_app(client, acting_user=request.user, **data)
        return Response(_out(request, client))

    @extend_schema(
        tags=[TAG],
        summary="Remove a client app (admin)",
        description="It gets no new tokens; tokens already issued run out within five minutes.",
        responses={204: None, **errors(404)},
    )
    def delete(self, request: Request, client_id: str) -> Response:
        client = access_client_app(request.user, client_id, write=True)
        actions.do_delete_client_app(client, acting_user=request.user)
        return Response(status=204)
