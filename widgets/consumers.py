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
from typing import Any

from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from widgets import fragments
from zenovay import dashboard, db, ingest, live, metrics
from zenovay.models import Website

log = logging.getLogger("zenovay.widgets")
NOT_FOUND = 4404
FORBIDDEN = 4403
UNAVAILABLE = 4503  # Redis or the database is down for now: the client retries


class Follower(AsyncWebsocketConsumer):
    """A read-only socket that follows websites through this process's hub (live.Viewer)."""

    channel_layer_alias = live.NO_LAYER  # pushes come through the hub, not a channel each

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
            await live.hub().join(website.pk, self)
            self.website_pk = website.pk  # only once joined: disconnect() undoes exactly this
            live.ensure_ticker()
            data = await live.snapshot(website.pk)
        except Exception as exc:  # Redis or the database is down: a clean close, not a crash
            log.warning("widget socket closed, pushes unavailable: %r", exc)
            await self.unavailable()
            return
        if data is not None:
            await self.send(text_data=self.render(data))

    async def disconnect(self, code: int) -> None:
        if self.website_pk is not None:
            await live.hub().leave(self.website_pk, self)

    def frame(self, website_pk: int, realtime: metrics.RealtimeSnapshot) -> str:
        return self.render(realtime)


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


# --- The owner dashboard: the same push, for signed-in owners of the website only.


def signed_in_here(scope: dict[str, Any]) -> bool:
    """A signed-in user, on a page of this server.

    Browsers send the session cookie with a WebSocket handshake whatever page opens it,
    so a page on another origin could read an owner's figures; the Origin header, which
    pages cannot forge, must name this server (or an origin trusted for CSRF, as Django's
    own check of form posts allows). Clients without one are not browsers.
    """
    user = scope.get("user")
    if user is None or not user.is_authenticated:
        return False
    headers = dict(scope.get("headers", []))
    origin = headers.get(b"origin")
    if origin is None:
        return True
    text = origin.decode("latin-1").lower()
    host = headers.get(b"host", b"").decode("latin-1").lower()
    scheme = "https" if _secure(scope, headers) else "http"
    trusted = [o.lower() for o in settings.CSRF_TRUSTED_ORIGINS]
    return text == f"{scheme}://{host}" or text in trusted


def _secure(scope: dict[str, Any], headers: dict[bytes, bytes]) -> bool:
    """Whether the browser reached us over TLS: wss, or a trusted proxy says https
    (SECURE_PROXY_SSL_HEADER, as Django's request.is_secure() reads it)."""
    if scope.get("scheme") == "wss":
        return True
    if not settings.SECURE_PROXY_SSL_HEADER:
        return False
    meta_name, secure_value = settings.SECURE_PROXY_SSL_HEADER
    name = meta_name.removeprefix("HTTP_").lower().replace("_", "-").encode()
    sent = headers.get(name, b"").decode("latin-1").split(",")[0].strip()
    return sent == secure_value


class OwnerSiteConsumer(SiteConsumer):
    """/ws/dashboard/{website id}: a website's realtime panel, to its owner only."""

    def find(self, ident: str) -> Website | None:
        return dashboard.owned_website(self.scope["user"], ident, enabled_only=True)

    def render(self, realtime: metrics.RealtimeSnapshot) -> str:
        return dashboard.realtime_fragment(realtime)

    async def connect(self) -> None:
        if not signed_in_here(self.scope):
            await self.accept()
            await self.close(code=FORBIDDEN, reason="sign in to the dashboard first")
            return
        await super().connect()


class OwnerSitesConsumer(Follower):
    """/ws/dashboard/sites: the live counts of every website of the user, one socket."""

    sites: dict[int, str] = {}  # replaced per connection, never mutated

    async def connect(self) -> None:
        await self.accept()
        if not signed_in_here(self.scope):
            await self.close(code=FORBIDDEN, reason="sign in to the dashboard first")
            return
        try:
            followed = await db.run(self._followed)
            for pk, website_id in followed.items():
                # Known before joined, as frame() needs it; disconnect() leaves each of them.
                self.sites = {**self.sites, pk: website_id}
                await live.hub().join(pk, self)
            live.ensure_ticker()
            snapshots = [(ident, await live.snapshot(pk)) for pk, ident in followed.items()]
        except Exception as exc:  # Redis or the database is down: a clean close, not a crash
            log.warning("dashboard socket closed, pushes unavailable: %r", exc)
            await self.unavailable()
            return
        for website_id, data in snapshots:
            if data is not None:
                await self.send(text_data=dashboard.card_fragment(website_id, data))

    def _followed(self) -> dict[int, str]:
        websites = dashboard.owned_websites(self.scope["user"]).filter(enabled=True)
        return dict(websites.values_list("pk", "website_id"))

    async def disconnect(self, code: int) -> None:
        for pk in self.sites:
            await live.hub().leave(pk, self)

    def frame(self, website_pk: int, realtime: metrics.RealtimeSnapshot) -> str:
        return dashboard.card_fragment(self.sites[website_pk], realtime)

    async def gone(self, website_pk: int) -> None:
        """A disabled website keeps its last figures on the page; the others stay live."""
