"""What a new owner reads first (issue 16, items 2, 4 and 5), without a browser: the change
note of a brand-new site, country codes beside flags, the test snippet and the widget sizes.
The same in Chromium: tests/browser/test_first_hour_browser.py."""

from __future__ import annotations

import pytest
from django.template.loader import render_to_string

from dashboard.views import realtime_fragment
from zenovay import snippets
from zenovay.metrics import RealtimeSnapshot


def snapshot(today: int, change: float) -> RealtimeSnapshot:
    trend = {"current": 1, "today": today, "change": change}
    return {
        "visitors": trend,  # type: ignore[typeddict-item]
        "pageViews": trend,  # type: ignore[typeddict-item]
        "countries": [{"code": "FR", "name": "France", "count": 1}],
        "topPages": [],
        "timestamp": "2026-03-10T12:00:00Z",
    }


def test_a_site_with_no_visits_yesterday_does_not_claim_a_doubling():
    # The contract's 100.0 when yesterday had none (tests/core/test_metrics.py).
    html = realtime_fragment(snapshot(today=3, change=100.0), "UTC")
    assert html.count("since midnight") == 2
    assert "vs. yesterday" not in html


@pytest.mark.parametrize(
    ("change", "note"),
    [(50.0, "+50% vs. yesterday by now"), (-57.1, "\N{MINUS SIGN}57.1% vs. yesterday by now")],
)
def test_a_change_against_yesterday_is_said_with_its_sign(change, note):
    assert note in realtime_fragment(snapshot(today=3, change=change), "UTC")


def test_a_country_shows_its_code_as_text_beside_the_flag_in_dashboard_and_widget():
    dashboard = realtime_fragment(snapshot(today=1, change=0.0), "UTC")
    assert '<span class="cc" aria-hidden="true">FR</span>France' in dashboard
    data = {"countries": [{"code": "FR", "name": "France", "count": 1, "flag": "🇫🇷"}]}
    widget = render_to_string("widgets/_countries.html", {"data": data})
    assert '<i class="cc" aria-hidden="true">FR</i><span class="name">France</span>' in widget


def test_the_local_test_snippet_allows_localhost(website):
    assert snippets.local_tracker(website) == snippets.tracker(website).replace(
        "></script>", " data-allow-localhost></script>"
    )
    assert not snippets.accepts_local_pages(website)
    website.extra_hostnames = "localhost\n127.0.0.1"
    assert snippets.accepts_local_pages(website)
