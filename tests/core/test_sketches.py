"""Visitors over several days from HyperLogLog sketches (zenovay.sketches): the days'
sketches built forward from raw events, today's live part, finished months merged once,
sealing before raw events are pruned, and the estimate's error on large sets. Visits by a
visit's dimension from day tallies sealed once the day's visits have ended
(zenovay.visits)."""

from __future__ import annotations

import datetime as dt
import random
from collections import defaultdict

import pytest

from dashboard import reports
from tests.factories import record
from zenovay import filtered, query, retention, sketches, visits
from zenovay.models import Event, Goal, Session, Sketch, SketchMark, VisitTally, Website

pytestmark = pytest.mark.django_db

BERLIN = dt.timezone(dt.timedelta(hours=1))  # Berlin's offset in February and March 2026
NOW = dt.datetime(2026, 3, 10, 11, 0, tzinfo=dt.UTC)  # 12:00 in Berlin


@pytest.fixture
def site(db) -> Website:
    return Website.objects.create(domain="shop.example", timezone="Europe/Berlin")


def local(day: int, hour: int = 0, minute: int = 0, month: int = 3) -> dt.datetime:
    return dt.datetime(2026, month, day, hour, minute, tzinfo=BERLIN)


def brute(site: Website, since: dt.datetime, until: dt.datetime, column: str | None):
    """Per value of `column` (None: "" for the website): pageviews and distinct visitors,
    from the raw events."""
    counts: dict[str, int] = defaultdict(int)
    who: dict[str, set[int]] = defaultdict(set)
    rows = Event.objects.filter(website=site, type="pageview", ts__gte=since, ts__lte=until)
    for event in rows:
        value = getattr(event, column) if column else ""
        if value or not column:
            counts[value] += 1
            who[value].add(event.visitor)
    return {value: (counts[value], len(who[value])) for value in counts}


def test_visitors_over_several_days_count_each_visitor_once_with_todays_live_events(site):
    for day in (7, 8, 9, 10):
        for who in range(day - 4, day + 2):  # visitors overlap from day to day
            record(site, local(day, 9, who), who, f"/p{who % 3}")
    since, now = local(7), NOW
    expected = brute(site, since, now, None)
    assert sketches.figures(site, since, now, None, now) == expected
    assert sketches.figures(site, since, now, "p", now) == brute(site, since, now, "path")
    sealed = dict(SketchMark.objects.values_list("period", "until_us"))
    today = int(local(10).timestamp())
    assert sealed[today] == int((now - sketches.LAG).timestamp() * 1_000_000)

    # Moments later a new visitor comes: read live, today's sketches are not rewritten.
    record(site, now + dt.timedelta(seconds=10), 99, "/new")
    later = now + dt.timedelta(seconds=20)
    assert sketches.figures(site, since, later, None, later) == brute(site, since, later, None)
    assert dict(SketchMark.objects.values_list("period", "until_us"))[today] == sealed[today]

    # Past STALE, today's sketches are brought forward, and nobody is counted twice.
    much_later = now + sketches.LAG + sketches.STALE + dt.timedelta(minutes=1)
    found = sketches.figures(site, since, much_later, None, much_later)
    assert found == brute(site, since, much_later, None)
    assert found[""][1] == expected[""][1] + 1
    assert dict(SketchMark.objects.values_list("period", "until_us"))[today] > sealed[today]


def test_a_finished_month_is_merged_once_into_a_month_sketch(site):
    for day, month in ((1, 2), (14, 2), (28, 2), (1, 3), (9, 3)):
        for who in range(1, 6):
            record(site, local(day, 20, who, month=month), who + day, f"/p{who % 2}")
    since, until = local(1, month=2), local(10) - dt.timedelta(microseconds=1)
    for dim, column in ((None, None), ("p", "path"), ("c", "country")):
        assert sketches.figures(site, since, until, dim, NOW) == brute(site, since, until, column)
    february = int(local(1, month=2).timestamp())
    assert SketchMark.objects.filter(kind=sketches.MONTH, period=february).count() == 1
    assert Sketch.objects.filter(kind=sketches.MONTH, period=february, dim="").get().count == 15


