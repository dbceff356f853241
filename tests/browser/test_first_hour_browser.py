"""An owner's first hour in a real headless Chromium (issue 16, items 2, 4 and 5): the test
snippet of the install guide counts a page served on this computer; a brand-new site does
not claim "+100% vs. yesterday"; country rows carry their code as text; the dashboard fits
a 420 px screen; a revoked shared link is a 404 page in the dashboard's look; and (item 9)
every header and figure of the goals table is read whole at 1280 and 420 px.

The server is the one of `conftest.dashboard_server`, with ZENOVAY_PUBLIC_URL set to its own
address. The owner's test page is served by a real HTTP server on 127.0.0.1, as a
developer's `python -m http.server` would serve it. Screenshots go to var/screenshots/.
"""

from __future__ import annotations

import http.server
import itertools
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from tests.conftest import OWNER_PASSWORD
from tests.factories import record
from zenovay.models import Event, Goal, Website
from zenovay.owners import create_owner

pytestmark = pytest.mark.browser

SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"


@pytest.fixture
def olivia(db):
    return create_owner("olivia", OWNER_PASSWORD)


@pytest.fixture
def shop(olivia) -> Website:
    return Website.objects.create(domain="shop.example", name="Shop", owner=olivia)


@pytest.fixture
def local_page() -> Iterator[Callable[[str], str]]:
    """`local_page(html)`: serve `html` at http://127.0.0.1:PORT/ and return that URL."""
    pages: dict[str, bytes] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = pages["html"]
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    def serve(html: str) -> str:
        pages["html"] = html.encode()
        return f"http://127.0.0.1:{server.server_port}/"

    yield serve
    server.shutdown()
    server.server_close()


