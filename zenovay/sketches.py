"""Distinct visitors over any run of whole local days, from HyperLogLog sketches.

The problem: distinct visitors do not add up across days, so "visitors in the last 30 days"
(or per page over 12 months) needed a scan of the range's events: seconds at 10^7 events a
month. The aggregates keep them exact only per local day, week and month.

Instead each local day keeps, for the website as a whole and per dimension value, the
number of its events and a HyperLogLog sketch of their visitors (`Sketch`; Apache
DataSketches, lg_k = 14: 16,384 four-bit registers, about 8 KiB at most, relative standard
error 0.8 %, and exact below about 2,000 distinct visitors, where the sketch is still a
list of hashes). Visitors over a range are the estimate of the union of its days'
sketches; a whole local month's days are merged once into a month sketch, and the current
month's finished days into a month-so-far sketch brought forward a day at a time (SO_FAR),
so a year costs at most 12 months, one month so far and today. Counts (pageviews, custom
events) are plain sums.

Where they come from: a day's sketches are built from its raw events, forward only.
`SketchMark.until_us` says how far they go; bringing them forward reads only the events
since, through the (website, ts) index. Events are sealed up to `LAG` before now (an event
is committed moments after its timestamp; the group commit answers within a second), and
a query adds the events after the mark on the fly, so every acknowledged event counts.
Sketches are brought forward when a query needs them (today's at most once per `STALE`),
by `manage.py seal_sketches`, by `prune` before raw events go, and finished days and months
in the background by every server process (`zenovay.sealer`), so queries find them sealed.

Figures: "" is the website's pageviews and their visitors; one-letter dimensions as in
`DIMS` (pageviews for all but event names, which count custom events). `matching` takes
the values matching a pattern as one (a goal: an event name, a path or a path pattern).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import datasketches
from django.db import connection, transaction
from django.utils import timezone

from zenovay import aggregates, metrics
from zenovay.models import Event, Sketch, SketchMark, Website

LG_K = 14
STORED = datasketches.tgt_hll_type.HLL_4
LAG = dt.timedelta(minutes=2)
STALE = dt.timedelta(minutes=1)
DAY, MONTH = aggregates.DAY, aggregates.MONTH
SO_FAR = 5  # a month's first days, merged: its mark says up to where
DIMS = {
    "page": "p",
    "referrer": "r",
    "utm_source": "u",
    "utm_medium": "m",
    "utm_campaign": "n",
    "country": "c",
    "device": "d",
    "browser": "b",
    "os": "o",
    "event:name": "e",
}
_COLUMNS = (
    "type",
    "visitor",
    "path",
    "referrer_host",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "country",
    "device",
    "browser",
    "os",
    "name",
)
_PAGEVIEW_DIMS = tuple(enumerate("prumncdbo", start=2))  # column index, dimension
Key = tuple[str, str]  # (dimension, value); ("", "") is the whole website


class Parts:
    """Counts and visitor unions per key, fed with events and with stored sketches."""

    def __init__(self, dim: str | None = None) -> None:
        self.dim = dim  # None: every key
        self.counts: dict[Key, int] = {}
        self.unions: dict[Key, datasketches.hll_union] = {}

    def _part(self, key: Key) -> datasketches.hll_union:
        union = self.unions.get(key)
        if union is None:
            union = self.unions[key] = datasketches.hll_union(LG_K)
            self.counts[key] = 0
        return union

    def add(self, key: Key, visitor: int, count: int = 1) -> None:
        """`count` events of `visitor` with this key."""
        if self.dim is None or key[0] == self.dim:
            self._part(key).update(visitor)
            self.counts[key] += count

    def add_events(self, rows: Iterable[Sequence]) -> None:
        for row in rows:
            visitor = row[1]
            if row[0] == Event.PAGEVIEW:
                self.add(("", ""), visitor)
                for i, dim in _PAGEVIEW_DIMS:
                    if row[i]:
                        self.add((dim, row[i]), visitor)
            elif row[0] == Event.CUSTOM and row[11]:
                self.add(("e", row[11]), visitor)

    def add_union(self, key: Key, count: int, union: datasketches.hll_union) -> None:
        self._part(key).update(union.get_result(datasketches.tgt_hll_type.HLL_8))
        self.counts[key] += count

    def add_stored(self, key: Key, count: int, registers: bytes) -> None:
        self._part(key).update(datasketches.hll_sketch.deserialize(bytes(registers)))
        self.counts[key] += count

    def figures(self) -> dict[str, tuple[int, int]]:
        """Per value (the dimension's, or "" for the website): count and visitors."""
        return {
            key[1]: (self.counts[key], round(union.get_estimate()))
            for key, union in self.unions.items()
        }

    def merged(self, pattern: str) -> tuple[int, int]:
        """The values matching the regular expression as one: their counts summed, their
        visitors' union (a visitor of two such values is one)."""
        match = re.compile(pattern).search
        together = datasketches.hll_union(LG_K)
        count = 0
        for key, union in self.unions.items():
            if match(key[1]):
                together.update(union.get_result(datasketches.tgt_hll_type.HLL_8))
                count += self.counts[key]
        return count, round(together.get_estimate())

    def rows(self, website_pk: int, kind: int, period: int, scope: str = "") -> list[Sketch]:
        return [
            Sketch(
                website_id=website_pk,
                kind=kind,
                period=period,
                scope=scope,
                dim=dim,
                value=value,
                count=self.counts[(dim, value)],
                registers=union.get_result(STORED).serialize_compact(),
            )
            for (dim, value), union in self.unions.items()
        ]


# --- Reading


@dataclass
class _Plan:
    months: list[int]  # starts of whole, finished local months
    days: list[int]  # starts of whole local days outside those months (and so-far months)
    open_from: dt.datetime | None  # set by _bring_forward: today's events from here are live
    until: dt.datetime
    so_far: list[int] = field(default_factory=list)  # set by _bring_forward: months' SO_FAR


def figures(
    website: Website, since: dt.datetime, until: dt.datetime, dim: str | None, now: dt.datetime
) -> dict[str, tuple[int, int]] | None:
    """Per value of `dim` (a letter of `DIMS`; None: the website as a whole, value ""),
    the events counted and the distinct visitors (estimated) over [since, until]; None
    unless the range is whole local days, the last one possibly today so far."""
    parts = _read(website, since, until, "" if dim is None else dim, now)
    return None if parts is None else parts.figures()


def matching(
    website: Website,
    since: dt.datetime,
    until: dt.datetime,
    dim: str,
    pattern: str,
    now: dt.datetime,
) -> tuple[int, int] | None:
    """The events of every value of `dim` matching the regular expression `pattern`, counted,
    and their distinct visitors (estimated, each once) over [since, until]: a goal over
    several days. None unless the range is whole local days, the last one possibly today."""
    parts = _read(website, since, until, dim, now, pattern)
    return None if parts is None else parts.merged(pattern)


def _read(
    website: Website,
    since: dt.datetime,
    until: dt.datetime,
    dim: str,
    now: dt.datetime,
    pattern: str | None = None,
) -> Parts | None:
    """The range's sketches of `dim` (of its values matching `pattern`, if given), and the
    open day's live events; None unless the range is whole local days."""
    plan = _plan(website, since, until, now)
    if plan is None:
        return None
    _bring_forward(website, plan, now)
    parts = Parts(dim)
    stored = Sketch.objects.filter(website=website, dim=dim)
    if pattern is not None:
        stored = stored.filter(value__regex=pattern)
    for kind, periods in ((MONTH, plan.months), (SO_FAR, plan.so_far), (DAY, plan.days)):
        if periods:
            rows = stored.filter(kind=kind, period__in=periods)
            for value, count, registers in rows.values_list("value", "count", "registers"):
                parts.add_stored((dim, value), count, registers)
    if plan.open_from is not None:
        parts.add_events(_events(website, plan.open_from, plan.until))
    return parts


def whole_days(
    website: Website, since: dt.datetime, until: dt.datetime, now: dt.datetime
) -> list[dt.date] | None:
    """The local days of [since, until]; None unless it is whole local days, the last one
    possibly today so far."""
    zone = website.zone
    if since.astimezone(zone).time() != dt.time() or until < since:
        return None
    first = since.astimezone(zone).date()
    after = (until + dt.timedelta(microseconds=1)).astimezone(zone)
    if after.time() == dt.time() and after <= now:
        last = after.date() - dt.timedelta(days=1)
    elif until >= now - metrics.PRESENT:
        last = until.astimezone(zone).date()
    else:
        return None
    return [first + dt.timedelta(days=n) for n in range((last - first).days + 1)]


def _plan(
    website: Website, since: dt.datetime, until: dt.datetime, now: dt.datetime
) -> _Plan | None:
    """The range as finished months and days; None unless it is whole local days."""
    days = whole_days(website, since, until, now)
    if days is None:
        return None
    zone, sealed_until = website.zone, now - LAG
    months: list[int] = []
    rest: list[int] = []
    for day in days:
        if months and day < _next_month(_local(months[-1], zone)):
            continue  # inside a month taken whole
        after_month = _next_month(day)
        whole = day.day == 1 and after_month - dt.timedelta(days=1) <= days[-1]
        if whole and midnight(after_month, zone) <= sealed_until:
            months.append(int(midnight(day, zone).timestamp()))
        else:
            rest.append(int(midnight(day, zone).timestamp()))
    return _Plan(months, rest, None, until)


def _local(period: int, zone) -> dt.date:
    return dt.datetime.fromtimestamp(period, dt.UTC).astimezone(zone).date()


def midnight(day: dt.date, zone) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), tzinfo=zone)


