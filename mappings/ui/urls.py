"""Browser pages (views in mappings/ui/views.py); their data comes from /api/."""

from collections.abc import Callable

from django.contrib.auth import views as auth_views
from django.urls import URLPattern, path

from mappings.login_throttle import ThrottledLoginView
from mappings.ui import connections, messages, views


def list_and_items(prefix: str, item: str, pages: tuple[Callable, Callable], name: str, kind: str = "detail") -> list:
    """A list page at `prefix`/ and a page per item at `prefix`/`item`: `name`-list-page and `name`-`kind`-page."""
    list_page, item_page = pages
    return [
        path(f"{prefix}/", list_page, name=f"{name}-list-page"),
        path(f"{prefix}/{item}", item_page, name=f"{name}-{kind}-page"),
    ]


urlpatterns: list[URLPattern] = [
    path("login/", ThrottledLoginView.as_view(), name="login"),  # refuses after repeated failures (429)
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", views.mapping_list, name="mapping-list-page"),
    path("mappings/<slug:slug>/", views.mapping_editor, name="mapping-editor-page"),
    path("mappings/<slug:slug>/history", views.mapping_history, name="mapping-history-page"),
    *list_and_items("facades", "<slug:slug>/", (views.facade_list, views.facade_detail), "facade"),
    path("client-apps/", views.client_app_list, name="client-app-list-page"),
    path("connections/", connections.connection_list, name="connection-list-page"),
    path("audit/", views.audit_log, name="audit-page"),
    *list_and_items("batches", "<int:batch_id>/", (views.batch_list, views.batch_detail), "batch"),
    path("messages/", messages.message_list, name="message-list-page"),
    *list_and_items("profiles", "<path:ref>", (views.profile_list, views.profile_detail), "profile"),
    *list_and_items("library/snippets", "<path:name>", (views.snippet_list, views.snippet_editor), "snippet", "editor"),
    *list_and_items(
        "library/lookup-tables",
        "<str:name>",
        (views.lookup_table_list, views.lookup_table_editor),
        "lookup-table",
        "editor",
    ),
]
