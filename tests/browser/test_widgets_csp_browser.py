"""The embed snippets under a strict Content Security Policy, in a real headless Chromium.

The customer's page allows Zenovay's origin where the README says (`script-src`, `connect-src`,
`frame-src`) and no inline CSS at all (`style-src 'self'`, no 'unsafe-inline'). The snippets are
the ones the admin hands out (zenovay.snippets). The widgets must look as designed, update live,
and the browser must report no violation.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from tests.browser import test_widgets_browser as widgets_browser
from tests.browser.test_widgets_browser import (
    CUSTOMER,
    PUSH_BUDGET,
    SCREENSHOTS,
    counter_script,
    customer_html,
    expect_text_by,
    open_customer_page,
    seed_traffic,
    visit_shop,
)
from zenovay import snippets
from zenovay.models import Website

pytestmark = pytest.mark.browser

# The same browser contexts as the other widget tests: the customer's page, and a shop visitor.
owner = widgets_browser.owner
visitor = widgets_browser.visitor

# Registered before any script of the page runs, so no violation can go unseen.
RECORD_VIOLATIONS = """
window.violations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.violations.push(event.effectiveDirective + " blocked " + (event.blockedURI || "inline"));
}, true);
"""

COUNTER_FRAME = "iframe[src*='/widgets/live/']"
DASHBOARD_FRAME = "iframe[src*='/widgets/dashboard/']"


def strict_csp(base: str) -> str:
    sockets = base.replace("http", "ws", 1)
    return (
        f"default-src 'none'; script-src {base}; connect-src {base} {sockets}; "
        f"frame-src {base}; style-src 'self'"
    )


@pytest.fixture
def embed_codes(settings, live_url, website) -> dict[str, str]:
    """The snippets the admin shows for `website`, pointing at the live server."""
    settings.ZENOVAY_PUBLIC_URL = live_url
    return {snippet["key"]: snippet["code"] for snippet in snippets.all_snippets(website)}


@pytest.fixture
def csp_console() -> list[str]:
    """The strict page's console messages about its CSP (how Chromium logs what it blocked)."""
    return []


