"""This process's hub: its sockets by website, and its one channel in the sites' groups.

A push is ONE message to the site's channel-layer group. Each server process is one
member of that group, its hub: the hub renders each kind of frame once (live JSON,
realtime JSON, the HTML fragments) and writes it to every socket of that site it holds.
Sockets have no channel of their own, so a push costs one channel-layer message per
process, not one per socket.

Redis can hang without failing (a stopped or swapped-out server, a lost network path):
channels_redis then waits forever, as it sets no timeout of its own. So every call to
the channel layer here is bounded (LAYER_SECONDS, RECEIVE_SECONDS), a hub whose layer
fails closes its sockets with 4503 (the widgets reconnect, then poll) and refuses new
ones at once for RETRY_SECONDS, and nothing holds the membership lock for longer than
one bounded call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any, Protocol

from channels import DEFAULT_CHANNEL_LAYER
from channels.layers import BaseChannelLayer, channel_layers

from zenovay import metrics
from zenovay.infra import store
from zenovay.push import timing

log = logging.getLogger("zenovay.push")

NO_LAYER = "zenovay-sockets-have-no-channel"  # a channel-layer alias nothing configures


def group_name(website_pk: int) -> str:
    return f"site.{website_pk}"


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
            async with asyncio.timeout(timing.LAYER_SECONDS):
                return await getattr(self.layer, method)(*args)
        except Exception:
            self._down_until = time.monotonic() + timing.RETRY_SECONDS
            raise

    async def join(self, website_pk: int, viewer: Viewer) -> None:
        """Follow the site for this viewer; raises while the channel layer is down.

        Bounded as a whole, the wait for the lock included: joins queued behind one that
        hangs on Redis fail with it instead of waiting their turn to hang."""
        async with asyncio.timeout(timing.LAYER_SECONDS), self._membership:
            if not self.channel:
                self.channel = await self.call("new_channel")
            if website_pk not in self._grouped:
                await self.call("group_add", group_name(website_pk), self.channel)
                self._grouped.add(website_pk)
                # Say so at once, not on the ticker's next presence beat: another process
                # pushing a change in that second would think nobody watches the site.
                await store.get_store().mark_presence([group_name(website_pk)], timing.PRESENCE_TTL)
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
                async with asyncio.timeout(timing.RECEIVE_SECONDS):
                    message = await layer.receive(self.channel)
            except TimeoutError:
                # Nothing for a while. Idle, or a connection that will never answer: the
                # ticker's refresh tells those apart (and closes the sockets); this just
                # starts the receive again (channels_redis keeps an unfinished message).
                continue
            except Exception as exc:  # Redis is down: sockets reconnect once it is back
                await self.lost(exc)
                await asyncio.sleep(timing.RETRY_SECONDS)
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
            if count % timing.YIELD_EVERY == 0:
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