def test_this_month_so_far_reads_one_merged_sketch_brought_forward_a_day_at_a_time(
    site, monkeypatch
):
    for day in range(1, 11):
        for who in range(day, day + 4):  # visitors overlap from day to day
            record(site, local(day, 9, who), who, f"/p{who % 3}")
    plans: list[sketches._Plan] = []  # what each read took from days and from SO_FAR
    merged: list[int] = []  # the days merged into SO_FAR
    bring_forward, merge = sketches._bring_forward, sketches._merge_so_far

    def noting_plan(website, plan, now):
        bring_forward(website, plan, now)
        plans.append(plan)

    def noting_merge(website, month, mark, run, goal):
        end = -1 if mark is None else mark
        merged.extend(d for d in run if sketches.day_end(d, website.zone).timestamp() * 1e6 > end)
        return merge(website, month, mark, run, goal)

    monkeypatch.setattr(sketches, "_bring_forward", noting_plan)
    monkeypatch.setattr(sketches, "_merge_so_far", noting_merge)
    march, now = local(1), NOW  # the 10th at noon: the 1st to the 9th are finished
    assert sketches.figures(site, march, now, "p", now) == brute(site, march, now, "path")
    assert plans[-1].so_far == [int(march.timestamp())]
    assert plans[-1].days == [int(local(10).timestamp())]  # today, read with its live part
    assert merged == [int(local(day).timestamp()) for day in range(1, 10)]
    so_far = SketchMark.objects.get(kind=sketches.SO_FAR, period=int(march.timestamp()))
    assert so_far.until_us == int(local(10).timestamp() * 1_000_000)  # up to the 9th's end
    assert Sketch.objects.get(kind=sketches.SO_FAR, dim="", period=so_far.period).count == 36

    # A day later only the 10th is merged into it.
    tomorrow, merged[:] = now + dt.timedelta(days=1), []
    record(site, local(11, 9), 50, "/p0")
    assert sketches.figures(site, march, tomorrow, None, tomorrow) == brute(
        site, march, tomorrow, None
    )
    assert merged == [int(local(10).timestamp())]
    assert plans[-1].days == [int(local(11).timestamp())]

    # The last 30 days read February's days and March's merged sketch, merging nothing.
    since, merged[:] = local(10, month=2), []
    found = sketches.figures(site, since, tomorrow, "p", tomorrow)
    assert found == brute(site, since, tomorrow, "path")
    assert plans[-1].so_far == [int(march.timestamp())] and not merged
    assert max(plans[-1].days[:-1]) < int(march.timestamp())

    # A range that ends before the merged days reads its days.
    fifth = local(6) - dt.timedelta(microseconds=1)
    assert sketches.figures(site, march, fifth, "p", tomorrow) == brute(site, march, fifth, "path")
    assert not plans[-1].so_far and len(plans[-1].days) == 5


def test_ranges_that_are_not_whole_local_days_are_left_to_raw_events(site):
    assert sketches.figures(site, local(7, 6), NOW, None, NOW) is None  # starts at 06:00
    assert sketches.figures(site, local(7), local(9, 12), None, NOW) is None  # ends midday
    end_of_9th = local(10) - dt.timedelta(microseconds=1)
    assert sketches.figures(site, local(7), end_of_9th, None, NOW) is not None
    assert sketches.figures(site, local(7), NOW, None, NOW) is not None  # today so far


def test_the_api_answers_visitors_over_days_and_breakdowns_from_aggregates(site, monkeypatch):
    monkeypatch.setattr("django.utils.timezone.now", lambda: NOW)
    for day in (8, 9, 10):
        for who in range(1, 4):
            record(site, local(day, 8, who), who + day % 2, "/a" if who % 2 else "/b")
    for body in (
        {"metrics": ["visitors", "pageviews"], "date_range": "7d"},
        {"metrics": ["visitors", "pageviews"], "date_range": "30d", "dimensions": ["page"]},
        {"metrics": ["visitors"], "date_range": "7d", "dimensions": ["utm_medium"]},
    ):
        asked = query.parse({"site_id": site.website_id, **body}, site, NOW)
        answer = query.run(asked)
        assert answer["meta"]["source"] == "aggregates", body
        slow = query._from_events(asked)
        assert sorted(map(str, query._from_aggregates(asked))) == sorted(map(str, slow))


