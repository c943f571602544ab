"""Routes for the editor's support endpoints (views in mappings/api/authoring.py)."""

from django.urls import path

from mappings.api import authoring

urlpatterns = [
    path("mappings/<slug:slug>/source-tree", authoring.SourceTree.as_view(), name="mapping-source-tree"),
    path("mappings/<slug:slug>/impact", authoring.Impact.as_view(), name="mapping-impact"),
    path("editor/completions", authoring.Completions.as_view(), name="editor-completions"),
    path("starters/", authoring.Starters.as_view(), name="starter-list"),
]
