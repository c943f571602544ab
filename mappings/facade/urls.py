"""/fhir/<facade>/…: the FHIR REST API of each facade (views in mappings/facade/views.py)."""

from django.urls import path, re_path

from mappings.facade import bulk, operations, store_transactions, store_views, views
from mappings.security import views as security

TYPE = r"(?P<resource_type>[A-Z][A-Za-z]{1,63})"
ID = r"(?P<resource_id>[A-Za-z0-9\-.]{1,64})"
# Read and search first: they are most of a facade's traffic, and Django tries patterns in order (ten misses
# cost a read 0.03 ms). Neither matches another route's URL: ids hold no "$" or "_", type names start with a capital.
urlpatterns = [
    re_path(rf"^(?P<slug>[-a-zA-Z0-9_]+)/{TYPE}/{ID}$", store_views.instance, name="fhir-read"),
    re_path(rf"^(?P<slug>[-a-zA-Z0-9_]+)/{TYPE}/?$", store_views.resource_type_view, name="fhir-type"),
    path("<slug:slug>/metadata", views.metadata, name="fhir-metadata"),
    path("<slug:slug>/.well-known/smart-configuration", security.smart_configuration, name="fhir-smart-configuration"),
    path("<slug:slug>/auth/token", security.token, name="fhir-token"),
    path("<slug:slug>/$export", bulk.export_system, name="fhir-export"),
    path("<slug:slug>/Patient/$export", bulk.export_patients, name="fhir-patient-export"),
    re_path(r"^(?P<slug>[-a-zA-Z0-9_]+)/Group/(?P<group_id>[A-Za-z0-9\-.]{1,64})/\$export$", bulk.export_group),
    path("<slug:slug>/$export-status/<uuid:key>", bulk.export_status, name="fhir-export-status"),
    path("<slug:slug>/$export-file/<uuid:key>/<str:name>", bulk.export_file, name="fhir-export-file"),
    path("<slug:slug>/$convert-data", operations.convert_data, name="fhir-convert-data"),
    path("<slug:slug>/$validate", operations.validate, name="fhir-validate"),
    re_path(rf"^(?P<slug>[-a-zA-Z0-9_]+)/{TYPE}/\$validate$", operations.validate, name="fhir-type-validate"),
    re_path(rf"^(?P<slug>[-a-zA-Z0-9_]+)/{TYPE}/_search$", store_views.search_post, name="fhir-search"),
    # A facade bound to a FHIR store (mappings/facade/store_views.py): versions, history, batch and transaction.
    re_path(rf"^(?P<slug>[-a-zA-Z0-9_]+)/{TYPE}/{ID}/_history/(?P<version_id>[0-9]{{1,9}})$", store_views.vread),
    re_path(rf"^(?P<slug>[-a-zA-Z0-9_]+)/{TYPE}/{ID}/_history/?$", store_views.instance_history),
    re_path(rf"^(?P<slug>[-a-zA-Z0-9_]+)/{TYPE}/_history/?$", store_views.type_history),
    re_path(r"^(?P<slug>[-a-zA-Z0-9_]+)/_history/?$", store_views.system_history, name="fhir-system-history"),
    re_path(r"^(?P<slug>[-a-zA-Z0-9_]+)/?$", store_transactions.base, name="fhir-base"),
    re_path(r"^(?P<slug>[^/]+)/(?P<rest>.*)$", views.unknown, name="fhir-unknown"),
]
