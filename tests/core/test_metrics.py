"""The read path without HTTP: every metric definition of the contract, on a controlled clock.

Events go through `tests/factories.py`, so visitor identities and sessions are built by the real
write path. Each visitor number is its own IP address, hence its own visitor.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import zoneinfo

import pytest

from tests.factories import custom, engagement, pageview
from zenovay import metrics
from zenovay.models import Event, Website

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 3, 10, 12, 0, 0, tzinfo=dt.UTC)  # a Tuesday
TIMESTAMP_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")


# --- Helpers


def utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


def ago(seconds: float, now: dt.datetime = NOW) -> dt.datetime:
    return now - dt.timedelta(seconds=seconds)


def site(zone: str = "UTC") -> Website:
    slug = re.sub(r"[^a-z0-9]+", "-", zone.lower())
    return Website.objects.create(domain=f"{slug}.example", timezone=zone)


def kinds(value: object) -> object:
    """The shape of a snapshot: every leaf replaced by its exact type."""
    if isinstance(value, dict):
        return {key: kinds(item) for key, item in value.items()}
    if isinstance(value, list):
        return [kinds(item) for item in value]
    return type(value)


def realtime(website: Website, now: dt.datetime = NOW) -> metrics.RealtimeSnapshot:
    return metrics.realtime(website, now=now)


def stats(website: Website, period: str = "today", now: dt.datetime = NOW):
    return metrics.stats(website, period=period, now=now)


def live_count(website: Website, now: dt.datetime = NOW) -> int:
    return metrics.live(website, now=now)["liveCount"]


def session_figures(snapshot: metrics.StatsSnapshot) -> dict[str, object]:
    return {key: value for key, value in snapshot.items() if key not in ("visitors", "timestamp")}


# --- Shapes, types and the empty site

TREND = {"current": int, "today": int, "change": float}
REALTIME_SHAPE = {
    "visitors": TREND,
    "pageViews": TREND,
    "countries": [{"code": str, "name": str, "count": int}],
    "topPages": [{"path": str, "visitors": int}],
    "timestamp": str,
}
STATS_SHAPE = {
    "visitors": {"live": int, "today": int, "week": int, "month": int},
    "bounceRate": float,
    "avgSessionDuration": int,
    "pagesPerSession": float,
    "newVisitorRate": float,
    "returningVisitorRate": float,
    "timestamp": str,
}


def test_a_site_without_traffic_reports_zeros_empty_lists_and_no_last_event(website):
    other = site("Europe/Berlin")
    pageview(other, ago(10))  # traffic elsewhere changes nothing here
    zero = {"current": 0, "today": 0, "change": 0.0}
    assert metrics.live(website, now=NOW) == {"liveCount": 0, "timestamp": "2026-03-10T12:00:00Z"}
    assert realtime(website) == {
        "visitors": zero,
        "pageViews": zero,
        "countries": [],
        "topPages": [],
        "timestamp": "2026-03-10T12:00:00Z",
    }
    for period in metrics.PERIODS:
        assert stats(website, period) == {
            "visitors": {"live": 0, "today": 0, "week": 0, "month": 0},
            "bounceRate": 0.0,
            "avgSessionDuration": 0,
            "pagesPerSession": 0.0,
            "newVisitorRate": 0.0,
            "returningVisitorRate": 0.0,
            "timestamp": "2026-03-10T12:00:00Z",
        }
    assert metrics.status(website, now=NOW) == {
        "active": False,
        "tracking_code": website.tracking_code,
        "domain": "shop.example",
        "last_event": None,
    }


def test_an_empty_site_has_ints_where_ints_belong_and_floats_for_rates(website):
    assert kinds(metrics.live(website, now=NOW)) == {"liveCount": int, "timestamp": str}
    assert kinds(realtime(website)) == {**REALTIME_SHAPE, "countries": [], "topPages": []}
    assert kinds(stats(website)) == STATS_SHAPE
    assert kinds(metrics.status(website, now=NOW)) == {
        "active": bool,
        "tracking_code": str,
        "domain": str,
        "last_event": type(None),
    }


def test_snapshots_with_traffic_have_exactly_the_contract_keys_and_types(website):
    pageview(website, ago(3600), path="/pricing")
    engagement(website, ago(3000))
    pageview(website, ago(60), who=2)
    pageview(website, ago(30), who=2, path="/features")
    custom(website, ago(20), who=2)
    snapshots = [
        metrics.live(website, now=NOW),
        realtime(website),
        stats(website),
        metrics.status(website, now=NOW),
    ]
    assert kinds(snapshots[0]) == {"liveCount": int, "timestamp": str}
    assert kinds(snapshots[1]) == REALTIME_SHAPE
    assert kinds(snapshots[2]) == STATS_SHAPE
    assert kinds(snapshots[3]) == {
        "active": bool,
        "tracking_code": str,
        "domain": str,
        "last_event": str,
    }
    for snapshot in snapshots:
        assert json.loads(json.dumps(snapshot)) == snapshot  # JSON-ready as it is


@pytest.mark.parametrize(
    "now",
    [
        NOW + dt.timedelta(microseconds=750_000),
        (NOW + dt.timedelta(microseconds=999_999)).astimezone(zoneinfo.ZoneInfo("Asia/Tokyo")),
        NOW.astimezone(zoneinfo.ZoneInfo("America/New_York")),
    ],
)
def test_every_timestamp_is_utc_with_second_precision_and_a_z(website, now):
    pageview(website, utc("2026-03-10 11:59:30.250000"))
    for snapshot in (
        metrics.live(website, now=now),
        realtime(website, now),
        stats(website, now=now),
    ):
        assert snapshot["timestamp"] == "2026-03-10T12:00:00Z"
        assert TIMESTAMP_RE.fullmatch(snapshot["timestamp"])
    assert metrics.status(website, now=now)["last_event"] == "2026-03-10T11:59:30Z"


# --- The current window: liveCount, visitors.current, pageViews.current


def test_an_event_299_seconds_old_is_live_and_one_301_seconds_old_is_not(website):
    pageview(website, ago(301), who=1)
    pageview(website, ago(299), who=2)
    assert live_count(website) == 1
    pageview(website, ago(0), who=3)  # the window ends at now, inclusive
    assert live_count(website) == 2


def test_an_event_in_the_same_second_before_the_snapshot_is_live(website):
    pageview(website, NOW + dt.timedelta(microseconds=400_000))
    now = NOW + dt.timedelta(microseconds=900_000)
    snapshot = realtime(website, now)
    assert snapshot["timestamp"] == "2026-03-10T12:00:00Z"
    assert (snapshot["visitors"]["current"], snapshot["pageViews"]["current"]) == (1, 1)
    assert (snapshot["visitors"]["today"], snapshot["pageViews"]["today"]) == (1, 1)
    assert live_count(website, now) == 1


def test_every_kind_of_event_makes_a_visitor_live(website):
    pageview(website, ago(400), who=2)  # a session from before the window
    pageview(website, ago(100), who=1)
    engagement(website, ago(50), who=2)
    custom(website, ago(20), who=3)
    assert live_count(website) == 3


def test_repeated_events_of_one_visitor_count_once(website):
    for seconds in (250, 200, 150, 100):
        pageview(website, ago(seconds), path=f"/p{seconds}")
    engagement(website, ago(60))
    custom(website, ago(30))
    assert live_count(website) == 1


def test_live_count_equals_realtime_current_and_stats_live(website):
    pageview(website, ago(1000), who=1)
    engagement(website, ago(290), who=1)
    pageview(website, ago(200), who=2)
    pageview(website, ago(100), who=2)
    custom(website, ago(50), who=3)
    pageview(website, ago(301), who=4)
    pageview(website, ago(10), who=5, country="")
    live = live_count(website)
    assert live == 4
    assert realtime(website)["visitors"]["current"] == live
    assert stats(website)["visitors"]["live"] == live


def test_page_views_current_counts_only_pageviews_in_the_window(website):
    pageview(website, ago(301), who=1)
    pageview(website, ago(299), who=1)
    pageview(website, ago(10), who=1, path="/b")
    pageview(website, ago(5), who=2)
    engagement(website, ago(3), who=2)
    custom(website, ago(2), who=2)
    snapshot = realtime(website)
    assert snapshot["pageViews"]["current"] == 3
    assert snapshot["visitors"]["current"] == 2


# --- Today in the website's time zone


@pytest.mark.parametrize(
    ("zone", "before_midnight", "after_midnight", "now"),
    [
        # 00:00 on 10 March in New York (EDT since 8 March) is 04:00 UTC.
        (
            "America/New_York",
            "2026-03-10 03:59:59",
            "2026-03-10 04:00:00",
            "2026-03-10 16:00:00",
        ),
        # 00:00 on 10 March in Berlin (CET) is 23:00 UTC the day before.
        ("Europe/Berlin", "2026-03-09 22:59:59", "2026-03-09 23:00:00", "2026-03-10 12:00:00"),
    ],
)
def test_today_starts_at_local_midnight_of_the_website(zone, before_midnight, after_midnight, now):
    local, in_utc = site(zone), site("UTC")
    for website in (local, in_utc):
        pageview(website, utc(before_midnight), who=1)
        pageview(website, utc(after_midnight), who=2)
    assert realtime(local, utc(now))["visitors"]["today"] == 1
    assert realtime(local, utc(now))["pageViews"]["today"] == 1
    assert stats(local, now=utc(now))["visitors"]["today"] == 1
    in_utc_today = 2 if zone == "America/New_York" else 0  # both, or neither, on the UTC day
    assert realtime(in_utc, utc(now))["visitors"]["today"] == in_utc_today


def test_today_counts_only_visitors_with_a_pageview(website):
    pageview(website, utc("2026-03-10 08:00"), who=1)
    for minute in range(4):
        pageview(website, utc(f"2026-03-10 09:0{minute}"), who=2, path=f"/{minute}")
    engagement(website, utc("2026-03-10 10:00"), who=3)
    custom(website, utc("2026-03-10 10:05"), who=4)
    snapshot = realtime(website)
    assert snapshot["visitors"]["today"] == 2
    assert snapshot["pageViews"]["today"] == 5
    assert stats(website)["visitors"]["today"] == 2


# --- Change against yesterday's same span


def test_change_compares_with_yesterday_up_to_the_same_time_of_day(website):
    for who in range(1, 7):
        pageview(website, utc("2026-03-09 08:00"), who=who)
    pageview(website, utc("2026-03-09 11:59:59"), who=7)  # one second before the time of day
    pageview(website, utc("2026-03-09 12:00:01"), who=20)  # after it: not part of the span
    for who in range(21, 25):
        pageview(website, utc("2026-03-09 18:00"), who=who)
    for who in (1, 2, 3):
        pageview(website, utc("2026-03-10 09:00"), who=who)
    for minute in range(7):
        pageview(website, utc(f"2026-03-10 10:0{minute}"), who=1, path=f"/{minute}")
    snapshot = realtime(website)
    assert snapshot["visitors"] == {"current": 0, "today": 3, "change": -57.1}  # 3 vs 7
    assert snapshot["pageViews"] == {"current": 0, "today": 10, "change": 42.9}  # 10 vs 7


def test_change_is_100_when_yesterday_had_none_and_today_has_some(website):
    pageview(website, utc("2026-03-09 12:30"), who=9)  # yesterday, but later than now's time
    pageview(website, utc("2026-03-10 09:00"), who=1)
    pageview(website, utc("2026-03-10 09:10"), who=2)
    snapshot = realtime(website)
    assert snapshot["visitors"]["change"] == 100.0
    assert snapshot["pageViews"]["change"] == 100.0


def test_change_is_0_when_both_days_are_empty_so_far(website):
    pageview(website, utc("2026-03-09 12:00:01"), who=9)  # yesterday, later than now's time
    engagement(website, utc("2026-03-10 09:00"), who=1)  # today, but not a pageview
    snapshot = realtime(website)
    assert snapshot["visitors"] == {"current": 0, "today": 0, "change": 0.0}
    assert snapshot["pageViews"] == {"current": 0, "today": 0, "change": 0.0}


def test_change_is_minus_100_when_today_has_none_but_yesterday_had_some(website):
    for who in range(1, 5):
        pageview(website, utc("2026-03-09 06:00"), who=who)
    snapshot = realtime(website)
    assert snapshot["visitors"]["change"] == -100.0
    assert snapshot["pageViews"]["change"] == -100.0


def test_change_is_rounded_to_one_decimal(website):
    pageview(website, utc("2026-03-09 07:00"), who=1)
    pageview(website, utc("2026-03-09 07:00"), who=2)
    pageview(website, utc("2026-03-09 07:00"), who=3)
    for who in range(1, 5):
        pageview(website, utc("2026-03-10 07:00"), who=who)
    assert realtime(website)["visitors"]["change"] == 33.3  # 4 vs 3


# --- Daylight saving time


def test_on_spring_forward_day_today_starts_at_local_midnight_and_yesterday_is_wall_clock():
    berlin = site("Europe/Berlin")  # 29 March 2026: 02:00 CET -> 03:00 CEST (01:00 UTC)
    now = utc("2026-03-29 08:00")  # 10:00 CEST
    pageview(berlin, utc("2026-03-27 22:59:59"), who=5)  # 27th 23:59:59 local
    pageview(berlin, utc("2026-03-27 23:00:00"), who=4)  # 28th 00:00 local: yesterday
    pageview(berlin, utc("2026-03-28 08:30"), who=6)  # 09:30 local: yesterday
    pageview(berlin, utc("2026-03-28 08:30"), who=7)
    pageview(berlin, utc("2026-03-28 09:00:01"), who=8)  # 10:00:01 local: after the time of day
    pageview(berlin, utc("2026-03-28 22:59:59"), who=1)  # 28th 23:59:59 local
    pageview(berlin, utc("2026-03-28 23:00:00"), who=2)  # 29th 00:00 local: today
    pageview(berlin, utc("2026-03-29 07:59"), who=3)  # 09:59 local: today
    visitors = realtime(berlin, now)["visitors"]
    assert visitors["today"] == 2
    assert visitors["change"] == -33.3  # 2 vs 3
    assert stats(berlin, now=now)["visitors"]["today"] == 2


def test_the_day_after_spring_forward_yesterday_ends_where_the_skipped_time_would_be():
    berlin = site("Europe/Berlin")
    now = utc("2026-03-30 00:30")  # 02:30 CEST; 02:30 did not exist on the 29th
    pageview(berlin, utc("2026-03-29 00:45"), who=1)  # 01:45 CET: before 02:30
    pageview(berlin, utc("2026-03-29 01:15"), who=2)  # 03:15 CEST: after 02:30
    pageview(berlin, utc("2026-03-29 22:10"), who=3)  # 00:10 CEST on the 30th: today
    visitors = realtime(berlin, now)["visitors"]
    assert visitors["today"] == 1
    assert visitors["change"] == 0.0  # 1 vs 1


def test_on_fall_back_day_today_starts_at_local_midnight_and_yesterday_is_wall_clock():
    new_york = site("America/New_York")  # 1 Nov 2026: 02:00 EDT -> 01:00 EST (06:00 UTC)
    now = utc("2026-11-01 17:00")  # 12:00 EST
    pageview(new_york, utc("2026-10-31 03:59:59"), who=8)  # 30th 23:59:59 local
    pageview(new_york, utc("2026-10-31 04:00:00"), who=7)  # 31st 00:00 local: yesterday
    pageview(new_york, utc("2026-10-31 15:30"), who=4)  # 11:30 local: yesterday
    pageview(new_york, utc("2026-10-31 15:30"), who=5)
    pageview(new_york, utc("2026-10-31 16:30"), who=6)  # 12:30 local: after the time of day
    pageview(new_york, utc("2026-11-01 03:59:59"), who=1)  # 31st 23:59:59 local
    pageview(new_york, utc("2026-11-01 04:30"), who=2)  # 1st 00:30 EDT: today
    pageview(new_york, utc("2026-11-01 16:00"), who=3)  # 11:00 EST: today
    visitors = realtime(new_york, now)["visitors"]
    assert visitors["today"] == 2
    assert visitors["change"] == -33.3  # 2 vs 3


# --- Countries


def test_a_visitor_counts_under_the_country_of_its_latest_event_in_the_window(website):
    pageview(website, ago(200), who=1, country="DE")
    engagement(website, ago(10), who=1, country="US")  # latest event, not a pageview
    pageview(website, ago(400), who=2, country="FR")  # before the window
    pageview(website, ago(100), who=2, country="GB")
    pageview(website, ago(50), who=3, country="US")
    assert realtime(website)["countries"] == [
        {"code": "US", "name": "United States", "count": 2},
        {"code": "GB", "name": "United Kingdom", "count": 1},
    ]


def test_visitors_of_unknown_country_are_left_out_of_countries(website):
    pageview(website, ago(100), who=1, country="")
    pageview(website, ago(100), who=2, country="DE")
    pageview(website, ago(10), who=2, country="")  # latest event unknown: left out
    pageview(website, ago(50), who=3, country="DE")
    snapshot = realtime(website)
    assert snapshot["countries"] == [{"code": "DE", "name": "Germany", "count": 1}]
    assert snapshot["visitors"]["current"] == 3


def test_countries_are_the_top_ten_by_count_with_ties_by_code(website):
    counts = {"SE": 1, "GB": 2, "PL": 1, "US": 3, "FR": 1, "DE": 2, "NL": 1, "AT": 1}
    counts |= {"IT": 1, "CH": 1, "ES": 1, "BE": 1}
    who = 0
    for code, count in counts.items():
        for _ in range(count):
            who += 1
            pageview(website, ago(60), who=who, country=code)
    countries = realtime(website)["countries"]
    assert [(c["code"], c["count"]) for c in countries] == [
        ("US", 3),
        ("DE", 2),
        ("GB", 2),
        ("AT", 1),
        ("BE", 1),
        ("CH", 1),
        ("ES", 1),
        ("FR", 1),
        ("IT", 1),
        ("NL", 1),
    ]
    assert countries[1]["name"] == "Germany"
    assert sum(c["count"] for c in countries) <= realtime(website)["visitors"]["current"]


# --- Top pages


def test_a_visitor_counts_under_its_latest_pageview_in_the_window(website):
    pageview(website, ago(200), who=1, path="/a")
    pageview(website, ago(100), who=1, path="/b")
    engagement(website, ago(10), who=1, path="/c")  # not a pageview: does not move it
    custom(website, ago(5), who=1, path="/d")
    pageview(website, ago(400), who=2, path="/old")  # before the window
    engagement(website, ago(20), who=2, path="/old")  # live, but no pageview in the window
    pageview(website, ago(30), who=3, path="/a")
    pageview(website, ago(30), who=4, path="/b")
    snapshot = realtime(website)
    assert snapshot["topPages"] == [{"path": "/b", "visitors": 2}, {"path": "/a", "visitors": 1}]
    assert snapshot["visitors"]["current"] == 4
    assert sum(p["visitors"] for p in snapshot["topPages"]) <= snapshot["visitors"]["current"]


def test_top_pages_are_the_top_ten_with_ties_by_path(website):
    paths = ["/z", "/pricing", "/", "/x", "/features", "/", "/t", "/r", "/pricing"]
    paths += ["/y", "/", "/s", "/features", "/u", "/w", "/v"]
    for who, path in enumerate(paths, start=1):
        pageview(website, ago(60), who=who, path=path)
    snapshot = realtime(website)
    assert snapshot["topPages"] == [
        {"path": "/", "visitors": 3},
        {"path": "/features", "visitors": 2},
        {"path": "/pricing", "visitors": 2},
        *({"path": path, "visitors": 1} for path in ["/r", "/s", "/t", "/u", "/v", "/w", "/x"]),
    ]
    assert snapshot["visitors"]["current"] == len(paths)


def test_a_path_has_no_query_string_or_fragment(website):
    pageview(website, ago(60), who=1, path="/pricing?plan=pro#faq")
    pageview(website, ago(60), who=2, path="/pricing?utm_source=news")
    pageview(website, ago(60), who=3, path="/pricing#top")
    assert realtime(website)["topPages"] == [{"path": "/pricing", "visitors": 3}]


def test_hostile_paths_come_back_percent_encoded_as_a_browser_sends_them(website):
    paths = [
        "/<script>alert(1)</script>",
        "/caf\u00e9/\u65e5\u672c\u8a9e/\U0001f642",
        "/\"quoted\"/'single'/&amp;",
        "/%3Cb%3E",
        "/" + "a" * 1023,
    ]
    for who, path in enumerate(paths, start=1):
        pageview(website, ago(60), who=who, path=path)
    encoded = [
        "/%3Cscript%3Ealert(1)%3C/script%3E",
        "/caf%C3%A9/%E6%97%A5%E6%9C%AC%E8%AA%9E/%F0%9F%99%82",
        "/%22quoted%22/%27single%27/&amp;",
        "/%3Cb%3E",
        "/" + "a" * 1023,
    ]
    top = realtime(website)["topPages"]
    assert top == [{"path": path, "visitors": 1} for path in sorted(encoded)]


def test_paths_stored_raw_before_they_were_encoded_come_back_encoded(website):
    pageview(website, ago(60), who=1, path="/ok")
    Event.objects.filter(website=website).update(path="/<img src=x onerror=alert(1)>")
    top = realtime(website)["topPages"]
    assert top == [{"path": "/%3Cimg%20src=x%20onerror=alert(1)%3E", "visitors": 1}]


# --- Week and month


def test_week_starts_monday_and_month_on_the_first_at_local_midnight():
    berlin = site("Europe/Berlin")  # CET: local midnight is 23:00 UTC the day before
    pageview(berlin, utc("2026-02-28 22:59:59"), who=1)  # 28 Feb local
    pageview(berlin, utc("2026-02-28 23:00:00"), who=2)  # 1 Mar 00:00 local
    pageview(berlin, utc("2026-03-08 22:59:59"), who=3)  # Sunday 23:59:59 local
    pageview(berlin, utc("2026-03-08 23:00:00"), who=4)  # Monday 00:00 local
    pageview(berlin, utc("2026-03-09 10:00"), who=4)
    pageview(berlin, utc("2026-03-10 11:00"), who=5)
    engagement(berlin, utc("2026-03-10 11:30"), who=6)  # no pageview: not a counted visitor
    assert stats(berlin)["visitors"] == {"live": 0, "today": 1, "week": 2, "month": 4}


def test_week_and_month_follow_the_local_date_not_the_utc_date():
    new_york = site("America/New_York")
    pageview(new_york, utc("2026-03-10 14:00"), who=1)  # Tuesday
    pageview(new_york, utc("2026-03-10 14:30"), who=1, path="/next")
    sunday_night = utc("2026-03-16 02:00")  # Sunday 22:00 EDT, already Monday in UTC
    snapshot = stats(new_york, "week", now=sunday_night)
    assert snapshot["visitors"]["week"] == 1
    assert (snapshot["pagesPerSession"], snapshot["bounceRate"]) == (2.0, 0.0)
    month_end = utc("2026-04-01 02:00")  # 31 March 22:00 EDT, already April in UTC
    snapshot = stats(new_york, "month", now=month_end)
    assert snapshot["visitors"]["month"] == 1
    assert snapshot["pagesPerSession"] == 2.0


def test_on_a_sunday_the_week_still_began_on_monday(website):
    now = utc("2026-03-15 12:00")  # Sunday
    pageview(website, utc("2026-03-08 23:59:59"), who=1)  # last Sunday, within 7 days
    pageview(website, utc("2026-03-09 00:00:00"), who=2)  # Monday
    pageview(website, utc("2026-03-15 09:00"), who=3)
    assert stats(website, now=now)["visitors"]["week"] == 2


# --- Session figures


def some_pageviews(website: Website, start: dt.datetime, who: int, count: int) -> None:
    """One session of `count` pageviews a minute apart."""
    for minute in range(count):
        pageview(website, start + dt.timedelta(minutes=minute), who=who, path=f"/{minute}")


def test_the_period_selects_the_sessions_of_the_session_figures(website):
    some_pageviews(website, utc("2026-03-03 10:00"), who=1, count=7)  # this month: 360 s
    some_pageviews(website, utc("2026-03-09 10:00"), who=2, count=4)  # this week: 180 s
    some_pageviews(website, utc("2026-03-10 09:00"), who=3, count=1)  # today: 0 s
    today, week, month = (stats(website, period) for period in ("today", "week", "month"))
    assert session_figures(today) == {
        "bounceRate": 1.0,
        "avgSessionDuration": 0,
        "pagesPerSession": 1.0,
        "newVisitorRate": 1.0,
        "returningVisitorRate": 0.0,
    }
    assert session_figures(week) == {
        "bounceRate": 0.5,
        "avgSessionDuration": 90,
        "pagesPerSession": 2.5,
        "newVisitorRate": 1.0,
        "returningVisitorRate": 0.0,
    }
    assert session_figures(month) == {
        "bounceRate": 0.33,
        "avgSessionDuration": 180,
        "pagesPerSession": 4.0,
        "newVisitorRate": 1.0,
        "returningVisitorRate": 0.0,
    }
    assert today["visitors"] == week["visitors"] == month["visitors"]
    assert metrics.stats(website, now=NOW) == today  # today is the default


def test_a_session_that_began_yesterday_is_not_in_todays_session_figures(website):
    pageview(website, utc("2026-03-09 23:50"), who=1)
    pageview(website, utc("2026-03-10 00:05"), who=1, path="/next")  # same session
    pageview(website, utc("2026-03-10 10:00"), who=2)
    snapshot = stats(website)
    assert snapshot["visitors"]["today"] == 2
    assert (snapshot["bounceRate"], snapshot["pagesPerSession"]) == (1.0, 1.0)


def test_a_bounce_is_a_session_with_one_pageview_and_no_custom_event(website):
    start = utc("2026-03-10 09:00")
    pageview(website, start, who=1)  # bounce
    pageview(website, start, who=2)
    engagement(website, start + dt.timedelta(seconds=30), who=2)  # still a bounce
    pageview(website, start, who=3)
    custom(website, start + dt.timedelta(seconds=5), who=3)  # interacted: no bounce
    some_pageviews(website, start, who=4, count=2)  # no bounce
    custom(website, start, who=5)  # a session without pageviews: no bounce
    engagement(website, start, who=6)  # no session at all
    assert stats(website)["bounceRate"] == 0.4  # 2 of 5


def test_bounce_rate_has_two_decimals(website):
    start = utc("2026-03-10 09:00")
    pageview(website, start, who=1)
    pageview(website, start, who=2)
    some_pageviews(website, start, who=3, count=3)
    assert stats(website)["bounceRate"] == 0.67


def test_an_engagement_event_gives_a_one_page_visit_its_duration(website):
    pageview(website, utc("2026-03-10 09:00:00"))
    engagement(website, utc("2026-03-10 09:00:43"))
    snapshot = stats(website)
    assert (snapshot["avgSessionDuration"], snapshot["bounceRate"]) == (43, 1.0)


def test_average_session_duration_is_the_mean_in_whole_seconds(website):
    pageview(website, utc("2026-03-10 09:00:00"), who=1)
    engagement(website, utc("2026-03-10 09:00:43"), who=1)  # 43 s
    pageview(website, utc("2026-03-10 09:00:00"), who=2)
    pageview(website, utc("2026-03-10 09:01:40"), who=2, path="/next")  # 100 s
    pageview(website, utc("2026-03-10 09:00:00"), who=3)  # 0 s
    duration = stats(website)["avgSessionDuration"]
    assert duration == 48  # 143 / 3 = 47.67
    assert type(duration) is int


def test_pages_per_session_has_one_decimal(website):
    some_pageviews(website, utc("2026-03-10 09:00"), who=1, count=1)
    some_pageviews(website, utc("2026-03-10 09:00"), who=2, count=2)
    some_pageviews(website, utc("2026-03-10 09:00"), who=3, count=2)
    assert stats(website)["pagesPerSession"] == 1.7  # 5 / 3


def test_a_visitor_with_a_session_before_the_period_is_returning(website):
    pageview(website, utc("2026-03-09 10:00"), who=1)  # Monday: before today, within the week
    pageview(website, utc("2026-03-10 09:00"), who=1)
    pageview(website, utc("2026-03-10 11:00"), who=1)  # a second session today, same visitor
    pageview(website, utc("2026-03-10 09:30"), who=2)
    pageview(website, utc("2026-03-10 10:30"), who=3)
    today = stats(website)
    assert (today["newVisitorRate"], today["returningVisitorRate"]) == (0.67, 0.33)
    assert today["newVisitorRate"] + today["returningVisitorRate"] == 1.0
    week = stats(website, "week")  # Monday's visit began within the week
    assert (week["newVisitorRate"], week["returningVisitorRate"]) == (1.0, 0.0)


def test_new_and_returning_rates_add_up_to_one(website):
    pageview(website, utc("2026-03-02 10:00"), who=1)
    pageview(website, utc("2026-03-05 10:00"), who=2)
    for who in range(1, 8):
        pageview(website, utc("2026-03-10 10:00"), who=who)
    snapshot = stats(website)
    assert (snapshot["newVisitorRate"], snapshot["returningVisitorRate"]) == (0.71, 0.29)
    assert snapshot["newVisitorRate"] + snapshot["returningVisitorRate"] == 1.0


def test_engagement_alone_makes_a_visitor_live_but_no_session(website):
    engagement(website, ago(30))
    snapshot = stats(website)
    assert snapshot["visitors"] == {"live": 1, "today": 0, "week": 0, "month": 0}
    assert session_figures(snapshot) == {
        "bounceRate": 0.0,
        "avgSessionDuration": 0,
        "pagesPerSession": 0.0,
        "newVisitorRate": 0.0,
        "returningVisitorRate": 0.0,
    }


# --- Status


@pytest.mark.parametrize(
    ("age", "active"),
    [
        (dt.timedelta(minutes=1), True),
        (dt.timedelta(hours=23, minutes=59, seconds=59), True),
        (dt.timedelta(hours=24, seconds=1), False),
        (dt.timedelta(days=3), False),
    ],
)
def test_a_website_is_active_with_an_event_in_the_last_24_hours(website, age, active):
    pageview(website, NOW - age)
    snapshot = metrics.status(website, now=NOW)
    assert snapshot["active"] is active
    assert snapshot["last_event"] == metrics.iso(NOW - age)


def test_a_disabled_website_is_not_active_even_with_recent_events(website):
    pageview(website, ago(60))
    website.enabled = False
    website.save()
    assert metrics.status(website, now=NOW)["active"] is False


def test_last_event_is_the_latest_event_of_any_kind_in_utc_seconds(website):
    new_york = site("America/New_York")
    pageview(new_york, ago(3600))
    engagement(new_york, ago(60) + dt.timedelta(microseconds=750_000))
    assert metrics.status(new_york, now=NOW) == {
        "active": True,
        "tracking_code": new_york.tracking_code,
        "domain": "america-new-york.example",
        "last_event": "2026-03-10T11:59:00Z",
    }


# --- Several websites side by side


def test_another_websites_events_never_leak_into_a_snapshot(website, other_website):
    pageview(website, utc("2026-03-10 08:00"), who=1, country="DE")
    busy = other_website
    pageview(busy, utc("2026-03-09 08:00"), who=1)
    for who in range(1, 6):  # the same people, and others, on the other site
        pageview(busy, ago(30), who=who, path="/elsewhere", country="FR")
        custom(busy, ago(20), who=who)
    assert live_count(website) == 0
    assert realtime(website) == {
        "visitors": {"current": 0, "today": 1, "change": 100.0},
        "pageViews": {"current": 0, "today": 1, "change": 100.0},
        "countries": [],
        "topPages": [],
        "timestamp": "2026-03-10T12:00:00Z",
    }
    assert stats(website) == {
        "visitors": {"live": 0, "today": 1, "week": 1, "month": 1},
        "bounceRate": 1.0,
        "avgSessionDuration": 0,
        "pagesPerSession": 1.0,
        "newVisitorRate": 1.0,
        "returningVisitorRate": 0.0,
        "timestamp": "2026-03-10T12:00:00Z",
    }
    assert metrics.status(website, now=NOW)["last_event"] == "2026-03-10T08:00:00Z"
    assert live_count(busy) == 5
