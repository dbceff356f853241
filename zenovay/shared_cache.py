"""The Django cache, used so that a Redis outage slows nothing down and breaks nothing.

While the store's breaker is open (Redis failed a moment ago) the cache is skipped
and callers fall back to the database instead of each waiting for a timeout.
"""

from __future__ import annotations

from typing import Any

from django.core.cache import cache

from zenovay.store import breaker


def get(key: str, default: Any = None) -> Any:
    if breaker.open:
        return default
    try:
        return cache.get(key, default)
    except Exception as exc:  # any backend error means "not cached"
        breaker.trip(exc)
        return default


def set(key: str, value: Any, timeout: float) -> None:
    if breaker.open:
        return
    try:
        cache.set(key, value, timeout)
    except Exception as exc:
        breaker.trip(exc)


def delete_many(keys: list[str]) -> None:
    try:
        cache.delete_many(keys)
    except Exception as exc:
        breaker.trip(exc)
