"""Sign-in throttling for the dashboard's and the admin's login forms.

Failed attempts are counted on three counters, each over a 15-minute window that
starts at its first attempt; a counter reaching its limit locks for 15 minutes:

- one client address and one username (`ZENOVAY_SIGNIN_FAILURES`, 5): guessing one
  account's password from one address;
- one client address, whatever usernames (`ZENOVAY_SIGNIN_IP_FAILURES`, 20): one
  address trying many accounts;
- one username from anywhere (`ZENOVAY_SIGNIN_USERNAME_FAILURES`, 100): guessing from
  many addresses. Much higher than the others, because a stranger who knows a name
  (the default `admin`) could otherwise keep its owner locked out at no cost.

An IPv6 client counts as its /64, which one subscriber holds whole.

Races: an attempt is counted (an atomic increment) before its password is checked,
and one that finds a counter over its limit locks it and is refused unchecked, so a
concurrent burst gets no more checks than the limit; a right password is refused too
if a lock appeared while it was being checked. Attempts refused unchecked, and right
passwords, are taken off the counts again: the counters hold failures and checks in flight.
An address refused at its own counters is not counted on the username's, so one
address hammering a locked name never counts towards locking it for everyone.

Usernames are counted as Django signs them in (NFKC, as `normalize_username`) and
casefolded; addresses and usernames appear in cache keys only as keyed hashes (HMAC
with `SECRET_KEY`), so the cache holds no client address.

Counters live in the Django cache (Redis when `REDIS_URL` is set), so every server
process sees them. When the cache is down the throttle fails open, like the API's rate
limits (signing in must not depend on Redis), and says so once per outage through the
store's breaker, not once per attempt.

A password check is a few hundred milliseconds of CPU. At most
`ZENOVAY_SIGNIN_CONCURRENCY` run at once per process and further attempts are refused at
once; and the check runs without a database connection (`SignInBackend`), so a flood
of sign-ins cannot take the connections the dashboard and the admin need.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django import forms
from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.forms import AuthenticationForm
from django.db import connections
from django.http import HttpRequest

from zenovay import clientinfo
from zenovay.infra import shared_cache

WINDOW_SECONDS = 15 * 60
LOCK_SECONDS = 15 * 60


@dataclass(frozen=True, slots=True)
class Counter:
    key: str
    limit: int
    cleared_by_success: bool  # a right password forgives this counter's failures

    @property
    def attempts(self) -> str:
        return f"{self.key}:attempts"

    @property
    def lock(self) -> str:
        return f"{self.key}:lock"


class LoginThrottle:
    """The counters of one attempt: its address and username, its address, its username."""

    def __init__(self, request: HttpRequest | None, username: str) -> None:
        name = clientinfo.keyed_hash("user", canonical_username(username))
        address = clientinfo.of_request(request)[0] if request is not None else None
        self.counters: list[Counter] = []
        if address is not None:
            ip = clientinfo.client_key(address)
            self.counters += [
                Counter(f"signin:pair:{ip}:{name}", settings.ZENOVAY_SIGNIN_FAILURES, True),
                Counter(f"signin:ip:{ip}", settings.ZENOVAY_SIGNIN_IP_FAILURES, False),
            ]
        self.counters.append(
            Counter(f"signin:user:{name}", settings.ZENOVAY_SIGNIN_USERNAME_FAILURES, False)
        )
        self.counted: list[tuple[Counter, int]] = []  # this attempt's place on each counter

    def begin(self) -> int:
        """Count this attempt; the seconds to wait if it must be refused unchecked, else 0."""
        wait = self.wait_seconds()
        if wait > 0:
            return wait
        for counter in self.counters:
            count = shared_cache.call(_increment, counter.attempts)
            if count is None:
                return 0
            self.counted.append((counter, count))
            if count > counter.limit:  # concurrent attempts went past it: nothing more is checked
                shared_cache.call(
                    shared_cache.backend().add, counter.lock, _lock_end(), LOCK_SECONDS
                )
                self.refund()
                return self.wait_seconds() or LOCK_SECONDS
        return 0

    def wait_seconds(self) -> int:
        """How long until the last lock ends; 0 when not locked."""
        locks = [counter.lock for counter in self.counters]
        ends = (shared_cache.call(shared_cache.backend().get_many, locks) or {}).values()
        return max([math.ceil(end - time.time()) for end in ends] + [0])

    def failed(self) -> int:
        """A wrong password; the seconds to wait if it locked a counter, else 0."""
        for counter, count in self.counted:
            if count >= counter.limit:
                shared_cache.call(
                    shared_cache.backend().set, counter.lock, _lock_end(), LOCK_SECONDS
                )
                shared_cache.call(shared_cache.backend().delete, counter.attempts)
        return self.wait_seconds()

    def succeeded(self) -> int:
        """A right password: forgives its address's failures for the name, counts nowhere.

        Refused (the seconds to wait) if a lock appeared while the password was checked.
        """
        wait = self.wait_seconds()
        if wait > 0:
            self.refund()
            return wait
        for counter, _ in self.counted:
            if counter.cleared_by_success:
                shared_cache.call(shared_cache.backend().delete, counter.attempts)
            else:
                shared_cache.call(_decrement, counter.attempts)
        self.counted = []
        return 0

    def refund(self) -> None:
        """Take this attempt off the counts: its password was not checked, or was right."""
        for counter, _ in self.counted:
            shared_cache.call(_decrement, counter.attempts)
        self.counted = []


def canonical_username(username: str) -> str:
    """The name Django would sign in, casefolded, so that no spelling of it escapes its lock."""
    name = AbstractBaseUser.normalize_username(username).strip().casefold()
    return unicodedata.normalize("NFKC", name)  # casefolding can undo NFKC ("ǰ")


def _lock_end() -> float:
    return time.time() + LOCK_SECONDS


def _increment(key: str) -> int:
    """Count within a window that starts at the first attempt."""
    cache = shared_cache.backend()
    cache.add(key, 0, WINDOW_SECONDS)
    try:
        return cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, WINDOW_SECONDS)
        return 1


def _decrement(key: str) -> None:
    with contextlib.suppress(ValueError):  # gone already: its window ended or it locked
        shared_cache.backend().decr(key)


class _CheckSlots:
    """Password checks running in this process, at most ZENOVAY_SIGNIN_CONCURRENCY."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.taken = 0

    @contextlib.contextmanager
    def take(self) -> Iterator[bool]:
        """Whether a slot was free; one that was is held until the block ends."""
        with self._lock:
            free = self.taken < settings.ZENOVAY_SIGNIN_CONCURRENCY
            self.taken += free
        try:
            yield free
        finally:
            if free:
                with self._lock:
                    self.taken -= 1


