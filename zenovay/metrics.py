"""The read path: one function per snapshot, returning JSON-ready TypedDicts.

Every number the API, the widgets and the dashboard show is defined here once,
following the contract's metric definitions. A snapshot reads the aggregates ingest
maintains (`zenovay.aggregates`: quarter-hour rows and first-seen counters), so it costs
the same at 10^7 events a month as at 10^4:

- the current window: raw events over the (website, ts) index, O(events in 300 s);
- today / week / month visitors, pageviews and session figures: sums over the period's
  quarter rows (<= 96 for a day, <= 2,976 for a month), one query for all of them;
- yesterday up to the current time of day (`change`): the quarters before the cut-off's
  quarter, plus the pageviews and first-seen visitors of that one quarter up to the
  cut-off (two index ranges over <= 15 minutes);
- `status.last_event`: the latest quarter row (one index probe).

Every figure is exact. Whole quarters answer "up to now" when `now` is the present (the
figure then holds what was recorded up to the moment it is read) or nothing was recorded
after it; a question about the past before later events (tests, replays of history) is
answered from raw events as before, so figures are the same either way.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Literal, TypedDict, TypeGuard

from django.db.models import Avg, Count, Exists, F, Max, OuterRef, Q, Sum
from django.utils import timezone

from zenovay import aggregates, pagepaths
from zenovay.aggregates import micros, quarter_of, quarter_start
from zenovay.countries import country_name
from zenovay.models import Event, FirstSeen, Session, Tally, Website

WINDOW = dt.timedelta(seconds=300)
ACTIVE_WITHIN = dt.timedelta(hours=24)
TOP = 10
Period = Literal["today", "week", "month"]
PERIODS: tuple[Period, ...] = ("today", "week", "month")


def is_period(value: str) -> TypeGuard[Period]:
    """Whether a string from a request names one of the periods."""
    return value in PERIODS


class LiveSnapshot(TypedDict):
    liveCount: int
    timestamp: str


class Trend(TypedDict):
    current: int
    today: int
    change: float


class CountryCount(TypedDict):
    code: str
    name: str
    count: int


class PageCount(TypedDict):
    path: str
    visitors: int


class RealtimeSnapshot(TypedDict):
    visitors: Trend
    pageViews: Trend
    countries: list[CountryCount]
    topPages: list[PageCount]
    timestamp: str


class VisitorCounts(TypedDict):
    live: int
    today: int
    week: int
    month: int


class StatsSnapshot(TypedDict):
    visitors: VisitorCounts
    bounceRate: float
    avgSessionDuration: int
    pagesPerSession: float
    newVisitorRate: float
    returningVisitorRate: float
    timestamp: str


class StatusSnapshot(TypedDict):
    active: bool
    tracking_code: str
    domain: str
    last_event: str | None


# --- Snapshots


def live(website: Website, now: dt.datetime | None = None) -> LiveSnapshot:
    now = _now(now)
    return {"liveCount": _live_count(website, now), "timestamp": iso(now)}


def realtime(website: Website, now: dt.datetime | None = None) -> RealtimeSnapshot:
    now = _now(now)
    window = _window(website, now)
    if fresh(website, now):
        today_visitors, today_views, y_visitors, y_views = _days_from_tallies(website, now)
    else:
        start = day_start(now, website)
        y_start, y_end = _yesterday_span(now, website)
        today_visitors, today_views = _pageview_totals(website, start, now)
        y_visitors, y_views = _pageview_totals(website, y_start, y_end)
    return {
        "visitors": {
            "current": window.visitors,
            "today": today_visitors,
            "change": change(today_visitors, y_visitors),
        },
        "pageViews": {
            "current": window.pageviews,
            "today": today_views,
            "change": change(today_views, y_views),
        },
        "countries": window.countries,
        "topPages": window.top_pages,
        "timestamp": iso(now),
    }


def stats(
    website: Website, period: Period = "today", now: dt.datetime | None = None
) -> StatsSnapshot:
    now = _now(now)
    if fresh(website, now):
        visitors, sessions = _stats_from_tallies(website, period, now)
        return {
            # the tallies' today/week/month come as a dict[str, int]: VisitorCounts' other keys
            "visitors": {"live": _live_count(website, now), **visitors},  # type: ignore[typeddict-item]
            **sessions,
            "timestamp": iso(now),
        }
    since = period_start(now, website, period)
    sessions = _session_figures(website, since, now)
    return {
        "visitors": {
            "live": _live_count(website, now),
            "today": _pageview_totals(website, day_start(now, website), now)[0],
            "week": _distinct_visitors(website, period_start(now, website, "week"), now),
            "month": _distinct_visitors(website, period_start(now, website, "month"), now),
        },
        **sessions,
        "timestamp": iso(now),
    }


def status(website: Website, now: dt.datetime | None = None) -> StatusSnapshot:
    now = _now(now)
    last = last_event_at(website)
    return {
        "active": website.enabled and last is not None and last > now - ACTIVE_WITHIN,
        "tracking_code": website.tracking_code,
        "domain": website.domain,
        "last_event": iso(last) if last else None,
    }


def pageviews(website: Website, since: dt.datetime, until: dt.datetime) -> int:
    """Pageviews in [since, until]: from quarter rows when `since` starts a quarter."""
    if micros(since) % aggregates.QUARTER_US == 0 and fresh(website, until):
        found = Tally.objects.filter(
            website=website, quarter__gte=quarter_of(since), quarter__lte=quarter_of(until)
        ).aggregate(n=Sum("pageviews"))
        return found["n"] or 0
    return _pageview_totals(website, since, until)[1]


# --- Shared pieces


def iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _now(now: dt.datetime | None) -> dt.datetime:
    # Not truncated: an event 0.5 s old must be in the window; `iso()` drops the fraction.
    return now or timezone.now()


def change(today: int, yesterday: int) -> float:
    """Percent change against yesterday's same span; 0.0 or 100.0 when yesterday had none."""
    if yesterday == 0:
        return 0.0 if today == 0 else 100.0
    return round(100 * (today - yesterday) / yesterday, 1)


