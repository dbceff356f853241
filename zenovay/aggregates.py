"""Aggregates that ingest maintains, so that every figure costs the same at any traffic.

The problem: a figure computed from a period's raw events costs what the period's traffic
costs (5-7 s for `/e/stats` at 10^7 events a month). Instead, each batch of events updates
a few aggregate rows in its own transaction (`apply`, called by `ingest.store`), so what was
acknowledged is in every figure and nothing is counted twice, and reads sum those rows.

Buckets are 15-minute UTC quarters (`Tally`). Every IANA zone's offset in use is a whole
number of quarter hours (+05:30 Kolkata, +05:45 Kathmandu, +08:45 Eucla, +12:45 Chatham)
and DST moves clocks by 30 or 60 minutes, so every local hour, day, ISO week and month is
a whole number of quarters: any site time zone is served exactly from UTC rows, and the
website's zone only decides which quarters a figure sums. (Hour buckets in UTC would put
Kolkata's midnight inside a bucket.) A month is at most 2,976 quarters whatever the traffic.

Sums (pageviews, custom events, sessions, bounces, session pageviews, durations) are
additive: a quarter row holds them. Sessions belong to the quarter they started in; a
session that grows (a second pageview ends a bounce, an engagement event lengthens it)
applies the difference between its state before and after the event (`Recorded`).

Distinct visitors are not additive, so each is exact through first-seen rows
(`FirstSeen`): per (website, visitor, local day) one row whose bits say what the visitor
did that day so far: a bit per local hour with a pageview and one for a session started
that day. A batch ORs its bits into the rows (inserting those that are absent), and the
statement returns each changed row's bits before and after, so every bit newly set adds
one to a counter in the quarter of the event that set it: a new hour bit to
`hour_visitors`, a first pageview bit of the day to `day_visitors`, a session bit to
`day_session_visitors` (and `day_returning`, see below). Concurrent batches serialise on
the row, and each sees the bits the other left. "Visitors today" is then the sum of
today's quarters' `day_visitors`, and "visitors yesterday before 14:07" the sum of the
quarters before 14:00 plus a count of yesterday's day rows whose first pageview
(`first_us`) is from 14:00 to 14:07 (an index range: the new visitors of one quarter at
most).

Weeks and months have no rows of their own: what was new to a visitor's day (a first
pageview, a first session) is new to its week or month when none of the visitor's
earlier day rows there has it, read in one index range per visitor (website, kind,
visitor, period) after the day rows are written (a day row this batch changed is taken
with its bits before). Ingest holds each visitor's lock while it writes (on SQLite, the
one writer), so no other batch changes those rows between the write and the read. Most
events need no read: a visitor's day row has its hour's bit already; a visitor with no
session in the `HISTORY` has no earlier day row either, and the latest session of the
others, which ingest reads anyway (`known`), mostly tells whether they had one this week
and month. So a visitor new to the month costs one row (three, as rows per week and month
cost, made ingest 1.6-1.7x as costly as without aggregates).

Breakdowns (per page, referrer, UTM source, country, device, browser, OS, event name) are
not kept here: their counts and their visitors come from the day sketches
(`zenovay.sketches`), whose visitors are a HyperLogLog estimate (exact below about 2,000
visitors a value, 0.8 % standard error above), which the traffic issue allows for
breakdowns. Exact visitors per value cost a first-seen row per visitor, value and period:
about nine more rows for each new visitor, which tripled the cost of ingest.

New and returning visitors: a visitor's first session of a day sets its day row's session
bit (the first of a week or month: the first day row there with it), and counts as
returning when the visitor had a session that ended in the 32 days before the period
began (identities live one salt period, a month, at most), looked up then in the session
table by its (website, visitor, last_event_at) index.

Costs of a read (R = rows read): a day is <= 100 quarter rows, a month <= 2,976, a chart
of 30 days <= 2,880; the yesterday cut-off adds two index ranges over one quarter. None
grows with the number of events. The 5-minute window stays a query on raw events over the
(website, ts) index: O(events in the window).

Cost of a batch: one SELECT of the batch's websites' time zones, one multi-row INSERT ...
ON CONFLICT DO UPDATE ... RETURNING of day rows, one SELECT of the earlier day rows and one
of the earlier sessions of the visitors whose latest session does not settle their week,
month or returning check (none when every visitor is new), and one multi-row upsert of
Tally, rows sorted by key so concurrent batches
lock them in the same order and never deadlock. A new visitor costs one first-seen row; a
known one a changed day row in a new hour, and nothing while its session stays in the
hour.

Limits, stated: a website whose time zone changes keeps its past periods as they were
counted; `manage.py rebuild_aggregates --website` re-keys what the raw events still cover.
First-seen rows of a period keep the first *recorded* event's time; events recorded out
of order within one quarter can shift a visitor's first-seen time inside that quarter.
"""

