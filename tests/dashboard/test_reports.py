"""The dashboard's reports without HTTP: time series, breakdowns, custom events, periods.

Events go through the real write path (`tests/factories.py`) on a controlled clock, as in
test_metrics; each visitor number is its own IP address, hence its own visitor.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest

from dashboard import reports
from tests.factories import custom, record
from zenovay import metrics
from zenovay.models import Website

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 3, 10, 12, 20, 0, tzinfo=dt.UTC)  # a Tuesday
IPHONE_UA = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
)
FIREFOX_UA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0"


def utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


def ago(**delta: float) -> dt.datetime:
    return NOW - dt.timedelta(**delta)


def site(zone: str = "UTC", domain: str = "shop.example") -> Website:
    return Website.objects.create(domain=domain, timezone=zone)


def counts(buckets: list[reports.Bucket]) -> dict[str, tuple[int, int]]:
    """label -> (visitors, pageviews), only for buckets with traffic."""
    return {b["label"]: (b["visitors"], b["pageviews"]) for b in buckets if b["pageviews"]}


def values(rows: list[reports.Row]) -> list[tuple[str, int]]:
    return [(row["value"], row["visitors"]) for row in rows]


# --- hourly


def test_hourly_has_24_zero_filled_buckets_ending_with_the_current_hour():
    buckets = reports.hourly(site(), NOW)

    assert len(buckets) == 24
    assert buckets[0] == {
        "start": "2026-03-09T13:00:00Z",
        "label": "13:00",
        "visitors": 0,
        "pageviews": 0,
    }
    assert buckets[-1]["start"] == "2026-03-10T12:00:00Z"
    assert [b["label"] for b in buckets[-3:]] == ["10:00", "11:00", "12:00"]
    assert json.loads(json.dumps(buckets)) == buckets


def test_hourly_counts_distinct_visitors_and_every_pageview_in_their_hour():
    website = site()
    record(website, utc("2026-03-10 12:00:00"), who=1)
    record(website, utc("2026-03-10 12:19:59"), who=1, path="/pricing")
    record(website, utc("2026-03-10 12:05:00"), who=2)
    record(website, utc("2026-03-10 11:59:59"), who=3)
    record(website, utc("2026-03-09 13:00:00"), who=4)  # first instant of the oldest bucket
    record(website, utc("2026-03-09 12:59:59"), who=5)  # older than 24 hours: left out
    record(website, utc("2026-03-10 12:20:01"), who=6)  # after `now`: left out

    assert counts(reports.hourly(website, NOW)) == {
        "13:00": (1, 1),
        "11:00": (1, 1),
        "12:00": (2, 3),
    }


def test_hourly_ignores_engagement_and_custom_events():
    website = site()
    record(website, ago(minutes=5))
    record(website, ago(minutes=4), kind="engagement", engagedMs=1000)
    custom(website, ago(minutes=3), who=2)

    assert counts(reports.hourly(website, NOW)) == {"12:00": (1, 1)}


def test_hourly_buckets_follow_local_hours_with_a_half_hour_offset():
    website = site("Asia/Kolkata")  # UTC+05:30: 12:20 UTC is 17:50 local
    record(website, utc("2026-03-10 11:30:00"))  # 17:00 local
    record(website, utc("2026-03-10 11:29:59"), who=2)  # 16:59 local

    buckets = reports.hourly(website, NOW)

    assert buckets[-1]["start"] == "2026-03-10T11:30:00Z"
    assert buckets[-1]["label"] == "17:00"
    assert counts(buckets) == {"17:00": (1, 1), "16:00": (1, 1)}


def test_hourly_labels_repeat_the_hour_that_a_dst_change_repeats():
    website = site("America/New_York")  # 2026-11-01 01:00-02:00 happens twice
    now = utc("2026-11-01 07:30:00")  # 02:30 EST
    record(website, utc("2026-11-01 05:10:00"))  # 01:10 EDT
    record(website, utc("2026-11-01 06:10:00"), who=2)  # 01:10 EST

    buckets = reports.hourly(website, now)

    assert [b["label"] for b in buckets[-4:]] == ["00:00", "01:00", "01:00", "02:00"]
    assert [b["pageviews"] for b in buckets[-4:]] == [0, 1, 1, 0]


# --- daily


def test_daily_has_30_zero_filled_days_ending_today():
    buckets = reports.daily(site(), NOW)

    assert len(buckets) == 30
    assert buckets[0] == {
        "start": "2026-02-09T00:00:00Z",
        "label": "Feb 9",
        "visitors": 0,
        "pageviews": 0,
    }
    assert buckets[-1]["label"] == "Mar 10"
    assert len(reports.daily(site(domain="blog.example"), NOW, days=7)) == 7


def test_daily_counts_distinct_visitors_per_local_day():
    website = site("America/New_York")  # UTC-4 after 2026-03-08
    record(website, utc("2026-03-10 03:59:59"), who=1)  # Mar 9, 23:59 local
    record(website, utc("2026-03-10 04:00:00"), who=1)  # Mar 10, 00:00 local
    record(website, utc("2026-03-10 12:00:00"), who=1, path="/pricing")
    record(website, utc("2026-03-10 12:10:00"), who=2)
    record(website, utc("2026-02-09 05:00:00"), who=3)  # Feb 9 00:00 EST: oldest day
    record(website, utc("2026-02-09 04:59:59"), who=4)  # Feb 8 local: left out

    buckets = reports.daily(website, NOW)

    assert buckets[0]["start"] == "2026-02-09T05:00:00Z"
    assert counts(buckets) == {"Feb 9": (1, 1), "Mar 9": (1, 1), "Mar 10": (2, 3)}


def test_daily_days_around_a_dst_change_have_23_hours():
    website = site("Europe/Berlin")  # clocks jump 02:00 -> 03:00 on 2026-03-29
    now = utc("2026-03-30 10:00:00")
    record(website, utc("2026-03-28 23:00:00"))  # Mar 29, 00:00 CET
    record(website, utc("2026-03-29 21:59:59"), who=2)  # Mar 29, 23:59:59 CEST
    record(website, utc("2026-03-29 22:00:00"), who=3)  # Mar 30, 00:00 CEST

    buckets = reports.daily(website, now)

    assert [b["start"] for b in buckets[-2:]] == ["2026-03-28T23:00:00Z", "2026-03-29T22:00:00Z"]
    assert counts(buckets) == {"Mar 29": (2, 2), "Mar 30": (1, 1)}


# --- breakdown


def test_pages_are_ranked_by_distinct_visitors_with_ties_by_path():
    website = site()
    for who in (1, 2, 3):
        record(website, ago(minutes=who), who=who, path="/pricing")
    record(website, ago(minutes=9), who=1, path="/pricing")  # again: still one visitor
    record(website, ago(minutes=8), who=1, path="/b")
    record(website, ago(minutes=7), who=2, path="/a")
    record(website, ago(minutes=6), who=3, path="/B")

    rows = reports.breakdown(website, ago(hours=1), NOW, "page")

    assert values(rows) == [("/pricing", 3), ("/B", 1), ("/a", 1), ("/b", 1)]
    assert rows[0] == {
        "value": "/pricing",
        "label": "/pricing",
        "flag": "",
        "visitors": 3,
        "pageviews": 4,
    }


def test_ties_are_ordered_by_code_point_on_every_database():
    website = site()
    for who, path in enumerate(["/ab", "/a-b", "/a_b", "/Ab", "/éa", "/za"], start=1):
        record(website, ago(minutes=who), who=who, path=path)

    rows = reports.breakdown(website, ago(hours=1), NOW, "page")

    stored = ["/ab", "/a-b", "/a_b", "/Ab", "/%C3%A9a", "/za"]  # paths as a browser sends them
    assert [row["value"] for row in rows] == sorted(stored)


def test_breakdown_keeps_to_the_limit_and_the_time_span():
    website = site()
    for who in range(1, 13):
        record(website, ago(minutes=who), who=who, path=f"/p{who:02}")
    record(website, ago(hours=2), who=20, path="/old")

    rows = reports.breakdown(website, ago(hours=1), NOW, "page")
    assert len(rows) == 10 and "/old" not in [r["value"] for r in rows]
    assert len(reports.breakdown(website, ago(hours=1), NOW, "page", limit=3)) == 3
    assert reports.breakdown(website, ago(hours=3), ago(hours=1, minutes=30), "page")[0][
        "value"
    ] == ("/old")


def test_countries_have_their_name_and_flag_and_unknown_is_left_out():
    website = site()
    record(website, ago(minutes=1), who=1, country="DE")
    record(website, ago(minutes=2), who=2, country="DE")
    record(website, ago(minutes=3), who=3, country="GB")
    record(website, ago(minutes=4), who=4, country="")

    rows = reports.breakdown(website, ago(hours=1), NOW, "country")

    assert rows == [
        {"value": "DE", "label": "Germany", "flag": "🇩🇪", "visitors": 2, "pageviews": 2},
        {"value": "GB", "label": "United Kingdom", "flag": "🇬🇧", "visitors": 1, "pageviews": 1},
    ]


def test_referrers_and_utm_sources_count_the_visitors_they_brought():
    website = site()
    record(website, ago(minutes=1), who=1, referrer="https://www.google.com/search?q=x")
    record(website, ago(minutes=2), who=2, referrer="https://news.ycombinator.com/item")
    record(website, ago(minutes=3), who=3, referrer="https://google.com/")
    record(website, ago(minutes=4), who=3, referrer="https://shop.example/")  # internal
    record(website, ago(minutes=5), who=4, path="/?utm_source=newsletter&utm_medium=email")
    record(website, ago(minutes=6), who=5, path="/?utm_source=newsletter")

    since = ago(hours=1)
    assert values(reports.breakdown(website, since, NOW, "referrer")) == [
        ("google.com", 2),
        ("news.ycombinator.com", 1),
    ]
    assert values(reports.breakdown(website, since, NOW, "utm_source")) == [("newsletter", 2)]


def test_devices_browsers_and_operating_systems():
    website = site()
    record(website, ago(minutes=1), who=1)
    record(website, ago(minutes=2), who=2, ua=IPHONE_UA)
    record(website, ago(minutes=3), who=3, ua=FIREFOX_UA)

    since = ago(hours=1)
    devices = reports.breakdown(website, since, NOW, "device")
    assert [(r["value"], r["label"], r["visitors"]) for r in devices] == [
        ("desktop", "Desktop", 2),
        ("mobile", "Mobile", 1),
    ]
    assert values(reports.breakdown(website, since, NOW, "browser")) == [
        ("Chrome", 1),
        ("Firefox", 1),
        ("Mobile Safari", 1),
    ]
    assert values(reports.breakdown(website, since, NOW, "os")) == [
        ("Linux", 1),
        ("Windows", 1),
        ("iOS", 1),
    ]


def test_another_websites_traffic_is_not_counted():
    website, other = site(), site(domain="blog.example")
    record(other, ago(minutes=1), path="/elsewhere")
    custom(other, ago(minutes=1))

    since = ago(days=29)
    assert counts(reports.hourly(website, NOW)) == {}
    assert counts(reports.daily(website, NOW)) == {}
    assert all(reports.breakdown(website, since, NOW, f) == [] for f in reports.FIELDS)
    assert reports.custom_events(website, since, NOW) == []
    assert reports.recent_events(website, since, NOW) == []


# --- custom events


def test_custom_events_count_firings_and_visitors_by_name():
    website = site()
    custom(website, ago(minutes=1), who=1, name="signup")
    custom(website, ago(minutes=2), who=1, name="signup")
    custom(website, ago(minutes=3), who=2, name="signup")
    custom(website, ago(minutes=4), who=2, name="download")
    custom(website, ago(minutes=5), who=3, name="Download")
    custom(website, ago(hours=2), who=4, name="old")
    record(website, ago(minutes=6), who=5)

    assert reports.custom_events(website, ago(hours=1), NOW) == [
        {"name": "signup", "count": 3, "visitors": 2},
        {"name": "Download", "count": 1, "visitors": 1},
        {"name": "download", "count": 1, "visitors": 1},
    ]


def test_recent_events_show_their_props_as_text_newest_first():
    website = site()
    custom(website, ago(minutes=2), name="signup", props={"plan": "pro", "seats": 3})
    custom(website, ago(minutes=1), name="download", path="/docs", props={"ok": True, "x": None})

    assert reports.recent_events(website, ago(hours=1), NOW) == [
        {
            "name": "download",
            "path": "/docs",
            "props": [{"key": "ok", "value": "true"}, {"key": "x", "value": "null"}],
            "at": "2026-03-10T12:19:00Z",
        },
        {
            "name": "signup",
            "path": "/",
            "props": [{"key": "plan", "value": "pro"}, {"key": "seats", "value": "3"}],
            "at": "2026-03-10T12:18:00Z",
        },
    ]


# --- period figures


def test_period_figures_cover_today_the_week_and_the_month():
    website = site()
    record(website, ago(minutes=1), who=1)  # today, in the live window
    record(website, ago(hours=3), who=2)
    record(website, ago(hours=3, minutes=-1), who=2, path="/pricing")
    record(website, utc("2026-03-09 10:00:00"), who=3)  # Monday: this week
    record(website, utc("2026-03-02 10:00:00"), who=4)  # last week, this month
    record(website, utc("2026-02-27 10:00:00"), who=5)  # last month

    figures = {p: reports.period_figures(website, p, NOW) for p in metrics.PERIODS}

    assert [(f["visitors"], f["pageviews"], f["live"]) for f in figures.values()] == [
        (2, 3, 1),
        (3, 4, 1),
        (4, 5, 1),
    ]
    assert figures["week"]["since"] == "2026-03-09T00:00:00Z"
    assert figures["month"]["since"] == "2026-03-01T00:00:00Z"
    today = figures["today"]
    stats = metrics.stats(website, "today", NOW)
    assert today["period"] == "today"
    assert today["bounceRate"] == stats["bounceRate"] == 0.5
    assert today["pagesPerSession"] == stats["pagesPerSession"] == 1.5
    assert today["avgSessionDuration"] == stats["avgSessionDuration"] == 30


def test_period_figures_of_a_site_without_traffic_are_zeros():
    figures = reports.period_figures(site("Europe/Berlin"), "week", NOW)

    assert figures == {
        "period": "week",
        "since": "2026-03-08T23:00:00Z",
        "visitors": 0,
        "pageviews": 0,
        "live": 0,
        "bounceRate": 0.0,
        "avgSessionDuration": 0,
        "pagesPerSession": 0.0,
        "newVisitorRate": 0.0,
        "returningVisitorRate": 0.0,
    }
