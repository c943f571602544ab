"""/fhir/<facade>/…: the FHIR REST API of each facade (views in mappings/facade/views.py)."""

from django.urls import path, re_path

from mappings.facade import operations, views

TYPE = r"(?P<resource_type>[A-Z][A-Za-z]{1,63})"
urlpatterns = [
    path("<slug:slug>/metadata", views.metadata, name="fhir-metadata"),
    path("<slug:slug>/$convert-data", operations.convert_data, name="fhir-convert-data"),
    path("<slug:slug>/$validate", operations.validate, name="fhir-validate"),
    re_path(rf"^(?P<slug>[-a-zA-Z0-9_]+)/{TYPE}/\$validate$", operations.validate, name="fhir-type-validate"),
    re_path(rf"^(?P<slug>[-a-zA-Z0-9_]+)/{TYPE}/_search$", views.search_post, name="fhir-search"),
    re_path(
        rf"^(?P<slug>[-a-zA-Z0-9_]+)/{TYPE}/(?P<resource_id>[A-Za-z0-9\-.]{{1,64}})$", views.instance, name="fhir-read"
    ),
    re_path(rf"^(?P<slug>[-a-zA-Z0-9_]+)/{TYPE}/?$", views.resource_type_view, name="fhir-type"),
    re_path(r"^(?P<slug>[^/]+)/(?P<rest>.*)$", views.unknown, name="fhir-unknown"),
]
