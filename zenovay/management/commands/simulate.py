"""`manage.py simulate WEBSITE`: realistic synthetic traffic through the real write path.

Every event is a JSON body the tracker (static/z.js) would send, validated by
`payload.parse_payload` and stored by `ingest.record_event`, so sessions, visitor
identities, countries and device classes come out exactly as for real traffic.
`--days` backfills past events with explicit timestamps, oldest first; `--live`
keeps visitors arriving and browsing in real time until Ctrl-C or `--duration`.
"""

from __future__ import annotations

import datetime as dt
import heapq
import ipaddress
import itertools
import json
import math
import random
import time
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser, OutputWrapper
from django.db import transaction
from django.db.models import Max
from django.urls import reverse
from django.utils import timezone

from zenovay import clientinfo, ids, ingest, salts
from zenovay.models import Event, Session, Website, normalize_domain
from zenovay.payload import parse_payload

# --- Who visits: addresses, countries and browsers.

# ISP address blocks per country with a rough share of a global SaaS audience. Each was
# checked against iptocc (the offline lookup ingest uses); `random_ip` checks again so a
# data update cannot silently mislabel visitors.
COUNTRIES: dict[str, tuple[float, tuple[str, ...]]] = {
    "US": (30, ("73.162.0.0/16", "98.207.0.0/16", "71.58.0.0/16", "108.28.0.0/16", "24.4.0.0/16")),
    "GB": (9, ("86.150.0.0/16", "86.160.0.0/16", "2.98.0.0/16", "90.200.0.0/16", "5.64.0.0/16")),
    "DE": (10, ("79.200.0.0/16", "87.150.0.0/16", "91.40.0.0/16", "93.200.0.0/16", "95.90.0.0/16")),
    "FR": (6, ("90.30.0.0/16", "90.100.0.0/16", "86.200.0.0/16", "82.64.0.0/16", "78.200.0.0/16")),
    "IN": (9, ("49.36.0.0/16", "117.200.0.0/16", "106.200.0.0/16", "223.180.0.0/16")),
    "BR": (5, ("179.100.0.0/16", "187.50.0.0/16", "191.200.0.0/16", "201.20.0.0/16")),
    "JP": (5, ("126.100.0.0/16", "60.100.0.0/16", "219.100.0.0/16", "153.200.0.0/16")),
    "CA": (5, ("24.70.0.0/16", "99.224.0.0/16", "70.50.0.0/16", "174.88.0.0/16")),
    "NL": (4, ("77.160.0.0/16", "84.24.0.0/16", "86.80.0.0/16", "83.80.0.0/16")),
    "AU": (3, ("1.130.0.0/16", "101.160.0.0/16", "120.150.0.0/16", "58.160.0.0/16")),
    "ES": (3, ("83.40.0.0/16", "88.10.0.0/16", "2.140.0.0/16", "79.150.0.0/16")),
    "IT": (3, ("2.40.0.0/16", "151.40.0.0/16", "93.40.0.0/16", "79.20.0.0/16")),
    "SE": (2, ("78.70.0.0/16", "2.66.0.0/16", "83.250.0.0/16", "90.230.0.0/16")),
    "PL": (2, ("83.20.0.0/16", "79.186.0.0/16", "31.60.0.0/16", "89.64.0.0/16")),
    "MX": (2, ("187.140.0.0/16", "189.200.0.0/16", "148.240.0.0/16", "187.190.0.0/16")),
}
# About a fifth of visitors come over IPv6 where their ISP offers it.
IPV6_SHARE = 0.2
IPV6_BLOCKS: dict[str, tuple[str, ...]] = {
    "US": ("2600:1700::/32", "2600:1010::/32", "2603:6000::/32"),
    "GB": ("2a00:23c4::/32", "2a02:c7c::/32"),
    "DE": ("2a02:8108::/32", "2003:e5::/32"),
    "FR": ("2a01:cb00::/32", "2a01:e0a::/32"),
    "IN": ("2409:40c0::/32", "2401:4900::/32"),
    "BR": ("2804:14c::/32", "2804:d41::/32"),
    "JP": ("240b:10::/32", "2400:4050::/32"),
    "CA": ("2607:fea8::/32",),
    "NL": ("2a02:a440::/32", "2001:1c00::/32"),
}

