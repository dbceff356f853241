"""The owner dashboard's sockets: the widgets' push, for signed-in owners of the website
only (and for holders of a shared link). Authorised at connect and again every
RECHECK_SECONDS; closed with 4403 once the right to the figures is gone.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from importlib import import_module
from typing import Any

from django.conf import settings
from django.contrib.auth import (
    BACKEND_SESSION_KEY,
    HASH_SESSION_KEY,
    SESSION_KEY,
    get_user_model,
    load_backend,
)
from django.db import DatabaseError
from django.http.cookie import parse_cookie
from django.utils.crypto import constant_time_compare
from redis.exceptions import RedisError

from dashboard import views as dashboard
from widgets.consumers import (
    FORBIDDEN,
    INTERNAL_ERROR,
    NOT_FOUND,
    UNAVAILABLE,
    Follower,
    SiteConsumer,
)
from zenovay import access, clientinfo, metrics, push
from zenovay.infra import db
from zenovay.models import Website

log = logging.getLogger("zenovay.dashboard")
# How often an open dashboard socket checks again that its user may still see its sites:
# once per steady refresh, so a signed-out, deactivated or former owner gets at most
# about one more push of figures after losing the right to them.
RECHECK_SECONDS = push.timing.TICK_SECONDS


def signed_in_here(scope: Mapping[str, Any]) -> bool:
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
    scheme = "https" if clientinfo.scope_is_secure(scope) else "http"
    trusted = [o.lower() for o in settings.CSRF_TRUSTED_ORIGINS]
    return text == f"{scheme}://{host}" or text in trusted


def session_user(scope: Mapping[str, Any]) -> Any | None:
    """The active user the socket's session signs in now, as Django would on a request;
    None once signed out, expired, signed in as someone else, or after a password change
    (the session's auth hash). Read-only: unlike `auth.get_user`, it neither flushes nor
    cycles the session, whose cookie only an HTTP response can replace."""
    key = scope["session"].session_key
    if not key:
        return None
    data = import_module(settings.SESSION_ENGINE).SessionStore(key).load()
    backend_path = data.get(BACKEND_SESSION_KEY)
    if SESSION_KEY not in data or backend_path not in settings.AUTHENTICATION_BACKENDS:
        return None
    user_pk = get_user_model()._meta.pk.to_python(data[SESSION_KEY])
    user = load_backend(backend_path).get_user(user_pk)
    if user is None or user.pk != scope["user"].pk or not user.is_active:
        return None
    held = data.get(HASH_SESSION_KEY) or ""
    hashes = [user.get_session_auth_hash(), *user.get_session_auth_fallback_hash()]
    return user if any(constant_time_compare(held, each) for each in hashes) else None


class OwnerFollower(Follower):
    """A dashboard socket: authorised at connect, and again every RECHECK_SECONDS.

    A task per socket rather than a check in the hub's fan-out: the fan-out writes one
    rendered frame to every socket of a site, thousands of public widgets among them,
    and must not wait on the database per socket; and a site with no new events is
    still refreshed, so the check must not depend on pushes. Dashboard sockets are few
    (one per open owner page), each check is three small queries (session, user, sites),
    and the checks of sockets opened at different times spread out by themselves."""

    _recheck: asyncio.Task | None = None

    def followed(self) -> set[int]:
        raise NotImplementedError

    def allowed(self) -> set[int] | None:
        """Of the followed websites, those the session's user may see now; None if no user."""
        user = session_user(self.scope)
        if user is None:
            return None
        websites = access.visible_websites(user).filter(enabled=True, pk__in=self.followed())
        return set(websites.values_list("pk", flat=True))

    async def keep_only(self, allowed: set[int]) -> None:
        raise NotImplementedError

    def start_rechecking(self) -> None:
        self._recheck = asyncio.get_running_loop().create_task(self._rechecking())

    async def _rechecking(self) -> None:
        try:
            while True:
                await asyncio.sleep(RECHECK_SECONDS)
                try:
                    allowed = await db.run(self.allowed)
                except (DatabaseError, RedisError, OSError) as exc:  # cannot tell: fail closed
                    log.warning("dashboard socket closed, rights not checked: %r", exc)
                    await self.stop(UNAVAILABLE, "temporarily unavailable, retry")
                    return
                if allowed is None:
                    await self.stop(FORBIDDEN, "signed out")
                    return
                await self.keep_only(allowed)
        except Exception:  # a bug: never leave the socket open unchecked
            log.exception("dashboard socket closed, its rights could not be checked")
            await self.stop(INTERNAL_ERROR, "internal error")

    async def stop(self, code: int, reason: str) -> None:
        """Leave the hub first, so nothing more is written, then close."""
        for pk in self.followed():
            await push.hub().leave(pk, self)
        await self.close(code=code, reason=reason)

    async def disconnect(self, code: int) -> None:
        if self._recheck is not None:
            self._recheck.cancel()
        for pk in self.followed():
            await push.hub().leave(pk, self)


class OwnerSiteConsumer(OwnerFollower, SiteConsumer):
    """/ws/dashboard/{website id}: a website's realtime panel, to its owner only."""

    def find(self, ident: str) -> Website | None:
        return access.visible_website(self.scope["user"], ident, enabled_only=True)

    def render(self, realtime: metrics.RealtimeSnapshot) -> str:
        return dashboard.realtime_fragment(realtime, self.zone)

    def followed(self) -> set[int]:
        return set() if self.website_pk is None else {self.website_pk}

    async def keep_only(self, allowed: set[int]) -> None:
        if self.website_pk not in allowed:  # given away, disabled or deleted
            await self.stop(NOT_FOUND, "not your website any more")

    async def connect(self) -> None:
        if not signed_in_here(self.scope):
            await self.accept()
            await self.close(code=FORBIDDEN, reason="sign in to the dashboard first")
            return
        await super().connect()
        if self.website_pk is not None:
            self.start_rechecking()


class OwnerSitesConsumer(OwnerFollower):
    """/ws/dashboard/sites: the live counts of every website of the user, one socket."""

    sites: dict[int, str] = {}  # replaced per connection, never mutated
    dropped: frozenset[int] = frozenset()  # followed once, no longer the user's

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
                await push.hub().join(pk, self)
            push.ensure_ticker()
            snapshots = [(ident, await push.snapshot(pk)) for pk, ident in followed.items()]
        except Exception as exc:  # Redis or the database is down: a clean close, not a crash
            log.warning("dashboard socket closed, pushes unavailable: %r", exc)
            await self.unavailable()
            return
        self.start_rechecking()
        for website_id, data in snapshots:
            if data is not None:
                await self.send(text_data=dashboard.card_fragment(website_id, data))

    def _followed(self) -> dict[int, str]:
        websites = access.visible_websites(self.scope["user"]).filter(enabled=True)
        return dict(websites.values_list("pk", "website_id"))

    def followed(self) -> set[int]:
        return set(self.sites) - self.dropped

    async def keep_only(self, allowed: set[int]) -> None:
        """Stop following the websites given away, disabled or deleted; keep the rest live.
        (`sites` keeps their ids: a push already being written may still render one.)"""
        for pk in self.followed() - allowed:
            self.dropped = self.dropped | {pk}
            await push.hub().leave(pk, self)

    def frame(self, website_pk: int, realtime: metrics.RealtimeSnapshot) -> str:
        return dashboard.card_fragment(self.sites[website_pk], realtime)

    async def gone(self, website_pk: int) -> None:
        """A disabled website keeps its last figures on the page; the others stay live."""


class SharedSiteConsumer(OwnerSiteConsumer):
    """/ws/share/{slug}: a shared link's live panel, to anyone holding the link (and its
    password's cookie). Checked again every RECHECK_SECONDS: a revoked link, a new
    password or a disabled website closes it with 4404."""

    def cookies(self) -> dict[str, str]:
        header = dict(self.scope.get("headers", [])).get(b"cookie", b"")
        return parse_cookie(header.decode("latin-1"))

    def find(self, ident: str) -> Website | None:
        link = access.shared_link(ident)
        if link is None or not access.share_unlocked(link, self.cookies()):
            return None
        return link.website

    def allowed(self) -> set[int] | None:
        website = self.find(self.scope["url_route"]["kwargs"]["ident"])
        return {website.pk} if website is not None else set()

    async def connect(self) -> None:
        await SiteConsumer.connect(self)
        if self.website_pk is not None:
            self.start_rechecking()
