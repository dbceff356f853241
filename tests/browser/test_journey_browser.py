"""An owner's first hour, end to end in a real headless Chromium against a real server.

Olivia signs in, adds her shop in the app (its time zone preset from her browser), copies
the snippet, which points at this server's port, and sees the first pageview arrive. She
invites Vera, who makes an account through the link and sees that website and no other;
shares the dashboard through a link that a signed-out browser opens and watches live; and
defines a goal whose conversion rate appears as a visitor reaches the page. Screenshots of
each step land in var/screenshots/journey-*.png.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.browser.test_dashboard_browser import (
    PASSWORD,
    SHOP,
    TIMEOUT_MS,
    screenshot,
    serve,
    shop_page,
    sign_in,
)
from tests.factories import DESKTOP_UA
from zenovay.models import Membership, Website
from zenovay.owners import create_owner

pytestmark = pytest.mark.browser


def new_context(browser: Browser, base: str, zone: str = "UTC") -> BrowserContext:
    context = browser.new_context(
        user_agent=DESKTOP_UA,
        viewport={"width": 1280, "height": 900},
        color_scheme="light",
        timezone_id=zone,
    )
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
    context.set_default_timeout(TIMEOUT_MS)
    return context


def copied(page: Page, button_name: str, source: str) -> str:
    page.locator(f'[data-copy="{source}"]').click()
    expect(page.locator(f'[data-copy="{source}"]')).to_have_text("Copied")
    return page.evaluate("navigator.clipboard.readText()")


def test_an_owners_first_hour(browser: Browser, base: str):
    owner = create_owner("olivia", PASSWORD)
    Website.objects.create(domain="blog.example", name="Blog", owner=owner)  # not shared
    olivia_context = new_context(browser, base, zone="Europe/Paris")
    page = olivia_context.new_page()
    sign_in(page, base)

    # Add the shop in the app: the time zone starts as the browser's.
    page.locator(".sidebar").get_by_role("link", name="Add a website").click()
    expect(page.get_by_label("Time zone")).to_have_value("Europe/Paris")
    page.get_by_label("Domain").fill("shop.example")
    page.get_by_label("Name", exact=True).fill("Shop")
    screenshot(page, "journey-1-add-website")
    page.get_by_role("button", name="Add website").click()
    expect(page.get_by_role("heading", name="Install the tracker on shop.example")).to_be_visible()
    shop = Website.objects.get(domain="shop.example")
    assert (shop.owner, shop.timezone) == (owner, "Europe/Paris")

    # The snippet names this server's port; pasted into the shop, it counts.
    snippet = copied(page, "Copy", "zv-snippet")
    assert snippet == f'<script async src="{base}/z.js" data-code="{shop.tracking_code}"></script>'
    visitor = new_context(browser, base).new_page()
    serve(visitor, SHOP, shop_page(snippet))
    visitor.goto(f"{SHOP}/")
    expect(page.locator("#zv-rt-live")).to_have_text("1")
    screenshot(page, "journey-2-first-pageview")

    # Invite Vera as a viewer: the link is shown once, to copy.
    page.get_by_role("link", name="Settings").click()
    members = page.locator("#members")
    members.get_by_label("Viewer").check()
    members.get_by_role("button", name="Make an invitation link").click()
    invitation = copied(page, "Copy", "zv-invite-url")
    assert invitation.startswith(f"{base}/invite/")
    screenshot(page, "journey-3-invitation")

    # Vera makes her account through the link and sees the shop, and only the shop.
    vera_context = new_context(browser, base)
    vera = vera_context.new_page()
    vera.goto(invitation)
    expect(vera.get_by_role("heading", name="Join Shop")).to_be_visible()
    vera.get_by_label("Username").fill("vera")
    vera.get_by_label("Password", exact=True).fill("vera-s3cret-pass")
    vera.get_by_label("Password confirmation").fill("vera-s3cret-pass")
    vera.get_by_role("button", name="Make my account and join").click()
    expect(vera.get_by_role("heading", name=re.compile(r"^Shop"))).to_be_visible()
    expect(vera.locator("#zv-rt-live")).to_have_text("1")
    nav = vera.get_by_role("navigation", name="Websites")
    expect(nav.get_by_role("link", name="Shop")).to_be_visible()
    expect(nav.get_by_role("link", name="Blog")).to_have_count(0)
    expect(vera.get_by_role("link", name="Settings")).to_have_count(0)
    assert Membership.objects.get(website=shop).user.username == "vera"
    screenshot(vera, "journey-4-member")
    vera_context.close()

    # A shared link, opened signed out, shows the dashboard live.
    page.goto(f"{base}/dashboard/{shop.website_id}/settings/")
    links = page.locator("#links")
    links.get_by_label("Name", exact=True).fill("Office screen")
    links.get_by_role("button", name="Make a shared link").click()
    expect(page.locator(".messages")).to_contain_text("Shared link made")
    shared_url = page.locator("#links pre").first.inner_text()
    assert shared_url.startswith(f"{base}/share/")
    stranger_context = new_context(browser, base)
    stranger = stranger_context.new_page()
    stranger.goto(shared_url)
    expect(stranger.get_by_text("a shared dashboard, read-only")).to_be_visible()
    expect(stranger.locator(".realtime [data-conn]")).to_have_attribute("data-state", "live")
    expect(stranger.locator("#zv-rt-live-views")).to_have_text("1")
    assert "Sign out" not in stranger.content() and "blog.example" not in stranger.content()

    # A goal: reaching /thanks. Its conversion rate appears as the visitor gets there.
    page.locator("#goals").get_by_label("Page visit").check()
    page.locator("#goals").get_by_label("Event name or page path").fill("/thanks")
    page.locator("#goals").get_by_role("button", name="Add goal").click()
    expect(page.locator(".messages")).to_contain_text("Goal added")
    screenshot(page, "journey-5-settings")
    page.get_by_role("link", name="Back to the dashboard").click()
    goal = page.locator("#t-goals").locator("..").locator("tbody tr").first
    expect(goal).to_contain_text("/thanks")
    expect(goal.locator("td").nth(3)).to_have_text("0.0%")

    visitor.evaluate("history.pushState({}, '', '/thanks')")

    expect(goal.locator("td").nth(1)).to_have_text("1")
    expect(goal.locator("td").nth(3)).to_have_text("100.0%")
    expect(stranger.locator("#zv-rt-live-views")).to_have_text("2")  # pushed to the link too
    screenshot(page, "journey-6-goal")
    screenshot(stranger, "journey-7-shared-link")
    stranger_context.close()
    olivia_context.close()
