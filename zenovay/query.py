"""The query engine behind the External API (`POST /api/v1/query`) and exports.

A query names a website, metrics, a date range in the website's zone, optional dimensions
(time buckets, page, source, place, device, custom event name or property), filters
(`is`, `is_not`, `contains`, `matches`, all ANDed), an order, a page of rows, and
optionally a comparison with the previous period or the same period a year before.
`parse` checks every field and raises `QueryError` naming the field; `run` answers.

Where the answer comes from (`meta.source`):

- **aggregates** when nothing is filtered and the aggregates hold the figures:
  totals and time buckets of pageviews, custom events, visits, bounce rate, duration and
  views per visit over any range (sums of quarter rows); visitors and returning rate per
  whole local hour / day / week / month bucket, or over a range that is exactly one local
  day, week or month so far (exact); visitors over any other run of whole local days, and
  breakdowns by page, referrer, UTM source / medium / campaign, country, device, browser,
  OS or event name over any run of whole local days (exact over one local day, week or
  month; otherwise visitors are a HyperLogLog estimate, 0.8 % standard error, exact below
  about 2,000: `zenovay.sketches`). Cost: the range's quarter rows (<= 35,000 for a year),
  the period's distinct values, or a few sketches per value; never the events.
- **events** otherwise (filters, ranges that cut a day, entry/exit pages, properties, the
  returning rate over several days, the visitors of a partial first time bucket): grouped
  SQL over the raw events or sessions of the range, through the (website, time) indexes.
  Exact, and as costly as the range's traffic.

Metric definitions follow the public contract: visitors are distinct visitors with a
pageview (with an event dimension or filter: who fired the matching custom events);
visits are sessions started in the range; rates are fractions rounded to 2 places.
"""

from __future__ import annotations

import bisect
import datetime as dt
import functools
import re
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from django.db.models import (
    Avg,
    Case,
    Count,
    Exists,
    F,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Sum,
    Value,
    When,
)
from django.db.models.fields.json import KeyTextTransform
from django.utils import timezone

from zenovay import aggregates, filtered, metrics, sketches, visits
from zenovay.aggregates import quarter_of
from zenovay.models import Event, Session, Tally, Website

METRICS = (
    "visitors",
    "visits",
    "pageviews",
    "views_per_visit",
    "bounce_rate",
    "visit_duration",
    "events",
    "returning_rate",
)
VISIT_METRICS = {"visits", "views_per_visit", "bounce_rate", "visit_duration", "returning_rate"}
TIME = {"time:hour": aggregates.HOUR, "time:day": aggregates.DAY}
TIME |= {"time:week": aggregates.WEEK, "time:month": aggregates.MONTH}
# Dimension -> (event column, session column); None where that table does not have it.
COLUMNS: dict[str, tuple[str | None, str | None]] = {
    "page": ("path", None),
    "entry_page": (None, "entry_path"),
    "exit_page": (None, "exit_path"),
    "referrer": ("referrer_host", "referrer_host"),
    "utm_source": ("utm_source", "utm_source"),
    "utm_medium": ("utm_medium", "utm_medium"),
    "utm_campaign": ("utm_campaign", "utm_campaign"),
    "country": ("country", "country"),
    "device": ("device", "device"),
    "browser": ("browser", "browser"),
    "os": ("os", "os"),
    "event:name": ("name", None),
}
PROPS = "event:props:"
EVENT_ONLY = {"event:name"}  # and every event:props:* dimension
OPERATORS = ("is", "is_not", "contains", "matches")
RANGES = ("realtime", "day", "7d", "30d", "month", "6mo", "12mo", "all")
MAX_LIMIT = 10_000
MAX_BUCKETS = {"time:hour": 24 * 93, "time:day": 3 * 366, "time:week": 520, "time:month": 240}


