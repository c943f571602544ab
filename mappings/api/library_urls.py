"""Routes for snippets, lookup tables and the audit log (views in mappings/api/library.py)."""

urlpatterns: list = []