def _next_month(day: dt.date) -> dt.date:
    return (day.replace(day=28) + dt.timedelta(days=4)).replace(day=1)


def _events(website: Website, since: dt.datetime, until: dt.datetime):
    rows = Event.objects.filter(website=website, ts__gte=since, ts__lte=until)
    return rows.values_list(*_COLUMNS).iterator(chunk_size=5000)


# --- Sealing


def _bring_forward(website: Website, plan: _Plan, now: dt.datetime) -> None:
    """Seal the plan's days up to their end (today's up to `LAG` before now, when older
    than `STALE`) and its months; then the open day's live part starts at its mark."""
    zone = website.zone
    target = now - LAG
    marks = dict(
        SketchMark.objects.filter(
            website=website, kind=DAY, period__in=plan.days + _days_of(plan.months, zone)
        ).values_list("period", "until_us")
    )
    month_marks = set(
        SketchMark.objects.filter(website=website, kind=MONTH, period__in=plan.months).values_list(
            "period", flat=True
        )
    )
    for month in plan.months:
        if month not in month_marks:
            _seal_whole_month(website, month, marks, target)
    plan.open_from = None
    for day in plan.days:
        end = day_end(day, zone)
        mark = marks.get(day, -1)
        if end <= target:
            if mark < aggregates.micros(end):
                _seal_day(website, day, target)
            continue
        # Today (and yesterday, moments after midnight): sealed up to its mark, which is
        # brought forward when stale; the events after it are read live.
        if mark < aggregates.micros(target - STALE):
            mark = _seal_day(website, day, target)
        if plan.open_from is None:
            plan.open_from = aggregates.EPOCH + dt.timedelta(microseconds=mark)
    _use_so_far(website, plan, target)


