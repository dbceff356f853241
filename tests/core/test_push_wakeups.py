"""The push ticker's wake-ups (issue 12): a busy site commits hundreds of batches a
second, and each used to wake the ticker; only changes that can make a push due sooner
wake it now, and none is left waiting."""

from __future__ import annotations

import asyncio

import pytest

from zenovay.push import loops, timing
from zenovay.push.ticker import Ticker


@pytest.fixture
async def state():
    """This loop's push state, with a stand-in for a running ticker (nothing is pushed)."""
    state = loops.here()
    state.ticker = asyncio.get_running_loop().create_future()
    loops.take_changed()
    yield state
    state.ticker.cancel()
    state.ticker = None
    loops.plan(state, set())
    loops.take_changed()


async def woken(state) -> bool:
    await asyncio.sleep(0)  # call_soon_threadsafe's callbacks run on the next turn
    return state.wake.is_set()


async def test_a_change_wakes_the_ticker_when_no_push_of_its_site_is_planned(state):
    loops.site_changed(7)
    assert await woken(state)


async def test_changes_of_a_site_whose_push_is_planned_do_not_wake_the_ticker(state):
    loops.plan(state, {7})
    for _ in range(50):
        loops.site_changed(7)
    assert not await woken(state)
    assert loops.take_changed() == {7}  # taken with the planned push


async def test_a_change_that_came_while_its_push_was_planned_is_not_left_behind(state):
    loops.plan(state, {7})
    loops.site_changed(7)
    assert not await woken(state)
    loops.plan(state, set())  # that push went out (or was dropped) before taking it
    assert state.wake.is_set()


async def test_another_sites_change_still_wakes_the_ticker(state):
    loops.plan(state, {7})
    loops.site_changed(7)
    loops.site_changed(8)
    assert await woken(state)


async def test_a_site_nobody_watches_is_looked_at_again_a_second_later(state, db):
    ticker = Ticker(state)
    ticker.schedule.changed(7, 100.0)
    await ticker.push_due(100.0, watched=set())  # nobody watches 7 here or elsewhere
    assert 7 not in ticker.schedule.due
    ticker.schedule.changed(7, 100.2)
    assert ticker.schedule.due[7] == 100.0 + timing.CHANGE_DELAY
    ticker.publish_plan()
    loops.site_changed(7)
    assert not await woken(state)
