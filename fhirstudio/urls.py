from django.contrib import admin
from django.urls import include, path

from mappings import views
from mappings.ui.views import ApiDocs, ApiDocsSchema, swagger_ui_file

urlpatterns = [
    path("fhir/", include("mappings.facade.urls")),  # first: the facade's traffic; no other route starts with fhir/
    path("healthz", views.healthz, name="healthz"),
    path("admin/", admin.site.urls),
    # Before the API's own routes: the studio's Swagger UI page (offline, with the studio's navigation) answers
    # /api/docs/ rather than drf-spectacular's plain one in mappings/api/urls.py.
    path("api/docs/", ApiDocs.as_view(), name="api-docs"),
    path("api/docs/schema.json", ApiDocsSchema.as_view(), name="api-docs-schema"),
    path("api/docs/swagger-ui/<str:name>", swagger_ui_file, name="api-docs-file"),
    path("api/", include("mappings.api.urls")),
    path("", include("mappings.ui.urls")),
]

handler400 = "mappings.views.bad_request"
handler403 = "mappings.views.permission_denied"
handler404 = "mappings.views.page_not_found"
handler500 = "mappings.views.server_error"