def _use_so_far(website: Website, plan: _Plan, target: dt.datetime) -> None:
    """Read a month's first finished days, when the plan has at least two of them (this
    month so far, or the current month's part of the last 30 days), from the month's SO_FAR
    sketches: one row per value instead of one per value and day (at 10^7 events a month,
    a month's breakdowns read 27 times fewer sketches). SO_FAR is brought forward to the
    plan's last finished day of the month by merging the days since its mark, once a day;
    a plan ending before its mark reads days."""
    zone = website.zone
    local = [(day, _local(day, zone)) for day in plan.days if day_end(day, zone) <= target]
    firsts = [i for i, (_, date) in enumerate(local) if date.day == 1]
    if not firsts:
        return
    month, first = local[firsts[-1]]  # earlier months of the plan are whole or end before
    run = [
        day
        for i, (day, date) in enumerate(local[firsts[-1] :])
        if date == first + dt.timedelta(i) and date.month == first.month
    ]
    if len(run) < 2:
        return
    goal = aggregates.micros(day_end(run[-1], zone))
    mark = _mark(website, SO_FAR, month)
    if mark is None or mark < goal:
        mark = _merge_so_far(website, month, mark, run, goal)
    if mark == goal:
        plan.so_far.append(month)
        plan.days = [day for day in plan.days if day not in run]


