"""The push machinery of each event loop (its hub, ticker, wake-up event and memo locks),
and the set of sites changed since the ticker last looked.

Ingest calls `site_changed()` after commit: it marks the site dirty in this process
and wakes the process's tickers, so it is cheap and never fails."""

from __future__ import annotations

import asyncio
import contextlib
import threading

from zenovay.push.hub import Hub

# Plain data shared by the whole process; every asyncio object lives in a LoopState.
_dirty: set[int] = set()
_lock = threading.Lock()  # guards _dirty and _loops: site_changed runs on any thread
_loops: dict[asyncio.AbstractEventLoop, LoopState] = {}


def site_changed(website_pk: int) -> None:
    """Mark the site dirty and wake the tickers; called from any thread, after commit.

    Only a site's first change since the tickers last took them wakes them, and only
    those with no push of it planned: one planned (due within a second, see Schedule)
    takes the change with it then. A busy site commits hundreds of batches a second;
    each used to wake the ticker for nothing."""
    with _lock:
        if website_pk in _dirty:
            return
        _dirty.add(website_pk)
        running = [
            (loop, state)
            for loop, state in _loops.items()
            if state.ticker and website_pk not in state.planned
        ]
    for loop, state in running:
        try:
            loop.call_soon_threadsafe(state.wake.set)
        except RuntimeError:  # that loop has closed; here() forgets it
            continue


def plan(state: LoopState, planned: set[int]) -> None:
    """Publish the sites whose push `state`'s ticker has planned (on its loop). A change
    that came while its site was planned, and is not any more, wakes the ticker now."""
    with _lock:
        state.planned = frozenset(planned)
        missed = not _dirty <= planned
    if missed:
        state.wake.set()


def take_changed() -> set[int]:
    """The sites changed since the last call, emptying the set."""
    global _dirty
    with _lock:
        changed, _dirty = _dirty, set()
    return changed


class LoopState:
    """The push machinery of one event loop: its hub, ticker, wake-up event and locks.

    asyncio locks, events, tasks and a channel layer's receive state belong to the loop
    they were first used on. Each loop gets its own, made when first asked for there, so
    a loop that is replaced (each test's, or a server's) takes its state with it instead
    of handing the next loop objects bound to a dead one."""

    def __init__(self) -> None:
        self.hub = Hub()
        self.wake = asyncio.Event()
        self.ticker: asyncio.Task | None = None
        self.sealer: asyncio.Task | None = None  # zenovay.sealer's, started with the ticker
        self.planned: frozenset[int] = frozenset()  # pushes the ticker will make anyway
        self.memo_locks: dict[int, asyncio.Lock] = {}

    def close(self) -> None:
        """Cancel this loop's tasks; those of a loop already closed just go with it."""
        tasks = [task for task in (self.ticker, self.sealer) if task]
        self.ticker = self.sealer = None
        with contextlib.suppress(RuntimeError):  # that loop is closed
            for task in tasks:
                task.cancel()
            self.hub.close()


def here() -> LoopState:
    """The running loop's state, made on first use; closed loops' states are dropped."""
    loop = asyncio.get_running_loop()
    state = _loops.get(loop)  # a dict read is atomic: no lock once the state exists
    if state is not None:
        return state
    with _lock:
        state = _loops.get(loop)
        if state is None:
            for closed in [each for each in _loops if each.is_closed()]:
                del _loops[closed]
            state = _loops[loop] = LoopState()
    return state


def hub() -> Hub:
    """The running loop's hub (one per server process)."""
    return here().hub


def local_viewers() -> set[int]:
    with _lock:
        hubs = [state.hub for state in _loops.values()]
    return {pk for each in hubs for pk, viewers in each.sites.items() if viewers}


def stop_tickers() -> None:
    with _lock:
        states = list(_loops.values())
    for state in states:
        if state.ticker:
            state.ticker.cancel()
        state.ticker = None


def forget_all() -> None:
    """Close and forget every loop's state (tests run each on an event loop of its own)."""
    with _lock:
        states = list(_loops.values())
        _loops.clear()
    for state in states:
        state.close()
