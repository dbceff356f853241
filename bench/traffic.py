#!/usr/bin/env python3
"""Figure cost against a site's traffic this month (issue 11: "Constant-cost analytics").

    .venv/bin/python bench/traffic.py [--db sqlite|postgres|both] [--sizes 10000,1000000,10000000]
                                      [--rounds 7] [--ingest-batches 30] [--keep]

One website (Europe/Berlin) with 10^4, 10^6 and 10^7 events in the current month: sessions
of 1 to 5 pageviews, half of them closed by an engagement event, one in ten with a custom
event, one session per visitor (so about a third as many visitors as events), spread
over the month's first 27.6 days up to `now` (28 March 2026, 15:07:30 UTC). Raw events,
sessions and the aggregates ingest would have written (zenovay.aggregates: quarter rows,
first-seen rows, period breakdown rows) are loaded straight into the tables (COPY on
PostgreSQL, executemany on SQLite; indexes built after), not through HTTP; up to 10^5
events the loaded aggregates are checked against `aggregates.rebuild` from the raw rows.

Then, in-process and uncached (the shared cache cleared before each call, `now` fixed),
every public snapshot (live, realtime, stats today/week/month, status), the push's
snapshot (`zenovay.push.snapshots._compute`, as the ticker calls it), the dashboard's
charts and month figures, and the whole dashboard page (rendered through the test client,
signed in, `?period=month`) are timed: medians of --rounds, the figures taken in turn in
each round.
Printed: a table per database with the 10^7/10^4 (largest/smallest) ratio per figure,
the table sizes, and the ingest cost per event (`ingest.store`, batches of 100 events of
visitors new to the month, then a day later of visitors seen that week; and the whole
collect path, 100 `api.collect.answer` calls at once) with and without aggregate upkeep.

Goals: ratio <= 2 for every figure; at 10^7 on PostgreSQL every public snapshot <= 30 ms
and the dashboard page <= 300 ms; ingest with aggregates <= 1.5x without. Each size runs
in its own database (a SQLite file, or the PostgreSQL database zenovay_bench_traffic) and
its own worker process (this script with --worker); results go to var/bench-traffic.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common import (
    DEFAULT_PG_ADMIN,
    ROOT,
    VAR,
    Ratio,
    Table,
    ensure_venv,
    epilogue,
    pg_url,
    postgres_database,
    sqlite_database,
)

NOW = dt.datetime(2026, 3, 28, 15, 7, 30, tzinfo=dt.UTC)
ZONE = "Europe/Berlin"
DOMAIN = "traffic.example"
PG_DATABASE = "zenovay_bench_traffic"
PUBLIC = ("live", "realtime", "stats_today", "stats_week", "stats_month", "status")
FIGURES = (*PUBLIC, "push", "dashboard_charts", "dashboard_month", "dashboard_page")
PATHS = [f"/page/{i}" for i in range(300)]
COUNTRIES = [
    "US",
    "DE",
    "GB",
    "FR",
    "NP",
    "IN",
    "BR",
    "JP",
    "CA",
    "NL",
    "IT",
    "ES",
    "PL",
    "SE",
    "NO",
    "DK",
    "FI",
    "AT",
    "CH",
    "BE",
    "IE",
    "PT",
    "CZ",
    "HU",
    "RO",
    "GR",
    "TR",
    "AU",
    "NZ",
    "MX",
    "AR",
    "CL",
    "CO",
    "ZA",
    "NG",
    "EG",
    "KE",
    "CN",
    "KR",
    "SG",
]
BROWSERS = ["Chrome", "Firefox", "Safari", "Edge", "Mobile Safari", "Samsung Internet"]
SYSTEMS = ["Windows", "macOS", "Linux", "Android", "iOS"]
DEVICES = ["desktop", "mobile", "tablet"]
REFERRERS = [f"ref{i}.example" for i in range(20)]
SOURCES = ["newsletter", "ads", "twitter", "partner", "rss"]
NAMES = ["signup", "download", "play", "share", "buy"]
CHUNK = 50_000


# --- Worker: one database, one size


def zipf(rng: random.Random, items: list[str]) -> str:
    return items[min(int(rng.paretovariate(1.2)) - 1, len(items) - 1)]


class Generated:
    """Raw rows streamed out, and the aggregates ingest would have kept, built alongside.

    Every visitor has one session, so "new to this hour / day / week / month" is known per
    session without a global set, as `aggregates.apply` would have found it."""

    def __init__(self, website_pk: int) -> None:
        from zenovay import aggregates

        self.agg = aggregates
        self.pk = website_pk
        self.tally: dict[int, list[int]] = defaultdict(lambda: [0] * len(aggregates.TALLY_COLUMNS))
        self.last: dict[int, int] = defaultdict(int)
        self.col = {name: i for i, name in enumerate(aggregates.TALLY_COLUMNS)}

    def session(self, rng: random.Random, start: dt.datetime, budget: int):
        """(events, session, first_seen rows) of one visit of a new visitor."""
        a = self.agg
        visitor = rng.getrandbits(62)
        facts = {
            "referrer_host": rng.choice(REFERRERS) if rng.random() < 0.3 else "",
            "utm_source": rng.choice(SOURCES) if rng.random() < 0.1 else "",
            "country": zipf(rng, COUNTRIES),
            "device": rng.choice(DEVICES),
            "browser": zipf(rng, BROWSERS),
            "os": zipf(rng, SYSTEMS),
        }
        plan = ["pageview"] * rng.randint(1, 5)
        if rng.random() < 0.1:
            plan.insert(rng.randint(1, len(plan)), "event")
        if rng.random() < 0.5:
            plan.append("engagement")
        events, seen, ts = [], {}, start
        counts = {"pageview": 0, "event": 0}
        path = ""
        for kind in plan[:budget]:
            if ts > NOW - dt.timedelta(seconds=1):
                break
            us = a.micros(ts)
            q = us // a.QUARTER_US
            spans = a.periods(ZONE, q)
            row = self.tally[q]
            self.last[q] = max(self.last[q], us)
            name = ""
            if kind == "pageview":
                path = zipf(rng, PATHS)
                row[self.col["pageviews"]] += 1
                self._see(seen, spans, us, a.hour_bit(ZONE, q))
            elif kind == "event":
                name = rng.choice(NAMES)
                row[self.col["custom_events"]] += 1
            if kind in counts:
                counts[kind] += 1
            events.append(
                (ts, kind, visitor, path if kind != "event" or path else "/", name, facts)
            )
            ts += dt.timedelta(seconds=rng.uniform(10, 120))
        if not events:
            return [], None, []
        first, last = events[0][0], events[-1][0]
        q = a.quarter_of(first)
        row = self.tally[q]
        duration = (last - first) // dt.timedelta(microseconds=1)
        row[self.col["sessions"]] += 1
        row[self.col["bounces"]] += counts["pageview"] == 1 and counts["event"] == 0
        row[self.col["session_pageviews"]] += counts["pageview"]
        row[self.col["duration_us"]] += duration
        self._see(seen, a.periods(ZONE, q), a.micros(first), a.SESSION)
        session = (visitor, first, last, counts, events[0][3], path, facts)
        rows = [
            (visitor, *key, first_us, bits)
            for key, (first_us, bits) in seen.items()
            if key[0] == a.DAY  # week and month news are read from the day rows
        ]
        return events, session, rows

    def _see(self, seen: dict, spans: tuple, us: int, bit: int) -> None:
        """A pageview's hour bit or a session's bit on the visitor's day row and its week
        and month rows, counted as `apply` counts it (events come in order, and the visitor
        is new: every row is)."""
        a = self.agg
        for kind in (a.DAY, a.WEEK, a.MONTH):
            mark = bit if kind == a.DAY or bit == a.SESSION else a.PAGEVIEW
            key = (kind, spans[a._PERIOD_INDEX[kind]])
            first_us, bits = seen.get(key, (None, 0))
            if bits & mark:
                continue
            count = self.tally[us // a.QUARTER_US]
            if bit == a.SESSION:
                count[self.col[a._SESSION_COLUMN[kind]]] += 1
            else:
                if kind == a.DAY:
                    count[self.col["hour_visitors"]] += 1
                if not bits & a.PAGES:
                    count[self.col[a._VISITOR_COLUMN[kind]]] += 1
                    first_us = us
            seen[key] = (first_us, bits | mark)


class Sink:
    """Rows into one table in chunks: COPY on PostgreSQL, executemany on SQLite."""

    def __init__(self, table: str, columns: list[str]) -> None:
        from django.db import connection

        self.connection, self.table, self.columns, self.rows = connection, table, columns, []
        self.written = 0

    def add(self, row: tuple) -> None:
        self.rows.append(row)
        if len(self.rows) >= CHUNK:
            self.flush()

    def flush(self) -> None:
        from django.db import transaction

        if not self.rows:
            return
        with transaction.atomic(), self.connection.cursor() as cursor:
            if self.connection.vendor == "postgresql":
                with cursor.cursor.copy(
                    f"COPY {self.table} ({', '.join(self.columns)}) FROM STDIN"
                ) as copy:
                    for row in self.rows:
                        copy.write_row(row)
            else:
                adapt = self.connection.ops.adapt_datetimefield_value
                marks = ", ".join(["%s"] * len(self.columns))
                cursor.executemany(
                    f"INSERT INTO {self.table} ({', '.join(self.columns)}) VALUES ({marks})",  # noqa: S608
                    [[adapt(v) if isinstance(v, dt.datetime) else v for v in r] for r in self.rows],
                )
        self.written += len(self.rows)
        self.rows = []


EVENT_COLUMNS = [
    "website_id",
    "ts",
    "type",
    "visitor",
    "path",
    "hostname",
    "referrer_host",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "name",
    "props",
    "engaged_ms",
    "country",
    "device",
    "browser",
    "os",
]
SESSION_COLUMNS = [
    "website_id",
    "visitor",
    "started_at",
    "last_event_at",
    "pageviews",
    "custom_events",
    "entry_path",
    "exit_path",
    "referrer_host",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "country",
    "device",
    "browser",
    "os",
]
FIRST_SEEN_COLUMNS = [
    "website_id",
    "visitor",
    "kind",
    "period",
    "first_us",
    "bits",
    "prev",
]
# Dropped while loading and built after it, as a restore would.
INDEXES = {
    "postgresql": [
        (
            "ALTER TABLE zenovay_firstseen DROP CONSTRAINT first_seen_visitor",
            "ALTER TABLE zenovay_firstseen ADD CONSTRAINT first_seen_visitor"
            " UNIQUE (website_id, kind, visitor, period)",
        ),
    ],
    "sqlite": [],  # there the unique constraint is part of the table
}
PLAIN_INDEXES = [
    ("first_seen_time", "zenovay_firstseen (website_id, kind, period, first_us)"),
    ("event_site_ts", "zenovay_event (website_id, ts)"),
    ("event_site_type_ts", "zenovay_event (website_id, type, ts)"),
    ("session_site_start", "zenovay_session (website_id, started_at)"),
    ("session_visitor", "zenovay_session (website_id, visitor, last_event_at)"),
]


def load(website, size: int, seed: int = 11) -> dict[str, float]:
    from django.db import connection

    from zenovay import aggregates

    vendor = connection.vendor
    began = time.perf_counter()
    with connection.cursor() as cursor:
        if vendor == "sqlite":  # loading only: 2 GB of page cache, no fsync per chunk
            cursor.execute("PRAGMA cache_size=-2000000")
            cursor.execute("PRAGMA synchronous=OFF")
        for drop, _ in INDEXES[vendor]:
            cursor.execute(drop)
        for name, _ in PLAIN_INDEXES:
            cursor.execute(f"DROP INDEX {name}")
    rng = random.Random(seed)
    month = aggregates.periods(ZONE, aggregates.quarter_of(NOW))[3]
    lo, hi = float(month), NOW.timestamp() - 2
    # 3.6 events a session on average: 98 % of the events in a first pass over the whole
    # span (up to `now`), the rest topped up at random times until there are `size`.
    sessions = int(size * 0.98 / 3.6) + 1
    starts = sorted(rng.uniform(lo, hi) for _ in range(sessions))
    gen = Generated(website.pk)
    events = Sink("zenovay_event", EVENT_COLUMNS)
    visits = Sink("zenovay_session", SESSION_COLUMNS)
    first_seen = Sink("zenovay_firstseen", FIRST_SEEN_COLUMNS)
    left, budget = size, 10  # no session is cut short in the first pass
    while left > 0:
        for start in starts:
            if left <= 0:
                break
            moment = dt.datetime.fromtimestamp(start, dt.UTC)
            rows, session, seen = gen.session(rng, moment, min(budget, left))
            for ts, kind, visitor, path, name, facts in rows:
                events.add(
                    (
                        website.pk,
                        ts,
                        kind,
                        visitor,
                        path,
                        DOMAIN,
                        facts["referrer_host"],
                        facts["utm_source"],
                        "",
                        "",
                        name,
                        None,
                        800 if kind == "engagement" else 0,
                        facts["country"],
                        facts["device"],
                        facts["browser"],
                        facts["os"],
                    )
                )
            left -= len(rows)
            if session:
                visitor, first, last, counts, entry, exit_path, facts = session
                visits.add(
                    (
                        website.pk,
                        visitor,
                        first,
                        last,
                        counts["pageview"],
                        counts["event"],
                        entry,
                        exit_path,
                        facts["referrer_host"],
                        facts["utm_source"],
                        "",
                        "",
                        facts["country"],
                        facts["device"],
                        facts["browser"],
                        facts["os"],
                    )
                )
                for visitor_, kind, period, first_us, bits in seen:
                    first_seen.add((website.pk, visitor_, kind, period, first_us, bits, 0))
        starts = sorted(rng.uniform(lo, hi) for _ in range(max(left // 3, 1)))
    for sink in (events, visits, first_seen):
        sink.flush()
    tally = Sink("zenovay_tally", ["website_id", "quarter", *aggregates.TALLY_COLUMNS, "last_us"])
    for q in sorted(gen.tally):
        tally.add((website.pk, q, *gen.tally[q], gen.last[q]))
    tally.flush()
    loaded = time.perf_counter()
    with connection.cursor() as cursor:
        for _, create in INDEXES[vendor]:
            cursor.execute(create)
        for name, spec in PLAIN_INDEXES:
            cursor.execute(f"CREATE INDEX {name} ON {spec}")
        if vendor == "postgresql":
            cursor.execute("VACUUM ANALYZE")
        else:  # back to what the application runs with
            cursor.execute("PRAGMA cache_size=-2000")
            cursor.execute("PRAGMA synchronous=NORMAL")
    return {
        "events": events.written,
        "sessions": visits.written,
        "first_seen_rows": first_seen.written,
        "tally_rows": tally.written,
        "load_seconds": round(loaded - began, 1),
        "index_seconds": round(time.perf_counter() - loaded, 1),
    }


def check_against_rebuild(website) -> None:
    """The loaded aggregates are what ingest (and `rebuild`) would have made."""
    from django.db import transaction

    from zenovay import aggregates

    loaded = aggregates.rows_of(website.pk)
    with transaction.atomic():
        aggregates.rebuild(website.pk)
    rebuilt = aggregates.rows_of(website.pk)
    for name, a, b in zip(("tally", "first seen"), loaded, rebuilt, strict=True):
        if a != b:
            raise SystemExit(f"loaded {name} rows differ from a rebuild: {len(a)} vs {len(b)}")


@contextmanager
def frozen(now: dt.datetime) -> Iterator[None]:
    from unittest import mock

    with mock.patch("django.utils.timezone.now", lambda: now):
        yield


def figure_calls(website) -> dict[str, Callable[[], object]]:
    from django.test import Client

    from dashboard import reports
    from dashboard.views import _period_context
    from zenovay import metrics
    from zenovay.push.snapshots import _compute

    client = Client()
    client.force_login(website.owner)
    page = f"/dashboard/{website.website_id}/?period=month"

    def dashboard_page() -> None:
        response = client.get(page)
        assert response.status_code == 200, response.status_code

    return {
        "live": lambda: metrics.live(website, NOW),
        "realtime": lambda: metrics.realtime(website, NOW),
        "stats_today": lambda: metrics.stats(website, "today", NOW),
        "stats_week": lambda: metrics.stats(website, "week", NOW),
        "stats_month": lambda: metrics.stats(website, "month", NOW),
        "status": lambda: metrics.status(website, NOW),
        "push": lambda: _compute(website.pk),
        "dashboard_charts": lambda: (reports.hourly(website, NOW), reports.daily(website, NOW)),
        "dashboard_month": lambda: _period_context(website, "month", NOW),
        "dashboard_page": dashboard_page,
    }


def time_figures(website, rounds: int) -> dict[str, float]:
    from django.core.cache import cache

    calls = figure_calls(website)
    samples: dict[str, list[float]] = defaultdict(list)
    with frozen(NOW):
        for call in calls.values():  # warm: plans, templates, first connection
            cache.clear()
            call()
        for _ in range(rounds):
            for name, call in calls.items():
                cache.clear()
                began = time.perf_counter()
                call()
                samples[name].append(time.perf_counter() - began)
    return {name: round(statistics.median(values) * 1000, 2) for name, values in samples.items()}


def setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "zenovay.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def new_website(domain: str = DOMAIN):
    from zenovay.models import Website
    from zenovay.owners import create_owner

    owner = create_owner(f"bench{random.getrandbits(20)}", "pw-bench-123")
    return Website.objects.create(domain=domain, timezone=ZONE, owner=owner)


def window_plan(website) -> list[str]:
    """The plan of the current window's query: an index range over the 300 seconds."""
    from django.db import connection

    from zenovay import metrics
    from zenovay.models import Event

    rows = (
        Event.objects.filter(website=website, ts__gt=NOW - metrics.WINDOW, ts__lte=NOW)
        .order_by("ts", "id")
        .values_list("visitor", "type", "path", "country")
    )
    sql, params = rows.query.sql_with_params()
    prefix = (
        "EXPLAIN (ANALYZE, BUFFERS) "
        if connection.vendor == "postgresql"
        else "EXPLAIN QUERY PLAN "
    )
    with connection.cursor() as cursor:
        cursor.execute(prefix + sql, params)
        return [" ".join(str(v) for v in row) for row in cursor.fetchall()]


