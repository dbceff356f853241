"""Every figure read from aggregates equals a brute-force computation from raw events.

Random event streams go through the real write path (`tests/factories.py`) for three
websites (UTC, Asia/Kathmandu at +05:45, America/New_York with its DST change), over a
few days that cross midnight, a Monday, the 1st of a month and a DST change, with session
gaps, engagement-only and custom-only visitors. At checkpoints (every event recorded so
far is at or before `now`, as in production) each snapshot, chart, breakdown, goal (over
a period, and over several days from the day sketches) and custom event list is compared
with the same figure computed here in Python from the stored events alone: sessions
rebuilt by the 30-minute rule, distinct visitors counted in sets. Finally
`aggregates.rebuild` from the raw events must give back exactly the rows ingest kept.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from unittest import mock

import pytest
from django.db import transaction
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from dashboard import reports
from tests.factories import DESKTOP_UA, record, visitor
from zenovay import aggregates, filtered, metrics, query
from zenovay.countries import country_name
from zenovay.models import Event, Goal, Website

pytestmark = pytest.mark.django_db

ZONES = ("UTC", "Asia/Kathmandu", "America/New_York")
# Starts of the streams: a DST change (New York, 8 March 2026) the day before a Monday;
# the 1st of March (a Sunday) and a Monday; New York's fall back on Sunday 1 November.
BASES = (
    dt.datetime(2026, 3, 7, 3, 0, tzinfo=dt.UTC),
    dt.datetime(2026, 2, 27, 20, 0, tzinfo=dt.UTC),
    dt.datetime(2026, 10, 30, 22, 0, tzinfo=dt.UTC),
)
BURSTS = 10  # over three days and a third
PATHS = ("/", "/a", "/b", "/pricing")
COUNTRIES = ("US", "DE", "NP", "")
REFERRERS = (None, "https://google.com/x", "https://news.example.org/")
UTM = ("", "?utm_source=mail&utm_medium=email", "?utm_source=ads")
NAMES = ("signup", "download")
AGENTS = (
    DESKTOP_UA,
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1",
)
GAP = dt.timedelta(minutes=30)


@dataclass(frozen=True)
class Sent:
    site: int
    who: int
    at: dt.datetime
    kind: str
    path: str
    country: str
    referrer: str | None
    utm: str
    name: str


def sent_events(base: dt.datetime) -> st.SearchStrategy[Sent]:
    # Visits cluster: events fall in bursts 8 hours apart (up to 45 minutes long), so
    # sessions have several events, gaps of over 30 minutes split some, and midnights
    # fall inside others.
    return st.builds(
        Sent,
        site=st.integers(0, len(ZONES) - 1),
        who=st.integers(1, 4),
        at=st.builds(
            lambda burst, second: base + dt.timedelta(hours=burst * 8, seconds=second),
            st.integers(0, BURSTS - 1),
            st.integers(0, 45 * 60),
        ),
        kind=st.sampled_from(("pageview", "pageview", "pageview", "engagement", "event")),
        path=st.sampled_from(PATHS),
        country=st.sampled_from(COUNTRIES),
        referrer=st.sampled_from(REFERRERS),
        utm=st.sampled_from(UTM),
        name=st.sampled_from(NAMES),
    )


@st.composite
def streams(draw):
    base = draw(st.sampled_from(BASES))
    events = sorted(draw(st.lists(sent_events(base), min_size=10, max_size=80)), key=lambda e: e.at)
    checkpoints = sorted(
        draw(st.lists(st.integers(0, len(events) - 1), min_size=1, max_size=3, unique=True))
    )
    return events, checkpoints


def send(website: Website, event: Sent) -> None:
    fields: dict[str, object] = {"referrer": event.referrer} if event.referrer else {}
    if event.kind == "event":
        fields["name"] = event.name
    if event.kind == "engagement":
        fields["engagedMs"] = 500
    who = visitor(event.who, event.country, AGENTS[event.who % 2])
    record(website, event.at, who, f"{event.path}{event.utm}", kind=event.kind, **fields)


# --- Brute force, from the stored events only


@dataclass
class Visit:
    visitor: int
    started: dt.datetime
    last: dt.datetime
    pageviews: int = 0
    custom: int = 0


@dataclass
class Raw:
    events: list[Event]
    sessions: list[Visit] = field(default_factory=list)

    def __post_init__(self) -> None:
        open_: dict[int, Visit] = {}
        for e in self.events:
            visit = open_.get(e.visitor)
            if visit is not None and visit.last < e.ts - GAP:
                visit = None
            if visit is None:
                if e.type == "engagement":
                    continue
                visit = open_[e.visitor] = Visit(e.visitor, e.ts, e.ts)
                self.sessions.append(visit)
            visit.last = max(visit.last, e.ts)
            visit.pageviews += e.type == "pageview"
            visit.custom += e.type == "event"

    def pageviews(self, since: dt.datetime, until: dt.datetime) -> list[Event]:
        return [e for e in self.events if e.type == "pageview" and since <= e.ts <= until]

    def visitors(self, since: dt.datetime, until: dt.datetime) -> int:
        return len({e.visitor for e in self.pageviews(since, until)})


def expected_realtime(raw: Raw, website: Website, now: dt.datetime) -> dict:
    start = metrics.day_start(now, website)
    y_start, y_end = metrics._yesterday_span(now, website)
    today, yesterday = raw.pageviews(start, now), raw.pageviews(y_start, y_end)
    window = [e for e in raw.events if now - metrics.WINDOW < e.ts <= now]
    country, page = {}, {}
    for e in window:
        country[e.visitor] = e.country
        if e.type == "pageview":
            page[e.visitor] = e.path
    countries = Counter(code for code in country.values() if code)
    pages = Counter(page.values())
    return {
        "visitors": {
            "current": len(country),
            "today": raw.visitors(start, now),
            "change": metrics.change(raw.visitors(start, now), raw.visitors(y_start, y_end)),
        },
        "pageViews": {
            "current": sum(e.type == "pageview" for e in window),
            "today": len(today),
            "change": metrics.change(len(today), len(yesterday)),
        },
        "countries": [{"code": c, "name": country_name(c), "count": n} for c, n in top(countries)],
        "topPages": [{"path": p, "visitors": n} for p, n in top(pages)],
        "timestamp": metrics.iso(now),
    }


def top(counter: Counter) -> list[tuple[str, int]]:
    return sorted(counter.items(), key=lambda item: (-item[1], item[0]))[:10]


def expected_stats(raw: Raw, website: Website, period: str, now: dt.datetime) -> dict:
    since = metrics.period_start(now, website, period)
    starts = {name: metrics.period_start(now, website, name) for name in metrics.PERIODS}
    live = {e.visitor for e in raw.events if now - metrics.WINDOW < e.ts <= now}
    visits = [s for s in raw.sessions if since <= s.started <= now]
    figures = {
        "bounceRate": 0.0,
        "avgSessionDuration": 0,
        "pagesPerSession": 0.0,
        "newVisitorRate": 0.0,
        "returningVisitorRate": 0.0,
    }
    if visits:
        who = {s.visitor for s in visits}
        returning = {
            s.visitor
            for s in raw.sessions
            if s.visitor in who and since - metrics.RETURNING_LOOKBACK <= s.last < since
        }
        rate = round(len(returning) / len(who), 2)
        seconds = sum((s.last - s.started).total_seconds() for s in visits)
        figures = {
            "bounceRate": round(
                sum(s.pageviews == 1 and s.custom == 0 for s in visits) / len(visits), 2
            ),
            "avgSessionDuration": round(seconds / len(visits)),
            "pagesPerSession": round(sum(s.pageviews for s in visits) / len(visits), 1),
            "newVisitorRate": round(1 - rate, 2),
            "returningVisitorRate": rate,
        }
    return {
        "visitors": {
            "live": len(live),
            **{name: raw.visitors(starts[name], now) for name in ("today", "week", "month")},
        },
        **figures,
        "timestamp": metrics.iso(now),
    }


def expected_series(raw: Raw, buckets: list[reports.Bucket], now: dt.datetime) -> list:
    starts = [dt.datetime.fromisoformat(b["start"].replace("Z", "+00:00")) for b in buckets]
    ends = [*starts[1:], now + dt.timedelta(microseconds=1)]
    return [
        (
            b["start"],
            raw.visitors(lo, hi - dt.timedelta(microseconds=1)),
            len(raw.pageviews(lo, hi - dt.timedelta(microseconds=1))),
        )
        for b, lo, hi in zip(buckets, starts, ends, strict=True)
    ]


COLUMNS = reports._COLUMNS  # which event field each breakdown reads


def expected_breakdown(raw: Raw, since: dt.datetime, now: dt.datetime, field: str) -> list:
    visitors, views = defaultdict(set), Counter()
    for e in raw.pageviews(since, now):
        value = getattr(e, COLUMNS[field])
        if value:
            visitors[value].add(e.visitor)
            views[value] += 1
    ranked = sorted(visitors, key=lambda v: (-len(visitors[v]), v))[:10]
    return [(v, len(visitors[v]), views[v]) for v in ranked]


def expected_custom(raw: Raw, since: dt.datetime, now: dt.datetime) -> list:
    visitors, count = defaultdict(set), Counter()
    for e in raw.events:
        if e.type == "event" and since <= e.ts <= now:
            visitors[e.name].add(e.visitor)
            count[e.name] += 1
    ranked = sorted(count, key=lambda n: (-count[n], n))[:10]
    return [{"name": n, "count": count[n], "visitors": len(visitors[n])} for n in ranked]


GOALS = (("event", "signup"), ("page", "/a"), ("page", "/p*"), ("page", "/*"), ("page", "/none"))


def expected_goals(raw: Raw, website: Website, since: dt.datetime, now: dt.datetime) -> list:
    total = raw.visitors(since, now)
    found = []
    for goal in website.goals.all():
        if goal.kind == "event":
            hits = [e for e in raw.events if e.type == "event" and e.name == goal.value]
        else:
            hits = [e for e in raw.events if e.type == "pageview"]
            hits = [e for e in hits if fnmatch.fnmatchcase(e.path, goal.value)]
        hits = [e for e in hits if since <= e.ts <= now]
        who = {e.visitor for e in hits}
        found.append(
            {
                "pk": goal.pk,
                "kind": goal.kind,
                "value": goal.value,
                "visitors": len(who),
                "conversions": len(hits),
                "rate": len(who) / total if total else 0.0,
            }
        )
    return found


QUERY_SHAPES = (
    (["visitors", "pageviews", "events", "visits", "bounce_rate", "visit_duration"], []),
    (["views_per_visit", "returning_rate"], []),
    (["visitors", "pageviews", "visits", "returning_rate"], ["time:day"]),
    (["visitors", "pageviews", "bounce_rate"], ["time:hour"]),
    (["visitors", "pageviews"], ["page"]),
    (["visitors", "pageviews"], ["country"]),
    (["visitors", "events"], ["event:name"]),
    (["visitors", "pageviews"], ["utm_medium"]),
    (["visitors", "visits", "pageviews", "bounce_rate"], ["referrer"]),
    (["visits", "bounce_rate", "visit_duration", "views_per_visit"], ["entry_page"]),
    (["visits", "bounce_rate"], ["exit_page"]),
    (["visits", "visit_duration"], ["country"]),
)


FILTERED_SHAPES = (
    (["visitors", "pageviews"], [], [["is", "country", ["DE"]]]),
    (["visitors", "pageviews"], ["page"], [["is", "country", ["US", "NP"]]]),
    (["visitors", "pageviews"], ["time:day"], [["contains", "page", ["/a", "/b"]]]),
    (["visitors"], ["time:week"], [["is_not", "referrer", ["google.com"]]]),
    (["visitors", "events"], ["event:name"], [["is_not", "page", ["/b"]]]),
    (["events"], ["page"], [["matches", "page", ["^/p"]]]),
)


def check_queries(website: Website, now: dt.datetime) -> None:
    """The External API's answers from aggregates equal the same answers from raw events,
    over whole past local days (yesterday, and the three days up to it). Visitors over
    several days come from HyperLogLog sketches, exact at these sizes."""
    yesterday = now.astimezone(website.zone).date() - dt.timedelta(days=1)
    spans = ([str(yesterday)] * 2, [str(yesterday - dt.timedelta(days=2)), str(yesterday)])
    with mock.patch("django.utils.timezone.now", return_value=now):  # what is sealed yet
        for span in spans:
            check_query_shapes(website, now, span)


def check_query_shapes(website: Website, now: dt.datetime, span: list[str]) -> None:
    for chosen, dims in QUERY_SHAPES:
        if span[0] != span[1] and "returning_rate" in chosen and not dims:
            continue  # the returning rate over several days: only from raw events
        body = {"metrics": chosen, "date_range": span, "dimensions": dims}
        asked = query.parse(body, website, now)
        fast = query._from_aggregates(asked)
        assert fast is not None, (body, "not answered from aggregates")
        slow = query._from_events(asked)
        assert sorted(map(str, fast)) == sorted(map(str, slow)), (body, fast, slow)
    for chosen, dims, filters in FILTERED_SHAPES:  # a filter's figures kept per finished day
        body = {"metrics": chosen, "date_range": span, "dimensions": dims, "filters": filters}
        asked = query.parse(body, website, now)
        fast = filtered.rows(asked, now, query.COLUMNS)
        assert fast is not None, (body, "not answered from kept days")
        slow = query._from_events(asked)
        assert sorted(map(str, fast)) == sorted(map(str, slow)), (body, fast, slow)


def check_goals_over_days(raw: Raw, website: Website, now: dt.datetime) -> None:
    """Goals over the last 7 and 30 days and over past dates come from the day sketches
    (today's last minutes live), never from a scan of the range's raw events, and equal
    brute force: the converters' union is exact at these sizes."""
    yesterday = now.astimezone(website.zone).date() - dt.timedelta(days=1)
    ranges: tuple[object, ...] = (
        "7d",
        "30d",
        [str(yesterday - dt.timedelta(days=2)), str(yesterday)],
    )
    scan = mock.patch.object(reports, "_goal_from_events", side_effect=AssertionError("raw scan"))
    with mock.patch("django.utils.timezone.now", return_value=now), scan:
        for named in ranges:
            since, until, _ = query.date_range(named, website, now)
            total = raw.visitors(since, until)
            got = reports.goals(website, since, until, total)
            assert got == expected_goals(raw, website, since, until), named


@contextmanager
def no_raw_scan(now: dt.datetime) -> Iterator[None]:
    """At `now`, with the dashboard's queries of a period's raw events made to fail."""
    scan = AssertionError("a scan of the period's raw events")
    with (
        mock.patch("django.utils.timezone.now", return_value=now),
        mock.patch.object(reports, "_pageviews", side_effect=scan),
        mock.patch.object(reports, "_custom", side_effect=scan),
    ):
        yield


def check(website: Website, now: dt.datetime) -> None:
    events = list(Event.objects.filter(website=website).order_by("ts", "id"))
    raw = Raw(events)
    assert metrics.fresh(website, now)  # so what follows reads the aggregates
    assert metrics.realtime(website, now) == expected_realtime(raw, website, now)
    for period in metrics.PERIODS:
        assert metrics.stats(website, period, now) == expected_stats(raw, website, period, now)
        since = metrics.period_start(now, website, period)
        with no_raw_scan(now):  # breakdowns, custom events and goals: from the day sketches
            for name in reports.FIELDS:
                rows = reports.breakdown(website, since, now, name)
                got = [(r["value"], r["visitors"], r["pageviews"]) for r in rows]
                assert got == expected_breakdown(raw, since, now, name), (period, name)
            custom = reports.custom_events(website, since, now)
            assert custom == expected_custom(raw, since, now), period
            figures = reports.period_figures(website, period, now)
            assert figures["pageviews"] == len(raw.pageviews(since, now))
            goals = reports.goals(website, since, now, figures["visitors"])
            assert goals == expected_goals(raw, website, since, now), period
    for buckets in (reports.hourly(website, now), reports.daily(website, now)):
        got = [(b["start"], b["visitors"], b["pageviews"]) for b in buckets]
        assert got == expected_series(raw, buckets, now)
    check_queries(website, now)
    check_goals_over_days(raw, website, now)
    last = max((e.ts for e in events), default=None)
    assert metrics.status(website, now)["last_event"] == (metrics.iso(last) if last else None)


class Rollback(Exception):
    pass


@settings(
    max_examples=25,
    derandomize=True,
    deadline=None,
    database=None,
    phases=(Phase.explicit, Phase.generate),  # a failure is printed as found, not shrunk
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(stream=streams())
def test_figures_from_aggregates_equal_brute_force_from_raw_events(stream):
    events, checkpoints = stream
    try:
        with transaction.atomic():
            sites = [
                Website.objects.create(domain=f"s{i}.example", timezone=zone)
                for i, zone in enumerate(ZONES)
            ]
            for website in sites:
                for kind, value in GOALS:
                    Goal.objects.create(website=website, kind=kind, value=value)
            sent = 0
            for checkpoint in checkpoints:
                for event in events[sent : checkpoint + 1]:
                    send(sites[event.site], event)
                sent = checkpoint + 1
                now = events[checkpoint].at + dt.timedelta(seconds=30)
                for website in sites:
                    check(website, now)
            for website in sites:  # and rebuilding from the raw events changes nothing
                maintained = aggregates.rows_of(website.pk)
                aggregates.rebuild(website.pk)
                assert aggregates.rows_of(website.pk) == maintained
            raise Rollback
    except Rollback:
        pass
