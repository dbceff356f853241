"""The sealer: finished days' sketches and visit tallies built in the background.

The problem: a finished day's sketches (`zenovay.sketches`) and visit tallies
(`zenovay.visits`) were built from its raw events when a query first needed them, so the
first dashboard or API request over a range of days after midnight (or after an upgrade)
paid for a scan of those days: 16 s at 10^7 events a month on SQLite.

So each server process runs a sealer beside its push ticker (`push.ensure_ticker`): every
`ZENOVAY_SEAL_EVERY` seconds it seals the enabled websites' finished local days not sealed
yet, from each one's oldest raw event within the raw retention, newest first (every site's
yesterday before anyone's older days), each month once its days are, with the functions a
query calls: a day's sketches once the day ended `sketches.LAG` ago, its visits as far as
they have ended (the whole day once every visit it began has ended). One day at a time on
a database thread of its own (`db.background`), so the push and the endpoints never wait
for it.

Sealing a day twice at once counts nothing twice (each sealing checks, in its transaction,
that nobody moved the day's mark), but scans twice: a shared lock per day and kind
(`store.try_lock`) keeps processes off each other's day. A failure is logged once, and
what it left is tried again on the next step. Each website's oldest day that may still
need work is remembered, so a step in normal operation reads a day or two of marks per
website. Filtered days (`zenovay.filtered`) depend on a filter nobody has asked for yet:
they stay with the queries.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import ParamSpec, TypeVar

from django.conf import settings
from django.db import DatabaseError
from django.utils import timezone

from zenovay import aggregates, sketches, visits
from zenovay.infra import db, store
from zenovay.models import Event, SketchMark, Website

P = ParamSpec("P")
T = TypeVar("T")
log = logging.getLogger("zenovay.sealer")
# A day's lock is let go once it is sealed; its time-to-live only frees the day of a process
# that died meanwhile, so it is well above one day's sealing (about 2 s at 10^7 events a month).
LOCK_SECONDS = 300.0
SEAL: dict[int, Callable[[Website, int, dt.datetime], bool]] = {
    sketches.DAY: sketches.seal_day,
    visits.VISITS: visits.seal_day,
    sketches.MONTH: sketches.seal_month,
}


@dataclass
class Due:
    work: list[tuple[int, dt.date]]  # (kind of SEAL, local day or first day of a month)
    next: dt.date  # the first day not finished: where the next step starts if all is done


async def run() -> None:
    """A step now, then one every ZENOVAY_SEAL_EVERY seconds while it is not 0."""
    sealer = Sealer()
    while True:
        try:
            await sealer.step()
        except Exception:  # a bug: say so loudly, and keep sealing the other days
            log.exception("sealing failed, retrying on the next step")
        if not settings.ZENOVAY_SEAL_EVERY:
            return
        await asyncio.sleep(settings.ZENOVAY_SEAL_EVERY)


class Sealer:
    """One process's sealer; `step` seals what is due now."""

    def __init__(self) -> None:
        # (website, time zone) -> the oldest day that may still need work
        self.pending: dict[tuple[int, str], dt.date] = {}
        self.failing = False  # since the last step that went through
        self.failed = False  # in this step

    async def step(self, now: dt.datetime | None = None) -> int:
        """Seal what is due for every enabled website, every site's newest days first;
        how many days (of sketches, of visits) and months were sealed for good."""
        now = now or timezone.now()
        self.failed = False
        work: list[tuple[dt.date, int, Website]] = []
        left: dict[tuple[int, str], list[dt.date]] = {}
        after: dict[tuple[int, str], dt.date] = {}
        for website in await self._try(_enabled) or []:
            key = (website.pk, website.timezone)
            due = await self._try(what_is_due, website, now, self.pending.get(key))
            if due is not None:
                work += [(day, kind, website) for kind, day in due.work]
                left[key], after[key] = [], due.next
        work.sort(key=lambda item: (-item[0].toordinal(), item[2].pk, item[1] == sketches.MONTH))
        sealed = 0
        for day, kind, website in work:
            if await self._seal(website, kind, day, now):
                sealed += 1
            else:  # another process is at it, its visits go on, or it failed: next step
                left[(website.pk, website.timezone)].append(day)
        for key, days in left.items():
            self.pending[key] = min(days, default=after[key])
        if self.failing and not self.failed:
            log.info("sealing works again")
        self.failing = self.failed
        return sealed

    async def _seal(self, website: Website, kind: int, day: dt.date, now: dt.datetime) -> bool:
        backend, lock = store.get_store(), lock_name(website.pk, kind, day)
        if not await backend.try_lock(lock, LOCK_SECONDS):
            return False
        try:
            return bool(await self._try(SEAL[kind], website, _period(day, website.zone), now))
        finally:
            await backend.unlock(lock)

    async def _try(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T | None:
        """`fn` on the background database thread; None if the database failed (logged
        once an outage)."""
        try:
            return await db.background(fn, *args, **kwargs)
        except DatabaseError as exc:
            if not self.failing and not self.failed:
                log.warning("sealing failed, retrying on the next step: %r", exc)
            self.failed = True
            return None


def lock_name(website_pk: int, kind: int, day: dt.date) -> str:
    return f"seal:{website_pk}:{kind}:{day.isoformat()}"


def _enabled() -> list[Website]:
    return list(Website.objects.filter(enabled=True).order_by("pk"))


def what_is_due(website: Website, now: dt.datetime, since: dt.date | None) -> Due:
    """The website's finished local days from `since` (None: from its oldest raw event)
    that are not sealed, newest first, then its finished months not merged; none before
    the raw retention, whose events may be gone."""
    zone = website.zone
    ended = (now - sketches.LAG).astimezone(zone).date()  # the first day not finished
    retained = now - dt.timedelta(days=settings.ZENOVAY_RAW_RETENTION_DAYS)
    bound = retained.astimezone(zone).date() + dt.timedelta(days=1)  # its first whole day
    if since is None:
        oldest = Event.objects.filter(website=website).order_by("ts").values("ts").first()
        since = ended if oldest is None else oldest["ts"].astimezone(zone).date()
    first = max(since, bound)
    days = [ended - dt.timedelta(days=n) for n in range(1, (ended - first).days + 1)]
    months = _finished_months(first, ended, bound)
    if not days and not months:
        return Due([], ended)
    starts = [_period(day, zone) for day in days + months]
    rows = SketchMark.objects.filter(
        website=website, scope="", kind__in=list(SEAL), period__range=(min(starts), max(starts))
    )
    marks = {
        (kind, period): until
        for kind, period, until in rows.values_list("kind", "period", "until_us")
    }
    work = []
    for day in days:
        period = _period(day, zone)
        end = aggregates.micros(sketches.day_end(period, zone))
        for kind in (sketches.DAY, visits.VISITS):
            if marks.get((kind, period), -1) < end:
                work.append((kind, day))
    for month in months:
        if (sketches.MONTH, _period(month, zone)) not in marks:
            work.append((sketches.MONTH, month))
    return Due(work, ended)


def _period(day: dt.date, zone) -> int:
    return int(sketches.midnight(day, zone).timestamp())


def _finished_months(first: dt.date, ended: dt.date, bound: dt.date) -> list[dt.date]:
    """The first days of the months that ended by `ended` and hold a day from `first` on,
    none starting before `bound`; newest first."""
    months = []
    month = (ended.replace(day=1) - dt.timedelta(days=1)).replace(day=1)
    while month >= bound and month >= first.replace(day=1):
        months.append(month)
        month = (month - dt.timedelta(days=1)).replace(day=1)
    return months