def _merge_so_far(
    website: Website, month: int, mark: int | None, run: list[int], goal: int
) -> int | None:
    """The month's SO_FAR sketches extended with the days of `run` after `mark`; the new
    mark (None when another process moved it meanwhile: this plan reads days)."""
    zone = website.zone
    parts = Parts()
    days = [day for day in run if mark is None or aggregates.micros(day_end(day, zone)) > mark]
    stored = Sketch.objects.filter(website=website, kind=DAY, period__in=days)
    if mark is not None:
        stored = stored | Sketch.objects.filter(website=website, kind=SO_FAR, period=month)
    for dim, value, count, registers in stored.values_list(
        "dim", "value", "count", "registers"
    ).iterator(chunk_size=500):
        parts.add_stored((dim, value), count, registers)
    with transaction.atomic():
        lock(website.pk)
        if _mark(website, SO_FAR, month) != mark:
            return None
        save(parts.rows(website.pk, SO_FAR, month))
        SketchMark.objects.update_or_create(
            website=website, kind=SO_FAR, period=month, scope="", defaults={"until_us": goal}
        )
    return goal


def _seal_whole_month(
    website: Website, month: int, marks: dict[int, int], target: dt.datetime
) -> None:
    """Seal the month's days not sealed to their ends (`marks`: their marks), then merge
    them into the month's sketches."""
    zone = website.zone
    for day in _days_of([month], zone):
        if marks.get(day, -1) < aggregates.micros(day_end(day, zone)):
            _seal_day(website, day, target)
    _seal_month(website, month)


def seal_day(website: Website, period: int, now: dt.datetime) -> bool:
    """Seal a finished local day's sketches to its end as a query over it would, once the
    day ended `LAG` before `now`; whether it is sealed for good. For `zenovay.sealer`."""
    end = aggregates.micros(day_end(period, website.zone))
    return _seal_day(website, period, now - LAG) >= end


def seal_month(website: Website, month: int, now: dt.datetime) -> bool:
    """Merge a finished local month's days (sealing any not sealed yet) into its month
    sketches as a query over it would; for `zenovay.sealer`."""
    days = SketchMark.objects.filter(
        website=website, kind=DAY, period__in=_days_of([month], website.zone)
    )
    _seal_whole_month(website, month, dict(days.values_list("period", "until_us")), now - LAG)
    return True


def day_end(period: int, zone) -> dt.datetime:
    return midnight(_local(period, zone) + dt.timedelta(days=1), zone)


def _days_of(months: list[int], zone) -> list[int]:
    days = []
    for month in months:
        day = dt.datetime.fromtimestamp(month, dt.UTC).astimezone(zone).date()
        end = _next_month(day)
        while day < end:
            days.append(int(midnight(day, zone).timestamp()))
            day += dt.timedelta(days=1)
    return days


