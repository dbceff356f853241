"""Deleting raw events, sessions and aggregates older than their retention periods.

Every figure is read from aggregates (zenovay.aggregates), so raw events can go sooner than
the figures: `ZENOVAY_RAW_RETENTION_DAYS` (at least 7) for events, `ZENOVAY_RETENTION_DAYS`
(at least 62) for sessions and aggregates. The public API looks back at most to the start
of the month (plus yesterday), visitor identities cannot be linked across salt periods (a
month at most), and a returning visitor is one seen in the 32 days before a period began,
so nothing older than two months can change a figure the API reports.

First-seen rows only decide whether a visitor is new to a period that may still receive
events, or cut yesterday at the current time of day: once their period began two months
ago their counts are final in the quarter rows, and they go whatever the retention. So do
the figures kept for filtered queries (zenovay.filtered): a cache of raw events.
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from zenovay import aggregates, filtered, sketches
from zenovay.aggregates import quarter_of
from zenovay.models import (
    Event,
    FirstSeen,
    Session,
    Sketch,
    SketchMark,
    Tally,
    VisitTally,
    Website,
)

MINIMUM_DAYS = 62
RAW_MINIMUM_DAYS = 7
FIRST_SEEN_DAYS = 62
BATCH = 5000


def cutoff(now: dt.datetime | None = None, days: int | None = None) -> dt.datetime:
    days = settings.ZENOVAY_RETENTION_DAYS if days is None else days
    if days < MINIMUM_DAYS:
        raise ValueError(f"Retention must be at least {MINIMUM_DAYS} days, not {days}.")
    return (now or timezone.now()) - dt.timedelta(days=days)


def raw_cutoff(now: dt.datetime | None = None, days: int | None = None) -> dt.datetime:
    days = settings.ZENOVAY_RAW_RETENTION_DAYS if days is None else days
    if days < RAW_MINIMUM_DAYS:
        raise ValueError(f"Raw retention must be at least {RAW_MINIMUM_DAYS} days, not {days}.")
    return (now or timezone.now()) - dt.timedelta(days=days)


def prune(
    *, before: dt.datetime, raw_before: dt.datetime | None = None, now: dt.datetime | None = None
) -> tuple[int, int]:
    """Seal the visitor sketches of the days whose raw events go (zenovay.sketches) while
    the figures stay, then delete events before `raw_before` (default `before`), sessions
    that ended before `before`, aggregates of quarters and periods before it, and
    first-seen rows of periods that began before it or (given `now`) more than two months
    before `now`; the numbers of events and sessions."""
    if raw_before is not None and raw_before > before:  # raw events go before the figures
        for website in Website.objects.all():
            sketches.seal(website, raw_before)
    events = _in_batches(Event.objects.filter(ts__lt=raw_before or before))
    sessions = _in_batches(Session.objects.filter(last_event_at__lt=before))
    _in_batches(Tally.objects.filter(quarter__lt=quarter_of(before)))
    for model in (Sketch, SketchMark, VisitTally):
        _in_batches(model.objects.filter(period__lt=int(before.timestamp())))
    if now is not None:
        before = max(before, now - dt.timedelta(days=FIRST_SEEN_DAYS))
    for website_pk in Website.objects.values_list("pk", flat=True):  # an index range each
        rows = FirstSeen.objects.filter(website_id=website_pk, kind=aggregates.DAY)
        _in_batches(rows.filter(period__lt=int(before.timestamp())))
    for model in (Sketch, SketchMark):  # filters' kept days go with first-seen rows
        _in_batches(model.objects.filter(kind=filtered.KIND, period__lt=int(before.timestamp())))
    return events, sessions


def _in_batches(queryset) -> int:
    """Short transactions so ingest is never blocked behind one huge delete."""
    total = 0
    while True:
        ids = list(queryset.values_list("pk", flat=True)[:BATCH])
        if not ids:
            return total
        with transaction.atomic():
            total += queryset.model.objects.filter(pk__in=ids).delete()[0]