def seal_finished_days(website) -> float:
    """Seconds to build the month's day sketches (breakdowns, goals and visitors over days
    read them), as every server's sealer does in the background, one day at a time, as
    each day ends; today's are brought forward up to a minute or two before now."""
    from zenovay import sketches

    with frozen(NOW):
        began = time.perf_counter()
        sketches.seal(website, NOW, days=31)
        return round(time.perf_counter() - began, 1)


def worker(size: int, rounds: int) -> dict[str, Any]:
    setup_django()
    website = new_website()
    loaded = load(website, size)
    if size <= 100_000:
        check_against_rebuild(website)
    loaded["seal_seconds"] = seal_finished_days(website)
    ms = time_figures(website, rounds)
    from zenovay import metrics

    shown = metrics.realtime(website, NOW)
    sample = {
        "current": shown["visitors"]["current"],
        "today": shown["visitors"]["today"],
        "month": metrics.stats(website, "month", NOW)["visitors"]["month"],
    }
    return {
        "size": size,
        **loaded,
        "ms": ms,
        "visitors": sample,
        "window_plan": window_plan(website),
    }


def ingest_worker(batches: int) -> dict[str, Any]:
    """Seconds per event of `ingest.store`, with and without `aggregates.apply`, in turn."""
    from unittest import mock

    setup_django()
    from zenovay import aggregates, ingest
    from zenovay.payload import Payload

    website = new_website("ingest.example")
    calls = {"n": 0}
    real = aggregates.apply

    def counted(changes, zones=None, known=None) -> None:
        calls["n"] += 1
        real(changes, zones, known)

    rng = random.Random(5)
    visitors = [rng.getrandbits(62) for _ in range(3000)]
    # A visitor is an address and a user agent: its country, browser and OS stay put.
    profiles = {
        v: (zipf(rng, COUNTRIES), zipf(rng, BROWSERS), zipf(rng, SYSTEMS)) for v in visitors
    }
    clock = [NOW - dt.timedelta(days=2)]

    def batch() -> list:
        out = []
        for _ in range(100):
            clock[0] += dt.timedelta(milliseconds=300)
            payload = Payload(
                code=website.tracking_code,
                type="pageview",
                hostname="ingest.example",
                path=zipf(rng, PATHS),
                referrer_host=rng.choice(["", "", "", *REFERRERS]),
            )
            visitor = rng.choice(visitors)
            country, browser, system = profiles[visitor]
            out.append(
                ingest.Pending(
                    website_pk=website.pk,
                    visitor=visitor,
                    ts=clock[0],
                    payload=payload,
                    country=country,
                    device="desktop",
                    browser=browser,
                    os=system,
                )
            )
        return out

    def measure() -> dict[str, float]:
        times: dict[str, list[float]] = {"with": [], "without": []}
        for i in range(batches * 2):
            mode = "with" if i % 2 else "without"
            events = batch()
            patch = mock.patch.object(aggregates, "apply", lambda *args: None)
            if mode == "without":
                patch.start()
            began = time.perf_counter()
            ingest.store(events)
            times[mode].append((time.perf_counter() - began) / len(events))
            if mode == "without":
                patch.stop()
        return {mode: statistics.median(v) * 1e6 for mode, v in times.items()}

    with (
        mock.patch.object(aggregates, "apply", counted),
        mock.patch.object(ingest, "push", mock.Mock()),
    ):
        for _ in range(3):
            ingest.store(batch())  # warm
        if calls["n"] == 0:
            raise SystemExit("ingest.store does not call aggregates.apply")
        per_event = measure()  # visitors new to the day, the week and the month
        clock[0] += dt.timedelta(days=1)  # Friday 27 March: the same week and month
        later = measure()  # many of them seen this week already: new to the day only
    whole = collect_path_cost(website, batches)
    return {
        "us_per_event_with": round(per_event["with"], 1),
        "us_per_event_without": round(per_event["without"], 1),
        "ratio": round(per_event["with"] / per_event["without"], 2),
        "later_us_with": round(later["with"], 1),
        "later_us_without": round(later["without"], 1),
        "later_ratio": round(later["with"] / later["without"], 2),
        "collect_us_with": round(whole["with"], 1),
        "collect_us_without": round(whole["without"], 1),
        "collect_ratio": round(whole["with"] / whole["without"], 2),
    }


