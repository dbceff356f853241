"""`manage.py simulate`: synthetic traffic that looks like real traffic to every report."""

from __future__ import annotations

import datetime as dt
import io
import random

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError, OutputWrapper
from django.db.models import Count
from django.utils import timezone

from zenovay.management.commands import simulate
from zenovay.models import Event, Session, Website

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("simulate", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


@pytest.fixture
def backfilled(website: Website) -> Website:
    run(website.tracking_code, "--visitors", "30", "--days", "2", "--seed", "1")
    return website


def test_backfill_stores_events_and_reports_what_it_wrote(website: Website) -> None:
    out = run(website.tracking_code, "--visitors", "30", "--days", "2", "--seed", "1")
    events = Event.objects.filter(website=website)
    assert events.count() > 100
    visitors = events.values("visitor").distinct().count()
    sessions = Session.objects.filter(website=website).count()
    # A few may have had their only visit cut at "now"; near a month's start the window
    # spans two salt periods and a returning visitor is (rightly) two identities.
    assert 25 <= visitors <= 60
    assert sessions > visitors  # some came back
    assert f"Wrote {events.count()} events, {visitors} visitors, {sessions} sessions" in out


def test_visitors_come_from_several_countries_and_devices(backfilled: Website) -> None:
    events = Event.objects.filter(website=backfilled)
    countries = set(events.values_list("country", flat=True))
    assert len(countries - {""}) >= 4
    assert "" not in countries  # every simulated address is one the lookup knows
    assert len(set(events.values_list("device", flat=True))) >= 2
    assert len(set(events.values_list("browser", flat=True))) >= 3


def test_sessions_have_multi_page_visits_bounces_and_returns(backfilled: Website) -> None:
    sessions = Session.objects.filter(website=backfilled)
    assert sessions.filter(pageviews__gt=1).exists()
    assert sessions.filter(pageviews=1, custom_events=0).exists()  # bounces
    repeat = sessions.values("visitor").annotate(n=Count("id")).filter(n__gt=1)
    assert repeat.exists()  # returning visitors: same IP and agent, new session


def test_engagement_custom_events_referrers_and_utm_are_sent(backfilled: Website) -> None:
    events = Event.objects.filter(website=backfilled)
    assert events.filter(type="engagement", engaged_ms__gt=0).exists()
    custom = events.filter(type="event")
    assert custom.exists()
    assert all(name for name in custom.values_list("name", flat=True))
    sessions = Session.objects.filter(website=backfilled)
    assert sessions.exclude(referrer_host="").exists()
    assert sessions.exclude(utm_source="").exists()
    assert not events.filter(referrer_host="shop.example").exists()  # internal, dropped
    assert set(events.values_list("hostname", flat=True)) == {"shop.example"}


def test_events_spread_over_days_never_in_the_future(backfilled: Website) -> None:
    stamps = list(Event.objects.filter(website=backfilled).values_list("ts", flat=True))
    now = timezone.now()
    assert max(stamps) <= now
    zone = backfilled.zone
    assert min(stamps) >= dt.datetime.combine(
        now.astimezone(zone).date() - dt.timedelta(days=2), dt.time(), tzinfo=zone
    )
    assert len({ts.astimezone(zone).date() for ts in stamps}) >= 2


def test_more_traffic_by_day_than_at_night(backfilled: Website) -> None:
    hours = [
        ts.astimezone(backfilled.zone).hour
        for ts in Event.objects.filter(website=backfilled, type="pageview").values_list(
            "ts", flat=True
        )
    ]
    day = sum(9 <= hour < 17 for hour in hours)  # 8 hours each
    night = sum(hour < 6 or hour >= 22 for hour in hours)
    assert day > 2 * night


def test_the_website_can_be_named_by_id_or_domain(website: Website) -> None:
    run(website.website_id, "--visitors", "2", "--seed", "3")
    run("SHOP.example", "--visitors", "2", "--seed", "4")
    assert Event.objects.filter(website=website).exists()


@pytest.mark.parametrize("name", ["ZV_AAAAAAAAAAA", "ws_nosuchsite", "nope.example", "!!"])
def test_an_unknown_website_is_a_command_error(website: Website, name: str) -> None:
    with pytest.raises(CommandError, match="No website"):
        run(name)
    assert not Event.objects.exists()


def test_a_disabled_website_is_a_command_error(website: Website) -> None:
    Website.objects.filter(pk=website.pk).update(enabled=False)
    with pytest.raises(CommandError, match="disabled"):
        run(website.tracking_code)


def test_a_seed_makes_visits_reproducible() -> None:
    def plan(seed: int) -> list:
        return simulate.plan_visit(random.Random(seed), "ZV_AAAAAAAAAAA", "https://a.example")

    assert plan(7) == plan(7)
    visitors = simulate.make_visitors(random.Random(7), 5)
    assert visitors == simulate.make_visitors(random.Random(7), 5)


def test_live_mode_writes_events_as_they_happen(website: Website) -> None:
    started = timezone.now()
    out = run(
        website.tracking_code,
        *("--live", "--duration", "2", "--speed", "30", "--rate", "60"),
        *("--visitors", "20", "--seed", "1"),
    )
    finished = timezone.now()
    events = Event.objects.filter(website=website)
    assert events.values("visitor").distinct().count() >= 2
    assert all(started <= ts <= finished for ts in events.values_list("ts", flat=True))
    assert len({ts for ts in events.values_list("ts", flat=True)}) > 2  # spread, not a burst
    assert f"Wrote {events.count()} events" in out


# --- What it prints: plain lines, the bar never sharing one with a message.


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def visible_lines(written: str) -> list[str]:
    """What a terminal shows: each line as its last carriage return left it."""
    return [line.split("\r")[-1].rstrip() for line in written.split("\n")]


def test_off_a_terminal_the_bar_is_one_plain_line(website: Website) -> None:
    out, err = io.StringIO(), io.StringIO()
    call_command(
        "simulate", website.tracking_code, "--visitors", "5", "--seed", "1", stdout=out, stderr=err
    )
    events = Event.objects.filter(website=website).count()
    assert err.getvalue() == (f"Past visits [{'#' * 30}] 100%  {events:,} of {events:,} events\n")
    assert "for shop.example in " in out.getvalue()
    assert "See them at http://" in out.getvalue()
    assert f"/dashboard/{website.website_id}/" in out.getvalue()


def test_on_a_terminal_a_message_clears_the_bar_and_the_bar_comes_back_under_it() -> None:
    terminal = Terminal()
    progress = simulate.Progress(OutputWrapper(terminal), "Past visits", 100)
    progress.update(50, "50 of 100 events", force=True)
    progress.say("Note: something to know.")
    progress.close(100, "100 of 100 events")

    assert visible_lines(terminal.getvalue()) == [
        "Note: something to know.",
        f"Past visits [{'#' * 30}] 100%  100 of 100 events",
        "",
    ]
    assert "\x1b[" not in terminal.getvalue()  # no colour: progress is not an error
