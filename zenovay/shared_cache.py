"""The shared cache, used so that a Redis outage slows nothing down and breaks nothing.

After a failure the cache is skipped for a few seconds (callers fall back to the
database) instead of every request waiting for a connect timeout.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from django.core.cache import cache

log = logging.getLogger("zenovay.cache")
RETRY_AFTER_SECONDS = 5.0
_down_until = 0.0


def is_down() -> bool:
    return time.monotonic() < _down_until


def _failed(exc: Exception) -> None:
    global _down_until
    if not is_down():
        log.warning("shared cache unavailable, using the database for %ss: %s", RETRY_AFTER_SECONDS, exc)
    _down_until = time.monotonic() + RETRY_AFTER_SECONDS


def get(key: str, default: Any = None) -> Any:
    if is_down():
        return default
    try:
        return cache.get(key, default)
    except Exception as exc:  # any backend error means "not cached"
        _failed(exc)
        return default


def set(key: str, value: Any, timeout: float) -> None:  # noqa: A001
    if is_down():
        return
    try:
        cache.set(key, value, timeout)
    except Exception as exc:
        _failed(exc)


def delete_many(keys: list[str]) -> None:
    try:
        cache.delete_many(keys)
    except Exception as exc:
        _failed(exc)
