"""Visits by entry or exit page, source, place or device over any run of whole local days,
from tallies sealed once a day's visits have all ended.

A visit belongs to the day it began, and its bounce, pageviews and duration change until it
ends (30 minutes without an event). Once every visit a day began has ended, the day's
figures are final: `_seal` groups that day's sessions by each dimension once
(`VisitTally`; `SketchMark` of kind `VISITS` says the day is done). A range of whole days
reads those rows, plus the raw sessions of the days not sealed yet (today, yesterday, and
a day one of whose visits is still going on): a day or two of sessions, whatever the
range's length. Exact: the same sums the raw sessions give.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

from django.db import transaction
from django.db.models import Count, F, Q, Sum

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
    sealed = set(
        SketchMark.objects.filter(website=website, kind=VISITS, period__in=periods).values_list(
            "period", flat=True
        )
    )
    for period in periods:
        if period not in sealed and _sealable(website, period, now):
            _seal(website, period)
            sealed.add(period)
    letter, column = DIMS[dimension]
    found: dict[str, Sums] = defaultdict(lambda: [0, 0, 0, 0])
    rows = VisitTally.objects.filter(website=website, period__in=sealed, dim=letter)
    columns = ("value", "visits", "bounces", "pageviews", "duration_us")
    for value, *figures in rows.values_list(*columns):
        _add(found[value], figures)
    for period in periods:
        if period not in sealed:
            end = min(sketches.day_end(period, zone) - dt.timedelta(microseconds=1), until)
            start = dt.datetime.fromtimestamp(period, dt.UTC)
            for value, figures in _grouped(website, start, end, column).items():
                _add(found[value], figures)
    return dict(found)


def _add(total: Sums, figures) -> None:
    for i, number in enumerate(figures):
        total[i] += number


def _sealable(website: Website, period: int, now: dt.datetime) -> bool:
    """Every visit the day began has ended (and no late one can begin in it)."""
    settled = now - SESSION_GAP - sketches.LAG
    if sketches.day_end(period, website.zone) > settled:
        return False
    start = dt.datetime.fromtimestamp(period, dt.UTC)
    going_on = Session.objects.filter(
        website=website,
        started_at__gte=start,
        started_at__lt=sketches.day_end(period, website.zone),
        last_event_at__gte=settled,
    )
    return not going_on.exists()


def _seal(website: Website, period: int) -> None:
    """Tally the day's visits (read before the write transaction, so SQLite's one writer,
    ingest, never waits for the reading), unless another process did meanwhile."""
    start = dt.datetime.fromtimestamp(period, dt.UTC)
    end = sketches.day_end(period, website.zone) - dt.timedelta(microseconds=1)
    rows = [
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
        for letter, column in DIMS.values()
        for value, (visits, bounces, pageviews, duration) in _grouped(
            website, start, end, column
        ).items()
    ]
    with transaction.atomic():
        sketches.lock(website.pk)
        if SketchMark.objects.filter(website=website, kind=VISITS, period=period).exists():
            return
        VisitTally.objects.bulk_create(rows, batch_size=500)
        SketchMark.objects.create(
            website=website,
            kind=VISITS,
            period=period,
            until_us=aggregates.micros(sketches.day_end(period, website.zone)),
        )


def _grouped(
    website: Website, since: dt.datetime, until: dt.datetime, column: str
) -> dict[str, Sums]:
    """The raw sessions begun in [since, until], summed per value of `column` (unknown
    values left out, as every breakdown does)."""
    sessions = Session.objects.filter(website=website, started_at__gte=since, started_at__lte=until)
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