# Real browser user agents (desktop, mobile, tablet) with a rough market share; the
# version placeholders vary per visitor so agents are as diverse as in real logs.
USER_AGENTS: tuple[tuple[float, str], ...] = (
    (
        20,
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/{chrome}.0.0.0 Safari/537.36",
    ),
    (
        6,
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/{chrome}.0.0.0 Safari/537.36 Edg/{chrome}.0.0.0",
    ),
    (
        4,
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:{firefox}.0) Gecko/20100101 "
        "Firefox/{firefox}.0",
    ),
    (
        8,
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/{chrome}.0.0.0 Safari/537.36",
    ),
    (
        6,
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/{safari} Safari/605.1.15",
    ),
    (
        2,
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:{firefox}.0) Gecko/20100101 "
        "Firefox/{firefox}.0",
    ),
    (
        3,
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/{chrome}.0.0.0 Safari/537.36",
    ),
    (
        2,
        "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:{firefox}.0) Gecko/20100101 "
        "Firefox/{firefox}.0",
    ),
    (
        16,
        "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/{chrome}.0.0.0 Mobile Safari/537.36",
    ),
    (
        3,
        "Mozilla/5.0 (Linux; Android 14; SM-S921B) AppleWebKit/537.36 (KHTML, like Gecko) "
        "SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36",
    ),
    (1, "Mozilla/5.0 (Android 14; Mobile; rv:{firefox}.0) Gecko/{firefox}.0 Firefox/{firefox}.0"),
    (
        14,
        "Mozilla/5.0 (iPhone; CPU iPhone OS {ios} like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/{safari} Mobile/15E148 Safari/604.1",
    ),
    (
        3,
        "Mozilla/5.0 (iPhone; CPU iPhone OS {ios} like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) CriOS/{chrome}.0.6778.73 Mobile/15E148 Safari/604.1",
    ),
    (
        3,
        "Mozilla/5.0 (iPad; CPU OS {ios} like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/{safari} Mobile/15E148 Safari/604.1",
    ),
    (
        2,
        "Mozilla/5.0 (Linux; Android 14; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/{chrome}.0.0.0 Safari/537.36",
    ),
)
BROWSER_VERSIONS: dict[str, tuple[str, ...]] = {
    "chrome": ("129", "130", "131", "132"),
    "firefox": ("131", "132", "133"),
    "safari": ("17.6", "18.0", "18.1"),
    "ios": ("17_6", "18_0", "18_1"),
}

# --- What they do: landing pages by source, a small site map, custom events.

BLOG_POSTS = (
    "/blog/launching-zenovay",
    "/blog/cookieless-analytics-explained",
    "/blog/self-hosting-on-a-5-dollar-vps",
    "/blog/realtime-dashboards-with-websockets",
    "/blog/gdpr-and-web-analytics",
)
DOCS = (
    "/docs/install",
    "/docs/tracker",
    "/docs/api",
    "/docs/widgets",
    "/docs/configuration",
    "/docs/faq",
)
LINKS: dict[str, tuple[str, ...]] = {
    "/": ("/features", "/features", "/pricing", "/pricing", "/blog", "/docs", "/about", "/signup"),
    "/features": ("/pricing", "/pricing", "/docs", "/signup", "/"),
    "/pricing": ("/signup", "/signup", "/features", "/docs/faq", "/contact"),
    "/blog": (*BLOG_POSTS, "/"),
    "/docs": DOCS,
    "/signup": ("/docs/install", "/docs", "/pricing"),
    "/about": ("/contact", "/blog", "/"),
    "/contact": ("/", "/pricing"),
    "/changelog": ("/docs", "/blog"),
}
PLANS = ("free", "pro", "pro", "team")


@dataclass(frozen=True, slots=True)
class Source:
    """Where a visit comes from: `document.referrer`, landing pages, UTM tags, bounce rate."""

    weight: float
    referrer: str
    landings: tuple[str, ...]
    query: str = ""
    bounce: float = 0.45


