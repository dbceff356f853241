"""The ticker: one task per event loop that pushes changed sites and refreshes watched ones.

It pushes a changed site at once when it has viewers in any process, then at most once
a second while changes keep coming. A changed site nobody watches is looked at again at
most once a second too, so a first viewer's pushes begin within a second. It refreshes
every site with viewers here every few seconds, so live counts fall as visitors leave.
Each Redis call it makes is bounded, and no failure ends it: it logs one line and tries
again."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from django.conf import settings

from zenovay.infra import store
from zenovay.push import timing
from zenovay.push.hub import group_name
from zenovay.push.loops import LoopState, here, plan, take_changed
from zenovay.push.schedule import Schedule
from zenovay.push.snapshots import push

log = logging.getLogger("zenovay.push")


class Ticker:
    """One loop's ticker; `run_ticker` calls its steps in order, once per wake-up."""

    def __init__(self, state: LoopState) -> None:
        self.state, self.wake, self.hub = state, state.wake, state.hub
        self.backend, self.schedule = store.get_store(), Schedule()
        now = time.monotonic()
        self.next_tick, self.next_presence = now + timing.TICK_SECONDS, now

    async def sleep(self) -> float:
        """Wait for a change, the next due push, presence beat or tick; return the time."""
        schedule, next_tick = self.schedule, self.next_tick
        deadline = min(next_tick, self.next_presence, schedule.next_due() or next_tick)
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for drops a cancellation that
        # arrives as the event is set, and this loop would then outlive its event loop.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                await self.wake.wait()
        self.wake.clear()
        return time.monotonic()

    def take_changes(self, now: float) -> None:
        for pk in take_changed():
            self.schedule.changed(pk, now)

    def sites_to_refresh(self, now: float, watched: set[int]) -> set[int]:
        """On a tick, the sites watched here that no due change push refreshes anyway."""
        if now < self.next_tick:
            return set()
        self.next_tick = now + timing.TICK_SECONDS
        return watched - set(self.schedule.due)

    async def keep_presence(self, now: float, watched: set[int], ticking: set[int]) -> None:
        """Say which sites have viewers here; rejoin their groups on a tick."""
        try:  # each Redis call here is bounded: a hung Redis cannot stall the ticker
            if now >= self.next_presence:
                self.next_presence = now + timing.PRESENCE_SECONDS
                groups = [group_name(pk) for pk in watched]
                await self.backend.mark_presence(groups, timing.PRESENCE_TTL)
            if ticking:
                await self.hub.refresh()  # closes the sockets here if the layer fails
        except Exception as exc:  # a Redis outage must not end the ticker
            log.warning("presence or groups not refreshed, retrying: %r", exc)

    async def push_due(self, now: float, watched: set[int]) -> None:
        """Push the changed sites that are due and watched somewhere."""
        schedule, backend = self.schedule, self.backend
        for pk in schedule.take_due(now):
            try:
                if pk not in watched and not await backend.has_presence(group_name(pk)):
                    schedule.pushed[pk] = now  # nobody watches it: look again in a second
                    continue
                if await push(pk):
                    schedule.pushed[pk] = time.monotonic()
                else:  # another process pushed it just now, perhaps before this change
                    schedule.later(pk, now)
            except Exception as exc:  # a Redis or database outage must not end the ticker
                # One line a try, not a traceback a second, while something is down.
                log.warning("push failed, retrying in a second: %r", exc)
                schedule.later(pk, now)

    def publish_plan(self) -> None:
        """Changes of sites already due need not wake the ticker (`loops.site_changed`)."""
        plan(self.state, set(self.schedule.due))

    async def refresh(self, ticking: set[int]) -> None:
        for pk in ticking:
            try:
                await push(pk, tick=True)
            except Exception as exc:
                log.warning("refresh failed, retrying on the next tick: %r", exc)


async def run_ticker() -> None:
    """Push changes as they come (see Schedule); refresh the sites watched here on a tick."""
    ticker = Ticker(here())
    while True:
        now = await ticker.sleep()
        watched = set(ticker.hub.sites)
        ticker.take_changes(now)
        ticking = ticker.sites_to_refresh(now, watched)
        await ticker.keep_presence(now, watched, ticking)
        await ticker.push_due(now, watched)
        ticker.publish_plan()
        await ticker.refresh(ticking)


def ensure_ticker() -> None:
    """Start this process's ticker on the running loop, once; and its sealer (unless
    ZENOVAY_SEAL_EVERY is 0), which seals finished days in the background."""
    state = here()
    if state.ticker is not None and not state.ticker.done():
        return  # every collect calls this: nothing more once the ticker runs
    loop = asyncio.get_running_loop()
    state.ticker = loop.create_task(run_ticker(), name="zenovay-ticker")
    if settings.ZENOVAY_SEAL_EVERY and (state.sealer is None or state.sealer.done()):
        # Imported here: the sealer reads visits, which need ingest, which imports push.
        from zenovay import sealer

        state.sealer = loop.create_task(sealer.run(), name="zenovay-sealer")
