"""One way to record an event in a test.

A test builds the body a tracker sends (`payload`, `body`), says who sends it (`sender` for an
address, `visitor(n)` for the n-th distinct visitor) and records it through the real write path
(`record`, or `collect` for the drop reason), so visitor identities, sessions and aggregates are
always the ones production makes. Against a running server, `post_collect` sends the same body
over HTTP. Nothing here writes rows by hand: a test that needs an exact row says so itself.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import urllib.request

from asgiref.sync import sync_to_async

from zenovay import ingest, sites
from zenovay.models import Website
from zenovay.payload import parse_payload

# A current desktop Chrome on Linux: counted as a person, not a bot.
DESKTOP_UA = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)

Who = int | ingest.Client


def event_json(
    code: str, kind: str = "pageview", path: str = "/", /, *, host: str = "shop.example", **fields
) -> dict[str, object]:
    """The collect body for a tracking code: a `kind` event on https://host/path, plus fields."""
    return {"code": code, "type": kind, "url": f"https://{host}{path}", **fields}


def payload(website: Website, kind: str = "pageview", path: str = "/", /, **fields) -> dict:
    """The collect body a page of `website` sends (its own domain, unless `url` is given)."""
    return event_json(website.tracking_code, kind, path, host=website.domain, **fields)


def body(website: Website, kind: str = "pageview", path: str = "/", /, **fields) -> bytes:
    return json.dumps(payload(website, kind, path, **fields)).encode()


def sender(ip: str | None = "81.2.69.160", *, country: str = "GB", ua: str = DESKTOP_UA, **kw):
    """The sender as the collect view sees it: an address, its country, its user agent."""
    address = ipaddress.ip_address(ip) if ip is not None else None
    return ingest.Client(ip=address, country=country, user_agent=ua, **kw)


def visitor(number: int, country: str = "US", ua: str = DESKTOP_UA) -> ingest.Client:
    """The number-th visitor: an address of its own (10.0.0.<number>), hence its own identity."""
    return sender(str(ipaddress.ip_address(0x0A000000 + number)), country=country, ua=ua)


def collect(
    website: Website,
    now: dt.datetime | None = None,
    who: Who | None = None,
    path: str = "/",
    *,
    country: str | None = None,
    ua: str = DESKTOP_UA,
    kind: str = "pageview",
    **fields,
) -> str | None:
    """Record one event as collect does (`payload.parse_payload`, the site's check, then
    `ingest.record_event`); the reason when it is dropped on purpose.

    `who` is a Client, the number of a visitor (`visitor`), or by default `sender()`."""
    if isinstance(who, ingest.Client):
        by = who
    elif who is None:
        by = sender(country="GB" if country is None else country, ua=ua)
    else:
        by = visitor(who, "US" if country is None else country, ua)
    parsed = parse_payload(body(website, kind, path, **fields))
    found = ingest.check_source(sites.by_code(parsed.code), parsed, by)
    return ingest.record_event(website=found, payload=parsed, client=by, now=now)


def record(website: Website, now: dt.datetime | None = None, *args, **kwargs) -> None:
    """Record one event that must be kept (see `collect`)."""
    assert collect(website, now, *args, **kwargs) is None


def visit(website: Website, path: str = "/", who: Who | None = None, **kwargs) -> None:
    """A pageview of `path` now, by `who` (see `collect`)."""
    record(website, None, who, path=path, **kwargs)


avisit = sync_to_async(visit)  # the same, from a coroutine


def pageview(website: Website, when: dt.datetime, who: Who = 1, **kwargs) -> None:
    record(website, when, who, **kwargs)


def engagement(website: Website, when: dt.datetime, who: Who = 1, **kwargs) -> None:
    record(website, when, who, kind="engagement", engagedMs=1000, **kwargs)


def custom(website: Website, when: dt.datetime, who: Who = 1, name: str = "signup", **kw) -> None:
    record(website, when, who, kind="event", name=name, **kw)


def post_collect(
    base: str, code: str, path: str = "/", *, ua: str = DESKTOP_UA, timeout: float = 5, **fields
) -> int:
    """A real POST /e/collect to the server at `base`, as a browser on the customer's page
    sends it (text/plain, so no preflight); the HTTP status. Errors raise HTTPError."""
    request = urllib.request.Request(
        base + "/e/collect",
        data=json.dumps(event_json(code, "pageview", path, **fields)).encode(),
        headers={"Content-Type": "text/plain", "User-Agent": ua},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.status