SOURCES: tuple[Source, ...] = (
    Source(
        28, "", ("/", "/", "/", "/pricing", "/docs", "/docs/install", "/changelog"), bounce=0.35
    ),
    Source(24, "https://www.google.com/", ("/", "/features", "/pricing", *BLOG_POSTS, *DOCS)),
    Source(3, "https://www.bing.com/", ("/", "/features", *DOCS)),
    Source(3, "https://duckduckgo.com/", ("/", *BLOG_POSTS, *DOCS)),
    Source(8, "https://news.ycombinator.com/", ("/blog/launching-zenovay", "/"), bounce=0.65),
    Source(4, "https://t.co/", BLOG_POSTS, "?utm_source=twitter&utm_medium=social", bounce=0.6),
    Source(3, "https://x.com/", ("/", "/blog/launching-zenovay"), bounce=0.6),
    Source(5, "https://github.com/", ("/", "/docs", "/docs/install"), bounce=0.3),
    Source(3, "https://www.reddit.com/", BLOG_POSTS, bounce=0.6),
    Source(
        2,
        "https://www.linkedin.com/",
        ("/", "/about"),
        "?utm_source=linkedin&utm_medium=social&utm_campaign=launch",
    ),
    Source(
        5,
        "",
        ("/", "/blog/realtime-dashboards-with-websockets"),
        "?utm_source=newsletter&utm_medium=email&utm_campaign=monthly-update",
        bounce=0.4,
    ),
    Source(
        4,
        "https://www.google.com/",
        ("/", "/pricing"),
        "?utm_source=google&utm_medium=cpc&utm_campaign=brand",
        bounce=0.5,
    ),
)

# --- When: more by day than at night (website time zone), less at weekends.

HOUR_WEIGHTS = (
    0.25, 0.15, 0.1, 0.08, 0.08, 0.12, 0.25, 0.5, 0.8, 1.0, 1.0, 1.0,
    0.95, 1.0, 1.0, 0.95, 0.9, 0.85, 0.75, 0.7, 0.65, 0.6, 0.5, 0.35,
)  # fmt: skip
WEEKDAY_WEIGHTS = (1.0, 1.05, 1.05, 1.0, 0.9, 0.6, 0.65)
HOUR = dt.timedelta(hours=1)
# A new visit by the same visitor must start after the session gap, or ingest would
# (rightly) fold it into the previous session.
REVISIT_GAP = ingest.SESSION_GAP + dt.timedelta(minutes=5)
BATCH_SIZE = 500

Step = tuple[float, dict[str, Any]]  # seconds after the visit starts, tracker JSON body


@dataclass(frozen=True, slots=True)
class Visitor:
    client: ingest.Client


def random_ip(rng: random.Random, country: str) -> clientinfo.IPAddress:
    """An address in one of the country's blocks that the offline lookup agrees on."""
    blocks = COUNTRIES[country][1]
    if country in IPV6_BLOCKS and rng.random() < IPV6_SHARE:
        blocks = IPV6_BLOCKS[country]
    ip: clientinfo.IPAddress | None = None
    for _ in range(20):
        network = ipaddress.ip_network(rng.choice(blocks))
        ip = network[rng.randrange(1, network.num_addresses - 1)]
        if clientinfo.country_of(ip, None, False) == country:
            return ip
    assert ip is not None
    return ip  # stale lookup data: keep the visitor, whatever country it maps to


def make_visitors(rng: random.Random, count: int) -> list[Visitor]:
    """Distinct (IP, user agent) pairs, so each is a distinct visitor to ingest."""
    countries = list(COUNTRIES)
    country_weights = [COUNTRIES[c][0] for c in countries]
    agents = [ua for _, ua in USER_AGENTS]
    agent_weights = [w for w, _ in USER_AGENTS]
    visitors: dict[tuple[str, str], Visitor] = {}
    while len(visitors) < count:
        country = rng.choices(countries, country_weights)[0]
        ip = random_ip(rng, country)
        versions = {name: rng.choice(options) for name, options in BROWSER_VERSIONS.items()}
        agent = rng.choices(agents, agent_weights)[0].format(**versions)
        client = ingest.Client(
            ip=ip, country=clientinfo.country_of(ip, None, False), user_agent=agent
        )
        visitors.setdefault((str(ip), agent), Visitor(client))
    return list(visitors.values())


