"""The owner dashboard's extra queries: time series, breakdowns and custom events.

Like `metrics`, every function returns JSON-ready TypedDicts and lists, never
QuerySets. They read the aggregates ingest maintains (`zenovay.aggregates`), so a page
costs the same at any traffic:

- charts: the quarter-hour rows of the last 24 hours (<= 100) or 30 days (<= 2,880), each
  summed into its local hour or day; visitors per hour and per day are exact (first-seen
  counters of the local hour and day);
- breakdowns, custom events and goals over any run of whole local days (today, this week,
  this month, the last 7 or 30 days, dates): the days' sketches of that dimension
  (`zenovay.sketches`), one per distinct value and day; counts exact, distinct visitors a
  HyperLogLog estimate (exact below about 2,000 visitors a value, 0.8 % standard error
  above);
- recent custom events: the newest rows of the (website, type, ts) index.

Buckets follow the website's time zone: a day starts at local midnight, so days
around a DST change have 23 or 25 hours. Any other span (not whole local days, or ending
in the past inside a day) is computed from raw events: exact, and bounded by that span.
"""

from __future__ import annotations

import bisect
import datetime as dt
import json
import re
from typing import Literal, TypedDict

from django.db import connection
from django.db.models import Case, Count, F, IntegerField, QuerySet, When
from django.db.models.functions import Collate
from django.utils import timezone

from zenovay import metrics, sketches
from zenovay.aggregates import quarter_of
from zenovay.countries import country_name, flag
from zenovay.models import Event, Tally, Website

Field = Literal["page", "country", "referrer", "utm_source", "device", "browser", "os"]
FIELDS: tuple[Field, ...] = ("page", "country", "referrer", "utm_source", "device", "browser", "os")
_COLUMNS: dict[Field, str] = {
    "page": "path",
    "country": "country",
    "referrer": "referrer_host",
    "utm_source": "utm_source",
    "device": "device",
    "browser": "browser",
    "os": "os",
}
HOURS = 24
DAYS = 30


class Bucket(TypedDict):
    start: str  # UTC ISO 8601, the bucket's first instant
    label: str  # local wall-clock time ("14:00") or day ("Mar 10")
    visitors: int
    pageviews: int


class Row(TypedDict):
    value: str
    label: str  # what a person reads: the country's name, "Desktop", the value itself
    flag: str  # emoji flag for countries, "" otherwise
    visitors: int
    pageviews: int


class EventCount(TypedDict):
    name: str
    count: int
    visitors: int


class Prop(TypedDict):
    key: str
    value: str


class RecentEvent(TypedDict):
    name: str
    path: str
    props: list[Prop]
    at: str


class PeriodFigures(TypedDict):
    period: metrics.Period
    since: str
    visitors: int
    pageviews: int
    live: int
    bounceRate: float
    avgSessionDuration: int
    pagesPerSession: float
    newVisitorRate: float
    returningVisitorRate: float


# --- Time series


def hourly(website: Website, now: dt.datetime) -> list[Bucket]:
    """Visitors and pageviews in each of the last 24 local hours, the current one last."""
    zone = website.zone
    current = now.astimezone(zone).replace(minute=0, second=0, microsecond=0)
    # Stepping back in UTC keeps local hour boundaries, also for half-hour offsets and DST.
    last = current.astimezone(dt.UTC)
    starts = [last - dt.timedelta(hours=k) for k in range(HOURS - 1, -1, -1)]
    labels = [f"{start.astimezone(zone):%H:00}" for start in starts]
    if metrics.fresh(website, now):
        return _series_from_tallies(website, starts, labels, now, "hour_visitors")
    return _series(website, starts, labels, now)


def daily(website: Website, now: dt.datetime, days: int = DAYS) -> list[Bucket]:
    """Visitors and pageviews on each of the last `days` local days, today last."""
    zone = website.zone
    today = now.astimezone(zone).date()
    dates = [today - dt.timedelta(days=k) for k in range(days - 1, -1, -1)]
    starts = [dt.datetime.combine(day, dt.time(), tzinfo=zone) for day in dates]
    labels = [f"{day:%b} {day.day}" for day in dates]
    if metrics.fresh(website, now):
        return _series_from_tallies(website, starts, labels, now, "day_visitors")
    return _series(website, starts, labels, now)


def _series_from_tallies(
    website: Website,
    starts: list[dt.datetime],
    labels: list[str],
    now: dt.datetime,
    visitors: str,
) -> list[Bucket]:
    """Sum each bucket's quarter rows; `visitors` counts first appearances in the bucket."""
    edges = [quarter_of(start) for start in starts]
    rows = Tally.objects.filter(
        website=website, quarter__gte=edges[0], quarter__lte=quarter_of(now)
    ).values_list("quarter", "pageviews", visitors)
    sums = [[0, 0] for _ in starts]
    for quarter, views, seen in rows:
        i = bisect.bisect_right(edges, quarter) - 1
        sums[i][0] += seen
        sums[i][1] += views
    return [
        {"start": metrics.iso(start), "label": label, "visitors": seen, "pageviews": views}
        for start, label, (seen, views) in zip(starts, labels, sums, strict=True)
    ]


