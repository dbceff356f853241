"""The widgets in a real headless Chromium, against a live Daphne server.

A customer's page on another origin (http://customer.example/, answered by
`page.route`) embeds the widgets; a visitor in a second browser context opens the
tracked shop (http://shop.example/) with the tracker snippet. Scripts, sockets,
polling and the visitor's events are real requests to the server of `live_url`.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    FrameLocator,
    Locator,
    Page,
    expect,
)

from tests.factories import DESKTOP_UA, record, sender
from zenovay.models import Website

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CUSTOMER = "http://customer.example"
SHOP = "http://shop.example"
PUSH_BUDGET = 2.0  # seconds from a visit to every open widget showing it
LIVE_TTL = 5.0  # /e/live's cache TTL, the polling interval of the counter
POLL_MARGIN = 3.0
SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"


def new_context(browser: Browser, **options) -> BrowserContext:
    # The server drops headless user agents as bots; a visitor's browser is not one.
    context = browser.new_context(user_agent=DESKTOP_UA, **options)
    context.set_default_timeout(10_000)
    return context


@pytest.fixture
def owner(browser: Browser) -> Iterator[BrowserContext]:
    """The customer's page with the widgets, as the site owner (or anyone) sees it."""
    context = new_context(browser, viewport={"width": 1000, "height": 900})
    yield context
    context.close()


@pytest.fixture
def visitor(browser: Browser) -> Iterator[BrowserContext]:
    """Someone visiting the tracked shop, in a browser context of their own."""
    context = new_context(browser)
    # The tracker's sendBeacon has no response Playwright can wait for; its fetch fallback has.
    context.add_init_script("Object.defineProperty(navigator, 'sendBeacon', {value: undefined})")
    yield context
    context.close()


# --- Pages and locators.


def customer_html(live_url: str, website: Website, *, body: str, head: str = "") -> str:
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Customer</title>
<script>window.globalsBefore = Object.keys(window);</script>
{head}</head>
<body><h1>Welcome</h1>{body}</body></html>"""


def counter_script(live_url: str, website: Website, attrs: str = "") -> str:
    return (
        f'<script async src="{live_url}/widgets/live.js" '
        f'data-code="{website.tracking_code}"{attrs}></script>'
    )


def dashboard_script(live_url: str, website: Website, attrs: str = "") -> str:
    return (
        f'<script async src="{live_url}/widgets/dashboard.js" '
        f'data-website="{website.website_id}"{attrs}></script>'
    )


def counter_iframe(live_url: str, website: Website, query: str = "") -> str:
    return (
        f'<iframe id="counter-frame" src="{live_url}/widgets/live/{website.tracking_code}{query}"'
        ' width="240" height="44" title="Visitors online" frameborder="0"></iframe>'
    )


def dashboard_iframe(live_url: str, website: Website, query: str = "") -> str:
    return (
        f'<iframe id="dashboard-frame" '
        f'src="{live_url}/widgets/dashboard/{website.website_id}{query}"'
        ' width="320" height="400" title="Live dashboard" frameborder="0"></iframe>'
    )


def open_customer_page(owner: BrowserContext, html: str) -> Page:
    page = owner.new_page()
    page.route(
        f"{CUSTOMER}/**",
        lambda route: route.fulfill(status=200, content_type="text/html", body=html),
    )
    page.goto(f"{CUSTOMER}/")
    return page


# Playwright's CSS engine pierces open shadow roots, as a visitor's eyes do.
def counter_number(page: Page) -> Locator:
    return page.locator("zenovay-live .count b")


def dashboard_script_number(page: Page) -> Locator:
    return page.locator("zenovay-dashboard .tile .v b").first


def frame(page: Page, selector: str) -> FrameLocator:
    return page.frame_locator(selector)


def visit_shop(visitor: BrowserContext, live_url: str, website: Website) -> float:
    """A pageview on the shop; returns the moment its collect request was answered."""
    html = f"""<!doctype html><html><head><meta charset="utf-8"><title>Shop</title>