def links_of(path: str) -> tuple[str, ...]:
    if path in LINKS:
        return LINKS[path]
    if path.startswith("/blog/"):
        return ("/blog", "/", "/pricing", "/features", *BLOG_POSTS)
    return (*DOCS, "/docs", "/pricing", "/changelog")


def custom_event(rng: random.Random, path: str) -> tuple[str, dict[str, Any] | None] | None:
    """What `zenovay(name, props)` calls a page of this kind makes, if any."""
    roll = rng.random()
    if path == "/signup" and roll < 0.45:
        return "signup", {"plan": rng.choice(PLANS)}
    if path == "/docs/install" and roll < 0.35:
        return "download", {"file": "zenovay-1.4.2.tar.gz"}
    if path == "/pricing" and roll < 0.15:
        return "billing_toggle", {"yearly": True}
    if path.startswith("/blog/") and roll < 0.05:
        return "newsletter_subscribe", None
    return None


def dwell_seconds(rng: random.Random) -> float:
    # Time on page is roughly log-normal: most glance, a few read for minutes.
    return min(max(rng.lognormvariate(math.log(35), 0.9), 2.0), 900.0)


def page_steps(
    rng: random.Random, code: str, url: str, referrer: str, path: str, at: float
) -> tuple[list[Step], float]:
    """The tracker's requests for one page, and when the visitor leaves it."""
    dwell = dwell_seconds(rng)
    base = {"code": code, "url": url, "referrer": referrer or None}
    steps: list[Step] = [(at, {**base, "type": "pageview"})]
    custom = custom_event(rng, path)
    if custom is not None:
        name, props = custom
        event = {**base, "type": "event", "name": name, "props": props}
        steps.append((at + dwell * rng.uniform(0.2, 0.9), event))
    # A few beacons never arrive (killed mobile tabs); engaged time is visible time only.
    if rng.random() > 0.07:
        engaged = int(dwell * 1000 * rng.uniform(0.6, 1.0))
        steps.append((at + dwell, {**base, "type": "engagement", "engagedMs": engaged}))
    return steps, at + dwell


def plan_visit(rng: random.Random, code: str, origin: str) -> list[Step]:
    """One visit of a multi-page site: a landing page from some source, then a walk."""
    source = rng.choices(SOURCES, [s.weight for s in SOURCES])[0]
    path = rng.choice(source.landings)
    url, referrer = origin + path + source.query, source.referrer
    pages = 1 if rng.random() < source.bounce else 2 + min(int(rng.expovariate(0.5)), 10)
    steps: list[Step] = []
    at = 0.0
    for number in range(pages):
        if number:
            # A full page load: the previous page is the referrer (ingest drops it as internal).
            path = rng.choice(links_of(path))
            url, referrer = origin + path, url
            at += rng.uniform(0.3, 3.0)
        page, at = page_steps(rng, code, url, referrer, path, at)
        steps += page
    return steps


def visit_count(rng: random.Random) -> int:
    # Most people come once; some return on other days within the salt period.
    return rng.choices((1, 2, 3, 4, 6), (62, 20, 10, 5, 3))[0]


# --- Backfill: hourly buckets weighted by local time of day and day of week.


@dataclass(slots=True)
class Window:
    """The backfill span cut into hours, with cumulative traffic weights for sampling."""

    start: dt.datetime
    end: dt.datetime
    starts: list[dt.datetime] = field(default_factory=list)
    cumulative: list[float] = field(default_factory=list)

    @classmethod
    def build(cls, website: Website, days: int, end: dt.datetime) -> Window:
        """From local midnight `days` days ago up to `end`."""
        zone = website.zone
        local_midnight = end.astimezone(zone).replace(hour=0, minute=0, second=0, microsecond=0)
        first_day = local_midnight.date() - dt.timedelta(days=days)
        start = dt.datetime.combine(first_day, dt.time(), tzinfo=zone).astimezone(dt.UTC)
        window = cls(start=start, end=end)
        total, hour_start = 0.0, start
        while hour_start < end:
            local = hour_start.astimezone(zone)
            share = min(end - hour_start, HOUR) / HOUR
            total += HOUR_WEIGHTS[local.hour] * WEEKDAY_WEIGHTS[local.weekday()] * share
            window.starts.append(hour_start)
            window.cumulative.append(total)
            hour_start += HOUR
        return window

    def sample(self, rng: random.Random) -> dt.datetime:
        hour_start = rng.choices(self.starts, cum_weights=self.cumulative)[0]
        span = min(self.end - hour_start, HOUR).total_seconds()
        return hour_start + dt.timedelta(seconds=rng.uniform(0, span))