def _series(
    website: Website, starts: list[dt.datetime], labels: list[str], now: dt.datetime
) -> list[Bucket]:
    """One grouped query: each pageview gets the index of its bucket, then zero-fill."""
    # Bucket edges are computed here, in Python, so both databases agree on DST days.
    bucket = Case(
        *[When(ts__lt=start, then=i - 1) for i, start in enumerate(starts[1:], start=1)],
        default=len(starts) - 1,
        output_field=IntegerField(),
    )
    rows = (
        _pageviews(website, starts[0], now)
        .annotate(bucket=bucket)
        .values("bucket")
        .annotate(visitors=Count("visitor", distinct=True), pageviews=Count("id"))
        .order_by()
    )
    found = {row["bucket"]: row for row in rows}
    return [
        {
            "start": metrics.iso(start),
            "label": label,
            "visitors": found.get(i, {}).get("visitors", 0),
            "pageviews": found.get(i, {}).get("pageviews", 0),
        }
        for i, (start, label) in enumerate(zip(starts, labels, strict=True))
    ]


# --- Breakdowns


def breakdown(
    website: Website, since: dt.datetime, until: dt.datetime, field: Field, limit: int = 10
) -> list[Row]:
    """Top values of one pageview field by distinct visitors; unknown values left out."""
    found = _from_sketches(website, since, until, sketches.DIMS[field])
    if found is not None:
        top = sorted(found.items(), key=lambda item: (-item[1][1], item[0]))[:limit]
        return [_row(field, value, visitors, count) for value, (count, visitors) in top]
    column = _COLUMNS[field]
    rows = (
        _pageviews(website, since, until)
        .exclude(**{column: ""})
        .values(column)
        .annotate(visitors=Count("visitor", distinct=True), pageviews=Count("id"))
        .order_by("-visitors", by_code_point(column))[:limit]
    )
    return [_row(field, row[column], row["visitors"], row["pageviews"]) for row in rows]


def _row(field: Field, value: str, visitors: int, pageviews: int) -> Row:
    label, emoji = value, ""
    if field == "country":
        label, emoji = country_name(value), flag(value)
    elif field == "device":
        label = value.capitalize()
    return {
        "value": value,
        "label": label,
        "flag": emoji,
        "visitors": visitors,
        "pageviews": pageviews,
    }


def by_code_point(column: str) -> F | Collate:
    """Order text as Python does (by code point), whatever the database's collation says.

    Ties are broken by value; without this PostgreSQL's locale order ("/a-b" before "/ab"
    or not) could differ from SQLite's and from the realtime snapshot's.
    """
    if connection.vendor == "postgresql":
        return Collate(column, "C")
    return F(column)  # SQLite compares text byte by byte, which is code point order in UTF-8


# --- Custom events


def custom_events(
    website: Website, since: dt.datetime, until: dt.datetime, limit: int = 10
) -> list[EventCount]:
    """Custom events by name: how often they fired and for how many visitors."""
    found = _from_sketches(website, since, until, "e")
    if found is not None:
        top = sorted(found.items(), key=lambda item: (-item[1][0], item[0]))[:limit]
        return [{"name": name, "count": count, "visitors": seen} for name, (count, seen) in top]
    rows = (
        _custom(website, since, until)
        .values("name")
        .annotate(count=Count("id"), visitors=Count("visitor", distinct=True))
        .order_by("-count", by_code_point("name"))[:limit]
    )
    return [{"name": r["name"], "count": r["count"], "visitors": r["visitors"]} for r in rows]


def recent_events(
    website: Website, since: dt.datetime, until: dt.datetime, limit: int = 10
) -> list[RecentEvent]:
    """The latest custom events with their properties, newest first."""
    rows = (
        _custom(website, since, until)
        .order_by("-ts", "-id")
        .values_list("name", "path", "props", "ts")[:limit]
    )
    return [
        {"name": name, "path": path, "props": _props(props), "at": metrics.iso(ts)}
        for name, path, props, ts in rows
    ]


def _from_sketches(
    website: Website, since: dt.datetime, until: dt.datetime, dim: str
) -> dict[str, tuple[int, int]] | None:
    """Per value of `dim`: its count and distinct visitors over [since, until]; None unless
    that is whole local days (the last one possibly today so far)."""
    return sketches.figures(website, since, until, dim, timezone.now())


def _pageviews(website: Website, since: dt.datetime, until: dt.datetime) -> QuerySet[Event]:
    return Event.objects.filter(website=website, type=Event.PAGEVIEW, ts__gte=since, ts__lte=until)


def _custom(website: Website, since: dt.datetime, until: dt.datetime) -> QuerySet[Event]:
    return Event.objects.filter(website=website, type=Event.CUSTOM, ts__gte=since, ts__lte=until)


