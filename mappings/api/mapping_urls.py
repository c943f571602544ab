"""Routes for mappings, drafts, versions, render, samples and test runs (views in mappings/api/mappings.py)."""

urlpatterns: list = []