from __future__ import annotations

import datetime as dt
import functools
import sqlite3
import zoneinfo
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple

from django.db import connection

from zenovay.infra import pg

QUARTER_US = 900_000_000
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
RETURNING_LOOKBACK = dt.timedelta(days=32)  # as metrics.RETURNING_LOOKBACK
# How far before a batch's first event a returning check can look: the lookback before the
# start of a month that began up to 31 days (and a local day up to 26 hours) before it.
HISTORY = RETURNING_LOOKBACK + dt.timedelta(days=33)
CHUNK = 400  # rows per multi-row statement (SQLite allows 32,766 parameters)

# Kinds of periods: first-seen rows are kept per local day, week and month; hours are a
# kind of bucket only (a bit of the day row).
HOUR, DAY, WEEK, MONTH = 1, 2, 3, 4
# A first-seen row's bits, what its visitor did in its period so far: a day row has one bit
# per local hour with a pageview (bits 0-23 by the hour on the clock, 24 for the second
# pass of an hour that the change back from DST repeats), a week or month row PAGEVIEW;
# every row SESSION once a session started in the period.
SESSION = 1 << 25
PAGES = SESSION - 1
PAGEVIEW = 1


@dataclass(frozen=True, slots=True)
class SessionState:
    started_at: dt.datetime
    last_event_at: dt.datetime
    pageviews: int
    custom_events: int
    entry_path: str
    exit_path: str
    referrer_host: str
    utm_source: str
    utm_medium: str
    utm_campaign: str
    country: str
    device: str
    browser: str
    os: str


class Latest(NamedTuple):
    """A visitor's latest session before a batch, as ingest found it (microseconds)."""

    started_us: int
    last_us: int
    pageviews: int


@dataclass(frozen=True, slots=True)
class Recorded:
    """One stored event with its visitor's open session before and after it."""

    website_pk: int
    ts: dt.datetime
    visitor: int
    type: Literal["pageview", "engagement", "event"]
    path: str
    hostname: str
    referrer_host: str
    utm_source: str
    utm_medium: str
    utm_campaign: str
    name: str
    props: dict | None
    engaged_ms: int
    country: str
    device: str
    browser: str
    os: str
    session_before: SessionState | None
    session_after: SessionState | None


# --- Time


def micros(moment: dt.datetime) -> int:
    return (moment - EPOCH) // _ONE_US


_ONE_US = dt.timedelta(microseconds=1)


def quarter_of(moment: dt.datetime) -> int:
    return micros(moment) // QUARTER_US


def quarter_start(quarter: int) -> dt.datetime:
    return EPOCH + dt.timedelta(microseconds=quarter * QUARTER_US)


@functools.lru_cache(maxsize=8192)
def periods(zone_name: str, quarter: int) -> tuple[int, int, int, int]:
    """Local hour, day, ISO week and month starts (epoch seconds) of a quarter's events.

    A quarter never straddles a local boundary (see the module docstring), so its start
    stands for every instant in it; the day, week and month starts are built as
    `metrics.period_start` builds them."""
    zone = zoneinfo.ZoneInfo(zone_name)
    local = quarter_start(quarter).astimezone(zone)
    hour = local.replace(minute=0, second=0, microsecond=0)
    day = local.date()
    starts = (day, day - dt.timedelta(days=day.weekday()), day.replace(day=1))
    # mypy cannot count what a starred generator adds: the three starts' midnights
    return (  # type: ignore[return-value]
        int(hour.timestamp()),
        *(int(dt.datetime.combine(d, dt.time(), tzinfo=zone).timestamp()) for d in starts),
    )


# --- Maintenance


def apply(
    changes: Sequence[Recorded],
    zones: dict[int, str] | None = None,
    known: dict[tuple[int, int], Latest] | None = None,
) -> None:
    """Update the aggregates for a batch of recorded events, in the caller's transaction;
    `zones` holds every website's time zone (`website_zones`, looked up when not given);
    `known`, when given, the latest session before the batch of each (website, visitor)
    that had one in the `HISTORY` (ingest reads them, under the visitors' locks): others
    have no earlier session, and most questions about earlier days are answered by it."""
    if not changes:
        return
    if zones is None:
        zones = website_zones({change.website_pk for change in changes})
    batch = _Batch(zones, known=known)
    for change in changes:
        batch.event(change)
        batch.session(change)
    with connection.cursor() as cursor:
        batch.write(cursor)