def day_start(now: dt.datetime, website: Website) -> dt.datetime:
    """00:00 today in the website's time zone."""
    local = now.astimezone(website.zone)
    return dt.datetime.combine(local.date(), dt.time(), tzinfo=website.zone)


def period_start(now: dt.datetime, website: Website, period: Period) -> dt.datetime:
    local_day = now.astimezone(website.zone).date()
    if period == "week":
        local_day -= dt.timedelta(days=local_day.weekday())  # ISO weeks start on Monday
    elif period == "month":
        local_day = local_day.replace(day=1)
    return dt.datetime.combine(local_day, dt.time(), tzinfo=website.zone)


def _yesterday_span(now: dt.datetime, website: Website) -> tuple[dt.datetime, dt.datetime]:
    """Yesterday 00:00 up to yesterday at the current wall-clock time, both local."""
    local = now.astimezone(website.zone)
    yesterday = local.date() - dt.timedelta(days=1)
    start = dt.datetime.combine(yesterday, dt.time(), tzinfo=website.zone)
    end = _before_gap(dt.datetime.combine(yesterday, local.time(), tzinfo=website.zone))
    return start, end


def _before_gap(moment: dt.datetime) -> dt.datetime:
    """`moment`, or when a DST jump skipped its wall-clock time, the last instant before the jump.

    zoneinfo reads a skipped 02:30 with the old offset, i.e. as 03:30 after the jump, which
    would put events from 03:00 to 03:30 into "yesterday up to 02:30".
    """
    late = moment.astimezone(dt.UTC)  # read with the offset before the jump
    early = moment.replace(fold=1).astimezone(dt.UTC)  # read with the offset after it
    if early >= late:
        return moment  # the time exists (when it exists twice, this is its first occurrence)
    zone, after = moment.tzinfo, late.astimezone(moment.tzinfo).utcoffset()
    lo, hi = int(early.timestamp()), int(late.timestamp()) + 1  # before / after the jump
    while hi - lo > 1:  # time zone transitions fall on whole seconds
        mid = (lo + hi) // 2
        if dt.datetime.fromtimestamp(mid, zone).utcoffset() == after:
            hi = mid
        else:
            lo = mid
    return dt.datetime.fromtimestamp(hi, dt.UTC) - dt.timedelta(microseconds=1)


class _Window:
    """The current 300 seconds: who is here, what they look at, where they are."""

    def __init__(self, rows: list[tuple[int, str, str, str]]) -> None:
        latest_country: dict[int, str] = {}
        latest_page: dict[int, str] = {}
        self.pageviews = 0
        for visitor, kind, path, country in rows:  # oldest first, so later rows win
            latest_country[visitor] = country
            if kind == Event.PAGEVIEW:
                latest_page[visitor] = path
                self.pageviews += 1
        self.visitors = len(latest_country)
        countries = Counter(code for code in latest_country.values() if code)
        # Stored encoded already; encoded again (a no-op) for rows stored before that was so.
        pages = Counter(pagepaths.as_browser_sends(path) for path in latest_page.values())
        self.countries: list[CountryCount] = [
            {"code": code, "name": country_name(code), "count": count}
            for code, count in _top(countries)
        ]
        self.top_pages: list[PageCount] = [
            {"path": path, "visitors": count} for path, count in _top(pages)
        ]


