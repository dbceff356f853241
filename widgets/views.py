"""Embeddable scripts and widget pages."""

from __future__ import annotations

import functools
import hashlib
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from django.conf import settings
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse, HttpResponseNotModified
from django.shortcuts import render
from django.urls import reverse
from django.utils.cache import patch_vary_headers
from django.views.decorators.clickjacking import xframe_options_exempt
from django.views.decorators.http import require_safe

from widgets import fragments
from zenovay import conditional, endpoints, metrics, push, sites
from zenovay.htmx import HtmxHttpRequest
from zenovay.infra import db
from zenovay.models import Website

log = logging.getLogger("zenovay.widgets")
SCRIPT_MAX_AGE = 86400  # a day: long enough for caches, short enough to ship fixes

Kind = Literal["live", "dashboard"]
# The TTLs of /e/live and /e/realtime: the iframes' fragments are the same numbers as HTML.
TTL: dict[Kind, int] = {
    "live": endpoints.endpoint("live").ttl,
    "dashboard": endpoints.endpoint("realtime").ttl,
}
THEMES = ("light", "dark", "auto")
DEFAULT_LABEL = "visitors online"
LABEL_MAX = 60


_COMMENT_LINE = re.compile(rb"^[ \t]*//[^\n]*\n", re.MULTILINE)
_INDENT = re.compile(rb"^\s+", re.MULTILINE)  # and blank lines


@functools.cache
def _script(name: str, strip: bool) -> tuple[bytes, str]:
    path = settings.BASE_DIR / "static" / name
    # "//#include FILE" lines take in a file beside the script: code both widgets share.
    body = _INCLUDE.sub(lambda m: (path.parent / m[1].decode()).read_bytes(), path.read_bytes())
    if strip:
        body = strip_script(body)
    return body, '"' + hashlib.sha256(body).hexdigest()[:16] + '"'


_INCLUDE = re.compile(rb"^[ \t]*//#include ([\w.-]+)[ \t]*$", re.M)


def strip_script(source: bytes) -> bytes:
    """Drop whole-line `//` comments, indentation and blank lines: the source stays readable,
    the bytes sent to every visitor stay small. Safe only for scripts without multi-line strings."""
    return _INDENT.sub(b"", _COMMENT_LINE.sub(b"", source))


def serve_script(request: HttpRequest, name: str, *, strip: bool = False) -> HttpResponse:
    body, etag = _script(name, strip)
    if conditional.etag_matches(request, etag):
        response: HttpResponse = HttpResponseNotModified()
    else:
        response = HttpResponse(body, content_type="text/javascript; charset=utf-8")
    response["ETag"] = etag
    response["Cache-Control"] = f"public, max-age={SCRIPT_MAX_AGE}"
    response["Access-Control-Allow-Origin"] = "*"
    return response


@require_safe
def tracker_script(request: HttpRequest) -> HttpResponse:
    return serve_script(request, "z.js")


@require_safe
def live_script(request: HttpRequest) -> HttpResponse:
    return serve_script(request, "widgets/live.js", strip=True)


@require_safe
def dashboard_script(request: HttpRequest) -> HttpResponse:
    return serve_script(request, "widgets/dashboard.js", strip=True)


# --- The iframe widgets: server-rendered pages kept live by htmx's ws extension.


@dataclass(frozen=True, slots=True)
class Options:
    """The query options of a widget page, read leniently: a bad value means the default."""

    theme: str = "light"
    compact: bool = False
    label: str = ""

    @classmethod
    def of(cls, request: HttpRequest) -> Options:
        theme = request.GET.get("theme", "")
        return cls(
            theme=theme if theme in THEMES else "light",
            compact=request.GET.get("size") == "compact",
            label=" ".join(request.GET.get("label", "").split())[:LABEL_MAX],
        )


def framable(response: HttpResponse) -> HttpResponse:
    """Any site may frame a widget; every other page keeps X-Frame-Options: DENY."""
    response["Content-Security-Policy"] = "frame-ancestors *"
    response.xframe_options_exempt = True
    return response


def message(request: HttpRequest, status: int, headline: str, detail: str) -> HttpResponse:
    """A friendly page inside the customer's frame rather than the browser's error."""
    context = {"opts": Options.of(request), "headline": headline, "detail": detail}
    return framable(render(request, "widgets/message.html", context, status=status))


def not_found(request: HttpRequest) -> HttpResponse:
    detail = (
        "Check the tracking code or website id in the embed code; "
        "the website may also have been disabled."
    )
    return message(request, 404, "Unknown widget", detail)


def unavailable(request: HttpRequest) -> HttpResponse:
    response = message(request, 503, "Temporarily unavailable", "Try again in a moment.")
    response["Retry-After"] = "5"
    return response


@xframe_options_exempt
@require_safe
async def live_widget(request: HtmxHttpRequest, ident: str, fragment: bool = False) -> HttpResponse:
    return await _widget(request, "live", sites.by_code, ident, fragment)


@xframe_options_exempt
@require_safe
async def dashboard_widget(
    request: HtmxHttpRequest, ident: str, fragment: bool = False
) -> HttpResponse:
    return await _widget(request, "dashboard", sites.by_id, ident, fragment)


async def _widget(
    request: HtmxHttpRequest,
    kind: Kind,
    find: Callable[[str], Website | None],
    ident: str,
    fragment: bool,
) -> HttpResponse:
    """The page, or with `fragment` (or an htmx request) just its out-of-band fragment."""
    try:
        website = await db.run(find, ident)
        data = await push.snapshot(website.pk) if website else None
    except DatabaseError as exc:
        log.warning("widget unavailable, database down: %r", exc)
        return unavailable(request)
    if website is None or data is None:
        return not_found(request)
    if fragment or request.htmx:
        response = HttpResponse(_fragment(kind, data))
    else:
        context = _page_context(request, kind, website, data)
        response = render(request, f"widgets/{kind}.html", context)
    # Pages and fragments are as fresh as the JSON API's answers, and may be cached as long.
    response["Cache-Control"] = f"public, max-age={TTL[kind]}"
    patch_vary_headers(response, ["HX-Request"])
    return framable(response)


def _fragment(kind: Kind, data: metrics.RealtimeSnapshot) -> str:
    return fragments.live(data) if kind == "live" else fragments.dashboard(data)


def _page_context(
    request: HttpRequest, kind: Kind, website: Website, data: metrics.RealtimeSnapshot
) -> dict[str, object]:
    ident = website.tracking_code if kind == "live" else website.website_id
    return {
        **fragments.context(kind, data),
        "opts": Options.of(request),
        "default_label": DEFAULT_LABEL,
        "socket_path": f"/ws/widgets/{kind}/{ident}",
        "poll_url": reverse(f"widget-{kind}-fragment", args=[ident]),
        "ttl": TTL[kind],
    }