def website_zones(website_pks: Iterable[int]) -> dict[int, str]:
    """The time zone of each of these websites that still exists, in the caller's
    transaction, which on PostgreSQL also holds them (a key-share lock) until it ends.

    Events and sessions have no foreign-key constraint (see `Event.website`); this lock is
    what keeps them from outliving their website. A website deleted while its events were
    on their way is missing here. A deletion locks the website's row before it deletes its
    rows (`zenovay.signals`), so it waits for the batches that hold the website and then
    deletes their events too, or the batches wait for it and then find the website gone.
    SQLite has one writer at a time: a batch and a deletion never overlap."""
    pks = sorted(website_pks)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            return dict(pg.run(cursor, _ZONES_PG, [pks]))
        sql = f"SELECT id, timezone FROM zenovay_website WHERE id IN {_list(pks)}"  # noqa: S608
        cursor.execute(sql, pks)
        return dict(cursor.fetchall())


_ZONES_PG = (
    "SELECT id, timezone FROM zenovay_website WHERE id = ANY(%s::bigint[])"
    " ORDER BY id FOR KEY SHARE"
)


TALLY_COLUMNS = (
    "pageviews",
    "custom_events",
    "sessions",
    "bounces",
    "session_pageviews",
    "duration_us",
    "hour_visitors",
    "day_visitors",
    "week_visitors",
    "month_visitors",
    "day_session_visitors",
    "week_session_visitors",
    "month_session_visitors",
    "day_returning",
    "week_returning",
    "month_returning",
)
_COLUMN = {name: i for i, name in enumerate(TALLY_COLUMNS)}
_VISITOR_COLUMN = {
    HOUR: "hour_visitors",
    DAY: "day_visitors",
    WEEK: "week_visitors",
    MONTH: "month_visitors",
}
_SESSION_COLUMN = {
    DAY: "day_session_visitors",
    WEEK: "week_session_visitors",
    MONTH: "month_session_visitors",
}
_RETURNING_COLUMN = {DAY: "day_returning", WEEK: "week_returning", MONTH: "month_returning"}
_PERIOD_INDEX = {HOUR: 0, DAY: 1, WEEK: 2, MONTH: 3}
# The same columns as positions in a batch's tally rows.
_PAGEVIEWS, _CUSTOM_EVENTS, _STARTED, _BOUNCES, _SESSION_PAGEVIEWS, _DURATION = range(6)
assert TALLY_COLUMNS[_DURATION] == "duration_us"  # the sums come first, in this order
_HOUR_VISITORS = _COLUMN["hour_visitors"]
_VISITORS = {kind: _COLUMN[name] for kind, name in _VISITOR_COLUMN.items()}
_SESSIONS = {kind: _COLUMN[name] for kind, name in _SESSION_COLUMN.items()}
_RETURNING = {kind: _COLUMN[name] for kind, name in _RETURNING_COLUMN.items()}

Key = tuple[int, int, int, int]  # website, visitor, kind, period


@functools.lru_cache(maxsize=8192)
def hour_bit(zone_name: str, quarter: int) -> int:
    """The bit of a quarter's local hour in its day row. The hour is the one `periods`
    starts (so a 30-minute change back from DST keeps its hour whole, as there)."""
    start = dt.datetime.fromtimestamp(periods(zone_name, quarter)[0], zoneinfo.ZoneInfo(zone_name))
    return 1 << (24 if start.fold else start.hour)


class _Seen:
    """What a batch brings to one day row: bits, when each bit first came, the earliest
    pageview, and the day's week and month."""

    __slots__ = ("bits", "first", "month", "page_us", "week")

    def __init__(self, week: int, month: int) -> None:
        self.bits = 0
        self.first: dict[int, int] = {}  # bit -> earliest microsecond
        self.page_us: int | None = None
        self.week, self.month = week, month

    def add(self, bit: int, us: int) -> None:
        if bit & self.bits and self.first[bit] <= us:
            return
        self.bits |= bit
        self.first[bit] = us
        if bit != SESSION and (self.page_us is None or us < self.page_us):
            self.page_us = us


class _Later:
    """What was new to a visitor's day, for its week or month: the earliest first pageview
    and first session of the batch's days there (None: none)."""

    __slots__ = ("page_us", "session_us")

    def __init__(self, page_us: int | None, session_us: int | None) -> None:
        self.page_us, self.session_us = page_us, session_us

    def add(self, page_us: int | None, session_us: int | None) -> None:
        self.page_us = _earliest(self.page_us, page_us)
        self.session_us = _earliest(self.session_us, session_us)


