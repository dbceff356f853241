"""Filters, comparison and export on a website's dashboard, in a real headless Chromium."""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.test_dashboard import visit
from tests.test_dashboard_browser import PASSWORD, screenshot, sign_in
from zenovay.models import Website
from zenovay.owners import create_owner

pytestmark = pytest.mark.browser


def test_filtering_comparing_and_exporting(page: Page, base: str):
    owner = create_owner("olivia", PASSWORD)
    website = Website.objects.create(domain="shop.example", name="Shop", owner=owner)
    for who, path in ((1, "/"), (1, "/pricing"), (2, "/"), (3, "/docs"), (4, "/pricing")):
        visit(website, path, who=who)
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
