#!/usr/bin/env python3
"""Snapshot cost against stored history (issue 3: "Cost does not grow with history").

    .venv/bin/python bench/metrics.py [--db sqlite|postgres|both] [--sizes 10000,1000000]
                                      [--others 100000] [--rounds 30] [--per-round 3]
                                      [--seconds 120] [--sqlite-analyze] [--keep]

Calls zenovay.metrics.live / realtime / stats(today, week, month) / status directly,
in-process, uncached, for one website with 10^4 stored events and for one with 10^6,
each in its own database beside 10^5 events of 20 other websites, on SQLite and on
PostgreSQL. The goal: latency(10^6) / latency(10^4) <= 2 for every snapshot.

Data (written straight into the tables, not through HTTP: executemany in one
transaction on SQLite, COPY on PostgreSQL): sessions of 1 to 10 pageviews with
engagement and custom events, like `manage.py simulate` makes. The website's recent
traffic - from min(1st of the month, Monday, yesterday) 00:00 UTC up to "now": about
7,000 events, 1,500 of them today, and 80 visitors in the current 300 s window - is the
same in both databases (same seed, same "now", passed to every call). Only the history
before that differs: the rest of 10^4 or 10^6 events, spread over the 13 months before.

Each database size runs in its own worker process (this script with --worker), kept
alive so that the two are timed alternately - round after round, each snapshot
--per-round times in a round - which shares out the noise of other processes on the
machine. Reported per snapshot and database: median and p95 for each size, and the
ratio of medians (and of p95s). Afterwards each worker records the SQL every snapshot
runs, times each statement alone and EXPLAINs it (PostgreSQL: EXPLAIN ANALYZE, BUFFERS;
SQLite: EXPLAIN QUERY PLAN); a statement whose own ratio is over 2 is printed with its
plan of the large database: that is the query that reads history.

Databases: a SQLite file per size in a temporary directory (the embedded default
settings, no DATABASE_URL) and the PostgreSQL database zenovay_bench_metrics (one schema
per size), created for the run and dropped after it (--keep to keep them). PostgreSQL is
VACUUM ANALYZEd after loading, as autovacuum would have done on a real table; SQLite is
not ANALYZEd (the application never does) unless --sqlite-analyze.
Results also go to var/bench-metrics.json.
"""

from __future__ import annotations

import argparse
import bisect
import datetime as dt
import itertools
import json
import math
import operator
import os
import random
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common import (
    DEFAULT_PG_ADMIN,
    ROOT,
    Ratio,
    Table,
    code_version,
    epilogue,
    exit_on_sigterm,
    percentile,
    pg_execute,
    pg_url,
    uptime,
)

GOAL_RATIO = 2.0
PG_DATABASE = "zenovay_bench_metrics"
SNAPSHOTS = ("live", "realtime", "stats_today", "stats_week", "stats_month", "status")
OTHER_SITES = 20
HISTORY_DAYS = 395  # about 13 months
WINDOW_SECONDS = 300
RECENT_EARLIER_EVENTS = 4_000  # from the recent span's start to yesterday 00:00
YESTERDAY_EVENTS = 1_500
TODAY_EVENTS = 1_500  # today up to the current window
WINDOW_SESSIONS = 80
EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()
PROTOCOL = "BENCH "  # prefix of the worker's answer lines on stdout

SESSION_COLUMNS = (
    "id", "website_id", "visitor", "started_at", "last_event_at", "pageviews",
    "custom_events", "entry_path", "exit_path", "referrer_host", "utm_source", "utm_medium",
    "utm_campaign", "country", "device", "browser", "os",
)  # fmt: skip
EVENT_COLUMNS = (
    "id", "website_id", "session_id", "ts", "type", "visitor", "path", "hostname",
    "referrer_host", "utm_source", "utm_medium", "utm_campaign", "country", "device",
    "browser", "os", "name", "props", "engaged_ms",
)  # fmt: skip


# ---------------------------------------------------------------------------------------
# Worker: one database, one size. Loads the data, then answers commands on stdin.


PAGES = ["/", "/pricing", "/blog/", "/blog/real-time-analytics", "/docs/getting-started",
         "/docs/api/collect", "/about", "/products/widget", "/contact", "/changelog"]  # fmt: skip
