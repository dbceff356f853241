"""WebSocket consumers: join the site's group, send the snapshot, relay pushes.

Widgets are embedded on any site, so every origin may connect; sockets are
read-only and ignore whatever clients send. Unknown, malformed or disabled ids
are accepted and closed at once with 4404 and a reason, so a browser can tell
"no such widget" from a network failure.
"""

from __future__ import annotations

import json
from typing import Any

from asgiref.sync import sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from widgets import fragments
from zenovay import ingest, live, metrics
from zenovay.models import Website

NOT_FOUND = 4404


class SiteConsumer(AsyncWebsocketConsumer):
    """Base: find the website from the URL, then follow its group."""

    website_pk: int | None = None

    def find(self, ident: str) -> Website | None:
        raise NotImplementedError

    def render(self, realtime: metrics.RealtimeSnapshot) -> str:
        raise NotImplementedError

    async def connect(self) -> None:
        ident = self.scope["url_route"]["kwargs"]["ident"]
        website = await sync_to_async(self.find)(ident)
        await self.accept()
        if website is None:
            await self.close(code=NOT_FOUND, reason="unknown or disabled website")
            return
        self.website_pk = website.pk
        await self.channel_layer.group_add(live.group_name(website.pk), self.channel_name)
        live.viewer_joined(website.pk)
        live.ensure_ticker()
        data = await live.snapshot(website.pk)
        if data is not None:
            await self.send(text_data=self.render(data))

    async def disconnect(self, code: int) -> None:
        if self.website_pk is not None:
            live.viewer_left(self.website_pk)
            await self.channel_layer.group_discard(
                live.group_name(self.website_pk), self.channel_name
            )

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Read-only: whatever a client sends is ignored."""

    async def site_snapshot(self, message: dict[str, Any]) -> None:
        await self.send(text_data=self.render(message["realtime"]))

    async def site_gone(self, message: dict[str, Any]) -> None:
        await self.close(code=NOT_FOUND, reason="the website was disabled")


class LiveConsumer(SiteConsumer):
    """/ws/live/{tracking code}: {"liveCount", "timestamp"} JSON."""

    def find(self, ident: str) -> Website | None:
        return ingest.website_by_code(ident)

    def render(self, realtime: metrics.RealtimeSnapshot) -> str:
        return json.dumps(live.live_of(realtime))


class RealtimeConsumer(SiteConsumer):
    """/ws/realtime/{website id}: the /e/realtime body as JSON."""

    def find(self, ident: str) -> Website | None:
        return ingest.website_by_id(ident)

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