<script async src="{live_url}/z.js" data-code="{website.tracking_code}"></script>
</head><body><h1>Shop</h1></body></html>"""
    page = visitor.new_page()
    page.route(
        f"{SHOP}/**",
        lambda route: route.fulfill(status=200, content_type="text/html", body=html),
    )
    with page.expect_response(lambda r: r.url == f"{live_url}/e/collect") as collected:
        page.goto(f"{SHOP}/")
    assert collected.value.status == 202
    return time.monotonic()


def expect_text_by(deadline: float, locator: Locator, text: str | re.Pattern[str]) -> None:
    """`locator` shows `text` before `deadline` (time.monotonic()); 0 ms would mean forever."""
    remaining_ms = max(1.0, (deadline - time.monotonic()) * 1000)
    expect(locator).to_have_text(text, timeout=remaining_ms)


# --- Live updates over WebSockets.


def test_every_widget_shows_a_new_visit_within_two_seconds_without_reload(
    owner, visitor, live_url, website
):
    body = (
        f"<p>Right now: {counter_script(live_url, website)}</p>"
        f"{dashboard_script(live_url, website)}"
        f"{counter_iframe(live_url, website)}{dashboard_iframe(live_url, website)}"
    )
    page = open_customer_page(owner, customer_html(live_url, website, body=body))
    widgets = {
        "counter script": counter_number(page),
        "dashboard script": dashboard_script_number(page),
        "counter iframe": frame(page, "#counter-frame").locator("#zv-live-count"),
        "dashboard iframe": frame(page, "#dashboard-frame").locator("#zv-live-visitors"),
    }
    for locator in widgets.values():
        expect(locator).to_have_text("0")
    # Every widget holds its socket before the visit, so what is measured is the push.
    expect(page.locator("zenovay-live .w")).to_have_attribute("data-state", "live")
    expect(page.locator("zenovay-dashboard .w")).to_have_attribute("data-state", "live")
    for selector in ("#counter-frame", "#dashboard-frame"):
        expect(frame(page, selector).locator("#zv")).to_have_attribute("data-state", "live")
    page.evaluate("window.notReloaded = true")

    answered = visit_shop(visitor, live_url, website)

    deadline = answered + PUSH_BUDGET
    for locator in widgets.values():
        expect_text_by(deadline, locator, "1")
    assert page.evaluate("window.notReloaded") is True
    expect(frame(page, "#dashboard-frame").locator("#zv-pages")).to_contain_text("/")
    expect(page.locator("zenovay-dashboard ol").last).to_contain_text("/")
    expect(page.locator("zenovay-live .label")).to_have_text("visitor online")


def test_the_number_regions_are_announced_politely(owner, live_url, website):
    body = counter_script(live_url, website) + dashboard_iframe(live_url, website)
    page = open_customer_page(owner, customer_html(live_url, website, body=body))

    expect(page.locator("zenovay-live .count")).to_have_attribute("aria-live", "polite")
    expect(frame(page, "#dashboard-frame").locator(".tiles")).to_have_attribute(
        "aria-live", "polite"
    )


def test_a_changed_number_pulses(owner, visitor, live_url, website):
    body = counter_script(live_url, website) + counter_iframe(live_url, website)
    page = open_customer_page(owner, customer_html(live_url, website, body=body))
    in_frame = page.locator("#counter-frame").element_handle().content_frame()
    expect(counter_number(page)).to_have_text("0")
    expect(in_frame.locator("#zv-live-count")).to_have_text("0")
    expect(counter_number(page)).not_to_have_class("bump")
    # The iframe's pulse class goes once played: record that it played.
    in_frame.evaluate(
        "window.pulsed = [];"
        "addEventListener('animationstart', e => pulsed.push(e.target.id + ' ' + e.animationName))"
    )

    visit_shop(visitor, live_url, website)

    expect(counter_number(page)).to_have_text("1")
    expect(counter_number(page)).to_have_class("bump")
    expect(in_frame.locator("#zv-live-count")).to_have_text("1")
    in_frame.wait_for_function("pulsed.includes('zv-live-count zv-bump')")


def test_a_pulse_survives_the_same_number_arriving_before_the_page_paints(
    owner, visitor, live_url, website
):
    # Under load two frames (the event's push, then the ticker's) can land before the
    # page paints: the second, with the same number, must not replace the element whose
    # pulse has not started. A hidden widget stands for the page that has not painted.
    page = open_customer_page(
        owner, customer_html(live_url, website, body=counter_iframe(live_url, website))
    )
    in_frame = page.locator("#counter-frame").element_handle().content_frame()
    expect(in_frame.locator("#zv-live-count")).to_have_text("0")
    in_frame.evaluate(
        "window.pulsed = [];"
        "addEventListener('animationstart', e => pulsed.push(e.target.id));"
        "document.getElementById('zv').style.display = 'none';"
    )

    visit_shop(visitor, live_url, website)
    expect(in_frame.locator("#zv-live-count")).to_have_text("1")
    in_frame.evaluate(
        """async () => {
          const settle = 4 * htmx.config.defaultSettleDelay + 50;
          await new Promise(done => setTimeout(done, settle));
          const frame = '<span id="zv-live-count" hx-swap-oob="true" data-count="1">1</span>';
          htmx.swap(document.getElementById("zv"), frame, {swapStyle: "none"});
          await new Promise(done => setTimeout(done, settle));
          document.getElementById("zv").style.display = "";
        }"""
    )
    in_frame.wait_for_function("pulsed.includes('zv-live-count')")


# --- When sockets fail: polling, then offline.


def test_with_websockets_blocked_the_counters_poll_within_the_ttl(
    owner, visitor, live_url, website
):
    # Every socket is accepted, then closed at once: the server is never reached.
    sockets = []
    owner.route_web_socket(re.compile(r".*/ws/.*"), lambda ws: sockets.append(ws.url) or ws.close())
    polled = []
    owner.on("request", lambda r: polled.append(r.url) if "/e/live/" in r.url else None)
    body = counter_script(live_url, website) + counter_iframe(live_url, website)
    with owner.expect_event("response", lambda r: "/e/live/" in r.url):
        page = open_customer_page(owner, customer_html(live_url, website, body=body))
    counter = counter_number(page)
    in_frame = frame(page, "#counter-frame")
    expect(counter).to_have_text("0")
    expect(in_frame.locator("#zv")).to_have_attribute("data-state", "polling")

    answered = visit_shop(visitor, live_url, website)

    deadline = answered + LIVE_TTL + POLL_MARGIN
    expect_text_by(deadline, counter, "1")
    expect_text_by(deadline, in_frame.locator("#zv-live-count"), "1")
    assert all(url == f"{live_url}/e/live/{website.tracking_code}" for url in polled)
    # Both kept trying their socket meanwhile, with backoff.
    script_tries = [url for url in sockets if "/ws/live/" in url]
    frame_tries = [url for url in sockets if "/ws/widgets/live/" in url]
    assert len(script_tries) >= 3 and len(frame_tries) >= 3


def test_when_the_pages_csp_blocks_websockets_the_script_counter_polls(owner, live_url, website):
    """A CSP that allows our scripts and /e/ but not /ws/: Chromium fires only `error` on
    such a socket, never `close`, and the counter must still fall back to polling."""
    csp = f"default-src 'self'; script-src {live_url}; connect-src {live_url}/e/; style-src *"
    html = customer_html(live_url, website, body=counter_script(live_url, website))
    page = owner.new_page()
    page.route(
        f"{CUSTOMER}/**",
        lambda route: route.fulfill(
            status=200,
            content_type="text/html",
            headers={"Content-Security-Policy": csp},
            body=html,
        ),
    )
    violations = []
    page.on("console", lambda message: violations.append(message.text))
    with page.expect_response(lambda r: "/e/live/" in r.url, timeout=10_000):
        page.goto(f"{CUSTOMER}/")
    expect(counter_number(page)).to_have_text("0")
    assert any("Content Security Policy" in text and "/ws/" in text for text in violations)


def test_polling_honours_retry_after(owner, live_url, website):
    owner.route_web_socket(re.compile(r".*/ws/.*"), lambda ws: ws.close())
    answered = []

    def too_many(route):
        answered.append(time.monotonic())
        if len(answered) == 1:
            route.fulfill(
                status=429,
                headers={
                    "Retry-After": "7",
                    "Access-Control-Allow-Origin": "*",
                    "Access-Control-Expose-Headers": "Retry-After",
                },
                content_type="application/json",
                body='{"error": "rate_limited", "message": "Slow down."}',
            )
        else:
            route.continue_()

    owner.route(f"{live_url}/e/live/**", too_many)
    page = open_customer_page(
        owner, customer_html(live_url, website, body=counter_script(live_url, website))
    )

    expect(counter_number(page)).to_have_text("0", timeout=12_000)
    assert answered[1] - answered[0] >= 7 - 0.1  # not the 5 s TTL


def test_offline_the_counter_keeps_its_number_with_the_time(owner, live_url, website):
    body = counter_script(live_url, website) + counter_iframe(live_url, website)
    page = open_customer_page(owner, customer_html(live_url, website, body=body))
    expect(counter_number(page)).to_have_text("0")
    expect(frame(page, "#counter-frame").locator("#zv")).to_have_attribute("data-state", "live")

    owner.set_offline(True)

    updated = re.compile(r"^updated \d{1,2}:\d\d")
    expect(page.locator("zenovay-live .status")).to_have_text(updated)
    expect(counter_number(page)).to_have_text("0")
    expect(counter_number(page)).to_be_visible()
    expect(frame(page, "#counter-frame").locator("#zv-status")).to_have_text(updated)
    expect(frame(page, "#counter-frame").locator("#zv-live-count")).to_have_text("0")


# Counts the sockets opened and notes each one's close code, before any script of the page.
RECORD_CLOSES = """
window.opened = 0;
window.closes = [];
const Native = window.WebSocket;
window.WebSocket = function (url, protocols) {
  window.opened += 1;
  const socket = new Native(url, protocols);
  socket.addEventListener("close", (event) => window.closes.push(event.code));
  return socket;
};
window.WebSocket.prototype = Native.prototype;
"""


def test_an_unknown_code_says_so_and_stops(owner, live_url, website):
    website.enabled = False
    website.save()
    owner.add_init_script(RECORD_CLOSES)
    page = open_customer_page(
        owner, customer_html(live_url, website, body=counter_script(live_url, website))
    )

    expect(page.locator("zenovay-live .status")).to_have_text("Unknown widget")
    expect(page.locator("zenovay-live .w")).to_have_attribute("data-state", "gone")
    expect(counter_number(page)).to_be_hidden()
    # The socket was refused with 4404, and none was opened after that (a socket that
    # failed on the way, with another code, would have been retried before it).
    opened, closes = page.evaluate("[window.opened, window.closes]")
    assert closes and closes[-1] == 4404, closes
    assert opened == len(closes), (opened, closes)


def test_an_unknown_iframe_shows_a_friendly_page(owner, live_url, website):
    website.enabled = False
    website.save()
    body = dashboard_iframe(live_url, website)
    page = open_customer_page(owner, customer_html(live_url, website, body=body))

    expect(frame(page, "#dashboard-frame").locator("main")).to_contain_text("Unknown widget")


# --- The customer's page is theirs: its CSS cannot break the widget, nor the widget the page.

HOSTILE_CSS = """<style>
  * { color: red !important; font-size: 100px !important; line-height: 3 !important; }
  span, b, div, p, zenovay-live, zenovay-dashboard { display: none !important; }
  :root { --bg: red; --fg: red; }