class QueryError(ValueError):
    """An invalid query: which field, and why."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(message)
        self.field = field_name
        self.message = message


@dataclass(frozen=True)
class Filter:
    operator: str
    dimension: str
    values: tuple[str, ...]


@dataclass(frozen=True)
class Query:
    website: Website
    metrics: tuple[str, ...]
    since: dt.datetime
    until: dt.datetime  # inclusive
    dimensions: tuple[str, ...] = ()
    filters: tuple[Filter, ...] = ()
    order_by: tuple[tuple[str, str], ...] = ()
    limit: int = 100
    offset: int = 0
    compare: str | None = None
    range_kind: str = ""  # the named range, or "custom"
    shifted: bool = field(default=False, compare=False)

    @property
    def event_scoped(self) -> bool:
        """Counts custom events' visitors, not pageviews' (an event dimension or filter)."""
        names = [*self.dimensions, *(f.dimension for f in self.filters)]
        return any(n in EVENT_ONLY or n.startswith(PROPS) for n in names)


# --- Parsing


def parse(body: object, website: Website, now: dt.datetime | None = None) -> Query:
    if not isinstance(body, dict):
        raise QueryError("body", "The body must be a JSON object.")
    known = {"site_id", "metrics", "date_range", "dimensions", "filters", "order_by"}
    known |= {"limit", "offset", "compare"}
    for name in body:
        if name not in known:
            raise QueryError(str(name)[:50], f"Unknown field; use {', '.join(sorted(known))}.")
    now = now or timezone.now()
    chosen = _metrics(body.get("metrics"))
    since, until, kind = date_range(body.get("date_range"), website, now)
    dimensions = _dimensions(body.get("dimensions", []), kind)
    filters = _filters(body.get("filters", []))
    query = Query(
        website=website,
        metrics=chosen,
        since=since,
        until=until,
        dimensions=dimensions,
        filters=filters,
        limit=_int(body.get("limit", 100), "limit", 1, MAX_LIMIT),
        offset=_int(body.get("offset", 0), "offset", 0, 10**9),
        compare=_compare(body.get("compare")),
        range_kind=kind,
    )
    _check_combination(query)
    _check_buckets(query)
    return replace(query, order_by=_order_by(body.get("order_by"), query))


def _metrics(value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise QueryError("metrics", f"Give a non-empty list of: {', '.join(METRICS)}.")
    for name in value:
        if name not in METRICS:
            raise QueryError("metrics", f"{str(name)[:50]!r} is not one of {', '.join(METRICS)}.")
    if len(set(value)) != len(value):
        raise QueryError("metrics", "A metric appears twice.")
    return tuple(value)


def date_range(
    value: object, website: Website, now: dt.datetime
) -> tuple[dt.datetime, dt.datetime, str]:
    """[since, until] (inclusive) in the website's zone, and which kind of range it was."""
    zone = website.zone
    today = now.astimezone(zone).date()

    def midnight(day: dt.date) -> dt.datetime:
        return dt.datetime.combine(day, dt.time(), tzinfo=zone)

    if isinstance(value, str):
        if value == "realtime":
            return now - metrics.WINDOW + dt.timedelta(microseconds=1), now, value
        if value == "day":
            return midnight(today), now, value
        if value in ("7d", "30d"):
            return midnight(today - dt.timedelta(days=int(value[:-1]) - 1)), now, value
        if value == "month":
            return midnight(today.replace(day=1)), now, value
        if value in ("6mo", "12mo"):
            first = _months_back(today.replace(day=1), int(value[:-2]) - 1)
            return midnight(first), now, value
        if value == "all":
            created = website.created or now
            return midnight(min(created, now).astimezone(zone).date()), now, value
        raise QueryError("date_range", f"Use one of {', '.join(RANGES)}, or [from, to].")
    if isinstance(value, list) and len(value) == 2 and all(isinstance(v, str) for v in value):
        since, until = (_moment(v, zone, end=i == 1) for i, v in enumerate(value))
        if until < since:
            raise QueryError("date_range", "The range ends before it starts.")
        if since > now:
            raise QueryError("date_range", "The range starts in the future.")
        return since, min(until, now), "custom"
    raise QueryError("date_range", f"Use one of {', '.join(RANGES)}, or [from, to].")


def _months_back(first: dt.date, months: int) -> dt.date:
    index = first.year * 12 + first.month - 1 - months
    return dt.date(index // 12, index % 12 + 1, 1)


def _moment(text: str, zone, *, end: bool) -> dt.datetime:
    """A date (the whole local day) or an ISO 8601 date-time (with or without offset)."""
    try:
        if len(text) == 10:
            day = dt.date.fromisoformat(text)
            if end:
                day += dt.timedelta(days=1)
            moment = dt.datetime.combine(day, dt.time(), tzinfo=zone)
            return moment - dt.timedelta(microseconds=1) if end else moment
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise QueryError("date_range", f"{text[:40]!r} is not a date or date-time.") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=zone)


