"""Sign-in rate limiting (issue 15): after FHIR_STUDIO["LOGIN_FAILURES"] failed sign-ins for one username from one
address within LOGIN_WINDOW_SECONDS, further attempts are refused without checking the password, until the window
that began with the first failure ends; a successful sign-in clears the count.

The refusal is made by ThrottledModelBackend (AUTHENTICATION_BACKENDS): it raises PermissionDenied, which makes
django.contrib.auth.authenticate() stop before the password is read, on every form that signs in (the
studio's login page, the admin's). The studio's login page (ThrottledLoginView) answers such a request with a 429
page and a Retry-After header. Counts live in the default cache (settings.CACHES: files under ./var shared by one
machine's processes, or Redis across machines). Concurrent failures may lose a count between workers: the limit is a
brake on guessing, not an exact number. The address is REMOTE_ADDR: behind a proxy it is the proxy's, so the limit
becomes per username."""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import user_logged_in, user_login_failed
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.views import LoginView
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.dispatch import receiver
from django.forms.utils import ErrorDict
from django.http import HttpRequest, HttpResponse

from mappings.actions.common import audit
from mappings.models import AuditAction

REFUSED_MESSAGE = "Too many failed sign-ins for this username from your address. Try again in {minutes} minutes."


def _address(request: HttpRequest | None) -> str:
    return request.META.get("REMOTE_ADDR", "") if request is not None else ""


def _key(request: HttpRequest | None, username: str) -> str:
    digest = hashlib.sha256(f"{username.strip().lower()}\n{_address(request)}".encode()).hexdigest()
    return f"login-failures:{digest}"  # hashed: no username or address in cache keys or file names


def retry_after(request: HttpRequest | None, username: str) -> int:
    """Seconds until this username may sign in from this address again (0: it may now)."""
    limit = settings.FHIR_STUDIO["LOGIN_FAILURES"]
    if not limit:  # 0: no throttle
        return 0
    state = cache.get(_key(request, username))
    if not state or state["count"] < limit:
        return 0
    return max(0, math.ceil(state["until"] - time.time()))


def record_failure(request: HttpRequest | None, username: str) -> None:
    key, now = _key(request, username), time.time()
    state = cache.get(key)
    if not state or state["until"] <= now:
        state = {"count": 0, "until": now + settings.FHIR_STUDIO["LOGIN_WINDOW_SECONDS"]}
    state["count"] += 1
    # The timeout is the window's end, given again with every failure: a cache's incr() may reset it (file cache)
    cache.set(key, state, timeout=max(1, math.ceil(state["until"] - now)))


@dataclass
class Login:
    """What a refused sign-in's audit row is about: object_type "Login", object_id the username tried."""

    pk: str


def audit_refusal(request: HttpRequest | None, username: str) -> None:
    audit(None, AuditAction.LOGIN_REFUSED, Login(username[:100]), address=_address(request))


class ThrottledModelBackend(ModelBackend):
    """Django's username and password backend, refusing a throttled username+address before the password is looked
    at. One backend, not one in front of ModelBackend: force_login and the session name the first backend listed."""

    def authenticate(
        self, request: HttpRequest | None, username: str | None = None, password: str | None = None, **kwargs: object
    ) -> AbstractBaseUser | None:
        if username is not None and retry_after(request, username):
            if request is not None:
                request.login_refused = True  # not a failure to count: the password was never checked
            raise PermissionDenied  # authenticate() stops here and reports a failed sign-in
        return super().authenticate(request, username=username, password=password, **kwargs)


@receiver(user_login_failed, dispatch_uid="login-throttle-failed")
def _count_failure(sender: object, credentials: dict, request: HttpRequest | None = None, **kwargs: object) -> None:
    username = credentials.get("username")
    if not isinstance(username, str):
        return
    if request is not None and getattr(request, "login_refused", False):
        audit_refusal(request, username)
    else:
        record_failure(request, username)


@receiver(user_logged_in, dispatch_uid="login-throttle-reset")
def _reset(sender: object, request: HttpRequest | None, user: object, **kwargs: object) -> None:
    cache.delete(_key(request, user.get_username()))


class ThrottledLoginView(LoginView):
    """The studio's login page: a throttled username+address gets the page back with 429, a message saying when to
    try again and Retry-After, and its password is not looked at."""

    redirect_authenticated_user = True

    def post(self, request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        username = request.POST.get("username", "")
        wait = retry_after(request, username)
        if not wait:
            return super().post(request, *args, **kwargs)
        audit_refusal(request, username)
        form = self.get_form()
        form._errors, form.cleaned_data = ErrorDict(), {}  # an error of our own: validating would authenticate
        form.add_error(None, REFUSED_MESSAGE.format(minutes=math.ceil(wait / 60)))
        response = self.render_to_response(self.get_context_data(form=form))
        response.status_code = 429
        response["Retry-After"] = str(wait)
        return response