</style>"""


def test_hostile_page_css_does_not_break_the_counter(owner, live_url, website):
    body = (
        '<p id="own">The page\'s own paragraph</p>'
        '<button id="own-button" onclick="this.textContent = \'clicked\'">Click</button>'
        + counter_script(live_url, website)
    )
    errors = []
    owner.on("page", lambda page: page.on("pageerror", lambda error: errors.append(error)))
    page = open_customer_page(owner, customer_html(live_url, website, head=HOSTILE_CSS, body=body))

    number = counter_number(page)
    expect(number).to_have_text("0")
    expect(number).to_be_visible()
    box = number.bounding_box()
    assert box is not None and box["height"] < 40
    assert number.evaluate("n => getComputedStyle(n).color") == "rgb(15, 23, 42)"
    # The page is as its author made it: its rules still apply to its own elements.
    expect(page.locator("#own")).to_be_hidden()
    page.locator("#own-button").click()
    expect(page.locator("#own-button")).to_have_text("clicked")
    new_globals = page.evaluate(
        "Object.keys(window).filter(k => !globalsBefore.includes(k) && k !== 'globalsBefore')"
    )
    assert new_globals == []
    assert errors == []


def test_the_counter_renders_where_its_tag_stands(owner, live_url, website):
    body = f'<p id="before">Before</p>{counter_script(live_url, website)}<p id="after">After</p>'
    page = open_customer_page(owner, customer_html(live_url, website, body=body))

    expect(counter_number(page)).to_have_text("0")
    order = page.evaluate("[...document.body.children].map(e => e.id || e.tagName.toLowerCase())")
    assert order.index("before") < order.index("zenovay-live") < order.index("after")
    assert page.evaluate("document.querySelector('zenovay-live').shadowRoot.mode") == "open"


def test_script_options_theme_size_and_label(owner, live_url, website):
    attrs = ' data-theme="dark" data-size="compact" data-label="people shopping"'
    page = open_customer_page(
        owner, customer_html(live_url, website, body=counter_script(live_url, website, attrs))
    )

    expect(counter_number(page)).to_have_text("0")
    expect(page.locator("zenovay-live .w")).to_have_class("w dark compact")
    expect(page.locator("zenovay-live .label")).to_have_text("people shopping")


# --- Screenshots for people to look at: `pytest -m screenshots` writes var/screenshots/.

COUNTRIES = ["US", "US", "US", "DE", "DE", "GB", "GB", "FR", "JP", "IN", "BR", "US", "DE", "CA"]
PATHS = [
    "/",
    "/",
    "/pricing",
    "/blog/realtime-analytics-without-cookies-a-long-title",
    "/docs",
    "/",
    "/pricing",
    "/checkout",
    "/docs/getting-started",
    "/",
]


def seed_traffic(website: Website, live: int = 23, earlier: int = 180) -> None:
    """A plausible site: visitors now from several countries on several pages, more today."""
    now = dt.datetime.now(dt.UTC)
    day_start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    earliest = max(day_start, now - dt.timedelta(hours=6))
    for i in range(earlier):
        when = earliest + (now - dt.timedelta(minutes=6) - earliest) * (i / earlier)
        if when < day_start:
            continue
        send_pageview(website, f"10.1.{i // 250}.{i % 250}", "GB", "/", when)
    for i in range(live):
        path = PATHS[i % len(PATHS)]
        send_pageview(website, f"10.2.0.{i}", COUNTRIES[i % len(COUNTRIES)], path, now)
        if i % 3 == 0:
            send_pageview(website, f"10.2.0.{i}", COUNTRIES[i % len(COUNTRIES)], "/pricing", now)


def send_pageview(website: Website, ip: str, country: str, path: str, when: dt.datetime) -> None:
    record(website, when, sender(ip, country=country), path)


GALLERY_CSS = """<style>
  body { display: flex; flex-wrap: wrap; align-items: flex-start; margin: 0;
         font: 15px/1.5 Georgia, serif; background: #f4f4f5; }
  h1 { width: 100%; margin: 8px 20px; }
  .cell { padding: 20px; }
  .cell.light { background: #ffffff; }
  .cell.dark { background: #020617; color: #e2e8f0; }
  .cell iframe { border: 0; display: block; }
</style>"""

VARIANTS = [("light", ""), ("dark", ""), ("light", "compact"), ("dark", "compact")]


def gallery_cell(name: str, theme: str, widget: str) -> str:
    return f'<div class="cell {theme}" id="{name}">{widget}</div>'


def gallery(live_url: str, website: Website, counter_text: bool) -> str:
    cells = []
    for theme, size in VARIANTS:
        suffix = f"-{size}" if size else ""
        attrs = f' data-theme="{theme}"' + (f' data-size="{size}"' if size else "")
        query = f"?theme={theme}" + (f"&size={size}" if size else "")
        prefix = "Right now " if counter_text else ""
        cells += [
            gallery_cell(
                f"counter-script-{theme}{suffix}",
                theme,
                prefix + counter_script(live_url, website, attrs),
            ),
            gallery_cell(
                f"counter-iframe-{theme}{suffix}",
                theme,
                counter_iframe(live_url, website, query).replace('id="counter-frame" ', ""),
            ),
            gallery_cell(
                f"dashboard-script-{theme}{suffix}",
                theme,
                f'<div style="width:320px">{dashboard_script(live_url, website, attrs)}</div>',
            ),
            gallery_cell(
                f"dashboard-iframe-{theme}{suffix}",
                theme,
                dashboard_iframe(live_url, website, query).replace('id="dashboard-frame" ', ""),
            ),
        ]
    return customer_html(live_url, website, head=GALLERY_CSS, body="".join(cells))


@pytest.mark.screenshots
def test_screenshots(owner, live_url, website):
    seed_traffic(website)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page = open_customer_page(owner, gallery(live_url, website, counter_text=True))
    expect(page.locator("zenovay-live .w[data-state=live]")).to_have_count(4)
    expect(page.locator("zenovay-dashboard .w[data-state=live]")).to_have_count(4)
    for frame_element in page.locator("iframe").all():
        inner = frame_element.content_frame
        expect(inner.locator("#zv")).to_have_attribute("data-state", "live")
    page.evaluate("document.fonts.ready")
    page.wait_for_timeout(800)  # the pulse of the first numbers settles: a picture, not a test
    for cell in page.locator(".cell").all():
        cell.screenshot(path=SCREENSHOTS / f"{cell.get_attribute('id')}.png")
    page.screenshot(path=SCREENSHOTS / "gallery.png", full_page=True)


@pytest.mark.screenshots
def test_screenshots_of_states(owner, live_url, website, other_website):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    seed_traffic(website, earlier=0)
    empty = gallery_cell(
        "empty",
        "light",
        f'<div style="width:320px">{dashboard_script(live_url, other_website)}</div>'
        + dashboard_iframe(live_url, other_website),
    )
    unknown = Website(tracking_code="ZV_AAAAAAAAAAA", website_id="ws_unknown1")
    missing = gallery_cell(
        "unknown",
        "light",
        counter_script(live_url, unknown)
        + counter_iframe(live_url, unknown)
        + dashboard_iframe(live_url, unknown, "?theme=dark"),
    )
    offline = gallery_cell(
        "offline",
        "dark",
        counter_script(live_url, website, ' data-theme="dark"')
        + '<div style="width:320px">'
        + dashboard_script(live_url, website, ' data-theme="dark"')
        + "</div>",
    )
    page = open_customer_page(
        owner, customer_html(live_url, website, head=GALLERY_CSS, body=empty + missing + offline)
    )
    expect(page.locator("zenovay-live .status").first).to_have_text("Unknown widget")
    expect(page.locator("#empty zenovay-dashboard li").first).to_have_text("No visitors right now")
    expect(page.locator("#offline zenovay-live .w")).to_have_attribute("data-state", "live")
    for name in ("empty", "unknown"):
        page.locator(f"#{name}").screenshot(path=SCREENSHOTS / f"state-{name}.png")
    owner.set_offline(True)
    expect(page.locator("#offline zenovay-dashboard .status")).to_have_text(re.compile("updated"))
    page.locator("#offline").screenshot(path=SCREENSHOTS / "state-offline.png")


# --- The iframe snippets' sizes fit what the widgets draw.


def iframe_snippets(live_url: str, website: Website) -> dict[str, str]:
    """The iframe snippets as the admin and the settings page show them, for this server."""
    from django.conf import settings

    from zenovay import snippets

    return {
        s["key"]: s["code"].replace(settings.ZENOVAY_PUBLIC_URL, live_url)
        for s in snippets.all_snippets(website)
        if s["key"].endswith("-iframe")
    }


# The frame's inner size, its document's scroll size, and how far right and down the widget
# (the counter's pill, the dashboard's card and what is in it) draws.
MEASURE = """() => {
    const doc = document.documentElement;
    const drawn = [...document.querySelectorAll('#zv > *')].map(e => e.getBoundingClientRect());
    return {
        frame: [innerWidth, innerHeight],
        scroll: [doc.scrollWidth, doc.scrollHeight],
        content: [Math.ceil(document.getElementById('zv').getBoundingClientRect().right),
                  Math.ceil(Math.max(...drawn.map(r => r.bottom)))],
    };
}"""


@pytest.mark.parametrize("key", ["counter-iframe", "dashboard-iframe"])
def test_the_iframe_snippets_fit_the_widget_without_scrollbars_or_empty_space(
    owner, live_url, website, key
):
    seed_traffic(website, live=200, earlier=0)  # three-digit numbers, five rows in each list
    snippet = iframe_snippets(live_url, website)[key]
    page = open_customer_page(owner, customer_html(live_url, website, body=snippet))
    inner = page.frame_locator("iframe")
    expect(inner.locator("#zv")).to_have_attribute("data-state", "live")
    page.evaluate("document.fonts.ready")

    size = page.locator("iframe").content_frame.locator("html").evaluate(MEASURE)
    assert size["scroll"] == size["frame"]  # no scrollbars
    width, height = size["frame"]
    drawn_width, drawn_height = size["content"]
    assert 0 <= width - drawn_width <= 24 and 0 <= height - drawn_height <= 24, size
