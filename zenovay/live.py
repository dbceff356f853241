"""Channel group names and "this site changed" notifications.

Ingest calls `site_changed()` after commit; it only marks the site dirty in this
process, so it is free and never fails. The push ticker (widgets) drains the set.
"""

from __future__ import annotations

import threading

_dirty: set[int] = set()
_lock = threading.Lock()


def group_name(website_pk: int) -> str:
    return f"site.{website_pk}"


def site_changed(website_pk: int) -> None:
    with _lock:
        _dirty.add(website_pk)


def take_changed() -> set[int]:
    """The sites changed since the last call, emptying the set."""
    global _dirty
    with _lock:
        changed, _dirty = _dirty, set()
    return changed