def collect_path_cost(website, batches: int) -> dict[str, float]:
    """Seconds per event of the whole collect path but the HTTP framing: 100 concurrent
    `api.collect.answer` calls (rate limit, client address and country, parsing, checks,
    identity, the group commit and `ingest.store`), with and without `aggregates.apply`."""
    import asyncio
    from unittest import mock

    from api import collect
    from zenovay import aggregates, push

    rng = random.Random(7)
    agents = [
        f"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
        f"Chrome/{120 + i}.0.0.0 Safari/537.36"
        for i in range(20)
    ]

    def request() -> dict[str, Any]:
        body = {
            "code": website.tracking_code,
            "type": "pageview",
            "url": f"https://ingest.example{zipf(rng, PATHS)}",
            "referrer": rng.choice([None, None, None, *(f"https://{r}/" for r in REFERRERS)]),
        }
        return {
            "method": "POST",
            "headers": {"user-agent": rng.choice(agents), "content-type": "text/plain"},
            "body": json.dumps(body).encode(),
            "peer": f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}",
        }

    async def rounds() -> dict[str, list[float]]:
        times: dict[str, list[float]] = {"with": [], "without": []}
        for i in range(batches * 2 + 2):
            mode = "with" if i % 2 else "without"
            calls = [request() for _ in range(100)]
            patch = mock.patch.object(aggregates, "apply", lambda *args: None)
            if mode == "without":
                patch.start()
            began = time.perf_counter()
            answers = await asyncio.gather(*(collect.answer(**call) for call in calls))
            if i >= 2:  # the first two warm up
                times[mode].append((time.perf_counter() - began) / len(calls))
            if mode == "without":
                patch.stop()
            if any(answer.status != 202 for answer in answers):
                raise SystemExit(f"collect answered {sorted({a.status for a in answers})}")
        return times

    with (
        mock.patch.object(push, "ensure_ticker", lambda: None),
        mock.patch("django.conf.settings.ZENOVAY_COLLECT_PER_MINUTE", 0),
    ):
        times = asyncio.run(rounds())
    return {mode: statistics.median(v) * 1e6 for mode, v in times.items()}


