"""Routes for the editor's support endpoints (views in mappings/api/editor.py)."""

from django.urls import path

from mappings.api import editor

urlpatterns = [
    path("mappings/<slug:slug>/source-tree", editor.SourceTree.as_view(), name="mapping-source-tree"),
    path("mappings/<slug:slug>/impact", editor.Impact.as_view(), name="mapping-impact"),
    path("editor/completions", editor.Completions.as_view(), name="editor-completions"),
    path("starters/", editor.Starters.as_view(), name="starter-list"),
]
