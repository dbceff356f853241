"""Push: "this site changed", each process's hub of viewers, and the ticker.

Ingest calls `site_changed()` after commit: it marks the site dirty in this process
and wakes the process's ticker, so it is cheap and never fails. The ticker pushes a
changed site at once when it has viewers in any process, then at most once a second
while changes keep coming, and refreshes every site with viewers here every few
seconds, so live counts fall as visitors leave.

A push computes the site's snapshot once (a shared lock keeps processes from pushing
the same site twice) and sends ONE message to the site's channel-layer group. Each
server process is one member of that group, its hub: the hub renders each kind of
frame once (live JSON, realtime JSON, the HTML fragments) and writes it to every
socket of that site it holds. Sockets have no channel of their own, so a push costs
one channel-layer message per process, not one per socket.

Redis can hang without failing (a stopped or swapped-out server, a lost network path):
channels_redis then waits forever, as it sets no timeout of its own. So every call to
the channel layer here is bounded (LAYER_SECONDS, RECEIVE_SECONDS), a hub whose layer
fails closes its sockets with 4503 (the widgets reconnect, then poll) and refuses new
ones at once for RETRY_SECONDS, and nothing holds the membership lock or the ticker
for longer than one bounded call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from typing import Any, Protocol

from channels import DEFAULT_CHANNEL_LAYER
from channels.layers import BaseChannelLayer, channel_layers

from zenovay import db, metrics, store
from zenovay.models import Website

log = logging.getLogger("zenovay.live")

CHANGE_DELAY = 1.0  # at most one push per site per second for changes
TICK_SECONDS = 5.0  # steady refresh for sites with viewers (and their group membership)
PRESENCE_SECONDS = 1.0  # how often this process says which sites it has viewers of
PRESENCE_TTL = 5.0
MEMO_SECONDS = 1.0
RETRY_SECONDS = 1.0  # after the channel layer failed, before the hub tries it again
# One channel-layer call (group_add, group_discard, group_send) against Redis takes about
# a millisecond, a reconnect a few; 2 s leaves room for a busy Redis while a widget whose
# socket cannot join its site still gets its 4503 within a few seconds, not never.
LAYER_SECONDS = 2.0
# A hub with viewers hears its sites' refresh at least every TICK_SECONDS; a receive that
# hears nothing for three of them is waiting on a connection that will never answer
# (Redis frozen, a silent network failure) and is started again on a new one.
RECEIVE_SECONDS = 3 * TICK_SECONDS
YIELD_EVERY = 50  # sockets written to between two turns of the event loop
NO_LAYER = "zenovay-sockets-have-no-channel"  # a channel-layer alias nothing configures

# Plain data shared by the whole process; every asyncio object lives in a _LoopState.
_dirty: set[int] = set()
_lock = threading.Lock()  # guards _dirty and _loops: site_changed runs on any thread
_memo: dict[int, tuple[float, metrics.RealtimeSnapshot | None]] = {}
_loops: dict[asyncio.AbstractEventLoop, _LoopState] = {}


def group_name(website_pk: int) -> str:
    return f"site.{website_pk}"


def site_changed(website_pk: int) -> None:
    """Mark the site dirty and wake the tickers; called from any thread, after commit.

    Only the first change since the ticker last took them wakes it (it takes them all)."""
    with _lock:
        first = not _dirty
        _dirty.add(website_pk)
    if not first:
        return
    with _lock:
        running = [(loop, state) for loop, state in _loops.items() if state.ticker]
    for loop, state in running:
        try:
            loop.call_soon_threadsafe(state.wake.set)
        except RuntimeError:  # that loop has closed; _here() forgets it
            continue


def take_changed() -> set[int]:
    """The sites changed since the last call, emptying the set."""
    global _dirty
    with _lock:
        changed, _dirty = _dirty, set()
    return changed


# --- Viewers and this process's hub


class Viewer(Protocol):
    """A socket following sites: how it renders a snapshot and what it does with it."""

    def frame(self, website_pk: int, realtime: metrics.RealtimeSnapshot) -> str: ...

    async def deliver(self, text: str) -> None: ...

    async def gone(self, website_pk: int) -> None: ...

    async def unavailable(self) -> None: ...


class LayerUnavailable(ConnectionError):
    """The channel layer failed a moment ago; it is not tried again before RETRY_SECONDS."""


class Hub:
    """This process's sockets by website, and its one channel in the sites' groups."""

    def __init__(self) -> None:
        self.sites: dict[int, set[Viewer]] = {}
        self.channel = ""
        self._grouped: set[int] = set()  # sites whose group is known to hold our channel
        self._membership = asyncio.Lock()
        self._newest: dict[int, dict[str, Any]] = {}  # per site, the push not yet written
        self._arrived = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._layer: BaseChannelLayer | None = None
        self._down_until = 0.0  # monotonic time before which the layer is taken to be down

    @property
    def layer(self) -> BaseChannelLayer:
        """This hub's own channel layer: a layer's receive state belongs to one event loop
        (channels_redis keeps its receive locks per instance), so hubs never share one."""
        if self._layer is None:
            self._layer = channel_layers.make_backend(DEFAULT_CHANNEL_LAYER)
        return self._layer

    @property
    def down(self) -> bool:
        return time.monotonic() < self._down_until

    async def call(self, method: str, *args: Any) -> Any:
        """One channel-layer call, bounded by LAYER_SECONDS; a failure marks the layer down."""
        if self.down:
            raise LayerUnavailable("the channel layer failed a moment ago")
        try:
            async with asyncio.timeout(LAYER_SECONDS):
                return await getattr(self.layer, method)(*args)
        except Exception:
            self._down_until = time.monotonic() + RETRY_SECONDS
            raise

    async def join(self, website_pk: int, viewer: Viewer) -> None:
        """Follow the site for this viewer; raises while the channel layer is down.

        Bounded as a whole, the wait for the lock included: joins queued behind one that
        hangs on Redis fail with it instead of waiting their turn to hang."""
        async with asyncio.timeout(LAYER_SECONDS), self._membership:
            if not self.channel:
                self.channel = await self.call("new_channel")
            if website_pk not in self._grouped:
                await self.call("group_add", group_name(website_pk), self.channel)
                self._grouped.add(website_pk)
                # Say so at once, not on the ticker's next presence beat: another process
                # pushing a change in that second would think nobody watches the site.
                await store.get_store().mark_presence([group_name(website_pk)], PRESENCE_TTL)
            self.sites.setdefault(website_pk, set()).add(viewer)
        if not self._tasks:
            loop = asyncio.get_running_loop()
            self._tasks = [
                loop.create_task(self._read(), name="zenovay-hub-read"),
                loop.create_task(self._write(), name="zenovay-hub-write"),
            ]

    async def leave(self, website_pk: int, viewer: Viewer) -> None:
        viewers = self.sites.get(website_pk)
        if viewers is None:
            return
        viewers.discard(viewer)
        if viewers:
            return
        async with self._membership:
            if self.sites.get(website_pk):  # someone joined meanwhile
                return
            self.sites.pop(website_pk, None)
            self._grouped.discard(website_pk)
            # Skipped while the layer is down: the group forgets us anyway when it expires.
            with contextlib.suppress(Exception):
                await self.call("group_discard", group_name(website_pk), self.channel)

    async def refresh(self) -> None:
        """Join the groups again: they expire, and a restarted Redis has forgotten them.

        If the layer fails, this process's sockets hear nothing more: they are closed with
        4503, so that the widgets reconnect (and poll meanwhile), as when a receive fails."""
        try:
            for website_pk in list(self.sites):
                await self.call("group_add", group_name(website_pk), self.channel)
                self._grouped.add(website_pk)
        except Exception as exc:
            await self.lost(exc)
            raise

    async def lost(self, exc: BaseException) -> None:
        """The channel layer failed: close every socket here with 4503 (they reconnect)."""
        log.warning("pushes unavailable, closing this process's sockets: %r", exc)
        self._grouped.clear()
        await self._each(list(self.sites), lambda viewer, pk: viewer.unavailable())

    def close(self) -> None:
        for task in self._tasks:
            task.cancel()

    async def _read(self) -> None:
        """Receive pushes; only the newest per site waits to be written (see _write)."""
        layer = self.layer
        while True:
            try:
                async with asyncio.timeout(RECEIVE_SECONDS):
                    message = await layer.receive(self.channel)
            except TimeoutError:
                # Nothing for a while. Idle, or a connection that will never answer: the
                # ticker's refresh tells those apart (and closes the sockets); this just
                # starts the receive again (channels_redis keeps an unfinished message).
                continue
            except Exception as exc:  # Redis is down: sockets reconnect once it is back
                await self.lost(exc)
                await asyncio.sleep(RETRY_SECONDS)
                continue
            website_pk = message.get("website")
            if isinstance(website_pk, int):
                self._newest[website_pk] = message
                self._arrived.set()

    async def _write(self) -> None:
        while True:
            await self._arrived.wait()
            self._arrived.clear()
            while self._newest:
                website_pk, message = self._newest.popitem()
                try:
                    await self.dispatch(website_pk, message)
                except Exception:
                    log.exception("push could not be delivered")

    async def dispatch(self, website_pk: int, message: dict[str, Any]) -> None:
        """Write one push to every socket of the site here.

        Thousands of writes take a while, so the loop lets requests in every YIELD_EVERY
        sockets; should a newer snapshot of the site arrive meanwhile, this one is dropped
        and the newer one written to every socket instead (it supersedes this one)."""
        if message.get("type") == "site.gone":
            await self._each([website_pk], lambda viewer, pk: viewer.gone(pk))
            return
        realtime = message["realtime"]
        frames: dict[type, str | None] = {}  # rendered once per kind of socket, not per socket
        for count, viewer in enumerate(list(self.sites.get(website_pk, ())), 1):
            if count % YIELD_EVERY == 0:
                await asyncio.sleep(0)
                if website_pk in self._newest:
                    return
            kind = type(viewer)
            if kind not in frames:
                try:
                    frames[kind] = viewer.frame(website_pk, realtime)
                except Exception:  # a bug in one kind of frame: the other kinds still go out
                    log.exception("could not render the push for %s", kind.__name__)
                    frames[kind] = None
            text = frames[kind]
            if text is None:
                continue
            try:
                await viewer.deliver(text)
            except Exception as exc:  # that socket is closing: the others still get theirs
                log.debug("push to a closing socket failed: %r", exc)

    async def _each(self, sites: list[int], action: Any) -> None:
        done: set[int] = set()  # a socket following several sites is told once
        for website_pk in sites:
            for viewer in list(self.sites.get(website_pk, ())):
                if id(viewer) not in done:
                    done.add(id(viewer))
                    with contextlib.suppress(Exception):
                        await action(viewer, website_pk)


class _LoopState:
    """The push machinery of one event loop: its hub, ticker, wake-up event and locks.

    asyncio locks, events, tasks and a channel layer's receive state belong to the loop
    they were first used on. Each loop gets its own, made when first asked for there, so
    a loop that is replaced (each test's, or a server's) takes its state with it instead
    of handing the next loop objects bound to a dead one."""

    def __init__(self) -> None:
        self.hub = Hub()
        self.wake = asyncio.Event()
        self.ticker: asyncio.Task | None = None
        self.memo_locks: dict[int, asyncio.Lock] = {}

    def close(self) -> None:
        """Cancel this loop's tasks; those of a loop already closed just go with it."""
        tasks = [self.ticker] if self.ticker else []
        self.ticker = None
        with contextlib.suppress(RuntimeError):  # that loop is closed
            for task in tasks:
                task.cancel()
            self.hub.close()


