"""The owner dashboard in a real headless Chromium against a real Daphne process.

A server of this module's own runs with ZENOVAY_PUBLIC_URL set to its address, so the
tracker snippet the owner copies from the page is the one a customer's page loads.
The customer's page is served from another origin (http://shop.example/, answered by
`page.route`); z.js and every POST /e/collect are real requests to that server.
Screenshots land in var/screenshots/ (not committed) for a person to look at.
"""

from __future__ import annotations

import io
import json
import re
import urllib.request
from pathlib import Path

import pytest
from django.core.management import call_command
from playwright.sync_api import BrowserContext, Page, expect

from tests.factories import DESKTOP_UA, record
from zenovay.models import Website
from zenovay.owners import create_owner

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
SHOP = "http://shop.example"
PASSWORD = "pw-olivia-123"
TIMEOUT_MS = 15_000
SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"


# --- A server whose snippets point at itself, and a browser


# --- Helpers


def sign_in(page: Page, base: str, username: str = "olivia", password: str = PASSWORD) -> None:
    page.goto(f"{base}/dashboard/")
    expect(page).to_have_url(re.compile(r"/login/\?next=/dashboard/$"))
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Websites", exact=True)).to_be_visible()


def shop_page(snippet: str) -> str:
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>Shop</title>
{snippet}
</head><body><h1>Shop</h1></body></html>"""


def serve(page: Page, origin: str, html: str) -> None:
    """Answer page requests on `origin` with `html`; the tracker's requests go through."""
    page.route(
        re.compile("^" + re.escape(origin) + "/"),
        lambda route: route.fulfill(status=200, content_type="text/html", body=html),
    )


def collect(base: str, payload: dict[str, object]) -> dict[str, object]:
    """A real POST /e/collect, as a browser on the customer's page would send it."""
    request = urllib.request.Request(
        f"{base}/e/collect",
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "text/plain", "User-Agent": DESKTOP_UA},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        answer = json.loads(response.read())
    assert answer == {"ok": True}, answer
    return answer


def visitors_now(website: Website, count: int) -> None:
    """A few visitors browsing at this moment, from several countries and pages."""
    countries, paths = ["US", "DE", "GB", "FR", "IN", "JP"], ["/", "/pricing", "/docs", "/blog"]
    for n in range(count):
        record(website, None, n, paths[n % 4], country=countries[n % 6])


def screenshot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


# --- (a) From sign-in to the first pageview, without reloading


def test_a_new_owner_installs_the_snippet_and_sees_the_first_pageview_arrive(
    page: Page, context: BrowserContext, base: str
):
    create_owner("olivia", PASSWORD)
    sign_in(page, base)
    expect(page.get_by_text("Add your first website")).to_be_visible()

    # Add the website in the app, as the empty dashboard suggests.
    page.get_by_role("link", name="Add a website").first.click()
    page.get_by_label("Domain").fill("shop.example")
    page.get_by_role("button", name="Add website").click()
    expect(page.locator(".messages")).to_contain_text("shop.example is added")
    website = Website.objects.get(domain="shop.example")

    # Its dashboard waits for the first event and offers the snippet to copy.
    page.goto(f"{base}/dashboard/")
    page.get_by_role("navigation", name="Websites").get_by_role("link", name="shop.example").click()
    expect(page.get_by_role("heading", name="Install the tracker on shop.example")).to_be_visible()
    expect(page.locator("#zv-setup-status")).to_contain_text("Waiting for the first event")
    page.get_by_role("button", name="Copy").click()
    expect(page.get_by_role("button", name="Copied")).to_be_visible()
    snippet = page.evaluate("navigator.clipboard.readText()")
    assert snippet == (
        f'<script async src="{base}/z.js" data-code="{website.tracking_code}"></script>'
    )
    page.evaluate("window.__sameDocument = true")  # gone if the page reloads

    # A visitor opens the shop, which carries the copied snippet.
    shop = context.new_page()
    serve(shop, SHOP, shop_page(snippet))
    shop.goto(f"{SHOP}/")

    # The dashboard notices the first event by itself and shows the live panel.
    expect(page.locator("#zv-rt-live")).to_have_text("1", timeout=TIMEOUT_MS)
    expect(page.locator("#zv-rt-pages")).to_contain_text("/")
    expect(page.locator(".realtime [data-conn]")).to_have_attribute("data-state", "live")
    assert page.evaluate("window.__sameDocument") is True

    # Further pageviews are pushed over the socket.
    shop.evaluate("history.pushState({}, '', '/pricing')")
    expect(page.locator("#zv-rt-live-views")).to_have_text("2", timeout=TIMEOUT_MS)
    expect(page.locator("#zv-rt-pages")).to_contain_text("/pricing")
    expect(page.locator("#zv-rt-today-views")).to_have_text("2")
    assert page.evaluate("window.__sameDocument") is True

    # The rest of the page follows the pushes: the header's badge and today's figures
    # agree with the live panel (they used to wait for a reload, or for a minute).
    expect(page.locator("#zv-badge")).to_have_text("Active")
    expect(page.locator("#zv-period-visitors")).to_have_text("1")
    expect(page.locator("#zv-period-views")).to_have_text("2")
    expect(page.locator("#zv-rt-today-visitors")).to_have_text("1")
    assert page.evaluate("window.__sameDocument") is True