def backfill_events(
    rng: random.Random, website: Website, visitors: list[Visitor], window: Window
) -> list[tuple[dt.datetime, int, Visitor, dict[str, Any]]]:
    """Every visitor's visits, cut at `window.end`, oldest first (sessions need order)."""
    origin = f"https://{website.domain}"
    events: list[tuple[dt.datetime, int, Visitor, dict[str, Any]]] = []
    order = itertools.count()
    if not window.starts:
        return events  # run at the very instant of local midnight with --days 0
    for visitor in visitors:
        free_from = window.start
        for start in sorted(window.sample(rng) for _ in range(visit_count(rng))):
            if start < free_from:
                continue
            steps = plan_visit(rng, website.tracking_code, origin)
            for offset, body in steps:
                ts = start + dt.timedelta(seconds=offset)
                if ts <= window.end:  # the rest of a visit in progress has not happened yet
                    events.append((ts, next(order), visitor, body))
            free_from = start + dt.timedelta(seconds=steps[-1][0]) + REVISIT_GAP
    events.sort(key=lambda event: event[:2])
    return events


def send(website: Website, visitor: Visitor, body: dict[str, Any], now: dt.datetime) -> bool:
    """Through the same validation and write path as POST /e/collect; False if dropped."""
    payload = parse_payload(json.dumps(body).encode())
    ignored = ingest.record_event(website=website, payload=payload, client=visitor.client, now=now)
    return ignored is None


# --- Live: a queue of timed tracker requests, fed by visitors arriving at random.


@dataclass(slots=True)
class LiveTraffic:
    """Visits in simulated seconds since the start; `speed` maps them to wall-clock time."""

    rng: random.Random
    website: Website
    visitors: list[Visitor]
    queue: list[tuple[float, int, int, dict[str, Any]]] = field(default_factory=list)
    busy_until: dict[int, float] = field(default_factory=dict)
    order: itertools.count = field(default_factory=itertools.count)

    def arrive(self, at: float) -> None:
        """Start a visit by an idle visitor, a returning one now and then."""
        idle = [i for i in range(len(self.visitors)) if self.busy_until.get(i, -1.0) < at]
        if not idle:
            return  # everyone is browsing already; the pool caps concurrency
        returning = [i for i in idle if i in self.busy_until]
        fresh = [i for i in idle if i not in self.busy_until]
        use_returning = returning and (not fresh or self.rng.random() < 0.25)
        who = self.rng.choice(returning if use_returning else fresh)
        origin = f"https://{self.website.domain}"
        steps = plan_visit(self.rng, self.website.tracking_code, origin)
        for offset, body in steps:
            heapq.heappush(self.queue, (at + offset, next(self.order), who, body))
        self.busy_until[who] = at + steps[-1][0] + REVISIT_GAP.total_seconds()

    def due(self, now: float) -> list[tuple[Visitor, dict[str, Any]]]:
        ready = []
        while self.queue and self.queue[0][0] <= now:
            _, _, who, body = heapq.heappop(self.queue)
            ready.append((self.visitors[who], body))
        return ready

    def next_due(self) -> float:
        return self.queue[0][0] if self.queue else math.inf

    def active(self) -> int:
        return len({who for _, _, who, _ in self.queue})


