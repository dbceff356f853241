"""WebSocket consumers: find the website, send its snapshot, relay pushes from the hub.

Widgets are embedded on any site, so every origin may connect; sockets are
read-only and ignore whatever clients send. Unknown, malformed or disabled ids
are accepted and closed at once with 4404 and a reason, so a browser can tell
"no such widget" from a network failure. While Redis or the database is down a
socket is closed with 4503 instead, and the widget scripts reconnect.
"""

from __future__ import annotations

import json
import logging

from channels.generic.websocket import AsyncWebsocketConsumer

from widgets import fragments
from zenovay import metrics, push, sites
from zenovay.infra import db
from zenovay.models import Website

log = logging.getLogger("zenovay.widgets")
NOT_FOUND = 4404
FORBIDDEN = 4403
UNAVAILABLE = 4503  # Redis or the database is down for now: the client retries
INTERNAL_ERROR = 1011


class Follower(AsyncWebsocketConsumer):
    """A read-only socket that follows websites through this process's hub (push.Viewer)."""

    channel_layer_alias = push.NO_LAYER  # pushes come through the hub, not a channel each

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Read-only: whatever a client sends is ignored."""

    def frame(self, website_pk: int, realtime: metrics.RealtimeSnapshot) -> str:
        raise NotImplementedError

    async def deliver(self, text: str) -> None:
        await self.send(text_data=text)

    async def gone(self, website_pk: int) -> None:
        await self.close(code=NOT_FOUND, reason="the website was disabled")

    async def unavailable(self) -> None:
        await self.close(code=UNAVAILABLE, reason="temporarily unavailable, retry")


class SiteConsumer(Follower):
    """Base: find the website from the URL, then follow it through this process's hub."""

    website_pk: int | None = None
    zone = "UTC"  # the website's time zone, once found

    def find(self, ident: str) -> Website | None:
        raise NotImplementedError

    def render(self, realtime: metrics.RealtimeSnapshot) -> str:
        raise NotImplementedError

    async def connect(self) -> None:
        ident = self.scope["url_route"]["kwargs"]["ident"]
        await self.accept()
        try:
            website = await db.run(self.find, ident)
            if website is None:
                await self.close(code=NOT_FOUND, reason="unknown or disabled website")
                return
            self.zone = website.timezone  # for times in what it renders
            await push.hub().join(website.pk, self)
            self.website_pk = website.pk  # only once joined: disconnect() undoes exactly this
            push.ensure_ticker()
            data = await push.snapshot(website.pk)
        except Exception as exc:  # Redis or the database is down: a clean close, not a crash
            log.warning("widget socket closed, pushes unavailable: %r", exc)
            await self.unavailable()
            return
        if data is not None:
            await self.send(text_data=self.render(data))

    async def disconnect(self, code: int) -> None:
        if self.website_pk is not None:
            await push.hub().leave(self.website_pk, self)

    def frame(self, website_pk: int, realtime: metrics.RealtimeSnapshot) -> str:
        return self.render(realtime)


class LiveConsumer(SiteConsumer):
    """/ws/live/{tracking code}: {"liveCount", "timestamp"} JSON."""

    def find(self, ident: str) -> Website | None:
        return sites.by_code(ident)

    def render(self, realtime: metrics.RealtimeSnapshot) -> str:
        return json.dumps(push.live_of(realtime))


class RealtimeConsumer(SiteConsumer):
    """/ws/realtime/{website id}: the /e/realtime body as JSON."""

    def find(self, ident: str) -> Website | None:
        return sites.by_id(ident)

    def render(self, realtime: metrics.RealtimeSnapshot) -> str:
        return json.dumps(realtime)


class LiveFragmentConsumer(LiveConsumer):
    """The counter iframe: HTML fragments swapped out-of-band by htmx's ws extension."""

    def render(self, realtime: metrics.RealtimeSnapshot) -> str:
        return fragments.live(realtime)


class DashboardFragmentConsumer(RealtimeConsumer):
    """The mini dashboard iframe: HTML fragments swapped out-of-band."""

    def render(self, realtime: metrics.RealtimeSnapshot) -> str:
        return fragments.dashboard(realtime)
