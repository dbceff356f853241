"""Filtered queries over whole days: each finished day's answer kept as sketches.

A filter (country is DE, page contains /blog, ...) can be any combination, so no aggregate
holds its figures ahead: the raw events of the range must be read. But a finished day's
events never change, so the first time a filtered query covers it, its figures per value of
the query's dimension are kept as sketches (`Sketch` rows of kind `KIND`, under the digest of
the filters and the dimension: the query's *scope*); later queries with the same filters read
the raw events of today only. A dashboard showing a filtered view re-asks on every push, so
this is what keeps a filter on a busy site from costing a scan of the month every second.

Answered here: counts (pageviews, or custom events) and visitors, by nothing, by day, week
or month, or by one event column, over whole local days. Visitors are the sketches' estimate
(exact below about 2,000; 0.8 % standard error above), counts exact. Kept scopes go with
first-seen rows, two months after their day (`retention.prune`).
"""

from __future__ import annotations

import bisect
import datetime as dt
import hashlib
import json
from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.db.models import Count, F, Value
from django.db.models.fields.json import KeyTextTransform

from zenovay import aggregates, sketches
from zenovay.models import Event, Sketch, SketchMark

if TYPE_CHECKING:
    from zenovay.query import Query

KIND = 30
COUNTED = {"visitors", "pageviews", "events"}
BY_DAYS = ("time:day", "time:week", "time:month")


def rows(query: Query, now: dt.datetime, columns: dict[str, tuple[str | None, str | None]]):
    """The query's rows (as `query._event_rows` makes them), or None when not answered here."""
    plan = _source(query)
    if plan is None or len(query.dimensions) > 1:
        return None
    dim = query.dimensions[0] if query.dimensions else None
    if dim is not None and dim not in BY_DAYS and not _event_column(dim, columns):
        return None
    days = sketches.whole_days(query.website, query.since, query.until, now)
    if days is None:
        return None
    zone = query.website.zone
    periods = [int(sketches.midnight(day, zone).timestamp()) for day in days]
    scope = _scope(query, plan)
    per_day = _per_day(query, periods, scope, plan, dim, now, columns)
    return _answer(query, dim, periods, per_day)


def _source(query: Query) -> str | None:
    """Which events the figures count: pageviews, or custom events; None if both."""
    chosen = set(query.metrics)
    if not chosen <= COUNTED:
        return None
    if query.event_scoped or chosen == {"events"}:
        return Event.CUSTOM if "pageviews" not in chosen else None
    return Event.PAGEVIEW if "events" not in chosen else None


def _event_column(dim: str, columns) -> bool:
    from zenovay.query import PROPS

    return dim.startswith(PROPS) or (dim in columns and columns[dim][0] is not None)


def _scope(query: Query, source: str) -> str:
    described = {
        "filters": [[f.operator, f.dimension, list(f.values)] for f in query.filters],
        "source": source,
        "by": "" if not query.dimensions or query.dimensions[0] in BY_DAYS else query.dimensions[0],
    }
    text = json.dumps(described, sort_keys=True)
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def _per_day(query, periods, scope, source, dim, now, columns) -> dict[int, sketches.Parts]:
    """Per day: its figures per value ("" without a value dimension)."""
    website = query.website
    target = now - sketches.LAG
    finished = [p for p in periods if sketches.day_end(p, website.zone) <= target]
    kept = set(
        SketchMark.objects.filter(
            website=website, kind=KIND, scope=scope, period__in=finished
        ).values_list("period", flat=True)
    )
    missing = [p for p in finished if p not in kept]
    found: dict[int, sketches.Parts] = {p: sketches.Parts() for p in periods}
    if missing:
        _keep(query, missing, scope, source, dim, columns, found)
    stored = Sketch.objects.filter(website=website, kind=KIND, scope=scope, period__in=kept)
    for period, value, count, registers in stored.values_list(
        "period", "value", "count", "registers"
    ):
        found[period].add_stored(("", value), count, registers)
    open_days = [p for p in periods if p not in finished]
    if open_days:
        start = dt.datetime.fromtimestamp(open_days[0], dt.UTC)
        _scan(query, open_days, start, query.until, source, dim, columns, found)
    return found