def test_pruning_raw_events_seals_their_days_first(site, settings):
    real_now = dt.datetime.now(dt.UTC)
    days = [real_now - dt.timedelta(days=n) for n in (12, 11, 10)]
    for n, at in enumerate(days):
        for who in range(3):
            record(site, at, who + n)
    since = dt.datetime.combine(days[0].astimezone(site.zone).date(), dt.time(), tzinfo=site.zone)
    until = dt.datetime.combine(
        days[-1].astimezone(site.zone).date() + dt.timedelta(days=1), dt.time(), tzinfo=site.zone
    ) - dt.timedelta(microseconds=1)
    expected = brute(site, since, until, None)
    assert expected[""] == (9, 5)
    retention.prune(before=real_now - dt.timedelta(days=400), raw_before=real_now)
    assert not Event.objects.exists()
    assert sketches.figures(site, since, until, None, real_now) == expected


def test_a_large_crowd_is_estimated_within_one_percent(site):
    rng = random.Random(15)
    crowd = [rng.getrandbits(63) for _ in range(30_000)]
    rows = [
        Event(website=site, ts=local(day, 10), type="pageview", visitor=v, path="/", hostname="x")
        for day in (8, 9)
        for v in crowd[(day - 8) * 10_000 : (day - 8) * 10_000 + 20_000]  # 10,000 on both
    ]
    Event.objects.bulk_create(rows, batch_size=2000)
    end = local(10) - dt.timedelta(microseconds=1)
    pageviews, visitors = sketches.figures(site, local(8), end, None, NOW)[""]
    assert pageviews == 40_000
    assert abs(visitors - 30_000) / 30_000 <= 0.01 * 2.5, visitors  # 0.8 % standard error
    sizes = [len(registers) for registers in Sketch.objects.values_list("registers", flat=True)]
    assert len(sizes) == 4 and max(sizes) < 8500, sizes  # the site and "/", on two days


# --- Visits by a visit's dimension (zenovay.visits)


def test_a_days_visits_are_tallied_as_they_end(site):
    record(site, local(9, 23, 50), 1, "/late")  # a visit that goes on past midnight
    record(site, local(10, 0, 10), 1, "/after-midnight")
    record(site, local(9, 10), 2, "/early")
    record(site, local(9, 23, 55), 3, "/early")  # tallied in the second step, beside visitor 2
    day = int(local(9).timestamp())
    since, until = local(9), local(10) - dt.timedelta(microseconds=1)
    during = local(10, 0, 20)
    assert visits.sums(site, since, until, "entry_page", during) == {
        "/late": [1, 0, 2, 20 * 60 * 1_000_000],
        "/early": [2, 2, 2, 0],
    }
    # Tallied up to the first visit that may still go on (23:50): 30 minutes and the lag
    # before the clock at most; the rest is read from the visits as they are.
    mark = SketchMark.objects.get(kind=visits.VISITS, period=day).until_us
    assert mark == int(local(9, 23, 48).timestamp() * 1_000_000)

    record(site, local(10, 0, 25), 1, "/last")  # the visit grows after that answer
    ended = local(10, 1, 30)
    found = visits.sums(site, since, until, "exit_page", ended)
    assert found == {"/last": [1, 0, 3, 35 * 60 * 1_000_000], "/early": [2, 2, 2, 0]}
    mark = SketchMark.objects.get(kind=visits.VISITS, period=day).until_us
    assert mark == int(local(10).timestamp() * 1_000_000)  # the whole day, for good
    assert VisitTally.objects.filter(period=day, dim="x").count() == 2
    Session.objects.all().delete()  # now read from the sealed tallies alone
    assert visits.sums(site, since, until, "exit_page", ended) == found