PAGE_CUMULATIVE = list(itertools.accumulate([30, 10, 8, 6, 8, 4, 4, 6, 2, 2]))
COUNTRIES = ["US", "DE", "GB", "FR", "IN", "BR", "JP", "CA", "NL", "", "ES", "AU"]
COUNTRY_CUMULATIVE = list(itertools.accumulate([30, 10, 9, 6, 9, 5, 5, 5, 4, 4, 3, 3]))
REFERRERS = ["", "", "", "google.com", "news.ycombinator.com", "duckduckgo.com", "t.co"]
AGENTS = [("desktop", "Chrome", "Windows"), ("desktop", "Firefox", "Linux"),
          ("mobile", "Safari", "iOS"), ("mobile", "Chrome", "Android"),
          ("desktop", "Safari", "macOS")]  # fmt: skip
PAGE_COUNT_CUMULATIVE = list(itertools.accumulate([45, 20, 12, 8, 5, 3, 3, 2, 1, 1]))


def pick(rng: random.Random, items: list, cumulative: list[int]) -> Any:
    """A weighted choice (what rng.choices does, without its per-call set-up)."""
    return items[bisect.bisect(cumulative, rng.random() * cumulative[-1])]


@dataclass
class Rows:
    """Sessions and events as tuples in SESSION_COLUMNS / EVENT_COLUMNS order."""

    month_starts: list[float]  # salt periods: visitor ids change from one month to the next
    suffix: str  # after a timestamp: "" for SQLite (naive UTC), "+00" for PostgreSQL
    sessions: list[tuple] = field(default_factory=list)
    events: list[tuple] = field(default_factory=list)
    next_session: int = 1
    next_event: int = 1
    days: dict[int, str] = field(default_factory=dict)

    @classmethod
    def spanning(cls, first: dt.datetime, last: dt.datetime, sqlite: bool) -> Rows:
        month, starts = first.replace(day=1, hour=0, minute=0, second=0, microsecond=0), []
        while month <= last:
            starts.append(month.timestamp())
            month = (month + dt.timedelta(days=32)).replace(day=1)
        return cls(month_starts=starts, suffix="" if sqlite else "+00")

    def stamp(self, ts: float) -> str:
        """A UTC timestamp as Django writes it for SQLite (str of a naive datetime), or
        with "+00" for PostgreSQL's COPY: formatted by hand, datetime objects are slow."""
        micros = round(ts * 1_000_000)
        seconds, micro = divmod(micros, 1_000_000)
        day, rest = divmod(seconds, 86_400)
        prefix = self.days.get(day)
        if prefix is None:
            prefix = self.days[day] = f"{dt.date.fromordinal(EPOCH_ORDINAL + day)} "
        hour, rest = divmod(rest, 3600)
        minute, second = divmod(rest, 60)
        fraction = f".{micro:06d}" if micro else ""
        return f"{prefix}{hour:02d}:{minute:02d}:{second:02d}{fraction}{self.suffix}"

    def visitor(self, person: int, ts: float) -> int:
        """A person's visitor id in the salt period (month) of `ts`."""
        month = bisect.bisect(self.month_starts, ts)
        return (person * 0x9E3779B97F4A7C15 + month * 0xC2B2AE3D27D4EB4F) % (1 << 62)


def add_session(
    rows: Rows, rng: random.Random, site: int, person: int, start: float, limit: float
) -> int:
    """One visit: pageviews a few seconds to minutes apart, maybe an engagement and a
    custom event, nothing after `limit`. The number of events written."""
    visitor = rows.visitor(person, start)
    country = pick(rng, COUNTRIES, COUNTRY_CUMULATIVE)
    device, browser, os_name = AGENTS[int(rng.random() * len(AGENTS))]
    referrer = REFERRERS[int(rng.random() * len(REFERRERS))]
    host = "www.bench.example" if site == 1 else f"www.other-{site}.example"
    count = pick(rng, range(1, 11), PAGE_COUNT_CUMULATIVE)
    pages = [pick(rng, PAGES, PAGE_CUMULATIVE) for _ in range(count)]
    spacing = 37.0 if limit - start < 2 * WINDOW_SECONDS else 147.0
    session_id = rows.next_session
    rows.next_session += 1
    ts = start
    kinds: list[tuple[float, str, str, str, int]] = []
    for page in pages:
        kinds.append((ts, "pageview", page, "", 0))
        ts = min(limit, ts + 3 + rng.random() * spacing)
    customs = 0
    if rng.random() < 0.08:
        kinds.append((ts, "event", pages[-1], "signup", 0))
        customs = 1
    if rng.random() < 0.6:
        ts = min(limit, ts + 1 + rng.random() * 29)
        kinds.append((ts, "engagement", pages[-1], "", 15000))
    last = max(kinds[-1][0], kinds[count - 1][0])
    stamp = rows.stamp
    rows.sessions.append(
        (session_id, site, visitor, stamp(start), stamp(last), count, customs, pages[0],
         pages[-1], referrer, "", "", "", country, device, browser, os_name)
    )  # fmt: skip
    event_id = rows.next_event
    for moment, kind, path, name, engaged in kinds:
        rows.events.append(
            (event_id, site, session_id, stamp(moment), kind, visitor, path, host,
             referrer, "", "", "", country, device, browser, os_name, name, None, engaged)
        )  # fmt: skip
        event_id += 1
    rows.next_event = event_id
    return len(kinds)