check_slots = _CheckSlots()


class SignInBackend(ModelBackend):
    """Django's ModelBackend, but the password is checked without a database connection.

    Under ASGI each request runs on a thread of its own, whose connection stays checked
    out of the pool until the response; 150 sign-ins hashing at once held every pooled
    connection and the signed-in owners' pages failed.
    """

    def authenticate(
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ) -> Any:
        user_model = get_user_model()
        if username is None:
            username = kwargs.get(user_model.USERNAME_FIELD)
        if username is None or password is None:
            return None
        try:
            user = user_model._default_manager.get_by_natural_key(username)
        except user_model.DoesNotExist:
            user = None
        _release_connections()
        if user is None:
            user_model().set_password(password)  # as slow as a real check (Django #20760)
            return None
        if user.check_password(password) and self.user_can_authenticate(user):
            return user
        return None


def _release_connections() -> None:
    """Hand connections back to the pool; the next query takes one again.

    Not inside a transaction: closing would roll it back (a test's own, for one).
    """
    for connection in connections.all(initialized_only=True):
        if not connection.in_atomic_block:
            connection.close()


class ThrottledLoginMixin(forms.Form):
    """Refuses every attempt while locked or busy; counts wrong passwords."""

    locked_message = (
        "Too many failed sign-in attempts. For your security, signing in is paused for "
        "%(minutes)s more minute(s). Please wait and try again."
    )
    busy_message = "Too many people are signing in right now. Please try again in a moment."

    def clean(self):
        # mixed into Django's AuthenticationForm, which has `request` (this Form does not)
        throttle = LoginThrottle(self.request, self.data.get("username", ""))  # type: ignore[attr-defined]
        self._refuse_if_locked(throttle.begin())
        with check_slots.take() as free:
            if not free:
                throttle.refund()
                raise forms.ValidationError(self.busy_message, code="busy")
            try:
                cleaned = super().clean()
            except forms.ValidationError as error:
                if any(e.code == "invalid_login" for e in error.error_list):
                    self._refuse_if_locked(throttle.failed())
                else:
                    throttle.refund()
                raise
        # `user_cache` is AuthenticationForm's; None: a field is missing, nothing was checked
        if self.user_cache is None:  # type: ignore[attr-defined]
            throttle.refund()
        else:
            self._refuse_if_locked(throttle.succeeded())
        return cleaned

    def _refuse_if_locked(self, wait: int) -> None:
        if wait > 0:
            raise forms.ValidationError(
                self.locked_message, code="locked", params={"minutes": math.ceil(wait / 60)}
            )


class ThrottledAuthenticationForm(ThrottledLoginMixin, AuthenticationForm):
    """The dashboard's sign-in form."""


class ThrottledAdminAuthenticationForm(ThrottledLoginMixin, AdminAuthenticationForm):
    """The admin's sign-in form (staff only, as before)."""