def test_snippets_wrap_between_attributes_never_inside_a_value(page: Page, base: str):
    owner = create_owner("olivia", PASSWORD)
    website = Website.objects.create(domain="shop.example", name="Shop", owner=owner)
    page.set_viewport_size({"width": 420, "height": 900})
    sign_in(page, base)
    one_line_each = """selector => [...document.querySelectorAll(selector + " .nb")]
        .map(part => part.getClientRects().length)"""
    page.goto(f"{base}/dashboard/{website.website_id}/")
    snippet = page.locator("#zv-snippet")
    expect(snippet).to_have_text(
        f'<script async src="{base}/z.js" data-code="{website.tracking_code}"></script>'
    )
    assert snippet.evaluate("pre => pre.getClientRects()[0].height > 30")  # it did wrap
    assert set(page.evaluate(one_line_each, "#zv-snippet")) == {1}

    page.goto(f"{base}/admin/zenovay/website/{website.pk}/change/")
    parts = page.evaluate(one_line_each, ".zv-snippet")
    assert len(parts) > 20 and set(parts) == {1}
    iframe = page.locator("#snippet-counter-iframe")
    expect(iframe).to_contain_text('title="Live visitors"')


def test_the_websites_list_counts_move_without_reloading(page: Page, base: str):
    owner = create_owner("olivia", PASSWORD)
    website = Website.objects.create(domain="shop.example", name="Shop", owner=owner)
    sign_in(page, base)
    live = page.locator(f"#zv-{website.website_id}-live")
    expect(live).to_have_text("0")
    expect(page.locator("[data-conn]")).to_have_attribute("data-state", "live")
    page.evaluate("window.__sameDocument = true")

    collect(base, {"code": website.tracking_code, "type": "pageview", "url": f"{SHOP}/"})

    expect(live).to_have_text("1", timeout=TIMEOUT_MS)
    expect(page.locator(f"#zv-{website.website_id}-views")).to_have_text("1")
    assert page.evaluate("window.__sameDocument") is True


# --- (b) Visitor-controlled text never runs


PWN = "window.__pwned=1;alert(1)"
PAYLOADS = [
    {
        "type": "pageview",
        "url": f'{SHOP}/<script>{PWN}</script>?utm_source=<img src=x onerror="{PWN}">',
        "referrer": f"https://<img src=x onerror={PWN}>/",
    },
    {
        "type": "pageview",
        "url": f"{SHOP}/\"'><svg onload={PWN}>?utm_source=javascript:{PWN}",
        "referrer": f"javascript:{PWN}",
    },
    {
        "type": "pageview",
        "url": f"{SHOP}/javascript:{PWN}",
        "referrer": f"https://javascript:{PWN}@evil.example/",
    },
    {
        "type": "event",
        "url": f"{SHOP}/signup",
        "name": f"<img src=x onerror={PWN}>",
        "props": {
            f"<script>{PWN}</script>": f"<img src=x onerror={PWN}>",
            "link": f"javascript:{PWN}",
        },
    },
    {"type": "event", "url": f"{SHOP}/", "name": f"javascript:{PWN}", "props": {"a": "</dd>"}},
]