class Progress:
    """A one-line bar redrawn in place with \\r, at most ten times a second, on a terminal;
    elsewhere (a log file, a pipe) only its last state, once. Plain text: Django colours
    stderr red, which would make progress look like an error. A message said while the bar
    is drawn (`say`) clears the line first and the bar is drawn again under it, so the two
    never share a line."""

    def __init__(self, out: OutputWrapper, label: str, total: float | None) -> None:
        self.out, self.label, self.total = out, label, total
        self.terminal = out.isatty()
        self.drawn_at = 0.0
        self.line = ""

    def update(self, done: float, note: str, force: bool = False) -> None:
        if not force and (not self.terminal or time.monotonic() - self.drawn_at < 0.1):
            return
        self.drawn_at = time.monotonic()
        if self.total is not None:
            share = min(done / self.total, 1.0) if self.total else 1.0
            filled = int(30 * share)
            bar = f"[{'#' * filled}{'-' * (30 - filled)}] {100 * share:3.0f}%"
        else:
            bar = f"{done:5.0f} s"
        self._draw(f"{self.label} {bar}  {note}")

    def say(self, message: str) -> None:
        line, self.line = self.line, ""
        if line and self.terminal:
            self._write("\r" + " " * len(line) + "\r")
        self._write(message + "\n")
        if line and self.terminal:
            self._draw(line)

    def close(self, done: float, note: str) -> None:
        self.update(done, note, force=True)
        self._write("\n")  # the bar stays on screen, and what follows starts a line
        self.line = ""

    def _draw(self, line: str) -> None:
        padding = " " * max(0, len(self.line) - len(line))  # what is left of a longer line
        self._write(("\r" if self.terminal else "") + line + padding)
        self.line = line

    def _write(self, text: str) -> None:
        self.out.write(text, style_func=str, ending="")
        self.out.flush()


def find_website(value: str) -> Website:
    """By tracking code, website id or domain; a one-line CommandError otherwise."""
    value = value.strip()
    if ids.is_tracking_code(value):
        found = Website.objects.filter(tracking_code=value)
    elif ids.is_website_id(value):
        found = Website.objects.filter(website_id=value)
    else:
        try:
            found = Website.objects.filter(domain=normalize_domain(value))
        except ValidationError:
            found = Website.objects.none()
    matches = list(found[:2])
    if not matches:
        raise CommandError(f"No website has the tracking code, website id or domain {value!r}.")
    if len(matches) > 1:
        raise CommandError(f"Several websites use {value!r}; name one by its tracking code.")
    if not matches[0].enabled:
        raise CommandError(f"{matches[0].domain} is disabled, so its tracker would be refused.")
    return matches[0]


