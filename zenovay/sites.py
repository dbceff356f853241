"""Finding a website by its tracking code or public id, for reads, writes and widgets.

Answers are cached in the shared cache (WEBSITE_CACHE_SECONDS) and remembered in this
process for a second; `forget()`, called when a website is saved or deleted, drops both,
and the cached public answers about it, so a regenerated tracking code or a disabled
website stops working at once in every server process sharing the cache.
"""

from __future__ import annotations

import time
from typing import Literal

from zenovay import ids
from zenovay.infra import shared_cache, store
from zenovay.models import Website

WEBSITE_CACHE_SECONDS = 60


def cache_key(kind: str, value: str) -> str:
    return f"website:{kind}:{value}"


def by_code(code: str) -> Website | None:
    """The enabled website with this tracking code; malformed codes never reach the database."""
    if not ids.is_tracking_code(code):
        return None
    return _cached_website("code", code, tracking_code=code)


def by_id(website_id: str) -> Website | None:
    if not ids.is_website_id(website_id):
        return None
    return _cached_website("id", website_id, website_id=website_id)


def _cached_website(kind: str, value: str, **lookup: str) -> Website | None:
    key = cache_key(kind, value)
    found = shared_cache.get(key)
    if found is None:
        found = Website.objects.filter(enabled=True, **lookup).first() or False
        shared_cache.set(key, found, WEBSITE_CACHE_SECONDS)
    _recent[key] = (time.monotonic() + RECENT_SECONDS, found)
    return found or None


# Collect looks its website up for every event: this process remembers each answer for a
# second, so a busy site costs one shared-cache read a second, not one per event. Another
# process's change (a disabled site, a regenerated code) reaches this one within that second;
# this process's own changes at once (`forget`, from the save signal).
RECENT_SECONDS = 1.0
RECENT_MAX = 10_000
_recent: dict[str, tuple[float, Website | Literal[False]]] = {}


def recent_by_code(code: str) -> Website | Literal[False] | None:
    """What `by_code` answered within the last second: a Website, False for none, or None
    when this process does not know (then ask `by_code`, which may query)."""
    found = _recent.get(cache_key("code", code))
    if found is None or found[0] < time.monotonic():
        if len(_recent) > RECENT_MAX:
            _recent.clear()
        return None
    return found[1] or False


def forget_recent() -> None:
    """Forget this process's recent answers (tests, between two of them)."""
    _recent.clear()


def forget(website: Website) -> None:
    """Drop every cached lookup of the website and every cached public answer about it,
    under its tracking code and the one it had before this save."""
    codes = [website.tracking_code]
    if old := getattr(website, "_previous_tracking_code", None):
        codes.append(old)
    cached = [cache_key("code", code) for code in codes]
    cached.append(cache_key("id", website.website_id))
    shared_cache.delete_many(cached)
    for key in cached:
        _recent.pop(key, None)
    keys: list[str] = []
    for code in codes:
        keys += store.website_response_keys(code, website.website_id)
    store.get_store().delete(keys)