@pytest.fixture
def strict_page(owner: BrowserContext, live_url, embed_codes, csp_console) -> Iterator[Page]:
    """The customer's page with all four widgets, served with the strict CSP."""
    body = "".join(
        f"<div>{embed_codes[key]}</div>"
        for key in ("counter-script", "dashboard-script", "counter-iframe", "dashboard-iframe")
    )
    html = (
        '<!doctype html><html><head><meta charset="utf-8"><title>Strict customer</title>'
        f"</head><body><h1>Welcome</h1>{body}</body></html>"
    )
    page = owner.new_page()
    page.on(
        "console",
        lambda message: (
            csp_console.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    page.add_init_script(RECORD_VIOLATIONS)
    page.route(
        f"{CUSTOMER}/**",
        lambda route: route.fulfill(
            status=200,
            content_type="text/html",
            headers={"Content-Security-Policy": strict_csp(live_url)},
            body=html,
        ),
    )
    page.goto(f"{CUSTOMER}/")
    yield page
    page.close()


def wait_until_live(page: Page) -> None:
    """Every widget got its first numbers over its socket, so everything has loaded."""
    expect(page.locator("zenovay-live .w")).to_have_attribute("data-state", "live")
    expect(page.locator("zenovay-dashboard .w")).to_have_attribute("data-state", "live")
    for selector in (COUNTER_FRAME, DASHBOARD_FRAME):
        expect(page.frame_locator(selector).locator("#zv")).to_have_attribute("data-state", "live")


def assert_no_violation(page: Page, console: list[str]) -> None:
    assert page.evaluate("window.violations") == []
    assert console == []


def computed(page: Page, selector: str, *properties: str) -> dict[str, str]:
    return page.locator(selector).first.evaluate(
        "(node, names) => Object.fromEntries("
        "names.map(name => [name, getComputedStyle(node).getPropertyValue(name)]))",
        list(properties),
    )


def test_the_script_widgets_are_styled_without_inline_css(strict_page, csp_console):
    wait_until_live(strict_page)

    # Values of the widgets' stylesheets; unstyled, a div has no padding, no radius, 16px text.
    assert computed(
        strict_page, "zenovay-live .w", "padding", "border-radius", "font-size", "display"
    ) == {
        "padding": "6px 14px 6px 12px",
        "border-radius": "99px",
        "font-size": "14px",
        "display": "inline-flex",
    }
    assert computed(strict_page, "zenovay-live .dot", "width", "background-color") == {
        "width": "8px",
        "background-color": "rgb(16, 185, 129)",
    }
    assert computed(strict_page, "zenovay-dashboard .w", "padding", "border-radius") == {
        "padding": "12px 14px",
        "border-radius": "12px",
    }
    assert computed(strict_page, "zenovay-dashboard .tiles", "display") == {"display": "grid"}
    assert computed(strict_page, "zenovay-dashboard .v", "font-size", "font-weight") == {
        "font-size": "24px",
        "font-weight": "700",
    }
    assert_no_violation(strict_page, csp_console)


def test_the_iframes_have_no_border(strict_page, csp_console):
    wait_until_live(strict_page)

    for selector in (COUNTER_FRAME, DASHBOARD_FRAME):
        # An iframe's default border is 2px inset.
        assert computed(strict_page, selector, "border-top-width", "border-left-width") == {
            "border-top-width": "0px",
            "border-left-width": "0px",
        }
    assert_no_violation(strict_page, csp_console)


def test_the_widgets_update_live(strict_page, csp_console, visitor, live_url, website: Website):
    wait_until_live(strict_page)
    counters = [
        strict_page.locator("zenovay-live .count b"),
        strict_page.locator("zenovay-dashboard .tile .v b").first,
        strict_page.frame_locator(COUNTER_FRAME).locator("#zv-live-count"),
        strict_page.frame_locator(DASHBOARD_FRAME).locator("#zv-live-visitors"),
    ]
    for counter in counters:
        expect(counter).to_have_text("0")

    answered = visit_shop(visitor, live_url, website)

    for counter in counters:
        expect_text_by(answered + PUSH_BUDGET, counter, "1")
    # The top page's bar is set through the CSSOM, which style-src does not govern.
    top_page = strict_page.locator("zenovay-dashboard ol").last.locator("li").first
    expect(top_page).to_contain_text("/")
    expect(top_page).to_have_css("--w", "100%")
    assert_no_violation(strict_page, csp_console)


def test_without_adopted_stylesheets_a_style_element_styles_the_counter(owner, live_url, website):
    """Browsers before constructable stylesheets (Safari < 16.4) get the <style> instead."""
    owner.add_init_script("delete ShadowRoot.prototype.adoptedStyleSheets")
    html = customer_html(live_url, website, body=counter_script(live_url, website))
    page = open_customer_page(owner, html)

    expect(page.locator("zenovay-live .count b")).to_have_text("0")
    assert (
        page.evaluate("document.querySelector('zenovay-live').shadowRoot.adoptedStyleSheets")
        is None
    )
    expect(page.locator("zenovay-live style")).to_have_count(1)
    assert computed(page, "zenovay-live .w", "padding", "font-size") == {
        "padding": "6px 14px 6px 12px",
        "font-size": "14px",
    }


@pytest.mark.screenshots
def test_screenshot_under_a_strict_csp(website, strict_page, csp_console):
    seed_traffic(website)
    strict_page.reload()
    wait_until_live(strict_page)
    expect(strict_page.locator("zenovay-dashboard li").first).not_to_have_text("No visitors")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    strict_page.evaluate("document.fonts.ready")
    strict_page.screenshot(path=SCREENSHOTS / "strict-csp.png", full_page=True)
    assert_no_violation(strict_page, csp_console)
