"""The write path: validate -> identify -> store -> notify.

`collect()` is what the HTTP view calls with the raw body; `record_event()` is the
one place an event and its session are written, used by the view and by
`manage.py simulate` alike.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from django.db import connection, transaction
from django.utils import timezone

from zenovay import clientinfo, ids, live, pagepaths, salts, shared_cache
from zenovay.models import Event, Session, Website

MAX_BODY_BYTES = 4096
SESSION_GAP = dt.timedelta(minutes=30)
MAX_ENGAGED_MS = 24 * 3600 * 1000
MAX_PROPS = 30
WEBSITE_CACHE_SECONDS = 60


class IngestError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(IngestError):
    pass


class Forbidden(IngestError):
    status = 403
    code = "forbidden"


class NotFound(IngestError):
    status = 404
    code = "not_found"


class PayloadTooLarge(IngestError):
    status = 413
    code = "payload_too_large"


@dataclass(frozen=True, slots=True)
class Client:
    """HTTP facts about the sender, read by the view."""

    ip: clientinfo.IPAddress | None
    country: str
    user_agent: str
    do_not_track: bool = False
    origin: str | None = None  # the browser's Origin header, as sent


@dataclass(slots=True)
class Payload:
    code: str
    type: str
    hostname: str
    path: str
    referrer_host: str = ""
    utm_source: str = ""
    utm_medium: str = ""
    utm_campaign: str = ""
    name: str = ""
    props: dict[str, Any] | None = None
    engaged_ms: int = 0
    query: dict[str, list[str]] = field(default_factory=dict)


def collect(*, body: bytes, client: Client, now: dt.datetime | None = None) -> str | None:
    """Validate a raw collect body and record it; the reason when dropped on purpose."""
    if len(body) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"The body is over {MAX_BODY_BYTES} bytes.")
    payload = parse_payload(body)
    website = website_by_code(payload.code)
    if website is None:
        raise NotFound("No enabled website has this tracking code.")
    if not website.allows_host(payload.hostname):
        raise Forbidden(f"The page's host is not {website.domain} or one of its hostnames.")
    if not _origin_allowed(website, client.origin):
        raise Forbidden(f"The sending page's origin is not {website.domain} or one of its hosts.")
    return record_event(website=website, payload=payload, client=client, now=now)


def _origin_allowed(website: Website, origin: str | None) -> bool:
    """A browser names the page that sends the event in `Origin`, and pages cannot forge it:
    one on another site is refused even though the tracking code is public. No Origin (not
    a browser) and `null` (a page whose referrer policy is no-referrer sends that with a
    beacon) are let through; the page URL's host is checked either way."""
    if origin is None or origin == "null":
        return True
    try:
        url = urlsplit(origin)
        host = url.hostname
    except ValueError:
        return False
    return url.scheme in ("http", "https") and bool(host) and website.allows_host(host)


def record_event(
    *, website: Website, payload: Payload, client: Client, now: dt.datetime | None = None
) -> str | None:
    """Store one event and update its session; the reason when it is dropped on purpose."""
    agent = clientinfo.parse_agent(client.user_agent)
    if agent.is_bot:
        return "bot"
    if client.do_not_track and website.respect_dnt:
        return "do_not_track"
    if client.ip is not None and website.excludes_ip(client.ip):
        return "excluded_ip"
    now = now or timezone.now()
    visitor = salts.visitor_id(
        salt=salts.salt_for(now),
        website_pk=website.pk,
        ip=str(client.ip or ""),
        user_agent=client.user_agent,
    )
    if payload.referrer_host and website.allows_host(payload.referrer_host):
        payload.referrer_host = ""  # internal navigation is not a referral
    facts = {
        "country": client.country,
        "device": agent.device,
        "browser": agent.browser,
        "os": agent.os,
    }
    with transaction.atomic():
        if not _extend_session(website.pk, visitor, payload, now):
            _start_session(website, visitor, payload, facts, now)
        _insert_event(website.pk, visitor, payload, facts, now)
        transaction.on_commit(lambda: live.site_changed(website.pk), robust=True)
    return None


# The write path runs for every event, so it is two precomposed statements rather than
# ORM calls (which cost more CPU than the database work itself). Column names are the
# models' own; tests/test_ingest.py checks what lands in them.

