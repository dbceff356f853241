"""The query engine of the External API: validation of every field, and answers equal to
the public API's and the dashboard's figures for the same span, from aggregates and from
raw events alike."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from dashboard import reports
from tests.factories import visit
from zenovay import metrics, query
from zenovay.models import Website

pytestmark = pytest.mark.django_db


@pytest.fixture
def site(owner) -> Website:
    return Website.objects.create(
        domain="shop.example", name="Shop", owner=owner, timezone="Europe/Paris"
    )


@pytest.fixture
def traffic(site) -> Website:
    """Four visitors today: pages, a referrer, UTM tags, a custom event with properties."""
    visit(site, "/", who=1, country="DE")
    visit(site, "/pricing", who=1, country="DE")
    visit(site, "/", who=2, referrer="https://news.example.org/x", country="DE")
    visit(site, "/blog/a?utm_source=mail&utm_medium=email&utm_campaign=launch", who=3, country="DE")
    visit(site, "/", who=4, country="DE")
    visit(site, "/", who=3, type="event", name="signup", props={"plan": "pro"}, country="DE")
    visit(site, "/", who=4, type="event", name="signup", props={"plan": "free"}, country="DE")
    return site


def ask(site: Website, **body) -> dict:
    return query.run(query.parse({"site_id": site.website_id, **body}, site))


# --- Validation: every field, with its name and reason


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({}, "metrics", "non-empty list"),
        ({"metrics": ["visitors", "sales"]}, "metrics", "'sales' is not one of"),
        ({"metrics": ["visitors", "visitors"]}, "metrics", "appears twice"),
        ({"metrics": ["visitors"], "date_range": "week"}, "date_range", "Use one of"),
        (
            {"metrics": ["visitors"], "date_range": ["2026-13-01", "2026-12-01"]},
            "date_range",
            "not a date",
        ),
        (
            {"metrics": ["visitors"], "date_range": ["2026-03-02", "2026-03-01"]},
            "date_range",
            "ends before",
        ),
        (
            {"metrics": ["visitors"], "date_range": "day", "dimensions": ["city"]},
            "dimensions",
            "not a dimension",
        ),
        (
            {"metrics": ["visitors"], "date_range": "day", "dimensions": ["time:day", "time:hour"]},
            "dimensions",
            "one time",
        ),
        (
            {"metrics": ["visitors"], "date_range": "realtime", "dimensions": ["time:hour"]},
            "dimensions",
            "realtime",
        ),
        (
            {"metrics": ["visitors"], "date_range": "12mo", "dimensions": ["time:hour"]},
            "dimensions",
            "Too many hours",
        ),
        (
            {"metrics": ["visitors"], "date_range": "day", "filters": [["like", "page", ["/"]]]},
            "filters[0]",
            "operator",
        ),
        (
            {"metrics": ["visitors"], "date_range": "day", "filters": [["is", "page", "/"]]},
            "filters[0]",
            "non-empty list",
        ),
        (
            {"metrics": ["visitors"], "date_range": "day", "filters": [["matches", "page", ["("]]]},
            "filters[0]",
            "regular expression",
        ),
        ({"metrics": ["visitors"], "date_range": "day", "limit": 0}, "limit", "integer"),
        ({"metrics": ["visitors"], "date_range": "day", "offset": -1}, "offset", "integer"),
        (
            {"metrics": ["visitors"], "date_range": "day", "compare": "last_week"},
            "compare",
            "previous_period",
        ),
        (
            {"metrics": ["visitors"], "date_range": "day", "order_by": [["pageviews", "desc"]]},
            "order_by",
            "not among",
        ),
        (
            {"metrics": ["bounce_rate"], "date_range": "day", "dimensions": ["page"]},
            "metrics",
            "describe visits",
        ),
        (
            {"metrics": ["pageviews"], "date_range": "day", "dimensions": ["event:name"]},
            "metrics",
            "use events",
        ),
        (
            {"metrics": ["visitors"], "date_range": "day", "dimensions": ["entry_page"]},
            "metrics",
            "belongs to visits",
        ),
        (
            {"metrics": ["visitors"], "date_range": "day", "colour": "red"},
            "colour",
            "Unknown field",
        ),
    ],
)
def test_an_invalid_query_names_the_field_and_why(site, body, field, words):
    with pytest.raises(query.QueryError) as caught:
        query.parse(body, site)
    assert caught.value.field == field and words in caught.value.message


# --- Answers equal the public API's and the dashboard's


def test_totals_of_today_and_this_month_equal_the_public_stats(traffic):
    now = timezone.now()
    for date_range, period in (("day", "today"), ("month", "month")):
        answer = ask(
            traffic, metrics=["visitors", "bounce_rate", "visit_duration"], date_range=date_range
        )
        stats = metrics.stats(traffic, period, now)
        assert answer["totals"] == [
            stats["visitors"][period],
            stats["bounceRate"],
            stats["avgSessionDuration"],
        ]
        assert answer["meta"]["source"] == "aggregates"


def test_a_breakdown_of_today_equals_the_dashboards(traffic):
    now = timezone.now()
    since = metrics.day_start(now, traffic)
    for dim, field in (("page", "page"), ("referrer", "referrer"), ("country", "country")):
        answer = ask(traffic, metrics=["visitors", "pageviews"], date_range="day", dimensions=[dim])
        shown = reports.breakdown(traffic, since, now, field)
        assert [(r["dimensions"][0], *r["metrics"]) for r in answer["results"]] == [
            (r["value"], r["visitors"], r["pageviews"]) for r in shown
        ]
        assert answer["meta"]["source"] == "aggregates"


def test_events_and_their_properties(traffic):
    names = ask(
        traffic, metrics=["visitors", "events"], date_range="day", dimensions=["event:name"]
    )
    assert names["results"] == [{"dimensions": ["signup"], "metrics": [2, 2]}]
    plans = ask(
        traffic,
        metrics=["events"],
        date_range="day",
        dimensions=["event:props:plan"],
        filters=[["is", "event:name", ["signup"]]],
        order_by=[["event:props:plan", "asc"]],
    )
    assert plans["results"] == [
        {"dimensions": ["free"], "metrics": [1]},
        {"dimensions": ["pro"], "metrics": [1]},
    ]
    assert plans["meta"]["source"] == "days"  # a filter: today read live, other days kept


def test_filters_combine_with_and(traffic):
    answer = ask(
        traffic,
        metrics=["visitors", "pageviews"],
        date_range="day",
        filters=[
            ["contains", "page", ["/"]],
            ["is_not", "page", ["/pricing"]],
            ["matches", "page", ["^/(blog/.*)?$"]],
        ],
    )
    assert answer["totals"] == [4, 4]
    mail = ask(
        traffic, metrics=["visitors"], date_range="day", filters=[["is", "utm_medium", ["email"]]]
    )
    assert mail["totals"] == [1]


def test_entry_pages_and_visits(traffic):
    answer = ask(
        traffic,
        metrics=["visits", "bounce_rate", "views_per_visit"],
        date_range="day",
        dimensions=["entry_page"],
        order_by=[["entry_page", "asc"]],
    )
    assert answer["results"] == [
        {"dimensions": ["/"], "metrics": [3, 0.33, 1.33]},
        {"dimensions": ["/blog/a"], "metrics": [1, 0.0, 1.0]},
    ]


def test_a_time_series_from_aggregates_equals_the_same_from_events(traffic):
    body = {
        "metrics": ["visitors", "pageviews", "events", "visits"],
        "date_range": "7d",
        "dimensions": ["time:day"],
    }
    fast = ask(traffic, **body)
    assert fast["meta"]["source"] == "aggregates" and len(fast["results"]) == 7
    slow = ask(traffic, **body, filters=[["contains", "country", [""]]])  # any filter: raw events
    assert slow["meta"]["source"] == "events"
    assert fast["results"] == slow["results"]
    assert fast["results"][-1]["metrics"] == [4, 5, 2, 4]
    assert fast["totals"] == [4, 5, 2, 4]  # 7 days of visitors: from events, exact


def test_comparison_with_the_previous_period(traffic, site):
    answer = ask(
        traffic,
        metrics=["visitors"],
        date_range="day",
        compare="previous_period",
        dimensions=["page"],
    )
    assert answer["comparison_totals"] == {"metrics": [0], "change": [None]}
    assert all(row["comparison"]["metrics"] == [0] for row in answer["results"])
    assert answer["meta"]["comparison_range"][1] < answer["meta"]["date_range"][0]


def test_custom_ranges_and_pagination(traffic):
    today = timezone.now().astimezone(traffic.zone).date()
    span = [str(today - dt.timedelta(days=2)), str(today)]
    answer = ask(
        traffic, metrics=["pageviews"], date_range=span, dimensions=["page"], limit=2, offset=1
    )
    assert answer["meta"]["rows"] == 3 and len(answer["results"]) == 2
    assert [r["dimensions"][0] for r in answer["results"]] == ["/blog/a", "/pricing"]
