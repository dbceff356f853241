"""Filters, comparison and export on a website's dashboard, in a real headless Chromium."""

from __future__ import annotations

import contextlib
import io
import re
import time
import zipfile
from pathlib import Path

import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Page, Route, expect

from tests.browser.test_dashboard_browser import PASSWORD, screenshot, sign_in
from tests.factories import visit
from zenovay.models import Website
from zenovay.owners import create_owner

pytestmark = pytest.mark.browser


def test_filtering_comparing_and_exporting(page: Page, base: str):
    owner = create_owner("olivia", PASSWORD)
    website = Website.objects.create(domain="shop.example", name="Shop", owner=owner)
    for who, path in ((1, "/"), (1, "/pricing"), (2, "/"), (3, "/docs"), (4, "/pricing")):
        visit(website, path, who=who, country="DE")
    sign_in(page, base)
    page.goto(f"{base}/dashboard/{website.website_id}/")
    expect(page.locator("#zv-period-visitors")).to_have_text("4")
    page.evaluate("window.__sameDocument = true")

    # A click on a page filters the whole section, shows a chip, and goes into the URL.
    page.locator("#zv-period .filter-link", has_text="/pricing").click()
    expect(page.locator(".chip")).to_contain_text("Page is /pricing")
    expect(page.locator("#zv-period-visitors")).to_have_text("2")
    expect(page).to_have_url(re.compile(r"page=%2Fpricing"))
    expect(page.locator("#zv-charts .legend")).to_contain_text("filtered")
    screenshot(page, "filters-1-page")

    # The chip's remove link goes back to the whole site; the back button restores the filter.
    page.get_by_role("link", name="Remove the filter Page is /pricing").click()
    expect(page.locator(".chip")).to_have_count(0)
    expect(page.locator("#zv-period-visitors")).to_have_text("4")
    assert page.evaluate("window.__sameDocument") is True
    page.go_back()
    expect(page.locator(".chip")).to_have_count(1)
    expect(page.locator("#zv-period-visitors")).to_have_text("2")
    # A click on the restored page works too (a push's refresh no longer swallows it).
    page.get_by_role("link", name="Remove the filter Page is /pricing").click()
    expect(page.locator(".chip")).to_have_count(0)
    expect(page.locator("#zv-period-visitors")).to_have_text("4")
    page.goto(f"{base}/dashboard/{website.website_id}/")  # a fresh page for what follows

    # Comparing with the period before: changes beside the figures, a line on the charts.
    page.get_by_role("link", name="Compare with the previous period").click()
    expect(page.locator("#zv-period .figures .vs").first).to_have_text("new")
    expect(page.locator("#zv-charts .compare-line")).to_have_count(2)
    expect(page).to_have_url(re.compile(r"compare=previous_period"))
    screenshot(page, "filters-2-compare")

    # Last 7 days, then the export of what is shown.
    page.locator(".picker").get_by_role("link", name="Last 7 days").click()
    expect(page.locator("#period-title")).to_contain_text("Last 7 days")
    with page.expect_download() as download:
        page.get_by_role("link", name="Export CSV").click()
    path = download.value.path()
    assert download.value.suggested_filename.startswith("zenovay-shop.example-")
    archive = zipfile.ZipFile(io.BytesIO(Path(path).read_bytes()))
    pages = archive.read("pages.csv").decode().splitlines()
    assert pages[0] == "page,visitors,pageviews" and "/pricing,2,2" in pages


def test_a_refresh_asked_for_with_the_old_view_never_undoes_a_filter_click(page: Page, base: str):
    """A push makes the period and the charts refresh themselves; a filter clicked while
    those answers are on their way used to be lost when they landed first (the click's
    answer then went into the replaced section). Here the network holds every answer
    until the test lets them go, refreshes first."""
    owner = create_owner("olivia", PASSWORD)
    website = Website.objects.create(domain="shop.example", name="Shop", owner=owner)
    for who, path in ((1, "/"), (2, "/pricing"), (3, "/")):
        visit(website, path, who=who, country="DE")
    sign_in(page, base)
    page.goto(f"{base}/dashboard/{website.website_id}/")
    expect(page.locator("#zv-period-visitors")).to_have_text("3")

    held: dict[str, list[Route]] = {"refresh": [], "filter": []}

    def hold(route: Route) -> None:
        request = route.request
        if request.headers.get("hx-target") not in ("zv-period", "zv-charts"):
            route.continue_()
        else:
            held["filter" if "page=" in request.url else "refresh"].append(route)

    page.route(re.compile(r"/dashboard/ws_\w+/"), hold)
    page.evaluate("htmx.trigger(document.body, 'zv:pushed')")  # as a push does
    wait_until(page, lambda: len(held["refresh"]) == 2, "the two refreshes")
    page.locator("#zv-period .filter-link", has_text="/pricing").click()
    wait_until(page, lambda: held["filter"], "the filter's request")
    for route in [*held["refresh"], *held["filter"]]:
        with contextlib.suppress(PlaywrightError):  # a request the page aborted
            route.continue_()

    expect(page.locator(".chip")).to_contain_text("Page is /pricing")
    expect(page.locator("#zv-period-visitors")).to_have_text("1")
    expect(page.locator("#zv-charts .legend")).to_contain_text("filtered")


def wait_until(page: Page, condition, what: str, timeout_s: float = 10.0) -> None:
    """Poll `condition` (fed by Playwright's handlers, which run only while it waits)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        page.wait_for_timeout(20)