class Command(BaseCommand):
    help = (
        "Generate realistic synthetic traffic for one website through the real ingest path: "
        "backfill today and the past --days days, and/or keep visitors coming with --live."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "website", help="Tracking code (ZV_...), website id (ws_...) or domain."
        )
        parser.add_argument(
            "--visitors", type=int, default=200, help="Distinct visitors (default: 200)."
        )
        parser.add_argument(
            "--days",
            type=int,
            default=None,
            help="Backfill today and the D days before it (default: 0, today only; "
            "with --live there is no backfill unless --days is given).",
        )
        parser.add_argument("--live", action="store_true", help="Keep generating in real time.")
        parser.add_argument(
            "--duration", type=float, help="Stop --live after this many seconds (default: Ctrl-C)."
        )
        parser.add_argument(
            "--rate", type=float, default=6.0, help="--live visits starting per minute (default 6)."
        )
        parser.add_argument(
            "--speed",
            type=float,
            default=1.0,
            help="--live pacing: simulated minutes per real minute (default 1, real time).",
        )
        parser.add_argument("--seed", type=int, help="Random seed, for reproducible traffic.")

    def handle(self, *args: Any, **options: Any) -> None:
        self._check_options(options)
        website = find_website(options["website"])
        rng = random.Random(options["seed"])
        visitors = make_visitors(rng, options["visitors"])
        self.written = self.ignored = 0
        first_event = Event.objects.aggregate(last=Max("pk"))["last"] or 0
        first_session = Session.objects.aggregate(last=Max("pk"))["last"] or 0
        started = time.monotonic()
        try:
            if not options["live"] or options["days"] is not None:
                self._backfill(rng, website, visitors, options["days"] or 0)
            if options["live"]:
                self._live(rng, website, visitors, options)
        except KeyboardInterrupt:
            self.stderr.write("\nStopped.", style_func=str)
        self._summary(website, first_event, first_session, time.monotonic() - started)

    def _check_options(self, options: dict[str, Any]) -> None:
        if options["visitors"] < 1:
            raise CommandError("--visitors must be at least 1.")
        if options["days"] is not None and not 0 <= options["days"] <= 3650:
            raise CommandError("--days must be between 0 and 3650.")
        for name in ("duration", "rate", "speed"):
            if options[name] is not None and options[name] <= 0:
                raise CommandError(f"--{name} must be positive.")

    def _backfill(
        self, rng: random.Random, website: Website, visitors: list[Visitor], days: int
    ) -> None:
        window = Window.build(website, days, timezone.now())
        self._warn_about_salts(window)
        events = backfill_events(rng, website, visitors, window)
        progress = Progress(self.stderr, "Past visits", len(events))
        for first in range(0, len(events), BATCH_SIZE):
            batch = events[first : first + BATCH_SIZE]
            # One transaction per batch: SQLite syncs once per commit, not once per event.
            with transaction.atomic():
                kept = sum(send(website, visitor, body, ts) for ts, _, visitor, body in batch)
            self.written += kept
            self.ignored += len(batch) - kept
            progress.update(first + len(batch), f"{first + len(batch):,} of {len(events):,} events")
        progress.close(len(events), f"{len(events):,} of {len(events):,} events")

    def _warn_about_salts(self, window: Window) -> None:
        first, last = salts.period_of(window.start), salts.period_of(window.end)
        if first != last:
            span = {"daily": "day", "weekly": "week"}.get(settings.ZENOVAY_SALT_ROTATION, "month")
            self.stderr.write(
                f"Note: Zenovay forgets who a visitor was when a {span} ends "
                f"(ZENOVAY_SALT_ROTATION), so a simulated visitor who comes back in a later "
                f"{span} counts as a new visitor there.",
                style_func=str,
            )

    def _live(
        self, rng: random.Random, website: Website, visitors: list[Visitor], options: dict[str, Any]
    ) -> None:
        traffic = LiveTraffic(rng, website, visitors)
        speed, duration = options["speed"], options["duration"]
        per_second = options["rate"] / 60
        progress = Progress(self.stderr, "Live visits", duration)
        stop = "" if duration is not None else "; Ctrl-C stops"
        started, next_arrival, elapsed = time.monotonic(), 0.0, 0.0
        while duration is None or elapsed < duration:
            now = elapsed * speed  # simulated seconds
            while next_arrival <= now:
                traffic.arrive(next_arrival)
                next_arrival += rng.expovariate(per_second)
            for visitor, body in traffic.due(now):
                self._count(send(website, visitor, body, timezone.now()))
            progress.update(elapsed, f"{self.written:,} events, {traffic.active()} browsing{stop}")
            wake = (min(next_arrival, traffic.next_due()) - now) / speed
            left = math.inf if duration is None else duration - elapsed
            time.sleep(max(0.0, min(wake, 0.25, left)))
            elapsed = time.monotonic() - started
        progress.close(elapsed, f"{self.written:,} events, {traffic.active()} browsing")

    def _count(self, kept: bool) -> None:
        self.written += kept
        self.ignored += not kept

    def _summary(self, website: Website, first_event: int, first_session: int, secs: float) -> None:
        new_events = Event.objects.filter(website=website, pk__gt=first_event)
        visitors = new_events.values("visitor").distinct().count()
        sessions = Session.objects.filter(website=website, pk__gt=first_session).count()
        ignored = (
            f" ({self.ignored} not counted: a bot, Do Not Track or an excluded IP)"
            if self.ignored
            else ""
        )
        url = settings.ZENOVAY_PUBLIC_URL + reverse("dashboard-site", args=[website.website_id])
        self.stdout.write(
            f"Wrote {self.written} events{ignored}, {visitors} visitors, {sessions} sessions "
            f"for {website.domain} in {secs:.1f} s. See them at {url}"
        )
