"""The background sealer (zenovay.sealer): finished days' sketches and visit tallies are
sealed before any query needs them, newest first, once, for enabled websites only; a
day's visits once they have ended; finished months merged; a day another process holds
left for the next step; a database failure logged once and retried; and in a server
process the sealer runs beside the ticker."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.db import OperationalError, connections

from dashboard import reports
from tests.factories import record
from zenovay import push, query, sealer, sketches, visits
from zenovay.infra import store
from zenovay.models import Goal, Sketch, SketchMark, Website

pytestmark = pytest.mark.django_db

BERLIN = dt.timezone(dt.timedelta(hours=1))  # Berlin's offset in February and March 2026
NOW = dt.datetime(2026, 3, 10, 11, 0, tzinfo=dt.UTC)  # 12:00 in Berlin
DAY, VISITS, MONTH = sketches.DAY, visits.VISITS, sketches.MONTH


@pytest.fixture
def site(db) -> Website:
    return Website.objects.create(domain="shop.example", timezone="Europe/Berlin")


def local(day: int, hour: int = 0, minute: int = 0, month: int = 3) -> dt.datetime:
    return dt.datetime(2026, month, day, hour, minute, tzinfo=BERLIN)


def period(day: int, month: int = 3) -> int:
    return int(local(day, month=month).timestamp())


def micros(moment: dt.datetime) -> int:
    return int(moment.timestamp() * 1_000_000)


def traffic(site: Website) -> None:
    """Visits on the 8th, the 9th (one going on past midnight) and today, the 10th."""
    for day in (8, 9, 10):
        for who in range(1, 4):
            record(site, local(day, 9, who), who + day % 2, "/a" if who % 2 else "/b")
    record(site, local(9, 23, 50), 7, "/late")
    record(site, local(10, 0, 10), 7, "/after-midnight")


def step(worker: sealer.Sealer | None = None, now: dt.datetime = NOW) -> int:
    return async_to_sync((worker or sealer.Sealer()).step)(now)


def marks() -> dict[tuple[int, int], int]:
    rows = SketchMark.objects.values_list("kind", "period", "until_us")
    return {(kind, at): until for kind, at, until in rows}


def test_a_step_seals_the_finished_days_of_a_site_with_events_newest_first(site, monkeypatch):
    traffic(site)
    done: list[tuple[int, int]] = []

    def noting(kind: int, seal):
        def sealing(website: Website, at: int, now: dt.datetime) -> bool:
            done.append((kind, at))
            return seal(website, at, now)

        return sealing

    for kind, seal in list(sealer.SEAL.items()):
        monkeypatch.setitem(sealer.SEAL, kind, noting(kind, seal))
    assert step() == 4
    assert done == [(DAY, period(9)), (VISITS, period(9)), (DAY, period(8)), (VISITS, period(8))]
    assert marks() == {
        (DAY, period(9)): micros(local(10)),
        (VISITS, period(9)): micros(local(10)),  # the visit past midnight has ended
        (DAY, period(8)): micros(local(9)),
        (VISITS, period(8)): micros(local(9)),
    }  # nothing of today, nothing before the first event
    assert Sketch.objects.get(kind=DAY, period=period(9), dim="").count == 4


def test_a_second_step_seals_nothing_and_counts_nothing_twice(site):
    traffic(site)
    worker = sealer.Sealer()
    assert step(worker) == 4
    sealed = marks()
    rows = sorted(Sketch.objects.values_list("period", "dim", "value", "count"))
    assert step(worker) == 0
    assert step() == 0  # another process, or this one restarted: the marks say it all
    assert marks() == sealed
    assert sorted(Sketch.objects.values_list("period", "dim", "value", "count")) == rows


def test_it_skips_disabled_websites(site):
    traffic(site)
    Website.objects.filter(pk=site.pk).update(enabled=False)
    assert step() == 0
    assert not SketchMark.objects.exists()


def raw_reads_of_finished_days_refused(monkeypatch) -> None:
    """Reading any raw event or visit of a day before today fails the test."""
    today = local(10)
    events, grouped = sketches._events, visits._grouped

    def guard(rows, since: dt.datetime):
        if since < today and rows:
            raise AssertionError(f"a query read raw events of a finished day ({since})")
        return rows

    monkeypatch.setattr(sketches, "_events", lambda w, s, u: iter(guard(list(events(w, s, u)), s)))
    monkeypatch.setattr(visits, "_grouped", lambda w, s, u, c: guard(grouped(w, s, u, c), s))


QUERIES = (
    {"metrics": ["visitors", "pageviews"], "date_range": "7d"},
    {"metrics": ["visitors", "pageviews"], "date_range": "30d", "dimensions": ["page"]},
    {
        "metrics": ["visits", "bounce_rate", "visit_duration"],
        "date_range": "7d",
        "dimensions": ["entry_page"],
    },
)


def ask(site: Website) -> list:
    answers = []
    for body in QUERIES:
        answer = query.run(query.parse({"site_id": site.website_id, **body}, site, NOW))
        assert answer["meta"]["source"] == "aggregates", body
        answers.append((answer["results"], answer["totals"]))
    since, until, _ = query.date_range("7d", site, NOW)
    return [*answers, reports.goals(site, since, until, 4)]


def test_a_query_after_a_step_reads_no_raw_events_of_finished_days(site, monkeypatch):
    monkeypatch.setattr("django.utils.timezone.now", lambda: NOW)
    traffic(site)
    Goal.objects.create(website=site, kind="page", value="/a*")
    parsed = [query.parse({"site_id": site.website_id, **body}, site, NOW) for body in QUERIES]
    expected = [query._from_events(asked) for asked in parsed]
    step()
    raw_reads_of_finished_days_refused(monkeypatch)
    *answers, goals = ask(site)
    for (results, _), slow in zip(answers, expected, strict=True):
        assert sorted(map(str, results)) == sorted(map(str, slow))
    assert goals[0]["conversions"] == 7  # "/a" twice a day, "/after-midnight"


def test_without_a_step_the_same_query_reads_finished_days_raw(site, monkeypatch):
    """What the test above guards against: queries seal on demand."""
    monkeypatch.setattr("django.utils.timezone.now", lambda: NOW)
    traffic(site)
    raw_reads_of_finished_days_refused(monkeypatch)
    with pytest.raises(AssertionError, match="raw events of a finished day"):
        ask(site)


def test_a_days_visits_are_sealed_once_every_visit_it_began_has_ended(site):
    record(site, local(9, 10), 2, "/early")
    record(site, local(9, 23, 50), 1, "/late")
    record(site, local(10, 0, 10), 1, "/after-midnight")
    worker = sealer.Sealer()
    assert step(worker, local(10, 0, 20)) == 1  # the 9th's sketches; its visits go on
    assert marks()[(VISITS, period(9))] == micros(local(9, 23, 48))  # so far as they ended
    assert step(worker, local(10, 0, 21)) == 0
    assert step(worker, local(10, 1, 0)) == 1  # the last visit ended at 00:10
    assert marks()[(VISITS, period(9))] == micros(local(10))


def test_a_finished_month_is_merged_after_its_days(site):
    for day, month in ((14, 2), (28, 2), (9, 3)):
        for who in range(1, 4):
            record(site, local(day, 20, who, month=month), who + day, "/")
    assert step() > 0
    assert marks()[(MONTH, period(1, month=2))] == micros(local(1))
    assert Sketch.objects.get(kind=MONTH, period=period(1, month=2), dim="").count == 6
    assert step() == 0


def test_days_before_the_raw_retention_are_left_alone(site, settings):
    settings.ZENOVAY_RAW_RETENTION_DAYS = 7
    record(site, local(20, 12, month=2), 1, "/old")
    record(site, local(9, 12), 1, "/new")
    step()
    days = {at for kind, at in marks() if kind == DAY}
    assert min(days) == period(4)  # the first whole day of the last 7
    assert max(days) == period(9)
    assert (MONTH, period(1, month=2)) not in marks()


def test_a_day_another_process_is_sealing_is_left_for_the_next_step(site):
    traffic(site)
    held = sealer.lock_name(site.pk, DAY, dt.date(2026, 3, 9))
    assert async_to_sync(store.get_store().try_lock)(held, 60)
    worker = sealer.Sealer()
    try:
        assert step(worker) == 3
        assert (DAY, period(9)) not in marks()
    finally:
        async_to_sync(store.get_store().unlock)(held)
    assert step(worker) == 1  # the same process looks at that day again
    assert marks()[(DAY, period(9))] == micros(local(10))


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def test_a_database_failure_is_logged_once_and_retried(site, monkeypatch):
    traffic(site)
    logged = Lines()
    monkeypatch.setattr(logging.getLogger("zenovay.sealer"), "handlers", [logged])

    def down(*args):
        raise OperationalError("the database is down")

    worker = sealer.Sealer()
    with monkeypatch.context() as patched:
        patched.setattr(sealer, "what_is_due", down)
        assert step(worker) == 0
        assert step(worker) == 0
    assert logged.lines == [
        "sealing failed, retrying on the next step: OperationalError('the database is down')"
    ]
    assert step(worker) == 4
    assert logged.lines[1:] == ["sealing works again"]


async def test_no_sealer_starts_with_the_ticker_when_sealing_is_off():
    push.ensure_ticker()
    assert push.loops.here().ticker is not None
    assert push.loops.here().sealer is None


@pytest.mark.django_db(transaction=True)
async def test_the_sealer_runs_beside_the_ticker(site, settings, monkeypatch):
    settings.ZENOVAY_SEAL_EVERY = 1
    monkeypatch.setattr("django.utils.timezone.now", lambda: NOW)
    await sync_to_async(record)(site, local(9, 12), 1, "/")

    def sealed() -> bool:
        return marks() == {
            (DAY, period(9)): micros(local(10)),
            (VISITS, period(9)): micros(local(10)),
        }

    push.ensure_ticker()
    task = push.loops.here().sealer
    assert task is not None
    try:
        async with asyncio.timeout(20):
            while not await sync_to_async(sealed)():
                await asyncio.sleep(0.05)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await sync_to_async(connections.close_all)()  # the database thread's, here
