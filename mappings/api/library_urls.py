"""Routes for snippets, lookup tables (views in mappings/api/library.py) and the audit log (mappings/api/audit.py).

A snippet's name has slashes in it (snippets/hl7v2/datatypes.j2), hence `<path:name>`. Its history is matched first:
names end in .j2, so none can end in /versions/ and the two routes never compete."""

from django.urls import path

from mappings.api import audit, library

urlpatterns = [
    path("snippets/", library.SnippetList.as_view(), name="snippet-list"),
    path("snippets/<path:name>/versions/", library.SnippetVersions.as_view(), name="snippet-versions"),
    path("snippets/<path:name>", library.SnippetDetail.as_view(), name="snippet-detail"),
    path("lookup-tables/", library.LookupTableList.as_view(), name="lookup-table-list"),
    path("lookup-tables/<str:name>/versions/", library.LookupTableVersions.as_view(), name="lookup-table-versions"),
    path("lookup-tables/<str:name>/import", library.LookupTableImport.as_view(), name="lookup-table-import"),
    path("lookup-tables/<str:name>", library.LookupTableDetail.as_view(), name="lookup-table-detail"),
    path("audit/", audit.AuditList.as_view(), name="audit-list"),
]