def _top(counter: Counter[str]) -> list[tuple[str, int]]:
    return sorted(counter.items(), key=lambda item: (-item[1], item[0]))[:TOP]


def _window_events(website: Website, now: dt.datetime):
    return Event.objects.filter(website=website, ts__gt=now - WINDOW, ts__lte=now)


def _window(website: Website, now: dt.datetime) -> _Window:
    rows = _window_events(website, now).order_by("ts", "id")
    return _Window(list(rows.values_list("visitor", "type", "path", "country")))


def _live_count(website: Website, now: dt.datetime) -> int:
    """`_window(...).visitors`, counted by the database: no row of the window comes back
    (at 10^7 events a month the window holds ~1,100 events, 2 ms as Python objects)."""
    return _window_events(website, now).aggregate(n=Count("visitor", distinct=True))["n"]


def _pageviews(website: Website, since: dt.datetime, until: dt.datetime):
    return Event.objects.filter(website=website, type=Event.PAGEVIEW, ts__gte=since, ts__lte=until)


def _pageview_totals(website: Website, since: dt.datetime, until: dt.datetime) -> tuple[int, int]:
    """(distinct visitors with a pageview, pageviews) in [since, until]."""
    totals = _pageviews(website, since, until).aggregate(
        visitors=Count("visitor", distinct=True), views=Count("id")
    )
    return totals["visitors"], totals["views"]


def _distinct_visitors(website: Website, since: dt.datetime, until: dt.datetime) -> int:
    return _pageview_totals(website, since, until)[0]


class _SessionFigures(TypedDict):
    bounceRate: float
    avgSessionDuration: int
    pagesPerSession: float
    newVisitorRate: float
    returningVisitorRate: float


def _session_figures(website: Website, since: dt.datetime, until: dt.datetime) -> _SessionFigures:
    """Bounce rate, duration, depth and new vs returning for sessions started in
    [since, until], from raw sessions (when events after `until` exist)."""
    sessions = Session.objects.filter(website=website, started_at__gte=since, started_at__lte=until)
    totals = sessions.aggregate(
        count=Count("id"),
        bounces=Count("id", filter=Q(pageviews=1, custom_events=0)),
        pageviews=Sum("pageviews"),
        duration=Avg(F("last_event_at") - F("started_at")),
        visitors=Count("visitor", distinct=True),
    )
    count = totals["count"]
    if count == 0:
        return _no_sessions()
    returning = _returning_visitors(website, sessions, since)
    returning_rate = round(returning / totals["visitors"], 2)
    return {
        "bounceRate": round(totals["bounces"] / count, 2),
        "avgSessionDuration": round(_seconds(totals["duration"])),
        "pagesPerSession": round((totals["pageviews"] or 0) / count, 1),
        "newVisitorRate": round(1 - returning_rate, 2),
        "returningVisitorRate": returning_rate,
    }


# Identities live one salt period at most (a month), so older sessions cannot match:
# looking no further back keeps the cost independent of the site's history.
RETURNING_LOOKBACK = dt.timedelta(days=32)


def _returning_visitors(website: Website, sessions, since: dt.datetime) -> int:
    """Visitors of the period with a session that ended before it began.

    Filtering on last_event_at (not started_at) lets each visitor's lookup use the
    (website, visitor, last_event_at) index instead of scanning the site's history.
    """
    earlier = Session.objects.filter(
        website=website,
        visitor=OuterRef("visitor"),
        last_event_at__lt=since,
        last_event_at__gte=since - RETURNING_LOOKBACK,
    )
    return sessions.filter(Exists(earlier)).values("visitor").distinct().count()


def _seconds(value: dt.timedelta | float | None) -> float:
    if value is None:
        return 0.0
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    return float(value) / 1_000_000  # SQLite hands back microseconds


def last_event_at(website: Website) -> dt.datetime | None:
    """The latest event of any kind: the latest quarter row knows it (one index probe)."""
    last = (
        Tally.objects.filter(website=website)
        .order_by("-quarter")
        .values_list("last_us", flat=True)
        .first()
    )
    return aggregates.EPOCH + dt.timedelta(microseconds=last) if last else None


