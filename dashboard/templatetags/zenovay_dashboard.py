"""Template filters of the owner dashboard: numbers, durations, rates and safe links."""

from __future__ import annotations

import datetime as dt
import zoneinfo

from django import template

from widgets.templatetags import zenovay_widgets
from zenovay import snippets
from zenovay.models import DOMAIN_RE, Website

register = template.Library()


# 1204 -> "1,204", as the widgets show it.
register.filter("grouped", zenovay_widgets.grouped)


@register.filter
def duration(seconds: object) -> str:
    """75 -> "1m 15s", 3725 -> "1h 2m", 0 -> "0s"."""
    try:
        # A filter takes whatever a template hands it; what int() refuses is caught below.
        total = max(int(seconds), 0)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return "\N{EN DASH}"
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"


@register.filter
def percent(rate: object) -> str:
    """0.42 -> "42%"."""
    try:
        # A filter takes whatever a template hands it; what float() refuses is caught below.
        return f"{round(float(rate) * 100)}%"  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return "\N{EN DASH}"


@register.filter
def signed_percent(change: object) -> str:
    """12.5 -> "+12.5%", -3.0 -> "-3%" (with a minus sign), 0.0 -> "±0%"."""
    try:
        # A filter takes whatever a template hands it; what float() refuses is caught below.
        value = float(change)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return ""
    text = f"{abs(value):.1f}".removesuffix(".0")
    return f"+{text}%" if value > 0 else f"\N{MINUS SIGN}{text}%" if value < 0 else "±0%"


@register.filter
def referrer_url(host: object) -> str:
    """A link for a referrer host only when it is a plain domain name; "" otherwise.

    The host comes from a visitor's browser: anything that is not a bare domain stays
    plain text, so no link can carry a `javascript:` or other scheme.
    """
    if not isinstance(host, str) or not DOMAIN_RE.fullmatch(host):
        return ""
    return f"https://{host}/"


@register.filter
def local_time(iso: object, zone: str) -> str:
    """A snapshot's UTC timestamp as the website's wall-clock time: "Mar 10, 14:05"."""
    local = _local(iso, zone)
    return "" if local is None else f"{local:%b} {local.day}, {local:%H:%M}"


@register.filter
def clock_time(iso: object, zone: str) -> str:
    """A UTC timestamp as the time of day in the website's zone: "14:05:09 CET"."""
    local = _local(iso, zone)
    return "" if local is None else f"{local:%H:%M:%S} {local:%Z}"


@register.filter
def period_span(since_iso: object, zone: str) -> str:
    """Where a period so far starts, in the website's zone: "Mon 30 Nov, en dash, now", or the
    day alone for today ("Sat 5 Dec")."""
    start = _local(since_iso, zone)
    if start is None:
        return ""
    day = f"{start:%a} {start.day} {start:%b}"
    today = dt.datetime.now(start.tzinfo).date()
    return day if start.date() == today else f"{day} \N{EN DASH} now"


@register.filter
def day_label(iso: object, zone: str) -> str:
    """The local day of a moment: "Mon 30 Nov"."""
    moment = _local(iso, zone)
    return "" if moment is None else f"{moment:%a} {moment.day} {moment:%b}"


def _local(iso: object, zone: str) -> dt.datetime | None:
    try:
        moment = dt.datetime.fromisoformat(str(iso).replace("Z", "+00:00"))
        return moment.astimezone(zoneinfo.ZoneInfo(zone))
    except (ValueError, zoneinfo.ZoneInfoNotFoundError):
        return None


@register.filter
def snippet_html(code: str) -> str:
    return snippets.as_html(code)


@register.filter
def local_snippet(website: Website) -> str:
    return snippets.local_tracker(website)


@register.filter
def accepts_local_pages(website: Website) -> bool:
    return snippets.accepts_local_pages(website)


@register.filter
def percent_1(rate: object) -> str:
    """0.1234 -> "12.3%" (conversion rates are often small)."""
    try:
        # A filter takes whatever a template hands it; what float() refuses is caught below.
        return f"{float(rate) * 100:.1f}%"  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return "\N{EN DASH}"
