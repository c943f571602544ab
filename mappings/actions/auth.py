"""Who came in and who changed who may come in: sign-in, sign-out and failed sign-ins (from Django's auth signals,
whichever form signed in: the studio's login page or the admin's), the studio API's script token issued and refused,
and accounts and their roles changed in the admin console.

No row holds a password, a token or a session key: a failed sign-in records the username tried and the address, a
token row the user it belongs to. Refusals by the sign-in throttle are mappings/login_throttle.py's
(auth.login_refused)."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth import user_logged_in, user_logged_out, user_login_failed
from django.contrib.auth.models import AbstractBaseUser, User
from django.db import transaction
from django.dispatch import receiver
from django.http import HttpRequest
from rest_framework.authtoken.models import Token

from mappings.actions.common import audit
from mappings.models import AuditAction

ACCOUNT_FIELDS = ("username", "is_active", "is_staff", "is_superuser")  # what an account row records of a user


@dataclass
class Login:
    """What a sign-in row is about when there is no user to name: object_type "Login", object_id the username tried
    (as mappings/login_throttle.py records its refusals)."""

    pk: str


def _address(request: HttpRequest | None) -> str:
    return request.META.get("REMOTE_ADDR", "") if request is not None else ""


@transaction.atomic
def do_record_login(user: AbstractBaseUser, *, address: str) -> None:
    audit(user, AuditAction.LOGIN, user, address=address)


@transaction.atomic
def do_record_logout(user: AbstractBaseUser, *, address: str) -> None:
    audit(user, AuditAction.LOGOUT, user, address=address)


@transaction.atomic
def do_record_login_failed(username: str, *, address: str) -> None:
    audit(None, AuditAction.LOGIN_FAILED, Login(username[:100]), address=address)


@transaction.atomic  # not durable: the admin console issues tokens inside its own transaction
def do_issue_api_token(user: User, *, acting_user: AbstractBaseUser | None) -> Token:
    """The user's API token for `Authorization: Token …`, created if missing (`fhirstudio token`). The row names the
    user, never the key."""
    token, created = Token.objects.get_or_create(user=user)
    audit(acting_user, AuditAction.API_TOKEN_ISSUED, user, created=created)
    return token


@transaction.atomic  # not durable: authentication may run inside a caller's transaction
def do_record_api_token_refused(*, address: str, reason: str) -> None:
    audit(None, AuditAction.API_TOKEN_REFUSED, Login(""), address=address, reason=reason[:200])


def account_state(user: User) -> dict:
    """An account as its audit rows record it: flags and roles, never the password hash."""
    state = {name: getattr(user, name) for name in ACCOUNT_FIELDS}
    state["groups"] = sorted(user.groups.values_list("name", flat=True)) if user.pk else []
    return state


@transaction.atomic
def do_record_account_saved(
    user: User, *, acting_user: AbstractBaseUser, before: dict | None, fields: list[str]
) -> None:
    """After the admin console saved `user` (and its groups): user.created or user.updated with the account's state
    before and after, and the names of the fields changed (a new password is named, never shown)."""
    action = AuditAction.USER_CREATED if before is None else AuditAction.USER_UPDATED
    audit(acting_user, action, user, before=before, after=account_state(user), fields=sorted(fields))


@transaction.atomic
def do_delete_account(user: User, *, acting_user: AbstractBaseUser) -> None:
    before = account_state(user)
    user_id = user.pk
    user.delete()
    user.pk = user_id  # the row names the account removed
    audit(acting_user, AuditAction.USER_DELETED, user, before=before)


@transaction.atomic
def do_record_group_changed(
    group: object, *, acting_user: AbstractBaseUser, before: dict | None, after: dict | None
) -> None:
    """A role (group) created, renamed, given permissions or deleted in the admin console."""
    audit(acting_user, AuditAction.GROUP_CHANGED, group, before=before, after=after)


# Django signals these for every sign-in form (the studio's, the admin's) and every logout. The credentials Django
# passes on a failure have the password masked already; only the username is read.


@receiver(user_logged_in, dispatch_uid="audit-login")
def _logged_in(sender: object, request: HttpRequest | None, user: AbstractBaseUser, **kwargs: object) -> None:
    do_record_login(user, address=_address(request))


@receiver(user_logged_out, dispatch_uid="audit-logout")
def _logged_out(sender: object, request: HttpRequest | None, user: AbstractBaseUser | None, **kwargs: object) -> None:
    if user is not None:  # a logout without a session has no one to record
        do_record_logout(user, address=_address(request))


@receiver(user_login_failed, dispatch_uid="audit-login-failed")
def _login_failed(sender: object, credentials: dict, request: HttpRequest | None = None, **kwargs: object) -> None:
    username = credentials.get("username")
    if not isinstance(username, str):
        return
    if request is not None and getattr(request, "login_refused", False):
        return  # the throttle refused it before the password was read: its own row (auth.login_refused)
    do_record_login_failed(username, address=_address(request))
