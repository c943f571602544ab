"""/api/…: the studio API, its OpenAPI schema and Swagger UI."""

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from mappings.api.audit_fhir import AuditFhir

urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("", include("mappings.api.mapping_urls")),
    path("", include("mappings.api.library_urls")),
    path("", include("mappings.api.editor_urls")),
    path("", include("mappings.api.facade_urls")),
    path("", include("mappings.api.batch_urls")),
    path("", include("mappings.api.message_urls")),
    path("", include("mappings.api.convert")),
    path("", include("mappings.api.profile_urls")),
    path("", include("mappings.api.client_app_urls")),
    path("audit/fhir", AuditFhir.as_view(), name="audit-fhir"),  # the audit trail as FHIR AuditEvent
    path("", include("mappings.api.connection_urls")),
]