def _props(props: object) -> list[Prop]:
    if not isinstance(props, dict):
        return []
    return [
        {"key": str(key), "value": value if isinstance(value, str) else json.dumps(value)}
        for key, value in sorted(props.items())
    ]


# --- The period picker's figures


def period_figures(website: Website, period: metrics.Period, now: dt.datetime) -> PeriodFigures:
    """Visitors, pageviews and session figures since the start of today, the week or month."""
    since = metrics.period_start(now, website, period)
    stats = metrics.stats(website, period, now)
    return {
        "period": period,
        "since": metrics.iso(since),
        "visitors": stats["visitors"][period],
        "pageviews": metrics.pageviews(website, since, now),
        "live": stats["visitors"]["live"],
        "bounceRate": stats["bounceRate"],
        "avgSessionDuration": stats["avgSessionDuration"],
        "pagesPerSession": stats["pagesPerSession"],
        "newVisitorRate": stats["newVisitorRate"],
        "returningVisitorRate": stats["returningVisitorRate"],
    }


# --- Goals and custom-event properties


class GoalFigures(TypedDict):
    pk: int
    kind: str  # "event" or "page"
    value: str
    visitors: int  # unique converters
    conversions: int  # firings of the event, or pageviews of matching pages
    rate: float  # converters / the period's visitors


def goals(
    website: Website, since: dt.datetime, until: dt.datetime, total_visitors: int
) -> list[GoalFigures]:
    """Each goal's conversions over [since, until], in the order they were made.

    Any run of whole local days (today, this week or month, the last 7 or 30 days, dates)
    reads the days' sketches: conversions exact, converters a HyperLogLog union of the
    matching values (exact below about 2,000, 0.8 % standard error above;
    `zenovay.sketches`). Any other span counts raw events."""
    found: list[GoalFigures] = []
    for goal in website.goals.all():
        figures = _goal_from_sketches(website, since, until, goal.kind, goal.value)
        if figures is None:
            figures = _goal_from_events(website, since, until, goal.kind, goal.value)
        conversions, visitors = figures
        found.append(
            {
                "pk": goal.pk,
                "kind": goal.kind,
                "value": goal.value,
                "visitors": visitors,
                "conversions": conversions,
                "rate": visitors / total_visitors if total_visitors else 0.0,
            }
        )
    return found


def path_pattern(pattern: str) -> str:
    """A goal's path pattern as an anchored regular expression (`*`: any characters)."""
    return "^" + ".*".join(re.escape(part) for part in pattern.split("*")) + "$"


def _goal_from_sketches(
    website: Website, since: dt.datetime, until: dt.datetime, goal_kind: str, value: str
) -> tuple[int, int] | None:
    if goal_kind == "event":
        dim, pattern = "e", "^" + re.escape(value) + "$"
    else:
        dim, pattern = "p", path_pattern(value)
    return sketches.matching(website, since, until, dim, pattern, timezone.now())


def _goal_from_events(
    website: Website, since: dt.datetime, until: dt.datetime, goal_kind: str, value: str
) -> tuple[int, int]:
    if goal_kind == "event":
        events = _custom(website, since, until).filter(name=value)
    elif "*" in value:
        events = _pageviews(website, since, until).filter(path__regex=path_pattern(value))
    else:
        events = _pageviews(website, since, until).filter(path=value)
    counts = events.aggregate(conversions=Count("id"), visitors=Count("visitor", distinct=True))
    return counts["conversions"], counts["visitors"]


class PropertyRow(TypedDict):
    key: str
    value: str
    count: int
    visitors: int


PROPERTY_SCAN = 50_000  # the latest firings a property breakdown looks at


def event_properties(
    website: Website, name: str, since: dt.datetime, until: dt.datetime, limit: int = 20
) -> tuple[list[PropertyRow], bool]:
    """A custom event's properties over [since, until]: each key and value with its firings
    and distinct visitors, most frequent first; and whether only the latest PROPERTY_SCAN
    firings were looked at. Properties are not aggregated (any key, any value), so this
    reads the event's raw rows over its (website, type, ts) index."""
    rows = (
        _custom(website, since, until)
        .filter(name=name)
        .order_by("-ts")
        .values_list("props", "visitor")[: PROPERTY_SCAN + 1]
    )
    counts: dict[tuple[str, str], list] = {}
    seen = 0
    for props, visitor in rows:
        seen += 1
        if seen > PROPERTY_SCAN:
            break
        for prop in _props(props):
            entry = counts.setdefault((prop["key"], prop["value"]), [0, set()])
            entry[0] += 1
            entry[1].add(visitor)
    ranked = sorted(counts.items(), key=lambda item: (-item[1][0], item[0]))[:limit]
    found: list[PropertyRow] = [
        {"key": key, "value": value, "count": count, "visitors": len(visitors)}
        for (key, value), (count, visitors) in ranked
    ]
    return found, seen > PROPERTY_SCAN
