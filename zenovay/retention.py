"""Deleting raw events and sessions older than the retention period.

The public API looks back at most to the start of the month (plus yesterday),
and visitor identities cannot be linked across salt periods (a month at most),
so anything older than two months cannot change a figure the API reports. The
setting refuses shorter periods.
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from zenovay.models import Event, Session

MINIMUM_DAYS = 62
BATCH = 5000


def cutoff(now: dt.datetime | None = None, days: int | None = None) -> dt.datetime:
    days = settings.ZENOVAY_RETENTION_DAYS if days is None else days
    if days < MINIMUM_DAYS:
        raise ValueError(f"Retention must be at least {MINIMUM_DAYS} days, not {days}.")
    return (now or timezone.now()) - dt.timedelta(days=days)


def prune(*, before: dt.datetime) -> tuple[int, int]:
    """Delete events before `before` and sessions that ended before it, in small batches."""
    return _in_batches(Event.objects.filter(ts__lt=before)), _in_batches(
        Session.objects.filter(last_event_at__lt=before)
    )


def _in_batches(queryset) -> int:
    """Short transactions so ingest is never blocked behind one huge delete."""
    total = 0
    while True:
        ids = list(queryset.values_list("pk", flat=True)[:BATCH])
        if not ids:
            return total
        with transaction.atomic():
            total += queryset.model.objects.filter(pk__in=ids).delete()[0]
