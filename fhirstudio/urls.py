from django.contrib import admin
from django.urls import include, path

from mappings import views

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("api/", include("mappings.api.urls")),
    path("fhir/", include("mappings.facade.urls")),
    path("", include("mappings.ui.urls")),
]
