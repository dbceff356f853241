"""The HTML a site owner copies into their pages, one definition for every place showing it."""

from __future__ import annotations

import re
from typing import TypedDict

from django.conf import settings
from django.utils.html import format_html_join
from django.utils.safestring import SafeString

from zenovay.models import Website

# An attribute, not CSS: a page whose Content Security Policy forbids inline styles (no
# 'unsafe-inline' in style-src) would drop style="border:0" and show the default border.
NO_BORDER = 'frameborder="0"'


class Snippet(TypedDict):
    key: str
    title: str
    help: str
    code: str


def tracker(website: Website) -> str:
    base = settings.ZENOVAY_PUBLIC_URL
    return f'<script async src="{base}/z.js" data-code="{website.tracking_code}"></script>'


def local_tracker(website: Website) -> str:
    """The tracker for a test page served on the owner's own computer: the tracker skips
    localhost and 127.0.0.1 unless told, and the website must list them as host names."""
    return tracker(website).replace("></script>", " data-allow-localhost></script>")


LOCAL_HOSTS = ("localhost", "127.0.0.1")


def accepts_local_pages(website: Website) -> bool:
    return all(website.allows_host(host) for host in LOCAL_HOSTS)


def all_snippets(website: Website) -> list[Snippet]:
    base = settings.ZENOVAY_PUBLIC_URL
    code, site_id = website.tracking_code, website.website_id
    return [
        {
            "key": "tracker",
            "title": "Tracker",
            "help": "Paste into every page, ideally in <head>.",
            "code": tracker(website),
        },
        {
            "key": "counter-script",
            "title": "Live counter (script)",
            "help": "Renders where the tag stands. Options: data-theme, data-label, data-size.",
            "code": f'<script async src="{base}/widgets/live.js" data-code="{code}"></script>',
        },
        {
            "key": "counter-iframe",
            "title": "Live counter (iframe)",
            "help": "Options as query parameters: ?theme=dark&label=…&size=compact",
            "code": (
                f'<iframe src="{base}/widgets/live/{code}" title="Live visitors" '
                f'width="200" height="40" {NO_BORDER}></iframe>'
            ),
        },
        {
            "key": "dashboard-script",
            "title": "Mini dashboard (script)",
            "help": "Live and today's visitors and pageviews, top countries and pages.",
            "code": (
                f'<script async src="{base}/widgets/dashboard.js" '
                f'data-website="{site_id}"></script>'
            ),
        },
        {
            "key": "dashboard-iframe",
            "title": "Mini dashboard (iframe)",
            "help": "Options as query parameters: ?theme=dark&size=compact",
            "code": (
                f'<iframe src="{base}/widgets/dashboard/{site_id}" title="Live analytics" '
                f'width="320" height="410" {NO_BORDER}></iframe>'
            ),
        },
    ]


_PARTS = re.compile(r'\s+(?=[\w-]+(?:="[^"]*")?[\s>])')


def as_html(code: str) -> SafeString:
    """A snippet shown in a page: escaped, each tag and attribute unbreakable (class
    "nb"), so a narrow screen wraps it between attributes, never inside a value. Its
    text (what a copy button copies) is the snippet itself."""
    parts = _PARTS.split(code)
    return format_html_join(" ", '<span class="nb">{}</span>', ((part,) for part in parts))