def _here() -> _LoopState:
    """The running loop's state, made on first use; closed loops' states are dropped."""
    loop = asyncio.get_running_loop()
    with _lock:
        state = _loops.get(loop)
        if state is None:
            for closed in [each for each in _loops if each.is_closed()]:
                del _loops[closed]
            state = _loops[loop] = _LoopState()
    return state


def hub() -> Hub:
    """The running loop's hub (one per server process)."""
    return _here().hub


def local_viewers() -> set[int]:
    with _lock:
        hubs = [state.hub for state in _loops.values()]
    return {pk for each in hubs for pk, viewers in each.sites.items() if viewers}


# --- Snapshots


def _compute(website_pk: int) -> metrics.RealtimeSnapshot | None:
    website = Website.objects.filter(pk=website_pk, enabled=True).first()
    return metrics.realtime(website) if website else None


async def snapshot(website_pk: int, *, fresh: bool = False) -> metrics.RealtimeSnapshot | None:
    """The site's realtime snapshot, shared by every connection in this process for a second."""
    lock = _here().memo_locks.setdefault(website_pk, asyncio.Lock())
    async with lock:
        cached = _memo.get(website_pk)
        if not fresh and cached and cached[0] > time.monotonic() - MEMO_SECONDS:
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
    kind, seconds = ("tick", TICK_SECONDS) if tick else ("push", CHANGE_DELAY)
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