# --- From the aggregates


# A `now` this close to the clock asks about the present: whole quarters answer, and a
# figure holds what was recorded up to the moment it is read. (A snapshot takes the time,
# then reads, while events keep arriving: at a busy site one always lands in between, and
# another machine's clock may run a little ahead; neither may send it to the raw path,
# whose cost grows with the period's traffic.)
PRESENT = dt.timedelta(seconds=5)


def fresh(website: Website, now: dt.datetime) -> bool:
    """Whole quarters answer "up to now": `now` is the present, or nothing was recorded
    after it. A question about the past (tests, replays) is answered from raw events."""
    if now >= timezone.now() - PRESENT:
        return True
    found = Tally.objects.filter(website=website, quarter__gte=quarter_of(now)).aggregate(
        last=Max("last_us")
    )
    return found["last"] is None or found["last"] <= micros(now)


def _sum(column: str, since: dt.datetime) -> Sum:
    return Sum(column, filter=Q(quarter__gte=quarter_of(since)), default=0)


def _days_from_tallies(website: Website, now: dt.datetime) -> tuple[int, int, int, int]:
    """Today's visitors and pageviews, and yesterday's up to the same time of day.

    Yesterday's cut-off falls inside a quarter: the quarters before it come from the
    rows, that quarter's part up to the cut-off from its first-seen rows and pageviews."""
    start = day_start(now, website)
    y_start, y_end = _yesterday_span(now, website)
    cut = quarter_of(y_end)
    rows = Tally.objects.filter(
        website=website, quarter__gte=quarter_of(y_start), quarter__lte=quarter_of(now)
    ).aggregate(
        today_visitors=_sum("day_visitors", start),
        today_views=_sum("pageviews", start),
        y_visitors=Sum("day_visitors", filter=Q(quarter__lt=cut), default=0),
        y_views=Sum("pageviews", filter=Q(quarter__lt=cut), default=0),
    )
    cut_start = quarter_start(cut)
    y_visitors = rows["y_visitors"] + (
        FirstSeen.objects.filter(
            website=website,
            kind=aggregates.DAY,
            period=int(y_start.timestamp()),
            first_us__gte=micros(cut_start),
            first_us__lte=micros(y_end),
        ).count()
    )
    y_views = rows["y_views"] + _pageviews(website, cut_start, y_end).count()
    return rows["today_visitors"], rows["today_views"], y_visitors, y_views


_PERIOD_PREFIX = {"today": "day", "week": "week", "month": "month"}


def _stats_from_tallies(
    website: Website, period: Period, now: dt.datetime
) -> tuple[dict[str, int], _SessionFigures]:
    """Today's, this week's and this month's visitors and the period's session figures,
    in one query over the quarters since the earlier of the week's and the month's start."""
    starts = {name: period_start(now, website, name) for name in PERIODS}
    since = starts[period]
    prefix = _PERIOD_PREFIX[period]
    rows = Tally.objects.filter(
        website=website,
        quarter__gte=quarter_of(min(starts["week"], starts["month"])),
        quarter__lte=quarter_of(now),
    ).aggregate(
        today=_sum("day_visitors", starts["today"]),
        week=_sum("week_visitors", starts["week"]),
        month=_sum("month_visitors", starts["month"]),
        count=_sum("sessions", since),
        bounces=_sum("bounces", since),
        pageviews=_sum("session_pageviews", since),
        duration_us=_sum("duration_us", since),
        visitors=_sum(f"{prefix}_session_visitors", since),
        returning=_sum(f"{prefix}_returning", since),
    )
    visitors = {name: rows[name] for name in ("today", "week", "month")}
    count = rows["count"]
    if count == 0:
        return visitors, _no_sessions()
    returning_rate = round(rows["returning"] / rows["visitors"], 2)
    return visitors, {
        "bounceRate": round(rows["bounces"] / count, 2),
        "avgSessionDuration": round(rows["duration_us"] / count / 1_000_000),
        "pagesPerSession": round(rows["pageviews"] / count, 1),
        "newVisitorRate": round(1 - returning_rate, 2),
        "returningVisitorRate": returning_rate,
    }


def _no_sessions() -> _SessionFigures:
    return {
        "bounceRate": 0.0,
        "avgSessionDuration": 0,
        "pagesPerSession": 0.0,
        "newVisitorRate": 0.0,
        "returningVisitorRate": 0.0,
    }