def fill_span(
    rows: Rows, rng: random.Random, site: int, start: float, end: float, events: int, persons: int
) -> None:
    """Sessions starting uniformly in [start, end) until `events` events are written."""
    written = 0
    while written < events and end > start:
        begin = rng.uniform(start, end)
        written += add_session(rows, rng, site, rng.randrange(persons), begin, end)


@dataclass(frozen=True)
class Spans:
    now: float
    history_start: float
    recent_start: float  # min(1st of the month, Monday, yesterday), 00:00 UTC
    yesterday: float
    today: float

    @classmethod
    def at(cls, now: dt.datetime) -> Spans:
        day = now.date()
        midnight = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
        yesterday = midnight - dt.timedelta(days=1)
        month = midnight.replace(day=1)
        week = midnight - dt.timedelta(days=day.weekday())
        recent = min(month, week, yesterday)
        return cls(
            now=now.timestamp(),
            history_start=(recent - dt.timedelta(days=HISTORY_DAYS)).timestamp(),
            recent_start=recent.timestamp(),
            yesterday=yesterday.timestamp(),
            today=midnight.timestamp(),
        )


def generate(now: dt.datetime, site_events: int, others: int, seed: int, sqlite: bool) -> Rows:
    """The website (pk 1): the same recent traffic whatever the size, history before it;
    20 other websites (pk 2..21): `others` events over the same 13 months and now."""
    spans = Spans.at(now)
    first = dt.datetime.fromtimestamp(spans.history_start, dt.UTC)
    rows = Rows.spanning(first, now, sqlite)
    recent = random.Random(seed)  # identical for every size
    window_start = spans.now - WINDOW_SECONDS
    earlier, yesterday = RECENT_EARLIER_EVENTS, YESTERDAY_EVENTS
    if spans.recent_start >= spans.yesterday:
        yesterday += earlier
    else:
        fill_span(rows, recent, 1, spans.recent_start, spans.yesterday, earlier, 2_000)
    fill_span(rows, recent, 1, spans.yesterday, spans.today, yesterday, 2_000)
    if window_start - spans.today > 60:
        fill_span(rows, recent, 1, spans.today, window_start, TODAY_EVENTS, 2_000)
    for _ in range(WINDOW_SESSIONS):
        begin = recent.uniform(window_start + 5, spans.now - 5)
        add_session(rows, recent, 1, recent.randrange(2_000), begin, spans.now)
    history = max(0, site_events - len(rows.events))
    persons = max(500, history // 6)
    fill_span(
        rows, random.Random(seed + 1), 1, spans.history_start, spans.recent_start - 3600,
        history, persons,
    )  # fmt: skip
    other = random.Random(seed + 2)
    for site in range(2, 2 + OTHER_SITES):
        fill_span(rows, other, site, spans.history_start, spans.now, others // OTHER_SITES, 5_000)
    return rows


def _projection(model: Any, known: tuple[str, ...]) -> tuple[list[str], Callable[[tuple], tuple]]:
    """The model's columns as they are now, and a function that maps a generated row (in
    `known` order) onto them: the schema may change under the benchmark, so generated
    columns it lacks are dropped, and columns not generated get their field default (put
    last, so that the mapping is one itemgetter and a tuple concatenation)."""
    fields = model._meta.concrete_fields
    generated = [f for f in fields if f.column in known]
    extra = [f for f in fields if f.column not in known]
    defaults = tuple(f.get_default() if f.has_default() or not f.null else None for f in extra)
    getter = operator.itemgetter(*(known.index(f.column) for f in generated))
    columns = [f.column for f in generated + extra]
    if not defaults:
        return columns, getter
    return columns, lambda row: getter(row) + defaults


def load(rows: Rows, analyze_sqlite: bool) -> None:
    """Write the rows and refresh the planner statistics (see the module doc)."""
    from django.db import connection, transaction

    from zenovay.models import Event, Session

    sqlite = connection.vendor == "sqlite"
    tables = [(Session, rows.sessions, SESSION_COLUMNS), (Event, rows.events, EVENT_COLUMNS)]
    with transaction.atomic():
        raw = connection.connection
        for model, generated, known in tables:
            table = model._meta.db_table
            columns, project = _projection(model, known)
            names = ", ".join(columns)
            values = map(project, generated)
            if sqlite:
                marks = ", ".join("?" * len(columns))
                insert = f"INSERT INTO {table} ({names}) VALUES ({marks})"  # noqa: S608
                raw.executemany(insert, values)
            else:
                statement = f"COPY {table} ({names}) FROM STDIN"
                with raw.cursor() as cursor, cursor.copy(statement) as copy:
                    for row in values:
                        copy.write_row(row)
    with connection.cursor() as cursor:
        if not sqlite:
            for table in ("zenovay_session", "zenovay_event"):
                cursor.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "  # noqa: S608
                    f"(SELECT max(id) FROM {table}))"
                )
                cursor.execute(f"VACUUM ANALYZE {table}")
        elif analyze_sqlite:
            cursor.execute("ANALYZE")


def snapshot_calls(now: dt.datetime) -> dict[str, Callable[[], object]]:
    from zenovay import metrics
    from zenovay.models import Website

    site = Website.objects.get(pk=1)
    return {
        "live": lambda: metrics.live(site, now),
        "realtime": lambda: metrics.realtime(site, now),
        "stats_today": lambda: metrics.stats(site, "today", now),
        "stats_week": lambda: metrics.stats(site, "week", now),
        "stats_month": lambda: metrics.stats(site, "month", now),
        "status": lambda: metrics.status(site, now),
    }


class Limiter:
    """Stops what runs longer than `seconds` (a history scan can take minutes): SQLite is
    interrupted from a timer thread, PostgreSQL has a statement_timeout. A snapshot that
    timed out once is not called again: its later samples are None too."""

    def __init__(self, seconds: float) -> None:
        from django.db import connection

        self.seconds = seconds
        self.timed_out: set[str] = set()
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(f"SET statement_timeout = {int(seconds * 1000)}")

    def run(self, call: Callable[[], object]) -> tuple[float | None, object]:
        """(seconds taken, result), or (None, None) when stopped."""
        from django.db import OperationalError, connection

        timer = None
        if connection.vendor == "sqlite":
            connection.ensure_connection()
            timer = threading.Timer(self.seconds, connection.connection.interrupt)
            timer.start()
        started = time.perf_counter()
        try:
            result = call()
        except OperationalError:  # interrupted / canceling statement due to statement timeout
            return None, None
        finally:
            if timer:
                timer.cancel()
        return time.perf_counter() - started, result

    def sample(self, name: str, call: Callable[[], object]) -> float | None:
        if name in self.timed_out:
            return None
        seconds, _ = self.run(call)
        if seconds is None:
            self.timed_out.add(name)
        return seconds


def capture_queries(limiter: Limiter, call: Callable[[], object]) -> list[tuple[str, tuple]]:
    """The statements a call runs (up to the one stopped, if it was)."""
    from django.db import connection

    seen: list[tuple[str, tuple]] = []

    def wrapper(execute, sql, params, many, context):
        seen.append((sql, tuple(params or ())))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(wrapper):
        limiter.run(call)
    return seen


def run_query(sql: str, params: tuple) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        cursor.fetchall()


def explain(sql: str, params: tuple, analyze: bool = True) -> str:
    """SQLite: EXPLAIN QUERY PLAN. PostgreSQL: EXPLAIN (ANALYZE, BUFFERS) unless `analyze`
    is off (the statement itself takes too long to run)."""
    from django.db import connection

    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("EXPLAIN QUERY PLAN " + sql, params)
            return "\n".join(str(row[-1]) for row in cursor.fetchall())
        how = "(ANALYZE, BUFFERS, TIMING OFF) " if analyze else ""
        cursor.execute(f"EXPLAIN {how}" + sql, params)
        return "\n".join(row[0] for row in cursor.fetchall())


def query_report(
    limiter: Limiter, calls: dict[str, Callable[[], object]], reps: int
) -> dict[str, list[dict]]:
    """Per snapshot, each statement it runs: SQL, parameters, median and fastest time alone
    (None when it ran over the limit), plan. The fastest run is the steadier measure of
    what a statement costs while other processes compete for the CPUs."""
    report: dict[str, list[dict]] = {}
    for name, call in calls.items():
        report[name] = []
        for sql, params in capture_queries(limiter, call):
            samples = []
            for _ in range(reps + 1):  # the first run warms up
                seconds, _ = limiter.run(lambda s=sql, p=params: run_query(s, p))
                samples.append(seconds)
                if seconds is None:
                    break
            stopped = None in samples
            report[name].append(
                {
                    "sql": sql,
                    "params": [str(p) for p in params],
                    "median_ms": None if stopped else statistics.median(samples[1:]) * 1000,
                    "min_ms": None if stopped else min(samples[1:]) * 1000,
                    "plan": explain(sql, params, analyze=not stopped),
                }
            )
    return report


def answer(data: object) -> None:
    sys.stdout.write(PROTOCOL + json.dumps(data, default=str) + "\n")
    sys.stdout.flush()


def worker(args: argparse.Namespace) -> int:
    """Set up Django on the database the environment names, load, then serve commands."""
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from zenovay.models import Event, Session, Website

    now = dt.datetime.fromisoformat(args.now)
    started = time.monotonic()
    call_command("migrate", verbosity=0, interactive=False)
    Website.objects.create(domain="bench.example")
    for site in range(2, 2 + OTHER_SITES):
        Website.objects.create(domain=f"other-{site}.example")
    rows = generate(now, args.events, args.others, args.seed, connection.vendor == "sqlite")
    generated = time.monotonic()
    load(rows, args.sqlite_analyze)
    loaded = time.monotonic()
    limiter = Limiter(args.call_timeout)
    calls = snapshot_calls(now)
    snapshots = {name: limiter.run(call)[1] for name, call in calls.items()}  # also warms up
    for name, call in calls.items():
        limiter.sample(name, call)
    recent_start = dt.datetime.fromtimestamp(Spans.at(now).recent_start, dt.UTC)
    answer(
        {
            "vendor": connection.vendor,
            "site_events": Event.objects.filter(website_id=1).count(),
            "site_sessions": Session.objects.filter(website_id=1).count(),
            "all_events": Event.objects.count(),
            "recent_events": Event.objects.filter(website_id=1, ts__gte=recent_start).count(),
            "generate_seconds": round(generated - started, 1),
            "load_seconds": round(loaded - generated, 1),
            "snapshot": snapshots,
            "timed_out": sorted(limiter.timed_out),
        }
    )
    for line in sys.stdin:
        command = line.split()
        if not command:
            continue
        if command[0] == "time":
            per_round = int(command[1])
            answer({n: [limiter.sample(n, c) for _ in range(per_round)] for n, c in calls.items()})
        elif command[0] == "explain":
            answer(query_report(limiter, calls, int(command[1])))
        elif command[0] == "quit":
            break
    return 0


# ---------------------------------------------------------------------------------------
# Parent: databases, workers, alternating rounds, report.


@dataclass
class Worker:
    size: int
    proc: subprocess.Popen
    info: dict[str, Any] = field(default_factory=dict)
    samples: dict[str, list[float]] = field(default_factory=dict)
    queries: dict[str, list[dict]] = field(default_factory=dict)

    def ask(self, command: str) -> Any:
        assert self.proc.stdin and self.proc.stdout
        if command:
            self.proc.stdin.write(command + "\n")
            self.proc.stdin.flush()
        for line in self.proc.stdout:
            if line.startswith(PROTOCOL):
                return json.loads(line.removeprefix(PROTOCOL))
        raise SystemExit(f"worker for {self.size} events ended (exit {self.proc.wait()})")

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin
                self.proc.stdin.write("quit\n")
                self.proc.stdin.flush()
                self.proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()


def worker_env(database: str, location: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "zenovay.settings",
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
            "DJANGO_DEBUG": "0",
            "PYTHONUNBUFFERED": "1",
        }
    )
    if database == "sqlite":
        env["ZENOVAY_VAR_DIR"] = location
    else:
        env["DATABASE_URL"] = location
    return env


