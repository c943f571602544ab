"""Sign-in rate limiting (issue 15): after FHIR_STUDIO["LOGIN_FAILURES"] failed sign-ins for one username from one
address within LOGIN_WINDOW_SECONDS, further attempts are refused without checking the password, until the window
that began with the first failure ends; a successful sign-in clears the count.

The refusal is made by ThrottledModelBackend (AUTHENTICATION_BACKENDS): it raises PermissionDenied, which makes
django.contrib.auth.authenticate() stop before the password is read, on every form that signs in (the
studio's login page, the admin's). The studio's login page (ThrottledLoginView) answers such a request with a 429
page and a Retry-After header. Counts live in the default cache (settings.CACHES: files under ./var shared by one
machine's processes, or Redis across machines). Concurrent failures may lose a count between workers: the limit is a
brake on guessing, not an exact number. The address is REMOTE_ADDR: behind a proxy it is the proxy's, so the limit
becomes per username.

An address is also refused, for every username, after LOGIN_ADDRESS_FAILURES failures from it in the window (50 by
default; 0 turns it off): one address trying a common password on many usernames is stopped too. A successful sign-in
does not clear that count, or one account of the guesser's own would reset it. The counters are
mappings/rate_limits.py's."""

from __future__ import annotations

import math
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import user_logged_in, user_login_failed
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.views import LoginView
from django.core.exceptions import PermissionDenied
from django.dispatch import receiver
from django.forms.utils import ErrorDict
from django.http import HttpRequest, HttpResponse

from mappings import rate_limits
from mappings.actions.common import audit
from mappings.models import AuditAction

REFUSED_MESSAGE = "Too many failed sign-ins for this username from your address. Try again in {minutes} minutes."
ADDRESS_REFUSED_MESSAGE = "Too many failed sign-ins from your address. Try again in {minutes} minutes."
ADDRESS_FAILURES = 50  # LOGIN_ADDRESS_FAILURES when settings do not say


def _address(request: HttpRequest | None) -> str:
    return request.META.get("REMOTE_ADDR", "") if request is not None else ""


def _key(request: HttpRequest | None, username: str) -> str:
    return rate_limits.counter_key("login-failures", username.strip().lower(), _address(request))


def _address_key(request: HttpRequest | None) -> str:
    return rate_limits.counter_key("login-address-failures", _address(request))


def _address_limit() -> int:
    return settings.FHIR_STUDIO.get("LOGIN_ADDRESS_FAILURES", ADDRESS_FAILURES)


def _waits(request: HttpRequest | None, username: str) -> tuple[int, int]:
    """Seconds to wait (0: none) because of this username from this address, and because of this address alone."""
    if not settings.FHIR_STUDIO["LOGIN_FAILURES"]:  # 0: no throttle at all
        return 0, 0
    return (
        rate_limits.retry_after(_key(request, username), settings.FHIR_STUDIO["LOGIN_FAILURES"]),
        rate_limits.retry_after(_address_key(request), _address_limit()),
    )


def retry_after(request: HttpRequest | None, username: str) -> int:
    """Seconds until this username may sign in from this address again (0: it may now)."""
    return max(_waits(request, username))


def refused_message(request: HttpRequest | None, username: str) -> str:
    by_username, by_address = _waits(request, username)
    template = REFUSED_MESSAGE if by_username >= by_address else ADDRESS_REFUSED_MESSAGE
    return template.format(minutes=math.ceil(max(by_username, by_address) / 60))


def record_failure(request: HttpRequest | None, username: str) -> None:
    window = settings.FHIR_STUDIO["LOGIN_WINDOW_SECONDS"]
    rate_limits.count(_key(request, username), window)
    rate_limits.count(_address_key(request), window)


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
    rate_limits.clear(_key(request, user.get_username()))


class ThrottledLoginView(LoginView):
    """The studio's login page: a throttled username+address (or address) gets the page back with 429, a message
    saying when to try again and Retry-After, and its password is not looked at."""

    redirect_authenticated_user = True

    def post(self, request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        username = request.POST.get("username", "")
        wait = retry_after(request, username)
        if not wait:
            return super().post(request, *args, **kwargs)
        audit_refusal(request, username)
        form = self.get_form()
        form._errors, form.cleaned_data = ErrorDict(), {}  # an error of our own: validating would authenticate
        form.add_error(None, refused_message(request, username))
        response = self.render_to_response(self.get_context_data(form=form))
        response.status_code = 429
        response["Retry-After"] = str(wait)
        return response
