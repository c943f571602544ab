"""The admin console's gate and its accounts: only admins get in (mappings.access.may_use_admin_console), and every
account or role changed, or API token issued, there is an audit row (mappings/actions/auth.py), its password named,
never shown, a token's key never written."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group, User
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from rest_framework.authtoken.admin import TokenAdmin
from rest_framework.authtoken.models import TokenProxy

from mappings import actions
from mappings.access import may_use_admin_console
from mappings.actions.auth import account_state

admin.site.has_permission = may_use_admin_console  # the site calls self.has_permission(request): no self here


class AuditedUserAdmin(UserAdmin):
    def save_model(self, request: HttpRequest, obj: User, form: object, change: bool) -> None:
        # the state before, read before the form's values are saved (groups are saved later, by save_related)
        request.account_before = account_state(User.objects.get(pk=obj.pk)) if change else None
        super().save_model(request, obj, form, change)

    def save_related(self, request: HttpRequest, form: object, formsets: list, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        before = getattr(request, "account_before", None)
        fields = [name for name in form.changed_data if name not in ("password1", "password2")]
        if "password1" in form.changed_data:  # the add form's two password fields: one change, named once
            fields.append("password")
        actions.do_record_account_saved(form.instance, acting_user=request.user, before=before, fields=fields)

    def user_change_password(self, request: HttpRequest, id: str, form_url: str = "") -> HttpResponse:
        response = super().user_change_password(request, id, form_url)
        if request.method == "POST" and response.status_code == 302:  # saved: the form redirects back to the user
            user = self.get_object(request, unquote(id))
            state = account_state(user)
            actions.do_record_account_saved(user, acting_user=request.user, before=state, fields=["password"])
        return response

    def delete_model(self, request: HttpRequest, obj: User) -> None:
        actions.do_delete_account(obj, acting_user=request.user)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        for user in queryset:
            actions.do_delete_account(user, acting_user=request.user)


def _role_state(group: Group) -> dict:
    return {"name": group.name, "permissions": sorted(group.permissions.values_list("codename", flat=True))}


class AuditedGroupAdmin(GroupAdmin):
    def save_model(self, request: HttpRequest, obj: Group, form: object, change: bool) -> None:
        request.role_before = _role_state(Group.objects.get(pk=obj.pk)) if change else None
        super().save_model(request, obj, form, change)

    def save_related(self, request: HttpRequest, form: object, formsets: list, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        before = getattr(request, "role_before", None)
        actions.do_record_group_changed(
            form.instance, acting_user=request.user, before=before, after=_role_state(form.instance)
        )

    def delete_model(self, request: HttpRequest, obj: Group) -> None:
        # recorded first, while the group still has its id (the admin deletes in the same transaction)
        actions.do_record_group_changed(obj, acting_user=request.user, before=_role_state(obj), after=None)
        super().delete_model(request, obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        for group in queryset:
            self.delete_model(request, group)


class AuditedTokenAdmin(TokenAdmin):
    """The studio API's tokens: issued through the action (an audit row naming the user, never the key); not
    changeable, since moving a token to another user would issue it without a row."""

    def has_change_permission(self, request: HttpRequest, obj: TokenProxy | None = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: TokenProxy, form: object, change: bool) -> None:
        token = actions.do_issue_api_token(obj.user, acting_user=request.user)
        obj.key, obj.created = token.key, token.created  # the saved token, for the admin's message and redirect
        obj._state.adding = False


admin.site.unregister(TokenProxy)
admin.site.register(TokenProxy, AuditedTokenAdmin)
admin.site.unregister(User)
admin.site.register(User, AuditedUserAdmin)
admin.site.unregister(Group)
admin.site.register(Group, AuditedGroupAdmin)
