"""Routes for mappings, drafts, versions, render, samples and test runs (views in mappings/api/mappings.py)."""

from django.urls import path

from mappings.api import mappings as views

urlpatterns = [
    path("mappings/", views.MappingList.as_view(), name="mapping-list"),
    path("mappings/<slug:slug>/", views.MappingDetail.as_view(), name="mapping-detail"),
    path("mappings/<slug:slug>/draft", views.DraftView.as_view(), name="mapping-draft"),
    path("mappings/<slug:slug>/versions/", views.VersionList.as_view(), name="mapping-versions"),
    path("mappings/<slug:slug>/versions/<int:number>", views.VersionDetail.as_view(), name="mapping-version"),
    path("mappings/<slug:slug>/versions/<int:number>/diff", views.VersionDiff.as_view(), name="mapping-version-diff"),
    path(
        "mappings/<slug:slug>/versions/<int:number>/restore",
        views.VersionRestore.as_view(),
        name="mapping-version-restore",
    ),
    path("mappings/<slug:slug>/render", views.Render.as_view(), name="mapping-render"),
    path("mappings/<slug:slug>/samples/", views.SampleList.as_view(), name="mapping-samples"),
    path("mappings/<slug:slug>/samples/<slug:name>", views.SampleDetail.as_view(), name="mapping-sample"),
    path("mappings/<slug:slug>/test-runs/", views.TestRunList.as_view(), name="mapping-test-runs"),
    path("mappings/<slug:slug>/test-runs/<int:run_id>", views.TestRunDetail.as_view(), name="mapping-test-run"),
]