def _earliest(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else min(a, b)


def _bounce(session: SessionState | None) -> int:
    return int(session is not None and session.pageviews == 1 and session.custom_events == 0)


def _duration(session: SessionState | None) -> int:
    if session is None:
        return 0
    return (session.last_event_at - session.started_at) // dt.timedelta(microseconds=1)


class _Batch:
    """The rows a batch touches, grouped by key; `write` sends them in a few statements.

    `floors` (for `rebuild`) leaves alone every period that starts before the website's
    floor: those are complete already and are not being rebuilt."""

    def __init__(
        self,
        zones: dict[int, str],
        floors: dict[int, int] | None = None,
        known: dict[tuple[int, int], Latest] | None = None,
    ) -> None:
        self.zones = zones
        self.floors = floors or {}
        self.known = known
        self.tally: dict[tuple[int, int], list[int]] = defaultdict(lambda: [0] * len(TALLY_COLUMNS))
        self.last: dict[tuple[int, int], int] = {}
        self.seen: dict[Key, _Seen] = {}
        # first sessions of a period: (website, visitor, kind, period, microsecond)
        self.firsts: list[tuple[int, int, int, int, int]] = []
        self.batch_sessions: dict[tuple[int, int, int], int] = {}  # started -> last event

    def _floor(self, website_pk: int) -> int:
        return self.floors.get(website_pk, -(2**62))

    def event(self, change: Recorded) -> None:
        pk, us = change.website_pk, micros(change.ts)
        quarter = us // QUARTER_US
        key = (pk, quarter)
        if us > self.last.get(key, 0):
            self.last[key] = us
        row = self.tally[key]  # every event's quarter keeps its last event's time
        if change.type == "pageview":
            row[_PAGEVIEWS] += 1
            zone = self.zones[pk]
            spans = periods(zone, quarter)
            if not self._counted(change.session_before, spans[0], zone):
                self._see(pk, change.visitor, hour_bit(zone, quarter), us, spans)
        elif change.type == "event":
            row[_CUSTOM_EVENTS] += 1

    def _counted(self, before: SessionState | None, hour: int, zone: str) -> bool:
        """The visitor's open session had a pageview in this local hour already, so its day
        row has the hour's bit: no need to send it again (most pageviews)."""
        if before is None or before.pageviews == 0:
            return False
        return (
            periods(zone, micros(before.started_at) // QUARTER_US)[0] == hour
            and periods(zone, micros(before.last_event_at) // QUARTER_US)[0] == hour
        )

    def _see(
        self, pk: int, visitor: int, bit: int, us: int, spans: tuple[int, int, int, int]
    ) -> None:
        """A bit for the visitor's day row."""
        _, day, week, month = spans
        if self.floors and day < self._floor(pk):
            return
        key = (pk, visitor, DAY, day)
        seen = self.seen.get(key)
        if seen is None:
            seen = self.seen[key] = _Seen(week, month)
        seen.add(bit, us)

    def session(self, change: Recorded) -> None:
        before, after = change.session_before, change.session_after
        if after is None:
            return
        pk = change.website_pk
        started = micros(after.started_at)
        self.batch_sessions[(pk, change.visitor, started)] = micros(after.last_event_at)
        if before is None:
            self.started(pk, change.visitor, after)
            return
        row = self.tally[(pk, started // QUARTER_US)]
        row[_BOUNCES] += _bounce(after) - _bounce(before)
        row[_SESSION_PAGEVIEWS] += after.pageviews - before.pageviews
        row[_DURATION] += _duration(after) - _duration(before)

    def started(self, pk: int, visitor: int, session: SessionState) -> None:
        """A session began (with `session` as its state so far)."""
        started = micros(session.started_at)
        quarter = started // QUARTER_US
        row = self.tally[(pk, quarter)]
        row[_STARTED] += 1
        row[_BOUNCES] += _bounce(session)
        row[_SESSION_PAGEVIEWS] += session.pageviews
        row[_DURATION] += _duration(session)
        self._see(pk, visitor, SESSION, started, periods(self.zones[pk], quarter))

    # --- Writing

    def write(self, cursor) -> None:
        """Day rows; then, for what was new to the day, whether it was new to the week and
        the month (read from the visitor's earlier day rows); then which first sessions of
        a period were a returning visitor's; then the quarters with every count the news
        add."""
        later: dict[Key, _Later] = {}
        changed: dict[Key, int] = {}
        for key, prev, bits in _upsert_first_seen(cursor, self.seen):
            changed[key] = prev
            self._day_news(key, self.seen[key], prev, bits, later)
        if later:
            before = self._weeks_and_months(cursor, later, changed)
            for key, news in later.items():
                self._later_news(key, news, before.get(key, 0))
        if self.firsts:
            self._count_returning(cursor)
        _upsert_tally(cursor, self.tally, self.last)

    def _day_news(
        self,
        key: Key,
        seen: _Seen,
        prev: int,
        bits: int,
        later: dict[Key, _Later],
    ) -> None:
        """Count what a day row's bits newly set (`bits` after the upsert, `prev` before),
        and note what was new to the day for its week and month (`later`)."""
        pk, visitor, _, day = key
        new, first = bits & ~prev, seen.first
        pages, page_us, session_us = new & PAGES, None, None
        while pages:  # each hour newly seen
            bit = pages & -pages
            pages ^= bit
            us = first[bit]
            self.tally[(pk, us // QUARTER_US)][_HOUR_VISITORS] += 1
            if not prev & PAGES:  # new to the day: its first pageview counts
                page_us = us if page_us is None else min(page_us, us)
        if page_us is not None:
            self.tally[(pk, page_us // QUARTER_US)][_VISITORS[DAY]] += 1
        if new & SESSION:  # a first session in the day
            session_us = first[SESSION]
            self._session_news(pk, visitor, DAY, day, session_us)
        if page_us is None and session_us is None:
            return
        # A visitor new to the day may be new to its week and its month (which need not nest).
        for kind, period in ((WEEK, seen.week), (MONTH, seen.month)):
            if self.floors and period < self._floor(pk):
                continue
            found = later.get((pk, visitor, kind, period))
            if found is None:
                later[(pk, visitor, kind, period)] = _Later(page_us, session_us)
            else:  # days of one week in one batch: the earliest counts
                found.add(page_us, session_us)

    def _later_news(self, key: Key, news: _Later, prev: int) -> None:
        """Count what was new to a week or month (`prev`: what it had before the batch)."""
        pk, visitor, kind, period = key
        if news.page_us is not None and not prev & PAGEVIEW:
            self.tally[(pk, news.page_us // QUARTER_US)][_VISITORS[kind]] += 1
        if news.session_us is not None and not prev & SESSION:
            self._session_news(pk, visitor, kind, period, news.session_us)

    def _session_news(self, pk: int, visitor: int, kind: int, period: int, us: int) -> None:
        """A first session in a period; whether its visitor is returning is asked later."""
        self.tally[(pk, us // QUARTER_US)][_SESSIONS[kind]] += 1
        self.firsts.append((pk, visitor, kind, period, us))

    def _weeks_and_months(
        self, cursor, later: dict[Key, _Later], changed: dict[Key, int]
    ) -> dict[Key, int]:
        """What each of these visitors had done in these weeks and months before the batch
        (PAGEVIEW, SESSION): the union of its day rows there as they were before the batch
        (a row the batch changed, with its bits before, `changed`). Ingest holds each
        visitor's lock (SQLite: the one writer), so no other batch changes them meanwhile."""
        before: dict[Key, int] = defaultdict(int)
        pairs = {(pk, visitor) for pk, visitor, _, _ in later}
        if self.known is not None:
            pairs = set()
            for key in later:
                latest = self.known.get(key[:2])
                start = key[3] * 1_000_000
                if latest is None or latest.last_us < start:
                    continue  # no session, so no day row, in the period before the batch
                if latest.started_us >= start and latest.pageviews:
                    before[key] = PAGEVIEW | SESSION  # its day rows have both
                else:
                    pairs.add(key[:2])  # a session from before the period: read its days
        if not pairs:
            return before
        since = min(key[3] for key in later)
        if connection.vendor == "postgresql":
            rows = pg.run(cursor, _EARLIER_DAYS_PG, [pg.as_json(sorted(pairs)), since])
        else:
            rows = []
            pks = sorted({pk for pk, _ in pairs})
            for visitors in _chunks(sorted({visitor for _, visitor in pairs}), 2000):
                sql = _earlier_days_sqlite(len(pks), len(visitors))
                rows += _sqlite(cursor, sql, [*pks, *visitors, since], returns=True)
        for pk, visitor, period, bits in rows:
            if (pk, visitor) not in pairs:
                continue
            bits = changed.get((pk, visitor, DAY, period), bits)
            if bits:
                _, _, week, month = periods(self.zones[pk], period * 1_000_000 // QUARTER_US)
                done = (PAGEVIEW if bits & PAGES else 0) | (bits & SESSION)
                before[(pk, visitor, WEEK, week)] |= done
                before[(pk, visitor, MONTH, month)] |= done
        return before

    def _count_returning(self, cursor) -> None:
        """Count the first sessions of a period (`firsts`) whose visitor had a session that
        ended in the lookback before the period began.

        This batch's sessions count, and the visitor's sessions before it: the latest one
        (`known`, from ingest) answers when it ended before the period began (it is the
        last to end) and this batch did not go on with it; only the others are read, from
        the session table."""
        lasts: dict[tuple[int, int], list[int]] = defaultdict(list)
        for (pk, visitor, _), last in self.batch_sessions.items():
            lasts[(pk, visitor)].append(last)
        settled = [self._settled(pk, visitor, period) for pk, visitor, _, period, _ in self.firsts]
        unsettled: dict[tuple[int, int], int] = {}  # -> the earliest period asked about
        for (pk, visitor, _, period, _), table in zip(self.firsts, settled, strict=True):
            if table is None:
                unsettled[(pk, visitor)] = min(period, unsettled.get((pk, visitor), period))
        read = self._earlier_sessions(cursor, unsettled)
        for (pk, visitor, kind, period, us), table in zip(self.firsts, settled, strict=True):
            before = read.get((pk, visitor), []) if table is None else table
            found = [*lasts.get((pk, visitor), []), *before]
            start = period * 1_000_000
            if any(start - _LOOKBACK_US <= last < start for last in found):
                self.tally[(pk, us // QUARTER_US)][_RETURNING[kind]] += 1

    def _settled(self, pk: int, visitor: int, period: int) -> list[int] | None:
        """The last-event times of the visitor's sessions before the batch that matter to a
        returning check for a period, when ingest's latest session (`known`) settles it:
        there is none (no times), or it ended before the period began (its time), as it
        stands (this batch did not go on with it). None when the table must be read."""
        if self.known is None:
            return None
        latest = self.known.get((pk, visitor))
        if latest is None:
            return []
        if (
            latest.last_us < period * 1_000_000
            and (pk, visitor, latest.started_us) not in self.batch_sessions
        ):
            return [latest.last_us]
        return None

    def _earlier_sessions(
        self, cursor, asked: dict[tuple[int, int], int]
    ) -> dict[tuple[int, int], list[int]]:
        """Last-event times (microseconds) of the sessions of these visitors in the session
        table, from the lookback before the earliest period asked about on."""
        found: dict[tuple[int, int], list[int]] = defaultdict(list)
        if not asked:
            return found
        lo = min(asked.values()) * 1_000_000 - _LOOKBACK_US
        since = EPOCH + dt.timedelta(microseconds=lo)
        if connection.vendor == "postgresql":
            rows = pg.run(cursor, _EARLIER_SESSIONS_PG, [pg.as_json(sorted(asked)), since])
        else:
            pks = sorted({pk for pk, _ in asked})
            visitors = sorted({visitor for _, visitor in asked})
            cursor.execute(
                "SELECT website_id, visitor, last_event_at FROM zenovay_session"  # noqa: S608
                f" WHERE website_id IN {_list(pks)} AND visitor IN {_list(visitors)}"
                " AND last_event_at >= %s",
                [*pks, *visitors, connection.ops.adapt_datetimefield_value(since)],
            )
            rows = cursor.fetchall()
        for pk, visitor, last in rows:
            if (pk, visitor) in asked:
                found[(pk, visitor)].append(micros(aware(last)))
        return found


# One index range per visitor (website, visitor, last_event_at), whatever the planner's
# statistics say: with IN lists it could scan every recent session of the website.
_EARLIER_SESSIONS_PG = (
    f"SELECT g.w, g.v, s.last_event_at FROM {pg.rows('g', w='bigint', v='bigint')}"  # noqa: S608
    " CROSS JOIN LATERAL (SELECT last_event_at FROM zenovay_session"
    " WHERE website_id = g.w AND visitor = g.v AND last_event_at >= %s) AS s"
)
# A visitor's day rows since a week's or month's start: one index range per visitor of the
# unique index (website, kind, visitor, period).
_EARLIER_DAYS_PG = (
    f"SELECT g.w, g.v, f.period, f.bits FROM {pg.rows('g', w='bigint', v='bigint')}"  # noqa: S608
    " CROSS JOIN LATERAL (SELECT period, bits FROM zenovay_firstseen"
    f" WHERE website_id = g.w AND kind = {DAY} AND visitor = g.v AND period >= %s) AS f"
)


@functools.lru_cache(maxsize=64)
def _earlier_days_sqlite(websites: int, visitors: int) -> str:
    return (
        "SELECT website_id, visitor, period, bits FROM zenovay_firstseen"  # noqa: S608
        f" WHERE website_id IN ({', '.join(['?'] * websites)}) AND kind = {DAY}"
        f" AND visitor IN ({', '.join(['?'] * visitors)}) AND period >= ?"
    )


_LOOKBACK_US = RETURNING_LOOKBACK // _ONE_US


def aware(value: dt.datetime | str) -> dt.datetime:
    """A datetime column as a raw cursor reads it: SQLite gives naive UTC (or text)."""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _chunks(rows: list, size: int = CHUNK) -> Iterator[list]:
    for i in range(0, len(rows), size):
        yield rows[i : i + size]


def _upsert_first_seen(cursor, level: dict[Key, _Seen]) -> list[tuple[Key, int, int]]:
    """Add the bits to the rows (inserting those that are absent); of each row that changed,
    its key and its bits before and after."""
    rows = [[*key, seen.page_us, seen.bits, 0] for key, seen in sorted(level.items())]
    changed = _insert(cursor, _FIRST_SEEN_HEAD, _FIRST_SEEN_TYPES, rows, _FIRST_SEEN_TAIL)
    return [(tuple(row[:4]), row[4], row[5]) for row in changed]


# Statements are composed from these fixed texts only; values always go as parameters.
def _list(values: Sequence[object]) -> str:
    return "(" + ", ".join(["%s"] * len(values)) + ")"


@functools.lru_cache(maxsize=64)
def _many(head: str, width: int, count: int, tail: str) -> str:
    """A multi-row INSERT of `count` rows of `width` parameters each, in SQLite's own
    placeholders (`_insert` runs it on the driver's cursor)."""
    row = "(" + ", ".join(["?"] * width) + ")"
    return f"{head} VALUES {', '.join([row] * count)} {tail}"


_FIRST_SEEN_HEAD = (
    "INSERT INTO zenovay_firstseen (website_id, visitor, kind, period, first_us, bits, prev)"
)
# The update sees the row as it was: `prev` keeps its bits, so the statement tells each
# row's news (bits & ~prev) whatever concurrent batches did before it.
_FIRST_SEEN_TAIL = (
    "ON CONFLICT (website_id, kind, visitor, period) DO UPDATE SET"
    " prev = zenovay_firstseen.bits,"
    " bits = zenovay_firstseen.bits | excluded.bits,"
    " first_us = COALESCE(zenovay_firstseen.first_us, excluded.first_us)"
    " WHERE zenovay_firstseen.bits | excluded.bits <> zenovay_firstseen.bits"
    " RETURNING website_id, visitor, kind, period, prev, bits"
)
_FIRST_SEEN_TYPES = ("bigint", "bigint", "smallint", "bigint", "bigint", "bigint", "bigint")
_TALLY_HEAD = (
    f"INSERT INTO zenovay_tally (website_id, quarter, {', '.join(TALLY_COLUMNS)}, last_us)"
)
_TALLY_TAIL = (
    "ON CONFLICT (website_id, quarter) DO UPDATE SET "
    + ", ".join(f"{c} = zenovay_tally.{c} + excluded.{c}" for c in TALLY_COLUMNS)
    + ", last_us = CASE WHEN excluded.last_us > zenovay_tally.last_us"
    " THEN excluded.last_us ELSE zenovay_tally.last_us END"
)


def _upsert_tally(
    cursor, tally: dict[tuple[int, int], list[int]], last: dict[tuple[int, int], int]
) -> None:
    rows = [[*key, *counts, last.get(key, 0)] for key, counts in sorted(tally.items())]
    _insert(cursor, _TALLY_HEAD, ("bigint",) * (len(TALLY_COLUMNS) + 3), rows, _TALLY_TAIL)


def _insert(cursor, head: str, types: Sequence[str], rows: list[list], tail: str) -> list:
    """One INSERT of many rows; what it returns (RETURNING), if anything.

    PostgreSQL gets the rows as one JSON parameter (`pg.rows`): a statement of one
    parameter whatever the number of rows, which the driver need not parse at length (a
    VALUES list of thousands of placeholders cost more CPU than the database's work).
    SQLite gets VALUES lists of `CHUNK` rows."""
    if not rows:
        return []
    returns = "RETURNING" in tail
    if connection.vendor == "postgresql":
        table = pg.rows("u", **{f"c{i}": kind for i, kind in enumerate(types)})
        sql = f"{head} SELECT * FROM {table} {tail}"  # noqa: S608 - fixed texts
        return pg.run(cursor, sql, [pg.as_json(rows)], returns=returns)
    found = []
    for chunk in _chunks(rows):
        params = [value for row in chunk for value in row]
        found += _sqlite(cursor, _many(head, len(types), len(chunk), tail), params, returns)
    return found


def _sqlite(cursor, sql: str, params: list, returns: bool) -> list:
    """`sql`, written with SQLite's own `?` placeholders, on the driver's cursor under
    Django's `cursor`: Django's SQLite cursor rewrites every `%s` of a statement into `?`
    with a regular expression, 2-3 µs an event for the thousands of the multi-row INSERTs."""
    driver = cursor.cursor
    with connection.wrap_database_errors:
        sqlite3.Cursor.execute(driver, sql, params)
        return driver.fetchall() if returns else []


# --- Rebuilding from raw events

Progress = Callable[[int, int], None]


def rebuild(
    website_pk: int,
    since: dt.datetime | None = None,
    *,
    progress: Progress | None = None,
    chunk: int = 5000,
) -> tuple[dt.datetime, int]:
    """Recompute one website's aggregates from `since` (default: its oldest event) on, from
    its raw events and sessions; idempotent. Returns the floor it rebuilt from and the
    number of events replayed. Run it in a transaction (the command does)."""
    from zenovay.models import Event, FirstSeen, Session, Tally, Website

    website = Website.objects.get(pk=website_pk)
    if since is None:
        since = (
            Event.objects.filter(website=website)
            .order_by("ts")
            .values_list("ts", flat=True)
            .first()
        )
        if since is None:
            since = dt.datetime.now(dt.UTC)
    floor, first = rebuild_floor(website.timezone, since)
    floor_s = int(floor.timestamp())
    Tally.objects.filter(website=website, quarter__gte=quarter_of(floor)).update(
        **{column: 0 for column in TALLY_COLUMNS if not column.startswith("month_")}
    )
    Tally.objects.filter(website=website, quarter__gte=quarter_of(first)).update(
        month_visitors=0, month_session_visitors=0, month_returning=0
    )
    FirstSeen.objects.filter(website=website, period__gte=floor_s).delete()
    zones = {website.pk: website.timezone}
    events = Event.objects.filter(website=website, ts__gte=floor).order_by("ts", "id")
    total, done = events.count(), 0
    fields = [f.name for f in Event._meta.concrete_fields if f.name not in ("id", "website")]
    for rows in _chunks_of(events.values_list(*fields), chunk):
        batch = _Batch(zones, {website.pk: floor_s})
        for row in rows:
            values = dict(zip(fields, row, strict=True))
            batch.event(
                Recorded(website_pk=website.pk, session_before=None, session_after=None, **values)
            )
        with connection.cursor() as cursor:
            batch.write(cursor)
        done += len(rows)
        if progress:
            progress(done, total)
    sessions = Session.objects.filter(website=website, started_at__gte=floor).order_by(
        "started_at", "id"
    )
    for rows in _chunks_of(sessions, chunk):
        batch = _Batch(zones, {website.pk: floor_s})
        for session in rows:
            batch.started(website.pk, session.visitor, _state(session))
        with connection.cursor() as cursor:
            batch.write(cursor)
    return floor, total


def rows_of(website_pk: int) -> list[list[tuple]]:
    """Every aggregate row of a website, sorted, without ids and first-seen rows' `prev` (the
    bits before their last change: history, not figures; Tally rows that count nothing left
    out): what ingest kept, to compare with what `rebuild` makes (tests, benchmarks)."""
    from zenovay.models import FirstSeen, Tally

    found = []
    for model in (Tally, FirstSeen):
        fields = [f.name for f in model._meta.concrete_fields if f.name not in ("id", "prev")]
        rows = sorted(model.objects.filter(website_id=website_pk).values_list(*fields))
        found.append([row for row in rows if model is not Tally or any(row[2:-1])])
    return found


def rebuild_floor(zone_name: str, since: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """Where a rebuild from `since` starts: the local Monday on or before the 1st of its
    month (returned second), so every week and month it touches is rebuilt whole; the
    month before, which may share that week, keeps its own month rows."""
    zone = zoneinfo.ZoneInfo(zone_name)
    first = since.astimezone(zone).date().replace(day=1)
    monday = first - dt.timedelta(days=first.weekday())
    return tuple(  # type: ignore[return-value]
        dt.datetime.combine(day, dt.time(), tzinfo=zone).astimezone(dt.UTC)
        for day in (monday, first)
    )


def _chunks_of(rows: Iterable, size: int) -> Iterator[list]:
    chunk = []
    for row in rows.iterator(chunk_size=size) if hasattr(rows, "iterator") else rows:
        chunk.append(row)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _state(session) -> SessionState:
    return SessionState(
        started_at=session.started_at,
        last_event_at=session.last_event_at,
        pageviews=session.pageviews,
        custom_events=session.custom_events,
        entry_path=session.entry_path,
        exit_path=session.exit_path,
        referrer_host=session.referrer_host,
        utm_source=session.utm_source,
        utm_medium=session.utm_medium,
        utm_campaign=session.utm_campaign,
        country=session.country,
        device=session.device,
        browser=session.browser,
        os=session.os,
    )
