"""Aggregate maintenance (`aggregates.apply`), rebuilding from raw events, and pruning.

`apply` is tested with hand-built `Recorded` batches, as ingest hands them over; the
figures read from the result are in tests/core/test_aggregates_property.py.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from dashboard import reports
from tests.factories import custom, engagement, pageview
from zenovay import aggregates, ingest, metrics, retention
from zenovay.aggregates import Recorded, SessionState
from zenovay.models import Event, FirstSeen, Session, Tally, Website
from zenovay.payload import Payload

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 3, 10, 12, 0, tzinfo=dt.UTC)  # a Tuesday


def state(started: dt.datetime, last: dt.datetime, pageviews: int, custom: int = 0):
    return SessionState(
        started_at=started,
        last_event_at=last,
        pageviews=pageviews,
        custom_events=custom,
        entry_path="/",
        exit_path="/",
        referrer_host="",
        utm_source="",
        utm_medium="",
        utm_campaign="",
        country="DE",
        device="desktop",
        browser="Chrome",
        os="Linux",
    )


def recorded(website: Website, ts: dt.datetime, visitor: int = 1, **fields) -> Recorded:
    values = {
        "website_pk": website.pk,
        "ts": ts,
        "visitor": visitor,
        "type": "pageview",
        "path": "/",
        "hostname": website.domain,
        "referrer_host": "",
        "utm_source": "",
        "utm_medium": "",
        "utm_campaign": "",
        "name": "",
        "props": None,
        "engaged_ms": 0,
        "country": "DE",
        "device": "desktop",
        "browser": "Chrome",
        "os": "Linux",
        "session_before": None,
        "session_after": state(ts, ts, 1),
    }
    values.update(fields)
    return Recorded(**values)


def tally(website: Website, ts: dt.datetime) -> Tally:
    return Tally.objects.get(website=website, quarter=aggregates.quarter_of(ts))


def a_visit(website: Website, start: dt.datetime, visitor: int = 1) -> list[Recorded]:
    """A pageview, a second pageview a minute later, an engagement a minute after that."""
    one, two, three = start, start + dt.timedelta(minutes=1), start + dt.timedelta(minutes=2)
    first, second, third = state(one, one, 1), state(one, two, 2), state(one, three, 2)
    return [
        recorded(website, one, visitor, session_after=first),
        recorded(website, two, visitor, path="/b", session_before=first, session_after=second),
        recorded(
            website, three, visitor, type="engagement", session_before=second, session_after=third
        ),
    ]


# --- apply


def test_a_session_that_grows_is_counted_once_with_its_final_figures(website):
    aggregates.apply(a_visit(website, NOW))
    row = tally(website, NOW)
    assert (row.pageviews, row.sessions, row.bounces, row.session_pageviews) == (2, 1, 0, 2)
    assert row.duration_us == 120_000_000
    assert row.last_us == aggregates.micros(NOW + dt.timedelta(minutes=2))


def test_events_applied_in_separate_batches_add_up_like_one_batch(website, other_website):
    visit = a_visit(website, NOW)
    aggregates.apply(visit)
    for change in a_visit(other_website, NOW):
        aggregates.apply([change])
    columns = [*aggregates.TALLY_COLUMNS, "last_us"]
    mine = Tally.objects.filter(website=website).values_list(*columns).get()
    theirs = Tally.objects.filter(website=other_website).values_list(*columns).get()
    assert mine == theirs


def test_a_second_pageview_ends_a_bounce_in_the_quarter_the_session_started(website):
    start = NOW - dt.timedelta(minutes=20)  # an earlier quarter than the second pageview
    first = state(start, start, 1)
    aggregates.apply([recorded(website, start, session_after=first)])
    assert tally(website, start).bounces == 1
    aggregates.apply(
        [recorded(website, NOW, session_before=first, session_after=state(start, NOW, 2))]
    )
    assert tally(website, start).bounces == 0
    assert tally(website, start).session_pageviews == 2
    assert tally(website, NOW).sessions == 0 and tally(website, NOW).pageviews == 1


def test_a_visitor_counts_once_per_day_however_many_batches_see_it(website):
    for minute in range(3):
        aggregates.apply([recorded(website, NOW + dt.timedelta(minutes=minute), path="/x")])
    assert tally(website, NOW).day_visitors == 1
    assert tally(website, NOW).month_visitors == 1
    assert tally(website, NOW).pageviews == 3


def test_a_visitor_new_to_the_month_but_not_to_the_week_counts_in_the_month():
    website = Website.objects.create(domain="np.example", timezone="Asia/Kathmandu")
    # Friday 27 February 12:00 and Sunday 1 March 00:05 in Kathmandu (+05:45): one ISO week.
    friday = dt.datetime(2026, 2, 27, 6, 15, tzinfo=dt.UTC)
    sunday = dt.datetime(2026, 2, 28, 18, 20, tzinfo=dt.UTC)
    aggregates.apply([recorded(website, friday)])
    aggregates.apply([recorded(website, sunday)])
    assert (tally(website, sunday).week_visitors, tally(website, sunday).month_visitors) == (0, 1)


def test_quarters_follow_a_quarter_hour_zone_so_its_midnight_starts_a_day():
    website = Website.objects.create(domain="np.example", timezone="Asia/Kathmandu")
    midnight = dt.datetime(2026, 3, 9, 18, 15, tzinfo=dt.UTC)  # 00:00 on 10 March, local
    aggregates.apply([recorded(website, midnight - dt.timedelta(seconds=1))])
    aggregates.apply([recorded(website, midnight)])
    assert tally(website, midnight).day_visitors == 1  # new to the new day
    assert tally(website, midnight - dt.timedelta(seconds=1)).day_visitors == 1


def test_a_visitor_with_a_session_ending_in_the_32_days_before_the_day_is_returning(website):
    before = NOW - dt.timedelta(days=3)
    Session.objects.create(website=website, visitor=7, started_at=before, last_event_at=before)
    aggregates.apply([recorded(website, NOW, visitor=7), recorded(website, NOW, visitor=8)])
    row = tally(website, NOW)
    assert (row.day_session_visitors, row.day_returning) == (2, 1)


def test_through_ingest_a_visitor_back_after_days_is_returning_and_a_new_one_is_not(website):
    """Ingest tells the aggregates which visitors have a session in the lookback (its read
    of the latest session reaches that far), so only those are looked up again."""
    pageview(website, NOW - dt.timedelta(days=5), 7)  # the same month: the same visitor hash
    for who in (7, 8, 9):
        pageview(website, NOW, who)
    row = tally(website, NOW)
    assert (row.day_session_visitors, row.day_returning) == (3, 1)
    # Visitor 7's first session of the month was on the 5th, when it was new.
    assert (row.month_session_visitors, row.month_returning) == (2, 0)
    assert tally(website, NOW - dt.timedelta(days=5)).month_session_visitors == 1


def test_a_session_a_batch_takes_past_midnight_has_not_ended_before_the_day(website):
    """A session from 23:50 goes on at 00:10 and a second one starts at 00:50, in one
    batch (a batch holds events of a few milliseconds in production; the recording of past
    events can make it longer). The first ended after midnight, so the day's first session
    is a new visitor's, although the latest session ingest read before the batch ended
    before midnight; both sessions are stored as they ended."""

    def pending(ts: dt.datetime) -> ingest.Pending:
        payload = Payload(code=website.tracking_code, type="pageview", hostname="x", path="/")
        return ingest.Pending(website.pk, 42, ts, payload, "DE", "desktop", "Chrome", "Linux")

    midnight = metrics.day_start(NOW, website)
    ingest.store([pending(midnight - dt.timedelta(minutes=10))])
    ingest.store([pending(midnight + dt.timedelta(minutes=m)) for m in (10, 50)])
    row = tally(website, midnight + dt.timedelta(minutes=50))
    assert (row.day_session_visitors, row.day_returning) == (1, 0)
    first, second = Session.objects.filter(website=website).order_by("started_at")
    assert (first.last_event_at, first.pageviews) == (midnight + dt.timedelta(minutes=10), 2)
    assert (second.started_at, second.pageviews) == (midnight + dt.timedelta(minutes=50), 1)


def test_an_engagement_without_a_session_counts_only_as_an_event(website):
    aggregates.apply([recorded(website, NOW, type="engagement", session_after=None)])
    row = tally(website, NOW)
    assert (row.pageviews, row.sessions, row.day_visitors) == (0, 0, 0)
    assert row.last_us == aggregates.micros(NOW)


def test_a_batch_costs_the_same_few_statements_whatever_its_number_of_events(website):
    def statements(events: int) -> int:
        batch = [
            recorded(website, NOW + dt.timedelta(seconds=i), visitor=i % 5, session_after=None)
            for i in range(events)
        ]
        with CaptureQueriesContext(connection) as queries:
            aggregates.apply(batch)
        Tally.objects.all().delete()
        FirstSeen.objects.all().delete()
        return len(queries)

    # time zones, first-seen day rows, quarters (plus earlier day rows and sessions of
    # visitors whose latest session does not settle them)
    assert statements(10) == statements(300) <= 4


# --- rebuild


def some_traffic(website: Website) -> None:
    for days in (40, 9, 1, 0):
        for who in (1, 2, 3):
            when = NOW - dt.timedelta(days=days, minutes=20 * who)
            pageview(website, when, who, path=f"/p{who}", country="DE")
            pageview(website, when + dt.timedelta(minutes=1), who, path="/next")
            engagement(website, when + dt.timedelta(minutes=2), who)
        custom(website, NOW - dt.timedelta(days=days, minutes=5), 4)


def test_rebuilding_reproduces_what_ingest_maintained_and_is_idempotent(website):
    some_traffic(website)
    maintained = aggregates.rows_of(website.pk)
    assert maintained[0] and maintained[1]
    aggregates.rebuild(website.pk)
    assert aggregates.rows_of(website.pk) == maintained
    aggregates.rebuild(website.pk, NOW - dt.timedelta(days=2))
    assert aggregates.rows_of(website.pk) == maintained


def test_rebuilding_from_nothing_gives_every_figure_back(website):
    some_traffic(website)
    before = metrics.stats(website, "month", NOW), reports.daily(website, NOW)
    Tally.objects.all().delete()
    FirstSeen.objects.all().delete()
    call_command("rebuild_aggregates", stdout=io.StringIO(), stderr=io.StringIO())
    assert (metrics.stats(website, "month", NOW), reports.daily(website, NOW)) == before


def test_the_rebuild_command_shows_progress_and_what_it_rebuilt(website):
    some_traffic(website)
    out, err = io.StringIO(), io.StringIO()
    call_command("rebuild_aggregates", "--website", website.website_id, stdout=out, stderr=err)
    assert f"{website.website_id} [" in err.getvalue() and "40/40 events" in err.getvalue()
    assert f"{website.website_id}: rebuilt from 2025-12-29 00:00 UTC, 40 events." in out.getvalue()


def test_the_rebuild_command_refuses_an_unknown_website():
    with pytest.raises(CommandError, match="No website has the id"):
        call_command("rebuild_aggregates", "--website", "ws_nosuchsite")


def test_a_rebuild_starts_on_the_monday_before_the_first_of_the_month():
    floor, first = aggregates.rebuild_floor("Europe/Berlin", NOW)
    assert floor == dt.datetime(2026, 2, 22, 23, 0, tzinfo=dt.UTC)  # Monday 23 Feb, local
    assert first == dt.datetime(2026, 2, 28, 23, 0, tzinfo=dt.UTC)


# --- prune


def test_pruning_raw_events_sooner_keeps_every_figure(website):
    some_traffic(website)
    figures = [metrics.stats(website, p, NOW) for p in metrics.PERIODS], reports.daily(website, NOW)
    retention.prune(before=retention.cutoff(NOW, 62), raw_before=NOW - dt.timedelta(hours=1))
    assert not Event.objects.filter(ts__lt=NOW - dt.timedelta(hours=1)).exists()
    assert [metrics.stats(website, p, NOW) for p in metrics.PERIODS] == figures[0]
    assert reports.daily(website, NOW) == figures[1]


def test_pruning_drops_aggregates_and_first_seen_rows_older_than_their_use(website):
    some_traffic(website)
    retention.prune(before=NOW - dt.timedelta(days=20), now=NOW)
    oldest = aggregates.quarter_of(NOW - dt.timedelta(days=20))
    assert not Tally.objects.filter(quarter__lt=oldest).exists()
    assert Tally.objects.filter(quarter__gte=oldest).exists()
    assert not FirstSeen.objects.filter(period__lt=(NOW - dt.timedelta(days=20)).timestamp())


def test_raw_retention_shorter_than_a_week_is_refused():
    with pytest.raises(CommandError, match="at least 7 days"):
        call_command("prune", "--raw-days", "3")


def test_the_prune_command_keeps_aggregates_of_events_it_deletes(website, settings):
    settings.ZENOVAY_RAW_RETENTION_DAYS = 7
    pageview(website, dt.datetime.now(dt.UTC) - dt.timedelta(days=10))
    out = io.StringIO()
    call_command("prune", stdout=out)
    assert "Deleted 1 events and 0 sessions" in out.getvalue()
    assert Tally.objects.filter(website=website, pageviews=1).exists()


def test_recorded_and_session_state_are_frozen_with_slots():
    for cls in (Recorded, SessionState):
        assert cls.__dataclass_params__.frozen and hasattr(cls, "__slots__")
    assert [f.name for f in dataclasses.fields(Recorded)][-2:] == [
        "session_before",
        "session_after",
    ]


# --- Which path answers


def raw_path_refused(monkeypatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("a figure scanned the raw events of a period")

    for name in ("_pageview_totals", "_session_figures"):
        monkeypatch.setattr(metrics, name, refuse)
    monkeypatch.setattr(reports, "_series", refuse)


def test_the_present_is_answered_from_the_aggregates(website, monkeypatch):
    # A snapshot takes the time, then reads; at a busy site an event lands in between.
    now = dt.datetime.now(dt.UTC)
    pageview(website, now - dt.timedelta(milliseconds=2), who=1)
    pageview(website, now + dt.timedelta(milliseconds=3), who=2)
    raw_path_refused(monkeypatch)
    assert metrics.realtime(website, now)["visitors"]["today"] == 2
    assert metrics.stats(website, "month", now)["visitors"]["month"] == 2
    assert sum(bucket["pageviews"] for bucket in reports.hourly(website, now)) == 2


def test_a_question_about_the_past_is_answered_from_raw_events(website, monkeypatch):
    pageview(website, NOW - dt.timedelta(minutes=20), who=1)
    pageview(website, NOW + dt.timedelta(minutes=1), who=2)
    assert metrics.realtime(website, NOW)["visitors"]["today"] == 1
    raw_path_refused(monkeypatch)
    with pytest.raises(AssertionError, match="raw events"):
        metrics.realtime(website, NOW)


# --- The migration of an existing install


@pytest.mark.django_db(transaction=True)
def test_migrating_an_install_with_events_builds_the_aggregates_ingest_would_have_kept(website):
    from django.db.migrations.executor import MigrationExecutor

    some_traffic(website)
    maintained = aggregates.rows_of(website.pk)
    assert all(maintained)
    latest = MigrationExecutor(connection).loader.graph.leaf_nodes("zenovay")

    MigrationExecutor(connection).migrate([("zenovay", "0002_drop_event_session")])
    assert Event.objects.filter(website=website).exists()  # the raw events stay
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(latest)

    assert aggregates.rows_of(website.pk) == maintained


@pytest.mark.django_db(transaction=True)
def test_migrating_folds_the_first_seen_rows_of_each_kind_into_rows_with_bits(website):
    """0011 turns the rows of 0010 (one per visitor and hour, day, week, month, and per
    session's day, week and month) into rows with bits, and 0012 keeps the day rows: what
    ingest keeps now."""
    from django.db.migrations.executor import MigrationExecutor

    some_traffic(website)  # visitor 4 has a session (a custom event) and no pageview
    maintained = aggregates.rows_of(website.pk)
    assert any(bits == aggregates.SESSION for *_, bits in maintained[1])
    latest = MigrationExecutor(connection).loader.graph.leaf_nodes("zenovay")
    executor = MigrationExecutor(connection)
    executor.migrate([("zenovay", "0010_site_indexes_only")])
    old = executor.loader.project_state([("zenovay", "0010_site_indexes_only")]).apps
    rows: dict[tuple[int, int, int], int] = {}

    def add(visitor: int, kind: int, period: int, us: int) -> None:
        rows[(visitor, kind, period)] = min(us, rows.get((visitor, kind, period), us))

    for _, visitor, kind, period, first_us, bits in maintained[1]:
        assert kind == aggregates.DAY  # since 0012, weeks and months are read from days
        spans = aggregates.periods(website.timezone, period * 1_000_000 // aggregates.QUARTER_US)
        for later in (aggregates.DAY, aggregates.WEEK, aggregates.MONTH):
            start = spans[aggregates._PERIOD_INDEX[later]]
            if bits & aggregates.PAGES:  # the plain row of the period (and one of its hour)
                add(visitor, later, start, first_us)
            if bits & aggregates.SESSION:  # the session's row of the period
                add(visitor, later + 10, start, first_us or period * 1_000_000)
        if bits & aggregates.PAGES:
            hour = aggregates.periods(website.timezone, first_us // aggregates.QUARTER_US)[0]
            add(visitor, aggregates.HOUR, hour, first_us)
    old.get_model("zenovay", "FirstSeen").objects.bulk_create(
        old.get_model("zenovay", "FirstSeen")(
            website_id=website.pk, visitor=v, kind=k, period=p, first_us=us
        )
        for (v, k, p), us in rows.items()
    )
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(latest)

    assert aggregates.rows_of(website.pk) == maintained
