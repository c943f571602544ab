"""Browser pages (views in mappings/ui/views.py); their data comes from /api/."""

from django.contrib.auth import views as auth_views
from django.urls import path

from mappings.ui import views

urlpatterns = [
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", views.mapping_list, name="mapping-list-page"),
    path("mappings/<slug:slug>/", views.mapping_editor, name="mapping-editor-page"),
    path("mappings/<slug:slug>/history", views.mapping_history, name="mapping-history-page"),
    path("facades/", views.facade_list, name="facade-list-page"),
    path("facades/<slug:slug>/", views.facade_detail, name="facade-detail-page"),
    path("batches/", views.batch_list, name="batch-list-page"),
    path("batches/<int:batch_id>/", views.batch_detail, name="batch-detail-page"),
    path("profiles/", views.profile_list, name="profile-list-page"),
    path("profiles/<path:ref>", views.profile_detail, name="profile-detail-page"),
    path("library/snippets/", views.snippet_list, name="snippet-list-page"),
    path("library/snippets/<path:name>", views.snippet_editor, name="snippet-editor-page"),
    path("library/lookup-tables/", views.lookup_table_list, name="lookup-table-list-page"),
    path("library/lookup-tables/<str:name>", views.lookup_table_editor, name="lookup-table-editor-page"),
]