def test_visits_by_entry_page_over_30_days_come_from_aggregates(site, monkeypatch):
    monkeypatch.setattr("django.utils.timezone.now", lambda: NOW)
    for day in (1, 5, 9, 10):
        for who in range(1, 4):
            record(site, local(day, 8, who), who, f"/in{who % 2}")
            record(site, local(day, 8, who + 5), who, "/next")
    body = {"metrics": ["visits", "bounce_rate", "visit_duration"], "dimensions": ["entry_page"]}
    asked = query.parse({"site_id": site.website_id, "date_range": "30d", **body}, site, NOW)
    assert query.run(asked)["meta"]["source"] == "aggregates"
    assert sorted(map(str, query._from_aggregates(asked))) == sorted(
        map(str, query._from_events(asked))
    )
    marks = dict(SketchMark.objects.filter(kind=visits.VISITS).values_list("period", "until_us"))
    assert len(marks) == 30  # every day of the range, today as far as its visits have ended
    assert marks[int(local(10).timestamp())] < NOW.timestamp() * 1_000_000


# --- A filter's figures kept per finished day (zenovay.filtered)


def test_a_filters_finished_days_are_read_once_and_today_live(site, monkeypatch):
    monkeypatch.setattr("django.utils.timezone.now", lambda: NOW)
    for day in (8, 9, 10):
        for who in range(1, 5):
            record(site, local(day, 9, who), who, "/blog/a" if who % 2 else "/shop")
    body = {
        "site_id": site.website_id,
        "metrics": ["visitors", "pageviews"],
        "date_range": "7d",
        "dimensions": ["time:day"],
        "filters": [["contains", "page", ["/blog"]]],
    }
    first = query.run(query.parse(body, site, NOW))
    assert first["meta"]["source"] == "days"
    assert [row["metrics"] for row in first["results"]][-3:] == [[2, 2]] * 3
    assert first["totals"] == [2, 6]  # the same two visitors all week
    assert SketchMark.objects.filter(kind=filtered.KIND).count() == 6  # every day but today

    # The finished days are not read again: their events could be gone, the answer stays.
    Event.objects.filter(ts__lt=local(10)).delete()
    record(site, NOW, 9, "/blog/b")  # today, read live
    again = query.run(query.parse(body, site, NOW))
    assert [row["metrics"] for row in again["results"]][-3:] == [[2, 2], [2, 2], [3, 3]]
    assert again["totals"] == [3, 7]


def test_a_filters_kept_days_are_pruned_with_first_seen_rows(site):
    real_now = dt.datetime.now(dt.UTC)
    for age in (70, 10):
        period = int((real_now - dt.timedelta(days=age)).timestamp())
        SketchMark.objects.create(website=site, kind=filtered.KIND, period=period, until_us=0)
        Sketch.objects.create(
            website=site, kind=filtered.KIND, period=period, scope="x", registers=b""
        )
    retention.prune(before=real_now - dt.timedelta(days=400), now=real_now)
    assert SketchMark.objects.filter(kind=filtered.KIND).count() == 1
    assert Sketch.objects.filter(kind=filtered.KIND).count() == 1


def test_goals_over_several_days_read_the_day_sketches_and_today_live(site, monkeypatch):
    monkeypatch.setattr("django.utils.timezone.now", lambda: NOW)
    for day in (8, 9, 10):
        for who in range(1, 5):
            record(site, local(day, 9, who), who, "/blog/a" if who % 2 else "/shop")
    record(site, local(9, 10), 2, "/blog/b")  # a second matching page: still one converter
    record(site, local(8, 10), 3, "/shop", kind="event", name="signup")
    Goal.objects.create(website=site, kind="page", value="/blog/*")
    Goal.objects.create(website=site, kind="event", value="signup")
    since, until, _ = query.date_range("7d", site, NOW)

    def figures() -> list[tuple[int, int]]:
        return [(g["conversions"], g["visitors"]) for g in reports.goals(site, since, until, 4)]

    assert figures() == [(7, 3), (1, 1)]
    # The finished days are not read again (their events could be gone); today's new
    # conversions are read live.
    Event.objects.filter(ts__lt=local(10)).delete()
    record(site, NOW, 9, "/blog/c")
    record(site, NOW, 3, "/shop", kind="event", name="signup")
    assert figures() == [(8, 4), (2, 1)]