def _seal_day(website: Website, period: int, target: dt.datetime) -> int:
    """Bring one day's sketches forward to min(its end, target); the new mark.

    The events are read before the write transaction, which only checks that nobody
    moved the mark meanwhile: SQLite's one writer (ingest) never waits for the reading."""
    start = dt.datetime.fromtimestamp(period, dt.UTC)
    goal = aggregates.micros(min(day_end(period, website.zone), target))
    mark = _mark(website, DAY, period)
    since = aggregates.micros(start) if mark is None else mark
    if since >= goal:
        return since
    parts = Parts()
    if mark is not None:
        stored = Sketch.objects.filter(website=website, kind=DAY, period=period)
        for dim, value, count, registers in stored.values_list(
            "dim", "value", "count", "registers"
        ):
            parts.add_stored((dim, value), count, registers)
    moment = aggregates.EPOCH + dt.timedelta(microseconds=since)
    last = aggregates.EPOCH + dt.timedelta(microseconds=goal - 1)
    parts.add_events(_events(website, moment, last))
    with transaction.atomic():
        lock(website.pk)
        moved = _mark(website, DAY, period)
        if moved != mark:  # another process sealed it meanwhile: its rows stand
            return moved or since
        save(parts.rows(website.pk, DAY, period))
        SketchMark.objects.update_or_create(
            website=website, kind=DAY, period=period, defaults={"until_us": goal}
        )
    return goal


def _mark(website: Website, kind: int, period: int) -> int | None:
    marks = SketchMark.objects.filter(website=website, kind=kind, period=period, scope="")
    return marks.values_list("until_us", flat=True).first()


def _seal_month(website: Website, month: int) -> None:
    zone = website.zone
    parts = Parts()
    stored = Sketch.objects.filter(website=website, kind=DAY, period__in=_days_of([month], zone))
    for dim, value, count, registers in stored.values_list(
        "dim", "value", "count", "registers"
    ).iterator(chunk_size=500):
        parts.add_stored((dim, value), count, registers)
    end = dt.datetime.fromtimestamp(month, dt.UTC).astimezone(zone).date()
    until = aggregates.micros(midnight(_next_month(end), zone))
    with transaction.atomic():
        lock(website.pk)
        if _mark(website, MONTH, month) is None:
            save(parts.rows(website.pk, MONTH, month))
            SketchMark.objects.create(website=website, kind=MONTH, period=month, until_us=until)


def save(rows: list[Sketch]) -> None:
    Sketch.objects.bulk_create(
        rows,
        batch_size=500,
        update_conflicts=True,
        unique_fields=["website", "kind", "period", "scope", "dim", "value"],
        update_fields=["count", "registers"],
    )


def lock(website_pk: int) -> None:
    """One sealer per website at a time (SQLite's single writer is one already)."""
    if connection.vendor != "postgresql":
        return
    digest = hashlib.blake2b(f"sketch:{website_pk}".encode(), digest_size=8).digest()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [int.from_bytes(digest, signed=True)])


def seal(website: Website, before: dt.datetime, days: int = 62) -> int:
    """Seal every day of the `days` up to the one holding `before` (to their ends, or up to
    `LAG` before now); how many days were brought forward. For `prune`, before it deletes
    the raw events before `before`, and `manage.py seal_sketches`."""
    zone = website.zone
    target = timezone.now() - LAG
    last = before.astimezone(zone).date()
    periods = [
        int(midnight(last - dt.timedelta(days=n), zone).timestamp()) for n in range(days, -1, -1)
    ]
    marks = dict(
        SketchMark.objects.filter(website=website, kind=DAY, period__in=periods).values_list(
            "period", "until_us"
        )
    )
    done = 0
    for period in periods:
        goal = aggregates.micros(min(day_end(period, zone), target))
        if marks.get(period, -1) < goal and period < aggregates.micros(target) // 1_000_000:
            _seal_day(website, period, target)
            done += 1
    return done