def assert_nothing_ran(page: Page, dialogs: list[str]) -> None:
    page.wait_for_load_state("load")
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert dialogs == []
    assert page.locator('a[href^="javascript:" i]').count() == 0
    assert page.locator('img[src="x"], svg[onload]').count() == 0


def test_visitor_controlled_text_is_shown_escaped_and_never_runs(page: Page, base: str):
    owner = create_owner("olivia", PASSWORD)
    website = Website.objects.create(domain="shop.example", name="Shop", owner=owner)
    for payload in PAYLOADS:
        collect(base, {"code": website.tracking_code, **payload})
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    sign_in(page, base)
    assert_nothing_ran(page, dialogs)

    page.goto(f"{base}/dashboard/{website.website_id}/")
    # The payloads are there, as text, in the pushed panel and in the period's tables.
    expect(page.locator(".realtime [data-conn]")).to_have_attribute("data-state", "live")
    # One visitor sent them all: "right now" shows its latest page, the tables every one.
    expect(page.locator("#zv-rt-pages")).to_contain_text(f"/javascript:{PWN}")
    tables = page.locator("#zv-period")
    expect(tables).to_contain_text(f"<script>{PWN}</script>")
    expect(tables).to_contain_text(f"<img src=x onerror={PWN}>")
    expect(tables).to_contain_text(f"javascript:{PWN}")
    expect(tables).to_contain_text("</dd>")
    assert_nothing_ran(page, dialogs)

    for period in ("week", "month"):  # htmx swaps the period's fragment in
        page.get_by_role("link", name=f"This {period}").click()
        expect(page).to_have_url(re.compile(f"period={period}$"))
        expect(tables).to_contain_text(f"<img src=x onerror={PWN}>")
        assert_nothing_ran(page, dialogs)

    for path in ("/admin/", "/admin/zenovay/website/", f"/admin/zenovay/website/{website.pk}/"):
        page.goto(base + path)
        assert_nothing_ran(page, dialogs)


# --- Screenshots for a person to look at


@pytest.mark.screenshots
def test_screenshots_of_the_dashboard(page: Page, base: str):
    owner = create_owner("olivia", PASSWORD)
    shop = Website.objects.create(domain="shop.example", name="Shop", owner=owner)
    blog = Website.objects.create(
        domain="blog.example", name="Engineering blog", owner=owner, timezone="Europe/Berlin"
    )
    Website.objects.create(domain="new.example", name="New landing page", owner=owner)
    for website, visitors in ((shop, 160), (blog, 60)):
        args = ["--visitors", str(visitors), "--days", "30", "--seed", "7"]
        call_command(
            "simulate", website.website_id, *args, stdout=io.StringIO(), stderr=io.StringIO()
        )
    visitors_now(shop, 9)
    visitors_now(blog, 3)
    sign_in(page, base)
    expect(page.locator("[data-conn]")).to_have_attribute("data-state", "live")
    screenshot(page, "owner-websites")

    page.goto(f"{base}/dashboard/{shop.website_id}/")
    expect(page.locator(".realtime [data-conn]")).to_have_attribute("data-state", "live")
    screenshot(page, "owner-website")
    page.set_viewport_size({"width": 390, "height": 844})
    screenshot(page, "owner-website-mobile")
    page.set_viewport_size({"width": 1280, "height": 900})

    empty = Website.objects.get(domain="new.example")
    page.goto(f"{base}/dashboard/{empty.website_id}/")
    expect(page.locator("#zv-setup-status")).to_be_visible()
    screenshot(page, "owner-website-empty")

    page.goto(f"{base}/admin/zenovay/website/{shop.pk}/change/")
    screenshot(page, "owner-admin-website-change")

    page.goto(f"{base}/dashboard/")
    page.locator("form[action='/logout/'] button").click()
    expect(page).to_have_url(re.compile("/login/$"))
    screenshot(page, "owner-sign-in")