def start_worker(database: str, location: str, size: int, args: argparse.Namespace) -> Worker:
    command = [
        *(sys.executable, str(Path(__file__).resolve()), "--worker", "--events", str(size)),
        *("--others", str(args.others), "--now", args.now, "--seed", str(args.seed)),
    ]
    command += ["--call-timeout", str(args.call_timeout)]
    if args.sqlite_analyze:
        command.append("--sqlite-analyze")
    proc = subprocess.Popen(
        command,
        cwd=ROOT,
        env=worker_env(database, location),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    return Worker(size=size, proc=proc)


@contextmanager
def locations(database: str, sizes: list[int], args: argparse.Namespace) -> Iterator[list[str]]:
    """Per size: a ZENOVAY_VAR_DIR (SQLite) or a DATABASE_URL with its own schema."""
    if database == "sqlite":
        with tempfile.TemporaryDirectory(prefix="zenovay-bench-metrics-") as directory:
            paths = [Path(directory) / f"size-{size}" for size in sizes]
            for path in paths:
                path.mkdir()
            yield [str(path) for path in paths]
            if args.keep:
                subprocess.run(["cp", "-r", directory, directory + "-kept"], check=False)
                print(f"  kept a copy in {directory}-kept")
        return
    url = pg_url(PG_DATABASE, args.pg_admin_url)
    pg_execute(args.pg_admin_url, f'DROP DATABASE IF EXISTS "{PG_DATABASE}" WITH (FORCE)')
    pg_execute(args.pg_admin_url, f'CREATE DATABASE "{PG_DATABASE}"')
    try:
        for size in sizes:
            pg_execute(url, f"CREATE SCHEMA size_{size}")
        yield [f"{url}?options=-c%20search_path%3Dsize_{size}" for size in sizes]
    finally:
        if args.keep:
            print(f"  kept database {PG_DATABASE}")
        else:
            pg_execute(args.pg_admin_url, f'DROP DATABASE IF EXISTS "{PG_DATABASE}" WITH (FORCE)')


def bench_database(database: str, args: argparse.Namespace) -> dict[str, Any]:
    print(f"{database}: loading {' and '.join(f'{s:,}' for s in args.sizes)} events", flush=True)
    with locations(database, args.sizes, args) as places:
        workers: list[Worker] = []
        try:
            for place, size in zip(places, args.sizes, strict=True):
                worker = start_worker(database, place, size, args)
                workers.append(worker)
                worker.info = worker.ask("")  # one at a time: loading is CPU-bound
                print(
                    f"  {size:>9,} events: generated in {worker.info['generate_seconds']} s, "
                    f"loaded in {worker.info['load_seconds']} s "
                    f"({worker.info['site_events']:,} site events, "
                    f"{worker.info['recent_events']:,} recent, "
                    f"{worker.info['all_events']:,} in all)",
                    flush=True,
                )
            check_same_recent(workers)
            timing_rounds(workers, args)
            for worker in workers:
                worker.queries = worker.ask(f"explain {args.query_reps}")
        finally:
            for worker in workers:
                worker.stop()
    return summarize(database, workers, args.call_timeout)


def check_same_recent(workers: list[Worker]) -> None:
    """Same recent traffic: every snapshot must be identical (but the tracking code)."""
    first = workers[0].info["snapshot"]
    for worker in workers[1:]:
        for name, value in worker.info["snapshot"].items():
            if value is None or first[name] is None:
                continue  # over the time limit: reported with the timings
            if name == "status":
                value = {**value, "tracking_code": first[name]["tracking_code"]}
            if value != first[name]:
                print(f"  WARNING {name} differs between sizes: {value} vs {first[name]}")


def timing_rounds(workers: list[Worker], args: argparse.Namespace) -> None:
    started = time.monotonic()
    for round_number in range(args.rounds):
        order = workers if round_number % 2 == 0 else workers[::-1]
        for worker in order:
            for name, samples in worker.ask(f"time {args.per_round}").items():
                worker.samples.setdefault(name, []).extend(samples)
        elapsed = time.monotonic() - started
        if round_number >= 4 and elapsed > args.seconds:
            print(f"  stopped after {round_number + 1} rounds ({elapsed:.0f} s)")
            break


def _ms(samples: list[float | None], q: float) -> float:
    """Percentile in ms; a sample stopped at the time limit counts as infinitely slow."""
    return percentile([math.inf if v is None else v for v in samples], q) * 1000


def _ratio(large: float | None, small: float | None) -> float | None:
    if large is None or small is None or not small:
        return None
    return large / small


def _json_ms(value: float) -> float | None:
    return None if math.isinf(value) else round(value, 3)


def summarize(database: str, workers: list[Worker], limit: float) -> dict[str, Any]:
    """Per snapshot: median and p95 per size (None: over the time limit) and the ratios."""
    small, large = workers[0], workers[-1]
    rows = []
    for name in SNAPSHOTS:
        row: dict[str, Any] = {"snapshot": name}
        for label, worker in (("small", small), ("large", large)):
            samples = worker.samples[name]
            row[f"{label}_median_ms"] = _json_ms(_ms(samples, 50))
            row[f"{label}_p95_ms"] = _json_ms(_ms(samples, 95))
            row[f"{label}_samples"] = sum(v is not None for v in samples)
            row[f"{label}_timeouts"] = sum(v is None for v in samples)
        for stat in ("median", "p95"):
            row[f"ratio_{stat}"] = _ratio(row[f"large_{stat}_ms"], row[f"small_{stat}_ms"])
        rows.append(row)
    return {
        "database": database,
        "sizes": [w.size for w in workers],
        "call_timeout_s": limit,
        "info": {str(w.size): w.info for w in workers},
        "snapshots": rows,
        "queries": compare_queries(small, large),
    }


def compare_queries(small: Worker, large: Worker) -> list[dict[str, Any]]:
    """Statement by statement (both sizes run the same ones): time alone and ratio."""
    found = []
    for name in SNAPSHOTS:
        pairs = zip(small.queries.get(name, []), large.queries.get(name, []), strict=False)
        for index, (a, b) in enumerate(pairs):
            found.append(
                {
                    "snapshot": name,
                    "index": index,
                    "small_ms": a["min_ms"],
                    "large_ms": b["min_ms"],
                    "small_median_ms": a["median_ms"],
                    "large_median_ms": b["median_ms"],
                    "ratio": _ratio(b["min_ms"], a["min_ms"]),
                    "sql": b["sql"],
                    "params": b["params"],
                    "plan_small": a["plan"],
                    "plan_large": b["plan"],
                }
            )
    return found


def _cell(ms: float | None, limit: float) -> object:
    return f">{limit:g} s" if ms is None else ms


def _reads_history(q: dict[str, Any]) -> bool:
    if q["large_ms"] is None:
        return True
    ratio = q["ratio"]
    return ratio is not None and ratio > GOAL_RATIO and q["large_ms"] - q["small_ms"] > 1.0


def snapshot_table(result: dict[str, Any], small: int, large: int) -> tuple[Table, list[str]]:
    limit = result["call_timeout_s"]
    header = ["snapshot", f"{small:.0e} med ms", f"{small:.0e} p95 ms", f"{large:.0e} med ms",
              f"{large:.0e} p95 ms", "ratio med", "ratio p95", "samples", "verdict"]  # fmt: skip
    lines, problems = [], []
    for row in result["snapshots"]:
        ratio = row["ratio_median"]
        ok = ratio is not None and ratio <= GOAL_RATIO
        lines.append(
            [row["snapshot"], _cell(row["small_median_ms"], limit),
             _cell(row["small_p95_ms"], limit), _cell(row["large_median_ms"], limit),
             _cell(row["large_p95_ms"], limit), "inf" if ratio is None else ratio,
             "inf" if row["ratio_p95"] is None else row["ratio_p95"],
             f"{row['small_samples']}/{row['large_samples']}",
             "ok" if ok else f"OVER {GOAL_RATIO:g}"]
        )  # fmt: skip
        if not ok:
            shown = f"{ratio:.2f}" if ratio else f"large over the {limit:g} s limit"
            problems.append(f"{result['database']}/{row['snapshot']}: ratio {shown}")
    title = f"{result['database']}: uncached snapshot latency, {small:,} vs {large:,} events"
    return Table(title, header, lines), problems


def statement_table(result: dict[str, Any]) -> Table:
    limit = result["call_timeout_s"]
    rows = [
        [f"{q['snapshot']}#{q['index']}", _cell(q["small_ms"], limit),
         _cell(q["large_ms"], limit), q["ratio"] or "", q["sql"][:90].replace("\n", " ")]
        for q in result["queries"]
    ]  # fmt: skip
    title = f"{result['database']}: statements, each timed alone (fastest of --query-reps runs)"
    return Table(title, ["statement", "small ms", "large ms", "ratio", "sql"], rows)


def history_readers(result: dict[str, Any]) -> list[str]:
    """The statements whose cost grows with history, with their plans on both sizes."""
    limit = result["call_timeout_s"]
    out = []
    flagged: dict[str, dict[str, Any]] = {}  # the same SQL runs for several periods: the worst
    for q in sorted(result["queries"], key=lambda q: -(q["ratio"] or math.inf)):
        if _reads_history(q):
            flagged.setdefault(q["sql"], q)
    for q in flagged.values():
        ratio = f"{q['ratio']:.1f}" if q["ratio"] else f"inf (over {limit:g} s)"
        out.append(
            f"READS HISTORY: {q['snapshot']}#{q['index']}, ratio {ratio}\n"
            f"SQL: {q['sql']}\nparams: {q['params']}\n"
            "plan, large database:\n  " + q["plan_large"].replace("\n", "\n  ") + "\n"
            "plan, small database:\n  " + q["plan_small"].replace("\n", "\n  ")
        )
    return out


def report(results: list[dict[str, Any]], args: argparse.Namespace) -> int:
    small, large = args.sizes[0], args.sizes[-1]
    tables, ratios, notes, problems = [], [], [], []
    for result in results:
        table, found = snapshot_table(result, small, large)
        tables += [table, statement_table(result)]
        problems += found
        notes += history_readers(result)
        for row in result["snapshots"]:
            ratios.append(
                Ratio(f"{result['database']}/{row['snapshot']} median", row["ratio_median"],
                      f"{row['large_median_ms']} ms at {large:,}",
                      f"{row['small_median_ms']} ms at {small:,}", f"<= {GOAL_RATIO:g}",
                      row["ratio_median"] is not None and row["ratio_median"] <= GOAL_RATIO)
            )  # fmt: skip
    settings = {"now": args.now, "sizes": args.sizes, "others": args.others,
                "rounds": args.rounds, "per_round": args.per_round,
                "sqlite_analyze": args.sqlite_analyze}  # fmt: skip
    return epilogue("bench/metrics.py", settings=settings, tables=tables, ratios=ratios,
                    notes=notes, problems=problems,
                    data={"goal_ratio": GOAL_RATIO, "results": results},
                    json_path=args.json)  # fmt: skip


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Snapshot latency against history (module doc).")
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--sizes", default="10000,1000000", help="site events, small,large")
    parser.add_argument("--others", type=int, default=100_000, help="events of other sites")
    parser.add_argument("--rounds", type=int, default=30, help="alternating rounds (default 30)")
    parser.add_argument("--per-round", type=int, default=3, help="calls per snapshot per round")
    parser.add_argument(
        "--seconds", type=float, default=120, help="stop the rounds after this (at least 5 run)"
    )
    parser.add_argument(
        "--call-timeout",
        type=float,
        default=20.0,
        help="stop a snapshot (or statement) after this many seconds (default 20)",
    )
    parser.add_argument("--query-reps", type=int, default=15, help="runs of each statement alone")
    parser.add_argument("--sqlite-analyze", action="store_true", help="ANALYZE SQLite after load")
    parser.add_argument("--seed", type=int, default=2025)
    parser.add_argument("--now", default="", help="ISO instant the data and calls use")
    parser.add_argument("--pg-admin-url", default=DEFAULT_PG_ADMIN)
    parser.add_argument("--json", type=Path, default=ROOT / "var" / "bench-metrics.json")
    parser.add_argument("--keep", action="store_true", help="keep the databases afterwards")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--events", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.sizes = sorted(int(s) for s in args.sizes.split(","))
    if len(args.sizes) != 2:
        parser.error("--sizes takes two sizes, small,large")
    args.now = args.now or dt.datetime.now(dt.UTC).isoformat()
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    exit_on_sigterm()
    if args.worker:
        return worker(args)
    print(f"code {code_version()}; machine: {uptime()}")
    names = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    results = [bench_database(name, args) for name in names]
    return report(results, args)


if __name__ == "__main__":
    from common import ensure_venv

    ensure_venv()
    sys.exit(main(sys.argv[1:]))