def _dimensions(value: object, kind: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise QueryError("dimensions", "Give a list of dimensions.")
    found: list[str] = []
    for name in value:
        if not isinstance(name, str) or not _is_dimension(name, time_ok=True):
            raise QueryError("dimensions", f"{str(name)[:50]!r} is not a dimension.")
        if name in found:
            raise QueryError("dimensions", f"{name!r} appears twice.")
        found.append(name)
    if sum(name in TIME for name in found) > 1:
        raise QueryError("dimensions", "At most one time dimension.")
    if len(found) > 3:
        raise QueryError("dimensions", "At most three dimensions.")
    if kind == "realtime" and any(name in TIME for name in found):
        raise QueryError("dimensions", "No time buckets in the realtime range.")
    return tuple(found)


def _is_dimension(name: str, *, time_ok: bool) -> bool:
    if name.startswith(PROPS):
        return 0 < len(name) - len(PROPS) <= 100
    return name in COLUMNS or (time_ok and name in TIME)


def _filters(value: object) -> tuple[Filter, ...]:
    if not isinstance(value, list):
        raise QueryError(
            "filters",
            'Give a list of [operator, dimension, [values]], e.g. ["is", "country", ["DE"]].',
        )
    found = []
    for i, item in enumerate(value):
        where = f"filters[{i}]"
        if not (isinstance(item, list) and len(item) == 3):
            raise QueryError(where, "A filter is [operator, dimension, [values]].")
        operator, name, values = item
        if operator not in OPERATORS:
            raise QueryError(where, f"The operator is one of {', '.join(OPERATORS)}.")
        if not isinstance(name, str) or not _is_dimension(name, time_ok=False):
            raise QueryError(where, f"{str(name)[:50]!r} is not a dimension one can filter on.")
        if not (isinstance(values, list) and values and all(isinstance(v, str) for v in values)):
            raise QueryError(where, "The values are a non-empty list of strings.")
        if len(values) > 100 or any(len(v) > 1024 for v in values):
            raise QueryError(where, "At most 100 values of at most 1,024 characters.")
        if operator == "matches":
            for pattern in values:
                try:
                    re.compile(pattern)
                except re.error as exc:
                    raise QueryError(
                        where, f"{pattern[:40]!r} is not a regular expression: {exc}."
                    ) from None
        found.append(Filter(operator, name, tuple(values)))
    return tuple(found)


def _int(value: object, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise QueryError(name, f"An integer from {low:,} to {high:,}.")
    return value


def _compare(value: object) -> str | None:
    if value is None or (isinstance(value, str) and value in ("previous_period", "year_over_year")):
        return value
    raise QueryError("compare", "Use previous_period or year_over_year, or leave it out.")


def _check_combination(query: Query) -> None:
    visit_metrics = VISIT_METRICS & set(query.metrics)
    names = [*query.dimensions, *(f.dimension for f in query.filters)]
    if visit_metrics:
        event_only = [
            n
            for n in names
            if n != "page" and n not in TIME and COLUMNS.get(n, (None, None))[1] is None
        ]
        event_only += [n for n in names if n == "page"]
        if event_only:
            raise QueryError(
                "metrics",
                f"{', '.join(sorted(visit_metrics))} describe visits; they cannot be broken down or"
                f" filtered by {event_only[0]} (use entry_page or exit_page for pages).",
            )
    if query.event_scoped and "pageviews" in query.metrics:
        raise QueryError(
            "metrics",
            "pageviews cannot be counted by a custom event's name or properties; use events.",
        )
    session_only = [n for n in names if COLUMNS.get(n, (None, None))[0] is None and n in COLUMNS]
    if session_only and ({"visitors", "pageviews", "events"} & set(query.metrics)):
        raise QueryError(
            "metrics",
            f"{session_only[0]} belongs to visits: ask for visits, views_per_visit, bounce_rate,"
            " visit_duration or returning_rate with it.",
        )


def _check_buckets(query: Query) -> None:
    for name in query.dimensions:
        if name in TIME and len(buckets(query, name)) > MAX_BUCKETS[name]:
            raise QueryError(
                "dimensions", f"Too many {name[5:]}s in this range; pick a coarser bucket."
            )


def _order_by(value: object, query: Query) -> tuple[tuple[str, str], ...]:
    if value is None:
        time_dims = [(d, "asc") for d in query.dimensions if d in TIME]
        others = [(d, "asc") for d in query.dimensions if d not in TIME]
        return (*time_dims, (query.metrics[0], "desc"), *others)
    if not isinstance(value, list):
        raise QueryError("order_by", 'Give a list of [name, "asc" | "desc"].')
    found = []
    for item in value:
        if not (isinstance(item, list) and len(item) == 2 and item[1] in ("asc", "desc")):
            raise QueryError("order_by", 'Each entry is [metric or dimension, "asc" | "desc"].')
        if item[0] not in query.metrics and item[0] not in query.dimensions:
            raise QueryError(
                "order_by", f"{str(item[0])[:50]!r} is not among the query's metrics or dimensions."
            )
        found.append((item[0], item[1]))
    return tuple(found)


# --- Time buckets


def buckets(query: Query, name: str) -> list[dt.datetime]:
    """The starts of the local hours, days, ISO weeks or months that [since, until] touches."""
    zone = query.website.zone
    local = query.since.astimezone(zone)
    if name == "time:hour":
        first = local.replace(minute=0, second=0, microsecond=0).astimezone(dt.UTC)
        starts = []
        moment = first
        while moment <= query.until:
            starts.append(moment)
            moment += dt.timedelta(hours=1)
        return starts
    day = local.date()
    if name == "time:week":
        day -= dt.timedelta(days=day.weekday())
    elif name == "time:month":
        day = day.replace(day=1)
    starts = []
    last = query.until.astimezone(zone).date()
    while day <= last:
        starts.append(dt.datetime.combine(day, dt.time(), tzinfo=zone))
        if name == "time:day":
            day += dt.timedelta(days=1)
        elif name == "time:week":
            day += dt.timedelta(days=7)
        else:
            day = _months_back(day, -1)
    return starts


def _label_of_bucket(starts: list[dt.datetime], name: str, zone, index: int) -> str:
    return _label(starts[index], name, zone)


def _label(start: dt.datetime, name: str, zone) -> str:
    local = start.astimezone(zone)
    if name == "time:hour":  # with its offset: a DST night has two 01:00s
        return local.isoformat(timespec="minutes")
    return local.date().isoformat()


def _bucket_case(column: str, starts: list[dt.datetime]) -> Case | Value:
    """The index of the bucket a row's time falls in, as a balanced tree of comparisons
    (log2 of the buckets per row, on both databases), the edges computed here."""

    def node(lo: int, hi: int):  # buckets lo..hi-1
        if hi - lo == 1:
            return Value(lo)
        mid = (lo + hi) // 2
        return Case(
            When(**{f"{column}__lt": starts[mid]}, then=node(lo, mid)),
            default=node(mid, hi),
            output_field=IntegerField(),
        )

    return node(0, len(starts))


# --- Running a query


Row = dict[str, Any]


def run(query: Query) -> dict[str, Any]:
    rows, source = _rows(query)
    totals, _ = _rows(replace(query, dimensions=(), order_by=()))
    total = totals[0]["metrics"] if totals else _zeros(query)
    ordered = _ordered(rows, query)[query.offset : query.offset + query.limit]
    answer: dict[str, Any] = {
        "results": ordered,
        "totals": total,
        "meta": {
            "source": source,
            "time_zone": query.website.timezone,
            "date_range": [metrics.iso(query.since), metrics.iso(query.until)],
            "rows": len(rows),
        },
    }
    if query.compare:
        other = shifted(query)
        before, _ = _rows(other)
        before_totals, _ = _rows(replace(other, dimensions=(), order_by=()))
        _attach_comparison(answer, before, before_totals, query)
        answer["meta"]["comparison_range"] = [metrics.iso(other.since), metrics.iso(other.until)]
    return answer


RATES = {"views_per_visit", "bounce_rate", "returning_rate"}


def _zeros(query: Query) -> list:
    """A row's figures when nothing happened: 0, or 0.0 for rates."""
    return [0.0 if name in RATES else 0 for name in query.metrics]


def shifted(query: Query) -> Query:
    """The period compared with: the one just before, of the same length, or a year before."""
    if query.compare == "year_over_year":
        zone = query.website.zone

        def back(moment: dt.datetime) -> dt.datetime:
            local = moment.astimezone(zone)
            try:
                return local.replace(year=local.year - 1)
            except ValueError:  # 29 February
                return local.replace(year=local.year - 1, day=28)

        return replace(query, since=back(query.since), until=back(query.until), shifted=True)
    length = query.until - query.since
    until = query.since - dt.timedelta(microseconds=1)
    return replace(query, since=until - length, until=until, shifted=True)


def _attach_comparison(
    answer: dict, before: list[Row], before_totals: list[Row], query: Query
) -> None:
    """Each row gets the same row of the compared period: same dimension values, time
    buckets matched by position (the 3rd day of the range with the 3rd day before)."""
    other = shifted(query)
    positions = {}
    for dim in query.dimensions:
        if dim in TIME:
            zone = query.website.zone
            positions[dim] = (
                {_label(s, dim, zone): i for i, s in enumerate(buckets(query, dim))},
                {_label(s, dim, zone): i for i, s in enumerate(buckets(other, dim))},
            )

    def key(row: Row, side: int) -> tuple:
        return tuple(
            positions[dim][side].get(value) if dim in positions else value
            for dim, value in zip(query.dimensions, row["dimensions"], strict=True)
        )

    earlier_rows = {key(row, 1): row for row in before}
    empty = _zeros(query)
    for row in answer["results"]:
        earlier = earlier_rows.get(key(row, 0))
        values = earlier["metrics"] if earlier else empty
        row["comparison"] = {
            "dimensions": earlier["dimensions"] if earlier else None,
            "metrics": values,
            "change": [_change(a, b) for a, b in zip(row["metrics"], values, strict=True)],
        }
    then = before_totals[0]["metrics"] if before_totals else empty
    answer["comparison_totals"] = {
        "metrics": then,
        "change": [_change(a, b) for a, b in zip(answer["totals"], then, strict=True)],
    }


def _change(now: float, then: float) -> float | None:
    """Percent change; None when there was nothing before."""
    if not then:
        return None if now else 0.0
    return round(100 * (now - then) / then, 1)


def _ordered(rows: list[Row], query: Query) -> list[Row]:
    def value(row: Row, name: str):
        if name in query.metrics:
            return row["metrics"][query.metrics.index(name)]
        return row["dimensions"][query.dimensions.index(name)]

    for name, direction in reversed(query.order_by):
        rows.sort(key=functools.partial(value, name=name), reverse=direction == "desc")
    return rows


def _rows(query: Query) -> tuple[list[Row], str]:
    if not query.filters:
        found = _from_aggregates(query)
        if found is not None:
            return found, "aggregates"
    else:
        found = filtered.rows(query, timezone.now(), COLUMNS)
        if found is not None:
            return found, "days"
    return _from_events(query), "events"


# --- From aggregates


def _from_aggregates(query: Query) -> list[Row] | None:
    if query.until < query.since or not _quarters(query):
        return None
    if not query.dimensions:
        return _totals_from_tallies(query)
    if len(query.dimensions) == 1 and query.dimensions[0] in TIME:
        return _series_from_tallies(query)
    if len(query.dimensions) == 1:
        return _breakdown_from_periods(query)
    return None


_VISITOR_COLUMN = aggregates._VISITOR_COLUMN
_SESSION_VISITORS = {aggregates.DAY: "day", aggregates.WEEK: "week", aggregates.MONTH: "month"}


def _one_period(query: Query) -> int | None:
    """The aggregate kind when [since, until] is one whole local day, week or month (so far)."""
    periods: tuple[tuple[int, metrics.Period], ...] = (
        (aggregates.DAY, "today"),
        (aggregates.WEEK, "week"),
        (aggregates.MONTH, "month"),
    )
    for kind, name in periods:
        start = metrics.period_start(query.until, query.website, name)
        if query.since == start:
            end = _period_end(start, kind, query.website)
            if query.until < end:
                return kind
    return None


def _period_end(start: dt.datetime, kind: int, website: Website) -> dt.datetime:
    local = start.astimezone(website.zone).date()
    if kind == aggregates.DAY:
        after = local + dt.timedelta(days=1)
    elif kind == aggregates.WEEK:
        after = local + dt.timedelta(days=7)
    else:
        after = _months_back(local, -1)
    return dt.datetime.combine(after, dt.time(), tzinfo=website.zone)


def _tally_metrics(sums: dict[str, int], query: Query, kind: int | None) -> list | None:
    values: list = []
    for name in query.metrics:
        sessions = sums["sessions"]
        if name == "visitors":
            if kind is None and "visitors" not in sums:
                return None
            values.append(sums[_VISITOR_COLUMN[kind]] if kind else sums["visitors"])
        elif name == "returning_rate":
            if kind not in _SESSION_VISITORS:
                return None
            who = sums[f"{_SESSION_VISITORS[kind]}_session_visitors"]
            values.append(
                round(sums[f"{_SESSION_VISITORS[kind]}_returning"] / who, 2) if who else 0.0
            )
        elif name == "pageviews":
            values.append(sums["pageviews"])
        elif name == "events":
            values.append(sums["custom_events"])
        elif name == "visits":
            values.append(sessions)
        elif name == "views_per_visit":
            values.append(round(sums["session_pageviews"] / sessions, 2) if sessions else 0.0)
        elif name == "bounce_rate":
            values.append(round(sums["bounces"] / sessions, 2) if sessions else 0.0)
        elif name == "visit_duration":
            values.append(round(sums["duration_us"] / sessions / 1_000_000) if sessions else 0)
    return values


_SUMMED = aggregates.TALLY_COLUMNS  # every quarter column, summed over a bucket


def _quarters(query: Query) -> bool:
    """Whether [since, until] is made of whole quarters, the last one up to the present:
    then its quarter rows hold exactly its events."""
    if query.since != aggregates.quarter_start(quarter_of(query.since)):
        return False
    after = query.until + dt.timedelta(microseconds=1)
    if after == aggregates.quarter_start(quarter_of(after)):
        return True
    return query.until >= timezone.now() - metrics.PRESENT


def _totals_from_tallies(query: Query) -> list[Row] | None:
    if not _quarters(query):
        return None
    sums = Tally.objects.filter(
        website=query.website,
        quarter__gte=quarter_of(query.since),
        quarter__lte=quarter_of(query.until),
    ).aggregate(**{name: Sum(name, default=0) for name in _SUMMED})
    kind = _one_period(query)
    if kind is None and "visitors" in query.metrics:  # over several days: from sketches
        found = sketches.figures(query.website, query.since, query.until, None, timezone.now())
        if found is None:
            return None
        sums["visitors"] = found.get("", (0, 0))[1]
    values = _tally_metrics(sums, query, kind)
    return None if values is None else [{"dimensions": [], "metrics": values}]


def _series_from_tallies(query: Query) -> list[Row] | None:
    name = query.dimensions[0]
    kind = TIME[name]
    starts = buckets(query, name)
    partial = starts[0] != query.since  # a partial first bucket's distinct visitors are not kept
    if partial and {"visitors", "returning_rate"} & set(query.metrics):
        return None
    if not _quarters(query):
        return None
    edges = [quarter_of(start) for start in starts]
    rows = Tally.objects.filter(
        website=query.website,
        quarter__gte=quarter_of(query.since),
        quarter__lte=quarter_of(query.until),
    ).values_list("quarter", *_SUMMED)
    sums = [dict.fromkeys(_SUMMED, 0) for _ in starts]
    for quarter, *values in rows:
        i = bisect.bisect_right(edges, quarter) - 1
        for column, number in zip(_SUMMED, values, strict=True):
            sums[i][column] += number
    found = []
    zone = query.website.zone
    for start, bucket in zip(starts, sums, strict=True):
        values = _tally_metrics(bucket, query, kind)
        if values is None:
            return None
        found.append({"dimensions": [_label(start, name, zone)], "metrics": values})
    return found


COUNTED = {"visitors", "pageviews", "events"}


def _breakdown_from_periods(query: Query) -> list[Row] | None:
    """A breakdown of events' figures (from the days' sketches), of visits' (from
    visit tallies), or of both, merged by value."""
    counted = tuple(m for m in query.metrics if m in COUNTED)
    visited = tuple(m for m in query.metrics if m not in COUNTED)
    parts = []
    for chosen, answer in ((counted, _counted_breakdown), (visited, _visits_breakdown)):
        if chosen:
            rows = answer(replace(query, metrics=chosen))
            if rows is None:
                return None
            parts.append((chosen, rows))
    merged: dict[str, list] = defaultdict(lambda: _zeros(query))
    for chosen, rows in parts:
        for row in rows:
            figures = merged[row["dimensions"][0]]
            for name, value in zip(chosen, row["metrics"], strict=True):
                figures[query.metrics.index(name)] = value
    return [{"dimensions": [value], "metrics": figures} for value, figures in merged.items()]


def _visits_breakdown(query: Query) -> list[Row] | None:
    """Visits begun in the range's whole days, by a visit's dimension (`zenovay.visits`)."""
    name = query.dimensions[0]
    if name not in visits.DIMS or "returning_rate" in query.metrics:
        return None
    found = visits.sums(query.website, query.since, query.until, name, timezone.now())
    if found is None:
        return None
    rows = []
    for value, (count, bounces, pages, duration_us) in found.items():
        figures = {
            "visits": count,
            "views_per_visit": round(pages / count, 2) if count else 0.0,
            "bounce_rate": round(bounces / count, 2) if count else 0.0,
            "visit_duration": round(duration_us / count / 1_000_000) if count else 0,
        }
        rows.append({"dimensions": [value], "metrics": [figures[m] for m in query.metrics]})
    return rows


def _counted_breakdown(query: Query) -> list[Row] | None:
    name = query.dimensions[0]
    if name not in sketches.DIMS:
        return None
    if name == "event:name" and "pageviews" in query.metrics:
        return None
    if name != "event:name" and "events" in query.metrics:
        return None
    # Counts summed and visitors estimated (HyperLogLog: exact below about 2,000 visitors,
    # 0.8 % standard error above) over the range's whole local days.
    found = sketches.figures(
        query.website, query.since, query.until, sketches.DIMS[name], timezone.now()
    )
    if found is None:
        return None
    pick = {"visitors": 1, "pageviews": 0, "events": 0}
    return [
        {"dimensions": [value], "metrics": [figures[pick[m]] for m in query.metrics]}
        for value, figures in found.items()
    ]


# --- From raw events and sessions


def _from_events(query: Query) -> list[Row]:
    if VISIT_METRICS & set(query.metrics):
        visits = _visit_rows(query)
        if set(query.metrics) <= VISIT_METRICS:
            return visits
        counts = _event_rows(query)
        return _merge(query, visits, counts)
    return _event_rows(query)


def _group(
    query: Query, qs: QuerySet, time_column: str, table: int
) -> tuple[QuerySet, list[str], list]:
    """`qs` annotated with one column per dimension, and how to read each back."""
    names: list[str] = []
    readers: list[Callable[[Any], Any]] = []
    for dim in query.dimensions:
        alias = "d_" + re.sub(r"\W", "_", dim)
        if dim in TIME:
            starts = buckets(query, dim)
            qs = qs.annotate(**{alias: _bucket_case(time_column, starts)})
            zone = query.website.zone
            readers.append(functools.partial(_label_of_bucket, starts, dim, zone))
        elif dim.startswith(PROPS):
            qs = qs.annotate(**{alias: KeyTextTransform(dim[len(PROPS) :], "props")})
            readers.append(lambda v: "" if v is None else str(v))
        else:
            qs = qs.annotate(**{alias: F(_column(dim, table))})
            readers.append(lambda v: v)
        names.append(alias)
    return qs, names, readers


def _column(dimension: str, table: int) -> str:
    """A dimension's column in events (table 0) or sessions (1); validation has kept the
    query to dimensions its tables have."""
    column = COLUMNS[dimension][table]
    assert column is not None, (dimension, table)
    return column


def _filtered(qs: QuerySet, filters: tuple[Filter, ...], table: int) -> QuerySet:
    for i, f in enumerate(filters):
        if f.dimension.startswith(PROPS):
            column = f"f_prop_{i}"
            qs = qs.annotate(**{column: KeyTextTransform(f.dimension[len(PROPS) :], "props")})
        else:
            column = _column(f.dimension, table)
        if f.operator in ("is", "is_not"):
            condition = Q(**{f"{column}__in": list(f.values)})
        elif f.operator == "contains":
            condition = Q()
            for v in f.values:
                condition |= Q(**{f"{column}__contains": v})
        else:
            condition = Q()
            for v in f.values:
                condition |= Q(**{f"{column}__regex": v})
        qs = qs.exclude(condition) if f.operator == "is_not" else qs.filter(condition)
    return qs


def _grouped(qs: QuerySet, aliases: list[str], annotations: dict[str, Any]) -> list[dict]:
    """One row per combination of the dimension columns; one row in all without them."""
    if not aliases:
        return [qs.aggregate(**annotations)]
    return list(qs.values(*aliases).annotate(**annotations).order_by())


def _event_rows(query: Query) -> list[Row]:
    website = query.website
    base = Event.objects.filter(website=website, ts__gte=query.since, ts__lte=query.until)
    base = _filtered(base, query.filters, 0)
    if query.event_scoped:
        scoped = base.filter(type=Event.CUSTOM)
        plan = {"visitors": ("visitor", scoped), "events": ("events", scoped)}
    else:
        views = base.filter(type=Event.PAGEVIEW)
        plan = {
            "visitors": ("visitor", views),
            "pageviews": ("views", views),
            "events": ("events", base.filter(type=Event.CUSTOM)),
        }
    found: dict[tuple, list] = defaultdict(lambda: _zeros(query))
    wanted = [m for m in query.metrics if m in plan]
    by_source: dict[int, list[str]] = defaultdict(list)
    sources = {}
    for name in wanted:
        qs = plan[name][1]
        sources[id(qs)] = qs
        by_source[id(qs)].append(name)
    for source_id, names in by_source.items():
        qs, aliases, readers = _group(query, sources[source_id], "ts", 0)
        annotations = {}
        for name in names:
            annotations[name] = (
                Count("visitor", distinct=True) if name == "visitors" else Count("id")
            )
        values = _grouped(qs, aliases, annotations)
        for row in values:
            key = tuple(read(row[a]) for read, a in zip(readers, aliases, strict=True))
            if any(
                v in ("", None)
                for v, dim in zip(key, query.dimensions, strict=True)
                if dim not in TIME
            ):
                continue  # unknown values are left out, as the dashboard does
            for name in names:
                found[key][query.metrics.index(name)] = row[name]
    return _with_empty_buckets(query, found)


def _visit_rows(query: Query) -> list[Row]:
    website = query.website
    sessions = Session.objects.filter(
        website=website, started_at__gte=query.since, started_at__lte=query.until
    )
    sessions = _filtered(sessions, query.filters, 1)
    qs, aliases, readers = _group(query, sessions, "started_at", 1)
    values = _grouped(
        qs,
        aliases,
        {
            "count": Count("id"),
            "bounces": Count("id", filter=Q(pageviews=1, custom_events=0)),
            "pages": Sum("pageviews"),
            "duration": Avg(F("last_event_at") - F("started_at")),
        },
    )
    found: dict[tuple, list] = defaultdict(lambda: _zeros(query))
    for row in values:
        key = tuple(read(row[a]) for read, a in zip(readers, aliases, strict=True))
        if any(
            v in ("", None) for v, dim in zip(key, query.dimensions, strict=True) if dim not in TIME
        ):
            continue
        count = row["count"]
        figures = {
            "visits": count,
            "views_per_visit": round((row["pages"] or 0) / count, 2) if count else 0.0,
            "bounce_rate": round(row["bounces"] / count, 2) if count else 0.0,
            "visit_duration": round(metrics._seconds(row["duration"])) if count else 0,
        }
        for name, value in figures.items():
            if name in query.metrics:
                found[key][query.metrics.index(name)] = value
    if "returning_rate" in query.metrics:
        for key, rate in _returning(query, sessions).items():
            found[key][query.metrics.index("returning_rate")] = rate
    return _with_empty_buckets(query, found)


def _returning(query: Query, sessions: QuerySet) -> dict[tuple, float]:
    """Per row, the share of its visitors who had a visit in the 32 days before the range
    began (before their own bucket began, per time bucket: one query per bucket)."""
    time_dims = [d for d in query.dimensions if d in TIME]
    if not time_dims:
        return _returning_since(query, sessions, query.since)
    found: dict[tuple, float] = {}
    starts = buckets(query, time_dims[0])
    for i, start in enumerate(starts):
        since = max(start, query.since)
        until = starts[i + 1] if i + 1 < len(starts) else None
        part = sessions.filter(started_at__gte=since)
        part = part.filter(started_at__lt=until) if until else part
        found.update(_returning_since(query, part, since))
    return found


def _returning_since(query: Query, sessions: QuerySet, since: dt.datetime) -> dict[tuple, float]:
    earlier = Session.objects.filter(
        website=query.website,
        visitor=OuterRef("visitor"),
        last_event_at__lt=since,
        last_event_at__gte=since - metrics.RETURNING_LOOKBACK,
    )
    qs, aliases, readers = _group(query, sessions, "started_at", 1)
    rows = _grouped(
        qs,
        aliases,
        {
            "who": Count("visitor", distinct=True),
            "back": Count("visitor", distinct=True, filter=Q(Exists(earlier))),
        },
    )
    found = {}
    for row in rows:
        if not row["who"]:
            continue
        key = tuple(read(row[a]) for read, a in zip(readers, aliases, strict=True))
        found[key] = round(row["back"] / row["who"], 2)
    return found


def _merge(query: Query, visits: list[Row], counts: list[Row]) -> list[Row]:
    merged: dict[tuple, list] = {}
    visit_names = [i for i, m in enumerate(query.metrics) if m in VISIT_METRICS]
    for row in counts:
        merged[tuple(row["dimensions"])] = list(row["metrics"])
    for row in visits:
        values = merged.setdefault(tuple(row["dimensions"]), _zeros(query))
        for i in visit_names:
            values[i] = row["metrics"][i]
    return [{"dimensions": list(k), "metrics": v} for k, v in merged.items()]


def _with_empty_buckets(query: Query, found: dict[tuple, list]) -> list[Row]:
    """Rows as lists; with only a time dimension, every bucket, empty ones included."""
    if query.dimensions and len(query.dimensions) == 1 and query.dimensions[0] in TIME:
        name = query.dimensions[0]
        zone = query.website.zone
        labels = [_label(start, name, zone) for start in buckets(query, name)]
        return [
            {"dimensions": [label], "metrics": found.get((label,), _zeros(query))}
            for label in labels
        ]
    if not query.dimensions:
        return [{"dimensions": [], "metrics": found.get((), _zeros(query))}]
    return [{"dimensions": list(key), "metrics": values} for key, values in found.items()]