def _keep(query, missing, scope, source, dim, columns, found) -> None:
    """Read the missing finished days' events once, and keep their figures."""
    website = query.website
    start = dt.datetime.fromtimestamp(missing[0], dt.UTC)
    end = sketches.day_end(missing[-1], website.zone) - dt.timedelta(microseconds=1)
    scanned = {p: sketches.Parts() for p in missing}
    _scan(query, missing, start, end, source, dim, columns, scanned)
    with transaction.atomic():
        sketches.lock(website.pk)
        done = set(
            SketchMark.objects.filter(
                website=website, kind=KIND, scope=scope, period__in=missing
            ).values_list("period", flat=True)
        )
        todo = [p for p in missing if p not in done]
        sketches.save([row for p in todo for row in scanned[p].rows(website.pk, KIND, p, scope)])
        SketchMark.objects.bulk_create(
            [
                SketchMark(
                    website=website,
                    kind=KIND,
                    period=p,
                    scope=scope,
                    until_us=aggregates.micros(sketches.day_end(p, website.zone)),
                )
                for p in todo
            ],
            ignore_conflicts=True,
        )
    for p in missing:
        found[p] = scanned[p]


def _scan(query, periods, since, until, source, dim, columns, into) -> None:
    """Group the filtered events of [since, until] by local day, value and visitor, into
    `into` (per day of `periods`)."""
    from zenovay.query import PROPS, _bucket_case, _filtered

    events = Event.objects.filter(website=query.website, ts__gte=since, ts__lte=until, type=source)
    events = _filtered(events, query.filters, 0)
    starts = [dt.datetime.fromtimestamp(p, dt.UTC) for p in periods]
    if dim is None or dim in BY_DAYS:
        value: Any = Value("")
    elif dim.startswith(PROPS):
        value = KeyTextTransform(dim[len(PROPS) :], "props")
    else:
        value = F(columns[dim][0])
    grouped = (
        events.annotate(g_day=_bucket_case("ts", starts), g_value=value)
        .values_list("g_day", "g_value", "visitor")
        .annotate(n=Count("id"))
        .order_by()
    )
    by_value = dim is not None and dim not in BY_DAYS
    for day, raw, visitor, count in grouped.iterator(chunk_size=5000):
        if by_value and raw in ("", None):
            continue  # unknown values are left out, as every breakdown does
        into[periods[day]].add(("", "" if raw is None else str(raw)), visitor, count)


def _answer(query: Query, dim: str | None, periods: list[int], per_day) -> list[dict]:
    """Days merged into the query's rows: one, one per time bucket, or one per value."""
    from zenovay.query import _label, buckets

    zone = query.website.zone
    if dim in BY_DAYS:
        starts = buckets(query, dim)
        edges = [int(start.timestamp()) for start in starts]
        groups: dict[int, list[int]] = {}
        for period in periods:
            groups.setdefault(bisect.bisect_right(edges, period) - 1, []).append(period)
        rows = []
        for i, start in enumerate(starts):
            figures = _merged([per_day[p] for p in groups.get(i, [])]).get("", (0, 0))
            label = _label(start, dim, zone)
            rows.append({"dimensions": [label], "metrics": _pick(query, figures)})
        return rows
    merged = _merged([per_day[p] for p in periods])
    if dim is None:
        return [{"dimensions": [], "metrics": _pick(query, merged.get("", (0, 0)))}]
    return [
        {"dimensions": [value], "metrics": _pick(query, figures)}
        for value, figures in merged.items()
    ]


def _merged(days: list[sketches.Parts]) -> dict[str, tuple[int, int]]:
    total = sketches.Parts()
    for parts in days:
        for key, union in parts.unions.items():
            total.add_union(key, parts.counts[key], union)
    return total.figures()


def _pick(query: Query, figures: tuple[int, int]) -> list[int]:
    count, visitors = figures
    return [visitors if name == "visitors" else count for name in query.metrics]