_EXTEND_SESSION = """
    UPDATE zenovay_session
       SET last_event_at = {greatest}(last_event_at, %s),
           pageviews = pageviews + %s,
           custom_events = custom_events + %s,
           exit_path = CASE WHEN %s THEN %s ELSE exit_path END
     WHERE id = (SELECT id FROM zenovay_session
                  WHERE website_id = %s AND visitor = %s AND last_event_at >= %s
                  ORDER BY last_event_at DESC LIMIT 1)
"""
_EVENT_COLUMNS = (
    "website_id, ts, type, visitor, path, hostname, referrer_host, utm_source, utm_medium,"
    " utm_campaign, name, props, engaged_ms, country, device, browser, os"
)
_PLACEHOLDERS = ", ".join(["%s"] * 17)
_INSERT_EVENT = f"INSERT INTO zenovay_event ({_EVENT_COLUMNS}) VALUES ({_PLACEHOLDERS})"  # noqa: S608


def _extend_session(website_pk: int, visitor: int, payload: Payload, now: dt.datetime) -> bool:
    """Extend the visitor's open session (the common case); False when there is none."""
    is_pageview = payload.type == Event.PAGEVIEW
    ops = connection.ops
    greatest = "GREATEST" if connection.vendor == "postgresql" else "MAX"
    with connection.cursor() as cursor:
        cursor.execute(
            _EXTEND_SESSION.format(greatest=greatest),
            [
                ops.adapt_datetimefield_value(now),
                int(is_pageview),
                int(payload.type == Event.CUSTOM),
                is_pageview,
                payload.path,
                website_pk,
                visitor,
                ops.adapt_datetimefield_value(now - SESSION_GAP),
            ],
        )
        return cursor.rowcount > 0


def _start_session(
    website: Website, visitor: int, payload: Payload, facts: dict[str, str], now: dt.datetime
) -> None:
    """A new session starts with a pageview or a custom event; engagement alone starts none."""
    if payload.type == Event.ENGAGEMENT:
        return
    is_pageview = payload.type == Event.PAGEVIEW
    Session.objects.create(
        website=website,
        visitor=visitor,
        started_at=now,
        last_event_at=now,
        pageviews=int(is_pageview),
        custom_events=int(payload.type == Event.CUSTOM),
        entry_path=payload.path,
        exit_path=payload.path if is_pageview else "",
        referrer_host=payload.referrer_host,
        utm_source=payload.utm_source,
        utm_medium=payload.utm_medium,
        utm_campaign=payload.utm_campaign,
        **facts,
    )


def _insert_event(
    website_pk: int, visitor: int, payload: Payload, facts: dict[str, str], now: dt.datetime
) -> None:
    ops = connection.ops
    props = None if payload.props is None else ops.adapt_json_value(payload.props, None)
    with connection.cursor() as cursor:
        cursor.execute(
            _INSERT_EVENT,
            [
                website_pk,
                ops.adapt_datetimefield_value(now),
                payload.type,
                visitor,
                payload.path,
                payload.hostname,
                payload.referrer_host,
                payload.utm_source,
                payload.utm_medium,
                payload.utm_campaign,
                payload.name,
                props,
                payload.engaged_ms,
                facts["country"],
                facts["device"],
                facts["browser"],
                facts["os"],
            ],
        )


# --- Website lookup, cached in the shared cache and invalidated on save.


def website_cache_key(kind: str, value: str) -> str:
    return f"website:{kind}:{value}"


def website_by_code(code: str) -> Website | None:
    """The enabled website with this tracking code; malformed codes never reach the database."""
    if not ids.is_tracking_code(code):
        return None
    return _cached_website("code", code, tracking_code=code)


def website_by_id(website_id: str) -> Website | None:
    if not ids.is_website_id(website_id):
        return None
    return _cached_website("id", website_id, website_id=website_id)


def _cached_website(kind: str, value: str, **lookup: str) -> Website | None:
    key = website_cache_key(kind, value)
    found = shared_cache.get(key)
    if found is None:
        found = Website.objects.filter(enabled=True, **lookup).first() or False
        shared_cache.set(key, found, WEBSITE_CACHE_SECONDS)
    return found or None


