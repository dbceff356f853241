"""The write path without HTTP: identities, sessions, host rules, drops."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from tests.factories import collect, sender
from zenovay import payload, push, salts
from zenovay.models import Event, Salt, Session

pytestmark = pytest.mark.django_db

GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
HEADLESS = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "HeadlessChrome/131.0.0.0 Safari/537.36"
)
IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1"
)


def test_a_pageview_is_stored_with_path_device_and_country(website, now):
    assert collect(website, now, url="https://shop.example/pricing?x=1#top") is None
    event = Event.objects.get()
    assert (event.type, event.path, event.hostname) == ("pageview", "/pricing", "shop.example")
    assert (event.country, event.device, event.browser, event.os) == (
        "GB",
        "desktop",
        "Chrome",
        "Linux",
    )
    assert event.ts == now


def test_no_raw_ip_or_user_agent_is_stored(website, now):
    collect(website, now)
    stored = json.dumps([list(Event.objects.values()), list(Session.objects.values())], default=str)
    assert "81.2.69.160" not in stored
    assert "AppleWebKit" not in stored


def test_utm_parameters_and_referrer_host_are_extracted(website, now):
    collect(
        website,
        now,
        url="https://shop.example/?utm_source=news&utm_medium=email&utm_campaign=spring",
        referrer="https://www.google.com/search?q=secret",
    )
    event = Event.objects.get()
    assert (event.utm_source, event.utm_medium, event.utm_campaign) == ("news", "email", "spring")
    assert event.referrer_host == "google.com"
    assert Session.objects.get().referrer_host == "google.com"


def test_an_internal_referrer_is_not_a_referral(website, now):
    collect(website, now, referrer="https://shop.example/previous")
    assert Event.objects.get().referrer_host == ""


def test_the_mobile_device_class_is_detected(website, now):
    collect(website, now, who=sender(ua=IPHONE))
    assert Event.objects.get().device == "mobile"


# --- Visitor identity


def test_the_same_ip_and_agent_are_one_visitor(website, now):
    collect(website, now)
    collect(website, now + dt.timedelta(seconds=5), url="https://shop.example/b")
    assert Event.objects.values("visitor").distinct().count() == 1


def test_another_ip_or_agent_is_another_visitor(website, now):
    collect(website, now)
    collect(website, now, who=sender(ip="81.2.69.161"))
    collect(website, now, who=sender(ua=IPHONE))
    assert Event.objects.values("visitor").distinct().count() == 3


def test_the_same_person_on_two_websites_gets_unlinkable_ids(website, other_website, now):
    collect(website, now)
    collect(other_website, now, url="https://blog.example/")
    assert Event.objects.values("visitor").distinct().count() == 2


def test_a_new_salt_period_gives_a_new_identity_and_retires_the_old_salt(website, now, settings):
    settings.ZENOVAY_SALT_ROTATION = "monthly"
    collect(website, now)
    first_salt = bytes(Salt.objects.get().secret)
    next_month = now + dt.timedelta(days=31)
    collect(website, next_month)
    visitors = list(Event.objects.order_by("ts").values_list("visitor", flat=True))
    assert visitors[0] != visitors[1]
    assert Salt.objects.count() == 1
    assert bytes(Salt.objects.get().secret) != first_salt


def test_the_salt_is_stable_within_a_period(website, now):
    collect(website, now)
    salts.forget_cached_salt()  # as another process would see it
    collect(website, now + dt.timedelta(days=2))
    assert Event.objects.values("visitor").distinct().count() == 1


@pytest.mark.parametrize(
    ("rotation", "a", "b", "same"),
    [
        ("daily", "2026-03-10T23:59", "2026-03-11T00:00", False),
        ("weekly", "2026-03-09T00:00", "2026-03-15T23:59", True),
        ("weekly", "2026-03-15T23:59", "2026-03-16T00:00", False),
        ("monthly", "2026-03-01T00:00", "2026-03-31T23:59", True),
    ],
)
def test_rotation_periods(rotation, a, b, same):
    def parse(s):
        return dt.datetime.fromisoformat(s).replace(tzinfo=dt.UTC)

    assert (salts.period_of(parse(a), rotation) == salts.period_of(parse(b), rotation)) is same


# --- Sessions


def test_events_within_thirty_minutes_share_a_session(website, now):
    collect(website, now)
    collect(website, now + dt.timedelta(minutes=29), url="https://shop.example/a")
    collect(website, now + dt.timedelta(minutes=58), url="https://shop.example/b")
    session = Session.objects.get()
    assert session.pageviews == 3
    assert session.duration == 58 * 60
    assert (session.entry_path, session.exit_path) == ("/", "/b")


def test_a_gap_over_thirty_minutes_starts_a_new_session(website, now):
    collect(website, now)
    collect(website, now + dt.timedelta(minutes=30, seconds=1))
    assert Session.objects.count() == 2
    assert sorted(Session.objects.values_list("pageviews", flat=True)) == [1, 1]


def test_an_engagement_event_extends_the_session(website, now):
    collect(website, now)
    collect(website, now + dt.timedelta(seconds=42), type="engagement", engagedMs=41000)
    session = Session.objects.get()
    assert session.duration == 42
    assert session.pageviews == 1
    assert Event.objects.get(type="engagement").engaged_ms == 41000


def test_a_lone_engagement_event_starts_no_session(website, now):
    collect(website, now, type="engagement", engagedMs=1000)
    assert Session.objects.count() == 0
    assert Event.objects.get().type == "engagement"  # still counts as a live visitor


def test_custom_events_count_in_the_session(website, now):
    collect(website, now)
    collect(website, now, type="event", name="signup", props={"plan": "pro", "seats": 3})
    session = Session.objects.get()
    assert (session.pageviews, session.custom_events) == (1, 1)
    event = Event.objects.get(type="event")
    assert (event.name, event.props) == ("signup", {"plan": "pro", "seats": 3})


def test_a_stored_event_marks_the_site_changed_after_commit(
    website, now, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        collect(website, now)
    assert website.pk not in push.take_changed()  # nothing before the commit
    for callback in callbacks:
        callback()
    assert push.take_changed() == {website.pk}


def test_an_ignored_event_does_not_mark_the_site_changed(
    website, now, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        collect(website, now, who=sender(ua=GOOGLEBOT))
    assert push.take_changed() == set()


# --- Host rules, drops


@pytest.mark.parametrize(
    "url",
    [
        "https://shop.example/",
        "http://www.shop.example/x",
        "https://a.b.shop.example/",
        "https://SHOP.example/",
    ],
)
def test_the_domain_and_its_subdomains_are_accepted(website, now, url):
    assert collect(website, now, url=url) is None


@pytest.mark.parametrize(
    "url", ["https://evil.example/", "https://shop.example.evil.com/", "https://notshop.example/"]
)
def test_a_foreign_hostname_is_forbidden(website, now, url):
    with pytest.raises(payload.Forbidden):
        collect(website, now, url=url)
    assert Event.objects.count() == 0


def test_an_extra_hostname_is_accepted(website, now):
    website.extra_hostnames = "shop-staging.test"
    website.save()
    assert collect(website, now, url="https://shop-staging.test/") is None


@pytest.mark.parametrize("ua", [GOOGLEBOT, HEADLESS, "", "curl/8.0"])
def test_bots_and_headless_browsers_are_ignored(website, now, ua):
    assert collect(website, now, who=sender(ua=ua)) == "bot"
    assert Event.objects.count() == 0


def test_do_not_track_is_honoured_when_the_website_asks(website, now):
    assert collect(website, now, who=sender(do_not_track=True)) == "do_not_track"
    website.respect_dnt = False
    website.save()
    assert collect(website, now, who=sender(do_not_track=True)) is None
    assert Event.objects.count() == 1


def test_excluded_ip_ranges_are_ignored(website, now):
    website.excluded_ips = "81.2.69.0/24\n2001:db8::/32"
    website.save()
    assert collect(website, now) == "excluded_ip"
    assert collect(website, now, who=sender(ip="2001:db8::5")) == "excluded_ip"
    assert collect(website, now, who=sender(ip="81.2.70.1")) is None


def test_a_disabled_website_is_not_found(website, now):
    website.enabled = False
    website.save()
    with pytest.raises(payload.NotFound):
        collect(website, now)


def test_a_regenerated_code_stops_working_at_once(website, now):
    old = website.tracking_code
    collect(website, now)  # the lookup is cached now
    website.regenerate_tracking_code()
    with pytest.raises(payload.NotFound):
        collect(website, now, code=old)
    assert collect(website, now) is None


# --- Payload validation


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"not json",
        b"\xff\xfe{}",
        b"[1, 2]",
        b'{"code": 5}',
        b'{"code": "ZV_AAAAAAAAAAA", "type": "click", "url": "https://a.example/"}',
        b'{"code": "ZV_AAAAAAAAAAA", "url": "ftp://a.example/"}',
        b'{"code": "ZV_AAAAAAAAAAA", "url": "javascript:alert(1)"}',
        b'{"code": "ZV_AAAAAAAAAAA", "url": "https://a.example:99999/"}',
        b'{"code": "ZV_AAAAAAAAAAA", "url": ["https://a.example/"]}',
        b'{"code": "ZV_AAAAAAAAAAA", "url": "https://a.example/", "referrer": 5}',
        b'{"code": "ZV_AAAAAAAAAAA", "url": "https://a.example/", "type": "event"}',
        b'{"code": "ZV_AAAAAAAAAAA", "url": "https://a.example/", "type": "event", "name": "x",'
        b' "props": {"a": {"nested": 1}}}',
        b'{"code": "ZV_AAAAAAAAAAA", "url": "https://a.example/", "type": "event", "name": "x",'
        b' "props": {"a": NaN}}',
        b'{"code": "ZV_AAAAAAAAAAA", "url": "https://a.example/", "type": "engagement",'
        b' "engagedMs": "5"}',
        b'{"code": "ZV_AAAAAAAAAAA", "url": "https://a.example/", "type": "engagement",'
        b' "engagedMs": -1}',
        b"[" * 100000,
    ],
)
def test_malformed_bodies_are_bad_requests(raw):
    with pytest.raises(payload.BadRequest):
        payload.parse_payload(raw)


@pytest.mark.parametrize("code", ["ZV_short", "zv_AAAAAAAAAAA", "ZV_AAAAAAAAAAA\n", "../../etc"])
def test_a_malformed_code_is_not_found_without_a_query(code, django_assert_num_queries):
    with django_assert_num_queries(0), pytest.raises(payload.NotFound):
        payload.parse_payload(json.dumps({"code": code, "url": "https://a.example/"}).encode())


def test_hostile_strings_are_stored_verbatim_but_without_nul(website, now):
    collect(
        website,
        now,
        type="event",
        name="<script>alert(1)</script>\x00",
        props={"x\x00": "\ud800<img src=x onerror=alert(1)>"},
    )
    event = Event.objects.get(type="event")
    assert event.name == "<script>alert(1)</script>"
    assert event.props == {"x": "?<img src=x onerror=alert(1)>"}


def test_a_huge_engagement_time_is_capped_at_a_day(website, now):
    collect(website, now, type="engagement", engagedMs=10**12)
    assert Event.objects.get().engaged_ms == payload.MAX_ENGAGED_MS


def test_making_a_past_periods_salt_keeps_the_current_one(website, now, settings):
    settings.ZENOVAY_SALT_ROTATION = "monthly"
    collect(website, now)
    current = bytes(Salt.objects.get().secret)
    salts.forget_cached_salt()
    collect(website, now - dt.timedelta(days=40))  # a backfill into last month
    salts.forget_cached_salt()
    assert bytes(Salt.objects.get(period=salts.period_of(now)).secret) == current
    collect(website, now + dt.timedelta(minutes=1))
    assert Salt.objects.count() == 1  # the next current-period use retires the past one