def sign_in(page: Page, base: str) -> None:
    page.goto(f"{base}/login/")
    page.get_by_label("Username").fill("olivia")
    page.get_by_label("Password").fill(OWNER_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Websites", exact=True)).to_be_visible()


def screenshot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def visitors_now(website: Website, countries: list[str]) -> None:
    for n, country in enumerate(countries):
        record(website, None, n, f"/docs/a-rather-long-page-path-{n}", country=country)


# --- Item 2: the install guide's test snippet counts a page served on this computer


def test_the_guides_test_snippet_counts_a_page_served_on_127_0_0_1(
    page: Page, context: BrowserContext, base: str, shop: Website, local_page
):
    sign_in(page, base)
    page.goto(f"{base}/dashboard/{shop.website_id}/")
    guide = page.locator("#zv-local-test")
    guide.get_by_text("Testing on this computer first").click()
    expect(guide).to_contain_text("Pages on your own computer are not counted unless you allow")

    # Step 1: the owner lets the website accept its pages on localhost and 127.0.0.1.
    guide.get_by_role("link", name="the website's settings").click()
    page.get_by_label("Other host names").fill("localhost\n127.0.0.1")
    page.get_by_role("button", name="Save").first.click()
    expect(page.locator(".messages")).to_contain_text("Settings saved")
    page.goto(f"{base}/dashboard/{shop.website_id}/")
    expect(guide).to_contain_text("Done: localhost and 127.0.0.1 are among the website's")
    screenshot(page, "first-hour-setup-local-test")

    # Step 2: the snippet with data-allow-localhost, copied onto a page of a local server.
    guide.get_by_role("button", name="Copy").click()
    snippet = page.evaluate("navigator.clipboard.readText()")
    assert snippet == (
        f'<script async src="{base}/z.js" data-code="{shop.tracking_code}" '
        "data-allow-localhost></script>"
    )
    test_page = context.new_page()
    said: list[str] = []
    test_page.on("console", lambda m: said.append(m.text) if "Zenovay" in m.text else None)
    test_page.goto(local_page(f"<!doctype html><title>Test</title>{snippet}<h1>Test</h1>"))

    # The pageview arrives on the dashboard, from 127.0.0.1, and nothing was refused.
    expect(page.locator("#zv-rt-live")).to_have_text("1")
    assert list(Event.objects.filter(website=shop).values_list("hostname", "path")) == [
        ("127.0.0.1", "/")
    ]
    assert said == []


def test_without_the_host_names_the_guide_says_what_to_add(page: Page, base: str, shop: Website):
    sign_in(page, base)
    page.goto(f"{base}/dashboard/{shop.website_id}/")
    guide = page.locator("#zv-local-test")
    expect(guide).not_to_have_attribute("open", "")
    guide.get_by_text("Testing on this computer first").click()
    expect(guide).to_contain_text(
        "Add localhost and 127.0.0.1 to Other host names in the website's settings."
    )
    expect(guide).to_contain_text("Remove the two host names when you are done")
    expect(guide.locator("#zv-local-snippet")).to_have_text(
        f'<script async src="{base}/z.js" data-code="{shop.tracking_code}" '
        "data-allow-localhost></script>"
    )
    screenshot(page, "first-hour-setup-guide")


# --- Item 4: a brand-new site's figures, and country codes as text


def test_a_brand_new_site_does_not_claim_a_change_against_yesterday(
    page: Page, base: str, shop: Website
):
    visitors_now(shop, ["FR", "DE", "FR"])
    sign_in(page, base)
    page.goto(f"{base}/dashboard/{shop.website_id}/")

    expect(page.locator("#zv-rt-today-visitors")).to_have_text("3")
    expect(page.locator("#zv-rt-visitors-change")).to_have_text("since midnight")
    expect(page.locator("#zv-rt-views-change")).to_have_text("since midnight")
    expect(page.locator(".realtime")).not_to_contain_text("%")


def test_countries_show_their_code_as_text_beside_the_flag(page: Page, base: str, shop: Website):
    visitors_now(shop, ["FR", "DE", "FR"])
    sign_in(page, base)
    page.goto(f"{base}/dashboard/{shop.website_id}/")

    rows = page.locator("#zv-rt-countries li")
    expect(rows).to_have_count(2)
    expect(rows.nth(0).locator(".cc")).to_have_text("FR")
    expect(rows.nth(0)).to_contain_text("France")
    expect(rows.nth(0).locator(".cc")).to_have_attribute("aria-hidden", "true")
    country_table = page.locator("section.table", has=page.get_by_role("heading", name="Countries"))
    expect(country_table.locator("td .cc")).to_have_text(["FR", "DE"])


# --- Item 5: a 420 px screen


@pytest.mark.parametrize("where", ["sites", "site"])
def test_the_dashboard_fits_a_420_px_screen(page: Page, base: str, shop: Website, where: str):
    Website.objects.create(
        domain="a-longer-blog-name.example", name="A longer blog", owner=shop.owner
    )
    Website.objects.create(domain="docs.shop.example", name="Documentation", owner=shop.owner)
    visitors_now(shop, ["FR", "DE", "US", "GB", "IN", "JP", "BR", "CA"])
    page.set_viewport_size({"width": 420, "height": 900})
    sign_in(page, base)
    if where == "site":
        page.goto(f"{base}/dashboard/{shop.website_id}/")
        expect(page.locator("#zv-rt-live")).to_have_text("8")
    screenshot(page, f"first-hour-420-{where}")

    # Only a chart wider than the screen may be, in a scroller of its own that starts
    # with the latest hour and day on screen.
    outside = page.evaluate(
        """() => [...document.querySelectorAll('body *')]
            .filter(e => e.getBoundingClientRect().right > 420.5 && !e.closest('.chart-scroll'))
            .map(e => e.tagName + '.' + e.getAttribute('class'))"""
    )
    assert (page.evaluate("document.documentElement.scrollWidth"), outside) == (420, [])
    if where == "site":
        latest = page.evaluate(
            """() => [...document.querySelectorAll('.bar-chart')].map(chart => {
                const last = [...chart.querySelectorAll('.slot .hit')].pop();
                const slot = last.getBoundingClientRect();
                return slot.left >= 0 && slot.right <= 420;
            })"""
        )
        assert latest == [True, True]


def test_a_revoked_shared_link_is_a_page_in_the_dashboards_look(page: Page, base: str):
    response = page.goto(f"{base}/share/revoked-link/")
    assert response is not None and response.status == 404
    card = page.locator(".signin-card")
    expect(card.get_by_role("heading", name="This shared link does not work")).to_be_visible()
    expect(card).to_have_css("border-radius", "16px")  # the dashboard's stylesheet applies
    screenshot(page, "first-hour-404-shared-link")
    card.get_by_role("link", name="Sign in").click()
    expect(page).to_have_url(f"{base}/login/")


# --- Item 9: the goals table is readable on a wide and a narrow screen


@pytest.mark.parametrize("width", [1280, 420])
def test_every_cell_of_the_goals_table_is_readable(page: Page, base: str, shop: Website, width):
    long_path = "/docs/a-rather-long-page-path-for-a-narrow-screen-*"
    for kind, value in (("event", "signup"), ("page", "/docs/*"), ("page", long_path)):
        Goal.objects.create(website=shop, kind=kind, value=value)
    visitors_now(shop, ["FR", "DE", "US"])  # each on /docs/...: that goal converts 100.0 %
    record(shop, None, 0, "/docs/a-rather-long-page-path-0", kind="event", name="signup")
    page.set_viewport_size({"width": width, "height": 900})
    sign_in(page, base)
    page.goto(f"{base}/dashboard/{shop.website_id}/")
    goals = page.locator("section.table", has=page.locator("#t-goals"))
    expect(goals.locator("tbody tr")).to_have_count(3)  # a long path wraps, not cut
    expect(goals.locator("tbody tr").nth(1)).to_contain_text("100.0%")
    goals.scroll_into_view_if_needed()
    goals.screenshot(path=str(SCREENSHOTS / f"first-hour-goals-{width}.png"))

    cut = goals.evaluate(
        """section => [...section.querySelectorAll('th, td')]
            .filter(cell => cell.scrollWidth > cell.clientWidth)
            .map(cell => cell.textContent)"""
    )
    assert cut == []
    # A header's text (not its cell: cells never overlap, text spills out of them) ends
    # before the next one's begins.
    texts = goals.locator("th").evaluate_all(
        """cells => cells.map(cell => {
            const range = document.createRange();
            range.selectNodeContents(cell);
            const box = range.getBoundingClientRect();
            return [box.left, box.right];
        })"""
    )
    assert all(a[1] < b[0] for a, b in itertools.pairwise(texts)), texts