# --- Payload parsing: everything from the internet is hostile.


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def parse_payload(body: bytes) -> Payload:
    try:
        data = json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise BadRequest("The body is not valid UTF-8 JSON.") from None
    if not isinstance(data, dict):
        raise BadRequest("The body must be a JSON object.")
    code = data.get("code")
    if not isinstance(code, str):
        raise BadRequest("'code' must be the website's tracking code.")
    if not ids.is_tracking_code(code):
        raise NotFound("No website has this tracking code.")
    kind = data.get("type", Event.PAGEVIEW)
    if kind not in (Event.PAGEVIEW, Event.ENGAGEMENT, Event.CUSTOM):
        raise BadRequest("'type' must be 'pageview', 'engagement' or 'event'.")
    url, hostname = _parse_url(data.get("url"))
    # No max_num_fields: the URL is at most 2048 characters, and a page URL with many
    # query fields is still a pageview (parse_qs raises ValueError past the maximum).
    query = parse_qs(url.query, keep_blank_values=False)
    payload = Payload(
        code=code,
        type=kind,
        hostname=hostname,
        path=pagepaths.as_browser_sends(clean_text(url.path or "/", 1024)),
        referrer_host=_referrer_host(data.get("referrer")),
        utm_source=_first(query, "utm_source"),
        utm_medium=_first(query, "utm_medium"),
        utm_campaign=_first(query, "utm_campaign"),
        query=query,
    )
    if kind == Event.CUSTOM:
        payload.name = _event_name(data.get("name"))
        payload.props = _props(data.get("props"))
    if kind == Event.ENGAGEMENT:
        payload.engaged_ms = _engaged_ms(data.get("engagedMs", 0))
    return payload


def _parse_url(value: object):
    """The split URL and its host name as stored."""
    if not isinstance(value, str) or not value or len(value) > 2048:
        raise BadRequest("'url' must be the page's http(s) URL, at most 2048 characters.")
    try:
        url = urlsplit(value)
        hostname = url.hostname
        url.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        raise BadRequest("'url' is not a valid URL.") from None
    if url.scheme not in ("http", "https") or not hostname:
        raise BadRequest("'url' must be an http or https URL with a host.")
    host = host_name(hostname)
    if host is None:
        raise BadRequest("'url' must have a valid host name.")
    return url, host


HOST_RE = re.compile(r"[a-z0-9_-]{1,63}(\.[a-z0-9_-]{1,63})*\.?")


def host_name(host: str) -> str | None:
    """A URL's (lower-cased) host as stored: a DNS name in ASCII, as browsers send it
    (IDNA for a Unicode name), or an IP address; None for anything else, such as NUL,
    lone surrogates, markup or a name over 253 characters."""
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            return None
    if len(host) > 253:
        return None
    if HOST_RE.fullmatch(host):
        return host
    try:
        ipaddress.ip_address(host)  # an IPv6 literal; no zone ids ("%eth0")
    except ValueError:
        return None
    return host if "%" not in host else None


def _referrer_host(value: object) -> str:
    if value is None or value == "":
        return ""
    if not isinstance(value, str) or len(value) > 2048:
        raise BadRequest("'referrer' must be a URL string or null.")
    try:
        host = urlsplit(value).hostname or ""
    except ValueError:
        return ""
    return (host_name(host) or "").removeprefix("www.")


def _first(query: dict[str, list[str]], name: str) -> str:
    values = query.get(name)
    return clean_text(values[0], 100) if values else ""


def _event_name(value: object) -> str:
    name = clean_text(value, 100).strip() if isinstance(value, str) and len(value) <= 100 else ""
    if not name:  # checked once cleaned: "\x00" or "\x00 \x00" must not become "" or " "
        raise BadRequest("'name' must be a non-empty string of at most 100 characters.")
    return name


def _props(value: object) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or len(value) > MAX_PROPS:
        raise BadRequest(f"'props' must be an object with at most {MAX_PROPS} keys.")
    props: dict[str, Any] = {}
    for key, item in value.items():
        if len(key) > 100:
            raise BadRequest("'props' keys are at most 100 characters.")
        if isinstance(item, str):
            item = clean_text(item, 500)
        elif item is not None and not isinstance(item, bool | int | float):
            raise BadRequest("'props' values must be strings, numbers, booleans or null.")
        elif isinstance(item, float) and not math.isfinite(item):
            raise BadRequest("'props' numbers must be finite.")
        elif isinstance(item, int | float) and not isinstance(item, bool) and abs(item) > 2**53:
            # 1e20 and 100000000000000000000 are one JSON number: the same answer for both.
            raise BadRequest("'props' numbers must be from -2^53 to 2^53.")
        props[clean_text(key, 100)] = item
    return props


def _engaged_ms(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise BadRequest("'engagedMs' must be a number of milliseconds.")
    if value < 0:
        raise BadRequest("'engagedMs' cannot be negative.")
    return min(int(value), MAX_ENGAGED_MS)


def clean_text(value: str, limit: int) -> str:
    """Drop NUL and lone surrogates (no database stores them) and cut to `limit`."""
    value = value.replace("\x00", "")
    value = value.encode("utf-8", "replace").decode("utf-8")
    return value[:limit]
