"""Sign-in throttling for the dashboard's and the admin's login forms.

Five failed attempts for one username, or from one client IP, within 15 minutes
lock that username or address for 15 minutes, whatever the password of the next
attempt. Counters live in the Django cache (Redis when `REDIS_URL` is set), so
every server process sees them. When the cache is down the throttle fails open,
like the API's rate limits: signing in must not depend on Redis.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time

from django import forms
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm
from django.core.cache import cache
from django.http import HttpRequest

from zenovay import clientinfo

log = logging.getLogger("zenovay.signin")

MAX_FAILURES = 5
WINDOW_SECONDS = 15 * 60
LOCK_SECONDS = 15 * 60


class LoginThrottle:
    """Failure counters and locks for one attempt's username and client IP."""

    def __init__(self, request: HttpRequest | None, username: str) -> None:
        ip = None
        if request is not None:
            ip, _ = clientinfo.client_ip(
                request.META.get("REMOTE_ADDR"), request.headers.get("X-Forwarded-For")
            )
        # Hashed: cache keys stay short and safe whatever a username contains.
        name = hashlib.sha256(username.strip().casefold().encode()).hexdigest()[:32]
        self.keys = [f"signin:user:{name}"] + ([f"signin:ip:{ip}"] if ip else [])

    def wait_seconds(self) -> int:
        """How long until the lock ends; 0 when not locked."""
        try:
            ends = cache.get_many([f"{key}:lock" for key in self.keys]).values()
        except Exception:
            log.exception("sign-in throttle unavailable; not checking locks")
            return 0
        return max([math.ceil(end - time.time()) for end in ends] + [0])

    def failed(self) -> None:
        try:
            for key in self.keys:
                if _increment(f"{key}:failures") >= MAX_FAILURES:
                    cache.set(f"{key}:lock", time.time() + LOCK_SECONDS, LOCK_SECONDS)
                    cache.delete(f"{key}:failures")
        except Exception:
            log.exception("sign-in throttle unavailable; failure not counted")

    def succeeded(self) -> None:
        """A correct password clears the username's failures, not the address's."""
        try:
            cache.delete(f"{self.keys[0]}:failures")
        except Exception:
            log.exception("sign-in throttle unavailable")


def _increment(key: str) -> int:
    """Count within a window that starts at the first failure."""
    cache.add(key, 0, WINDOW_SECONDS)
    try:
        return cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, WINDOW_SECONDS)
        return 1


class ThrottledLoginMixin(forms.Form):
    """Refuses every attempt while locked; counts wrong passwords."""

    locked_message = (
        "Too many failed sign-in attempts. For your security, signing in is paused for "
        "%(minutes)s more minute(s). Please wait and try again."
    )

    def clean(self):
        throttle = LoginThrottle(self.request, self.data.get("username", ""))  # type: ignore[attr-defined]
        self._refuse_if_locked(throttle)
        try:
            cleaned = super().clean()
        except forms.ValidationError as error:
            if any(e.code == "invalid_login" for e in error.error_list):
                throttle.failed()
                self._refuse_if_locked(throttle)
            raise
        throttle.succeeded()
        return cleaned

    def _refuse_if_locked(self, throttle: LoginThrottle) -> None:
        wait = throttle.wait_seconds()
        if wait > 0:
            raise forms.ValidationError(
                self.locked_message, code="locked", params={"minutes": math.ceil(wait / 60)}
            )


class ThrottledAuthenticationForm(ThrottledLoginMixin, AuthenticationForm):
    """The dashboard's sign-in form."""


class ThrottledAdminAuthenticationForm(ThrottledLoginMixin, AdminAuthenticationForm):
    """The admin's sign-in form (staff only, as before)."""