# --- Parent: databases, sizes, tables


def run_worker(database, args: list[str], script: str = __file__) -> dict[str, Any] | None:
    """`script` (this one, or another benchmark reusing its site) as a worker process."""
    env = {**os.environ, **database.env, "DJANGO_ALLOWED_HOSTS": "testserver,localhost"}
    env.pop("REDIS_URL", None)
    done = subprocess.run(
        [sys.executable, script, *args], env=env, cwd=ROOT, capture_output=True, text=True
    )
    if done.returncode != 0:
        if "--ingest" in args:
            print(f"  ingest not measured: {done.stderr.strip().splitlines()[-1]}")
            return None
        raise SystemExit(f"worker {args} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


@contextmanager
def fresh_database(kind: str, keep: bool):
    if kind == "sqlite":
        with sqlite_database(keep) as database:
            yield database
    else:
        with postgres_database(pg_url(PG_DATABASE, DEFAULT_PG_ADMIN), keep) as database:
            yield database


def bench_ingest(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    with fresh_database(kind, args.keep) as database:
        cost = run_worker(database, ["--ingest", "--batches", str(args.ingest_batches)])
    cost = cost or dict.fromkeys(
        (
            "us_per_event_with",
            "us_per_event_without",
            "ratio",
            "later_us_with",
            "later_us_without",
            "later_ratio",
            "collect_us_with",
            "collect_us_without",
            "collect_ratio",
        ),
        "-",
    )
    print(
        f"{kind} ingest.store per event: {cost['us_per_event_with']} us with aggregates, "
        f"{cost['us_per_event_without']} us without ({cost['ratio']}x), visitors new to the"
        f" month; a day later, many seen this week: {cost['later_us_with']} us with,"
        f" {cost['later_us_without']} us without ({cost['later_ratio']}x)\n"
        f"{kind} whole collect path per event (100 at once, no HTTP framing): "
        f"{cost['collect_us_with']} us with aggregates, {cost['collect_us_without']} us"
        f" without ({cost['collect_ratio']}x)\n",
        flush=True,
    )
    return cost


@dataclass
class Measured:
    """One database's figures (for the JSON) and what the epilogue prints of them."""

    data: dict[str, Any]
    tables: list[Table] = field(default_factory=list)
    ratios: list[Ratio] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def bench_database(kind: str, sizes: list[int], args: argparse.Namespace) -> Measured:
    if args.ingest_only:
        return Measured({"ingest": bench_ingest(kind, args)})
    results = []
    for size in sizes:
        print(f"{kind}: {size:,} events ...", flush=True)
        with fresh_database(kind, args.keep) as database:
            results.append(
                run_worker(
                    database, ["--worker", "--size", str(size), "--rounds", str(args.rounds)]
                )
            )
        print(
            f"  loaded in {results[-1]['load_seconds']} s + indexes "
            f"{results[-1]['index_seconds']} s; the month's day sketches sealed in"
            f" {results[-1]['seal_seconds']} s",
            flush=True,
        )
    small, large = results[0], results[-1]
    rows = []
    for name in FIGURES:
        ratio = large["ms"][name] / small["ms"][name] if small["ms"][name] else None
        rows.append(
            [name, *(f"{r['ms'][name]:.1f}" for r in results), f"{ratio:.2f}" if ratio else "-"]
        )
    header = ["figure (ms)", *(f"{r['size']:.0e}".replace("+0", "") for r in results), "ratio"]
    sizes = [str(r["size"]) for r in results]
    row_keys = ("events", "sessions", "first_seen_rows", "tally_rows")
    tables = [
        Table(kind, header, rows),
        Table(f"{kind} rows", ["rows", *sizes],
              [[key, *(str(r[key]) for r in results)] for key in row_keys]),
        Table(f"{kind} visitors", ["visitors", *sizes],
              [[key, *(str(r["visitors"][key]) for r in results)]
               for key in ("current", "today", "month")]),
    ]  # fmt: skip
    ratios = [
        Ratio(f"{kind} {name} {large['size']:.0e}/{small['size']:.0e}".replace("+0", ""),
              large["ms"][name] / small["ms"][name] if small["ms"][name] else None,
              f"{large['ms'][name]:.1f} ms", f"{small['ms'][name]:.1f} ms", "<= 2",
              bool(small["ms"][name]) and large["ms"][name] / small["ms"][name] <= 2)
        for name in FIGURES
    ]  # fmt: skip
    notes = [f"{kind} window query at {large['size']:,} events:\n  "
             + "\n  ".join(large["window_plan"])]  # fmt: skip
    return Measured({"sizes": results, "ingest": bench_ingest(kind, args)}, tables, ratios, notes)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--sizes", default="10000,1000000,10000000")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--ingest-batches", type=int, default=30)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--json", type=Path, default=VAR / "bench-traffic.json")
    parser.add_argument("--ingest-only", action="store_true", help="only the ingest cost")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--ingest", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--batches", type=int, default=30, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.size, args.rounds)))
        return 0
    if args.ingest:
        print(json.dumps(ingest_worker(args.batches)))
        return 0
    sizes = sorted(int(s) for s in args.sizes.split(","))
    kinds = ("sqlite", "postgres") if args.db == "both" else (args.db,)
    measured = {kind: bench_database(kind, sizes, args) for kind in kinds}
    return epilogue(
        "bench/traffic.py",
        settings={"now": NOW.isoformat(), "zone": ZONE, "sizes": sizes, "rounds": args.rounds},
        tables=[t for m in measured.values() for t in m.tables],
        ratios=[r for m in measured.values() for r in m.ratios],
        notes=[n for m in measured.values() for n in m.notes],
        data={kind: m.data for kind, m in measured.items()},
        json_path=args.json,
    )


if __name__ == "__main__":
    ensure_venv()
    sys.exit(main())
