"""Visits by entry or exit page, source, place or device over any run of whole local days,
from tallies of the visits that have ended.

A visit belongs to the day it began, and its bounce, pageviews and duration change until it
ends (30 minutes without an event). So a day's visits are tallied (`VisitTally`, per
dimension value) as they end: `SketchMark` of kind `VISITS` holds how far, the start of the
first visit that may still go on (or the day's end, for good). Bringing a day forward reads
only the visits begun since its mark. A range of whole days reads those rows, plus the raw
visits begun after each day's mark: the last half hour or so, whatever the range's length.
Exact: the same sums the raw sessions give. Finished days are brought forward in the
background too, by every server process (`zenovay.sealer`), so queries find them tallied.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

from django.db import transaction
from django.db.models import Count, F, Min, Q, Sum

from zenovay import aggregates, metrics, sketches
from zenovay.ingest import SESSION_GAP
from zenovay.models import Session, SketchMark, VisitTally, Website

VISITS = 20  # the SketchMark kind of sealed visit tallies
# Query dimension -> (letter in VisitTally.dim, session column)
DIMS = {
    "entry_page": ("i", "entry_path"),
    "exit_page": ("x", "exit_path"),
    "referrer": ("r", "referrer_host"),
    "utm_source": ("u", "utm_source"),
    "utm_medium": ("m", "utm_medium"),
    "utm_campaign": ("n", "utm_campaign"),
    "country": ("c", "country"),
    "device": ("d", "device"),
    "browser": ("b", "browser"),
    "os": ("o", "os"),
}
Sums = list[int]  # visits, bounces, pageviews, duration in microseconds


def sums(
    website: Website, since: dt.datetime, until: dt.datetime, dimension: str, now: dt.datetime
) -> dict[str, Sums] | None:
    """Per value of `dimension`, the sums of the visits begun in [since, until]; None
    unless the range is whole local days."""
    days = sketches.whole_days(website, since, until, now)
    if days is None:
        return None
    zone = website.zone
    periods = [int(sketches.midnight(day, zone).timestamp()) for day in days]
    marks = dict(
        SketchMark.objects.filter(website=website, kind=VISITS, period__in=periods).values_list(
            "period", "until_us"
        )
    )
    settled = _settled(now)
    for period in periods:
        mark = marks.get(period)
        fresh = mark is not None and mark >= aggregates.micros(settled - sketches.STALE)
        if not _done(mark, period, zone) and not fresh:
            marks[period] = _bring_forward(website, period, mark, settled)
    letter, column = DIMS[dimension]
    found: dict[str, Sums] = defaultdict(lambda: [0, 0, 0, 0])
    rows = VisitTally.objects.filter(website=website, period__in=periods, dim=letter)
    columns = ("value", "visits", "bounces", "pageviews", "duration_us")
    for value, *figures in rows.values_list(*columns):
        _add(found[value], figures)
    for period in periods:  # the visits begun after the day's mark: read as they are
        start = _moment(marks[period]) if marks.get(period) else _moment(period * 1_000_000)
        end = min(sketches.day_end(period, zone), until + dt.timedelta(microseconds=1))
        if start < end:
            for value, figures in _grouped(website, start, end, column).items():
                _add(found[value], figures)
    return dict(found)


def seal_day(website: Website, period: int, now: dt.datetime) -> bool:
    """Tally a finished local day's visits as far as they have ended, as a query over it
    would; whether all have (the day is then sealed for good). For `zenovay.sealer`."""
    mark = _mark(website, period)
    if not _done(mark, period, website.zone):
        mark = _bring_forward(website, period, mark, _settled(now))
    return _done(mark, period, website.zone)


def _settled(now: dt.datetime) -> dt.datetime:
    """A visit quiet since then has ended (the lag: its last event may not be committed)."""
    return now - SESSION_GAP - sketches.LAG


def _done(mark: int | None, period: int, zone) -> bool:
    """Whether the day's visits are tallied for good: every visit it began has ended."""
    return mark is not None and mark >= aggregates.micros(sketches.day_end(period, zone))


def _mark(website: Website, period: int) -> int | None:
    marks = SketchMark.objects.filter(website=website, kind=VISITS, period=period)
    return marks.values_list("until_us", flat=True).first()


def _moment(micros: int) -> dt.datetime:
    return aggregates.EPOCH + dt.timedelta(microseconds=micros)


def _add(total: Sums, figures) -> None:
    for i, number in enumerate(figures):
        total[i] += number


def _bring_forward(website: Website, period: int, mark: int | None, settled: dt.datetime):
    """Tally the day's visits begun from its mark up to the first one that may still go on
    (or the day's end); the new mark. The visits are read before the write transaction,
    which only checks that nobody moved the mark meanwhile, so SQLite's one writer
    (ingest) never waits for the reading."""
    since = _moment(mark) if mark else dt.datetime.fromtimestamp(period, dt.UTC)
    end = sketches.day_end(period, website.zone)
    going_on = Session.objects.filter(
        website=website, started_at__gte=since, started_at__lt=end, last_event_at__gte=settled
    ).aggregate(first=Min("started_at"))["first"]
    upto = min(settled, end, going_on or end)
    if upto <= since:
        return mark
    added = {
        (letter, value): figures
        for letter, column in DIMS.values()
        for value, figures in _grouped(website, since, upto, column).items()
    }
    with transaction.atomic():
        sketches.lock(website.pk)
        moved = _mark(website, period)
        if moved != mark:  # another process brought it forward meanwhile
            return moved
        kept = VisitTally.objects.filter(website=website, period=period)
        for letter, value, *figures in kept.values_list(
            "dim", "value", "visits", "bounces", "pageviews", "duration_us"
        ):
            if (letter, value) in added:
                _add(added[(letter, value)], figures)
        VisitTally.objects.bulk_create(
            [
                VisitTally(
                    website=website,
                    period=period,
                    dim=letter,
                    value=value,
                    visits=visits,
                    bounces=bounces,
                    pageviews=pageviews,
                    duration_us=duration,
                )
                for (letter, value), (visits, bounces, pageviews, duration) in added.items()
            ],
            batch_size=500,
            update_conflicts=True,
            unique_fields=["website", "period", "dim", "value"],
            update_fields=["visits", "bounces", "pageviews", "duration_us"],
        )
        SketchMark.objects.update_or_create(
            website=website,
            kind=VISITS,
            period=period,
            defaults={"until_us": aggregates.micros(upto)},
        )
    return aggregates.micros(upto)


def _grouped(
    website: Website, since: dt.datetime, until: dt.datetime, column: str
) -> dict[str, Sums]:
    """The raw sessions begun in [since, until), summed per value of `column` (unknown
    values left out, as every breakdown does)."""
    sessions = Session.objects.filter(website=website, started_at__gte=since, started_at__lt=until)
    rows = (
        sessions.exclude(**{column: ""})
        .values(column)
        .annotate(
            visits=Count("id"),
            bounces=Count("id", filter=Q(pageviews=1, custom_events=0)),
            pages=Sum("pageviews"),
            duration=Sum(F("last_event_at") - F("started_at")),
        )
        .order_by()
    )
    return {
        row[column]: [
            row["visits"],
            row["bounces"],
            row["pages"] or 0,
            round(metrics._seconds(row["duration"]) * 1_000_000),
        ]
        for row in rows
    }
