"""Routes for SMART client apps (views in mappings/api/client_apps.py)."""

from django.urls import path

from mappings.api import client_apps

urlpatterns = [
    path("client-apps/", client_apps.ClientAppList.as_view(), name="client-app-list"),
    path("client-apps/<str:client_id>/", client_apps.ClientAppDetail.as_view(), name="client-app-detail"),
]
