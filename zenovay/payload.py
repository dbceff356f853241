"""Parsing and cleaning a collect body: everything from the internet is hostile.

`parse_payload()` turns the raw bytes of one event into a `Payload` of clean values
(bounded lengths, no NUL or lone surrogates, hosts as browsers send them) or raises one
of the `IngestError`s below, each carrying its HTTP status and error code. It stores
nothing and reads no database: this is the fuzzed surface, apart from `ingest`.
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

from zenovay import ids, pagepaths
from zenovay.models import Event

MAX_BODY_BYTES = 4096
MAX_ENGAGED_MS = 24 * 3600 * 1000
MAX_PROPS = 30


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


# Also the answer when a website was deleted while its event was on its way.
UNKNOWN_CODE = "No enabled website has this tracking code."


class PayloadTooLarge(IngestError):
    status = 413
    code = "payload_too_large"


@dataclass(slots=True)
class Payload:
    code: str
    type: Literal["pageview", "engagement", "event"]
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
