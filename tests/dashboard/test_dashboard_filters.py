"""The dashboard's lower half on the query engine: filters kept in the URL as chips,
custom ranges, comparison with the period before, and the export button."""

from __future__ import annotations

import datetime as dt
import io
import re
import zipfile

import pytest
from django.utils import timezone

from tests.dashboard.test_dashboard import HTMX, fragment, page_url
from tests.factories import visit
from zenovay.models import Website

pytestmark = pytest.mark.django_db


@pytest.fixture
def site(owner) -> Website:
    website = Website.objects.create(domain="shop.example", name="Shop", owner=owner)
    visit(website, "/", who=1, country="DE")
    visit(website, "/pricing", who=1, country="DE")
    visit(website, "/", who=2, country="DE")
    visit(website, "/docs", who=3, country="DE")
    visit(website, "/", who=3, type="event", name="signup", props={"plan": "pro"}, country="DE")
    return website


@pytest.fixture
def olivia(client, owner):
    client.force_login(owner)
    return client


def figure(html: str, ident: str) -> str:
    return re.search(rf'<dd id="{ident}">([^<]+)</dd>', html).group(1)


def test_a_rows_link_filters_the_whole_section_and_shows_a_removable_chip(olivia, site):
    html = fragment(olivia, site, "zv-period", "?period=today").content.decode()
    link = re.search(r'<a class="filter-link" href="\?([^"]*page=%2Fpricing[^"]*)"', html).group(1)

    filtered = fragment(
        olivia, site, "zv-period", "?" + link.replace("&amp;", "&")
    ).content.decode()

    assert (
        figure(filtered, "zv-period-visitors") == "1" and figure(filtered, "zv-period-views") == "1"
    )
    assert "Page is <strong>/pricing</strong>" in filtered
    chip = re.search(r'<li class="chip">.*?href="\?([^"]*)"', filtered).group(1)
    assert chip == "period=today"  # removing it goes back to the unfiltered view
    assert "Bounce rate" not in filtered  # visit figures do not break down by page
    assert (
        'id="zv-charts" class="card charts" aria-label="Traffic over time" hx-swap-oob="true"'
        in filtered
    )
    assert "· filtered" in filtered


def test_filters_combine_and_survive_the_periodic_refresh(olivia, site):
    query = "?period=today&country=DE&page=/"
    html = fragment(olivia, site, "zv-period", query).content.decode()
    assert figure(html, "zv-period-visitors") == "2"
    refresh = re.search(r'id="zv-period"[^>]*hx-get="([^"]+)"', html).group(1).replace("&amp;", "&")
    assert "country=DE" in refresh and "page=%2F" in refresh
    again = olivia.get(refresh, HTTP_HX_TARGET="zv-period", HTTP_HX_TRIGGER="zv-period", **HTMX)
    assert figure(again.content.decode(), "zv-period-visitors") == "2"
    assert "hx-swap-oob" not in again.content.decode().split("zv-badge")[0]  # no charts then


def test_an_event_filter_counts_its_firings_and_breaks_down_its_properties(olivia, site):
    html = fragment(olivia, site, "zv-period", "?period=today&event=signup").content.decode()
    assert figure(html, "zv-period-visitors") == "1" and figure(html, "zv-period-events") == "1"
    assert 'id="t-props"' in html and '<td class="mono">plan</td><td class="mono">pro</td>' in html


def test_a_custom_range_and_a_bad_one(olivia, site):
    today = timezone.now().astimezone(site.zone).date()
    start = today - dt.timedelta(days=3)
    html = fragment(
        olivia, site, "zv-period", f"?period=custom&from={start}&to={today}"
    ).content.decode()
    assert ">Custom <span" in html and figure(html, "zv-period-views") == "4"
    assert f'value="{start}"' in html
    bad = fragment(
        olivia, site, "zv-period", "?period=custom&from=2026-02-31&to=x"
    ).content.decode()
    assert "is not a date" in bad and ">Today <span" in bad


def test_comparison_shows_changes_and_a_second_series_on_the_charts(olivia, site):
    html = olivia.get(page_url(site, "?period=today&compare=previous_period")).content.decode()
    assert re.search(r'<dd id="zv-period-visitors">3</dd><span class="vs">new</span>', html)
    assert html.count('class="compare-line"') == 2
    assert "Compared with the previous period" in html


def test_the_export_button_downloads_what_the_dashboard_shows(olivia, site, teammate, client):
    html = olivia.get(page_url(site, "?period=7d")).content.decode()
    href = re.search(r'<a class="button" href="([^"]+)" download>Export CSV</a>', html).group(1)
    response = olivia.get(href.replace("&amp;", "&"))
    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    days = zipfile.ZipFile(io.BytesIO(response.content)).read("visitors.csv").decode().splitlines()
    assert len(days) == 1 + 7 and days[-1].startswith(
        str(timezone.now().astimezone(site.zone).date())
    )
    client.force_login(teammate)
    assert client.get(href.replace("&amp;", "&")).status_code == 404
