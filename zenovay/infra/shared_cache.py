"""The Django cache, used so that a Redis outage slows nothing down and breaks nothing.

While the store's breaker is open (Redis failed a moment ago) the cache is skipped
and callers fall back to the database instead of each waiting for a timeout.

One cache object serves the whole process: `django.core.cache.cache` is a new object
in every request's async context, and with Redis each has a connection pool of its
own, so every request on the hot path would open (and drop) a Redis connection.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from django.core.cache import DEFAULT_CACHE_ALIAS, BaseCache, caches
from django.core.signals import setting_changed
from django.dispatch import receiver
from redis.exceptions import RedisError

from zenovay.infra.store import breaker

T = TypeVar("T")

_backend: BaseCache | None = None


def backend() -> BaseCache:
    global _backend
    if _backend is None:
        _backend = caches.create_connection(DEFAULT_CACHE_ALIAS)
    return _backend


@receiver(setting_changed)
def _settings_changed(setting: str, **kwargs: object) -> None:
    global _backend
    if setting == "CACHES":
        _backend = None


def get(key: str, default: Any = None) -> Any:
    if breaker.open:
        return default
    try:
        return backend().get(key, default)
    except Exception as exc:  # any backend error means "not cached"
        breaker.trip(exc)
        return default


def set(key: str, value: Any, timeout: float) -> None:
    if breaker.open:
        return
    try:
        backend().set(key, value, timeout)
    except Exception as exc:
        breaker.trip(exc)


def delete_many(keys: list[str]) -> None:
    try:
        backend().delete_many(keys)
    except Exception as exc:
        breaker.trip(exc)


def call(method: Callable[..., T], *args: object) -> T | None:
    """`method(*args)` on the cache (a counter, a lock), or None while Redis is down: the
    breaker skips it meanwhile and warns once, not once per call (sign-in counts with it)."""
    if breaker.open:
        return None
    try:
        return method(*args)
    except RedisError as exc:
        breaker.trip(exc)
        return None
