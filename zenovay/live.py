"""Push: channel group names, "this site changed", viewers and the ticker.

Ingest calls `site_changed()` after commit; it only marks the site dirty in this
process, so it is free and never fails. Each server process runs one ticker
task which, about once a second, pushes a fresh snapshot for every changed site
that has viewers anywhere, and every few seconds for sites with viewers here, so
live counts fall as visitors leave. A snapshot is computed once per site per
push (a shared lock keeps processes from pushing the same site twice) and fanned
out through the channel layer to every viewer, whichever process holds them.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import Counter

from channels.layers import get_channel_layer

from zenovay import db, metrics, store
from zenovay.models import Website

log = logging.getLogger("zenovay.live")

CHANGE_DELAY = 1.0  # at most one push per site per second for changes
TICK_SECONDS = 5.0  # steady refresh for sites with viewers
PRESENCE_TTL = 5.0
MEMO_SECONDS = 1.0

_dirty: set[int] = set()
_lock = threading.Lock()
_viewers: Counter[int] = Counter()
_memo: dict[int, tuple[float, metrics.RealtimeSnapshot | None]] = {}
_memo_locks: dict[int, asyncio.Lock] = {}
_tickers: dict[asyncio.AbstractEventLoop, asyncio.Task] = {}


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


def viewer_joined(website_pk: int) -> None:
    _viewers[website_pk] += 1


def viewer_left(website_pk: int) -> None:
    _viewers[website_pk] -= 1
    if _viewers[website_pk] <= 0:
        del _viewers[website_pk]


def local_viewers() -> set[int]:
    return set(_viewers)


# --- Snapshots


def _compute(website_pk: int) -> metrics.RealtimeSnapshot | None:
    website = Website.objects.filter(pk=website_pk, enabled=True).first()
    return metrics.realtime(website) if website else None


async def snapshot(website_pk: int, *, fresh: bool = False) -> metrics.RealtimeSnapshot | None:
    """The site's realtime snapshot, shared by every connection in this process for a second."""
    lock = _memo_locks.setdefault(website_pk, asyncio.Lock())
    async with lock:
        cached = _memo.get(website_pk)
        if not fresh and cached and cached[0] > time.monotonic() - MEMO_SECONDS:
            return cached[1]
        result = await db.run(_compute, website_pk)
        _memo[website_pk] = (time.monotonic(), result)
        return result


def live_of(realtime: metrics.RealtimeSnapshot) -> metrics.LiveSnapshot:
    return {"liveCount": realtime["visitors"]["current"], "timestamp": realtime["timestamp"]}


async def push(website_pk: int) -> bool:
    """Compute the site's snapshot once and send it to every viewer; False if another did."""
    if not await store.get_store().try_lock(f"push:{website_pk}", CHANGE_DELAY * 0.9):
        return False
    data = await snapshot(website_pk, fresh=True)
    # "website" lets a consumer that follows several sites tell whose snapshot this is.
    message: dict[str, object] = (
        {"type": "site.snapshot", "website": website_pk, "realtime": data}
        if data
        else {"type": "site.gone", "website": website_pk}
    )
    await get_channel_layer().group_send(group_name(website_pk), message)
    return True


# --- The ticker


async def _due(last_tick: float) -> tuple[set[int], float]:
    """Sites to push now: changed ones with viewers anywhere, plus ours on the tick."""
    backend = store.get_store()
    here = local_viewers()
    await backend.mark_presence([group_name(pk) for pk in here], PRESENCE_TTL)
    due = set()
    for pk in take_changed():
        if pk in here or await backend.has_presence(group_name(pk)):
            due.add(pk)
    if time.monotonic() - last_tick >= TICK_SECONDS:
        due |= here
        last_tick = time.monotonic()
    return due, last_tick


async def run_ticker() -> None:
    last_tick = time.monotonic()
    while True:
        await asyncio.sleep(CHANGE_DELAY)
        try:
            due, last_tick = await _due(last_tick)
            for pk in due:
                await push(pk)
        except Exception as exc:  # a Redis or database outage must not end the ticker
            # One line a tick, not a traceback a second, while something is down.
            log.warning("push failed, retrying on the next tick: %r", exc)


def ensure_ticker() -> None:
    """Start this process's ticker on the running loop, once."""
    loop = asyncio.get_running_loop()
    task = _tickers.get(loop)
    if task is None or task.done():
        _tickers[loop] = loop.create_task(run_ticker(), name="zenovay-ticker")


def stop_tickers() -> None:
    for task in _tickers.values():
        task.cancel()
    _tickers.clear()
    _memo.clear()
    _memo_locks.clear()