# --- The ticker


class Schedule:
    """When each changed site is pushed: at once, then at most once a second."""

    def __init__(self) -> None:
        self.due: dict[int, float] = {}
        self.pushed: dict[int, float] = {}

    def changed(self, website_pk: int, now: float) -> None:
        when = max(now, self.pushed.get(website_pk, -CHANGE_DELAY) + CHANGE_DELAY)
        self.due[website_pk] = min(self.due.get(website_pk, when), when)

    def later(self, website_pk: int, now: float) -> None:
        self.due[website_pk] = now + CHANGE_DELAY

    def take_due(self, now: float) -> list[int]:
        ready = [pk for pk, when in self.due.items() if when <= now]
        for pk in ready:
            del self.due[pk]
        for pk in [pk for pk, when in self.pushed.items() if when < now - CHANGE_DELAY]:
            del self.pushed[pk]
        return ready

    def next_due(self) -> float | None:
        return min(self.due.values(), default=None)


async def run_ticker() -> None:
    """Push changes as they come (see Schedule); refresh the sites watched here on a tick."""
    state = _here()
    wake, here_hub = state.wake, state.hub
    backend, schedule = store.get_store(), Schedule()
    now = time.monotonic()
    next_tick, next_presence = now + TICK_SECONDS, now
    while True:
        deadline = min(next_tick, next_presence, schedule.next_due() or next_tick)
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for drops a cancellation that
        # arrives as the event is set, and this loop would then outlive its event loop.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                await wake.wait()
        wake.clear()
        now = time.monotonic()
        here = set(here_hub.sites)
        for pk in take_changed():
            schedule.changed(pk, now)
        ticking: set[int] = set()
        if now >= next_tick:
            next_tick = now + TICK_SECONDS
            ticking = here - set(schedule.due)  # a due change push refreshes those anyway
        try:  # each Redis call here is bounded: a hung Redis cannot stall the ticker
            if now >= next_presence:
                next_presence = now + PRESENCE_SECONDS
                await backend.mark_presence([group_name(pk) for pk in here], PRESENCE_TTL)
            if ticking:
                await here_hub.refresh()  # closes the sockets here if the layer fails
        except Exception as exc:  # a Redis outage must not end the ticker
            log.warning("presence or groups not refreshed, retrying: %r", exc)
        for pk in schedule.take_due(now):
            try:
                if pk not in here and not await backend.has_presence(group_name(pk)):
                    continue  # nobody watches it anywhere
                if await push(pk):
                    schedule.pushed[pk] = time.monotonic()
                else:  # another process pushed it just now, perhaps before this change
                    schedule.later(pk, now)
            except Exception as exc:  # a Redis or database outage must not end the ticker
                # One line a try, not a traceback a second, while something is down.
                log.warning("push failed, retrying in a second: %r", exc)
                schedule.later(pk, now)
        for pk in ticking:
            try:
                await push(pk, tick=True)
            except Exception as exc:
                log.warning("refresh failed, retrying on the next tick: %r", exc)


def ensure_ticker() -> None:
    """Start this process's ticker on the running loop, once."""
    state = _here()
    if state.ticker is None or state.ticker.done():
        state.ticker = asyncio.get_running_loop().create_task(run_ticker(), name="zenovay-ticker")


def stop_tickers() -> None:
    with _lock:
        states = list(_loops.values())
    for state in states:
        if state.ticker:
            state.ticker.cancel()
        state.ticker = None


def reset() -> None:
    """Forget every ticker, hub and snapshot (tests run each on an event loop of its own)."""
    with _lock:
        states = list(_loops.values())
        _loops.clear()
    for state in states:
        state.close()
    _memo.clear()
