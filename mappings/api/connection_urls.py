"""Routes for connections to FHIR servers (views in mappings/api/connections.py)."""

from django.urls import path

from mappings.api import connections

urlpatterns = [
    path("connections/", connections.ConnectionList.as_view(), name="connection-list"),
    path("connections/<str:name>/", connections.ConnectionDetail.as_view(), name="connection-detail"),
    path("connections/<str:name>/test", connections.ConnectionTest.as_view(), name="connection-test"),
    path("connections/<str:name>/push", connections.ConnectionPush.as_view(), name="connection-push"),
]
