"""Snapshots and pushes: a site's realtime snapshot, shared by the connections of this
process for a second, and the push that sends it to every process's hub once."""

from __future__ import annotations

import asyncio
import time

from zenovay import metrics
from zenovay.infra import db, store
from zenovay.models import Website
from zenovay.push import timing
from zenovay.push.hub import group_name
from zenovay.push.loops import here, hub

_memo: dict[int, tuple[float, metrics.RealtimeSnapshot | None]] = {}


def _compute(website_pk: int) -> metrics.RealtimeSnapshot | None:
    website = Website.objects.filter(pk=website_pk, enabled=True).first()
    return metrics.realtime(website) if website else None


async def snapshot(website_pk: int, *, fresh: bool = False) -> metrics.RealtimeSnapshot | None:
    """The site's realtime snapshot, shared by every connection in this process for a second."""
    lock = here().memo_locks.setdefault(website_pk, asyncio.Lock())
    async with lock:
        cached = _memo.get(website_pk)
        if not fresh and cached and cached[0] > time.monotonic() - timing.MEMO_SECONDS:
            return cached[1]
        result = await db.run(_compute, website_pk)
        _memo[website_pk] = (time.monotonic(), result)
        return result


def live_of(realtime: metrics.RealtimeSnapshot) -> metrics.LiveSnapshot:
    return {"liveCount": realtime["visitors"]["current"], "timestamp": realtime["timestamp"]}


async def push(website_pk: int, *, tick: bool = False) -> bool:
    """Compute the site's snapshot once and send it to every hub; False if another did.

    A shared lock makes one push per site per second for changes, and one per tick
    for the steady refresh, whichever process gets there first."""
    kind, seconds = ("tick", timing.TICK_SECONDS) if tick else ("push", timing.CHANGE_DELAY)
    if not await store.get_store().try_lock(f"{kind}:{website_pk}", seconds * 0.9):
        return False
    data = await snapshot(website_pk, fresh=True)
    # "website" tells a hub, and a socket following several sites, whose snapshot this is.
    message: dict[str, object] = (
        {"type": "site.snapshot", "website": website_pk, "realtime": data}
        if data
        else {"type": "site.gone", "website": website_pk}
    )
    await hub().call("group_send", group_name(website_pk), message)
    return True


def forget() -> None:
    _memo.clear()
