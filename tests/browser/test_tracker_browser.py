"""The tracker (static/z.js) in a real headless Chromium, end to end against a live server.

The customer's page is served from another origin (http://shop.example/, answered by
`page.route`), while z.js and every POST /e/collect are real requests to the Daphne
process of `live_url`, which writes to the test database read here through the ORM.

Why Chromium is started here and not with `playwright.chromium.launch()`: Playwright
turns on focus emulation for every page it launches, and Chromium implements that by
marking the page as captured, which keeps `document.visibilityState` "visible" forever
(another tab in front, a minimised window: nothing hides it). Connecting over CDP with
`no_defaults=True` leaves pages of the browser's default context alone, so putting
another tab in front really hides the shop's page, as it would for a visitor.
"""

from __future__ import annotations

import gzip
import re
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Request, sync_playwright

from tests.factories import DESKTOP_UA
from zenovay.models import Event, Session, Website

CHROMIUM = "/usr/bin/chromium"
SHOP = "http://shop.example"
LOCAL = "http://localhost:8123"
TIMEOUT = 10.0
T = TypeVar("T")


# --- The browser: one headless Chromium for the module, driven over CDP.


@pytest.fixture(scope="module")
def browser(tmp_path_factory) -> Iterator[Browser]:
    profile = tmp_path_factory.mktemp("chromium-profile")
    with (profile / "chromium.log").open("wb") as log:
        process = subprocess.Popen(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--no-first-run",
                "--no-default-browser-check",
                # The live server is on 127.0.0.1; a public page may not reach a loopback address
                # without the visitor's permission (Local Network Access). A real Zenovay server
                # is public, so this check is a test artefact, not something the tracker handles.
                "--disable-features=LocalNetworkAccessChecks",
                # The server drops headless user agents as bots; a visitor's browser is not one.
                f"--user-agent={DESKTOP_UA}",
                f"--user-data-dir={profile}",
                "--remote-debugging-port=0",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    try:
        port, path = wait_for(lambda: _devtools_port(process, profile), "Chromium's DevTools port")
        # While Playwright's sync API runs, this thread has an asyncio loop marked as
        # running, which Django takes for async code; the ORM calls here are synchronous.
        with pytest.MonkeyPatch.context() as patch, sync_playwright() as playwright:
            patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
            connected = playwright.chromium.connect_over_cdp(
                f"ws://127.0.0.1:{port}{path}", no_defaults=True
            )
            yield connected
            connected.close()
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _devtools_port(process: subprocess.Popen, profile: Path) -> list[str] | None:
    """The port and browser path Chromium writes to its profile once it listens."""
    if process.poll() is not None:
        log = (profile / "chromium.log").read_text(errors="replace")[-2000:]
        raise RuntimeError(f"{CHROMIUM} exited with {process.returncode}: {log}")
    try:
        lines = (profile / "DevToolsActivePort").read_text().splitlines()
    except FileNotFoundError:
        return None
    return lines[:2] if len(lines) >= 2 else None


@pytest.fixture
def context(browser: Browser) -> BrowserContext:
    """The default context: the only one whose pages Playwright leaves free to be hidden."""
    return browser.contexts[0]


@pytest.fixture
def page(context: BrowserContext) -> Iterator[Page]:
    """A new tab; it and any tab the test opens are closed afterwards."""
    before = list(context.pages)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT * 1000)
    yield page
    for opened in context.pages:
        if opened not in before:
            opened.close()


# --- Helpers.


def wait_for(
    condition: Callable[[], T | None], what: str, timeout: float = TIMEOUT, page: Page | None = None
) -> T:
    """Poll `condition` until it returns something truthy; fail after `timeout` seconds.

    A condition fed by a page's event handlers needs `page`: Playwright runs handlers
    only while one of its calls is waiting, so the poll waits through the page."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        if page is None:
            time.sleep(0.02)
        else:
            page.wait_for_timeout(20)


def shop_html(live_url: str, website: Website, *, before: str = "", attrs: str = "") -> str:
    """A customer's page: the documented snippet, plus a log of visibility changes."""
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Shop</title>
<script>
  window.visibility = [document.visibilityState];
  document.addEventListener("visibilitychange", function () {{
    window.visibility.push(document.visibilityState);
  }});
</script>
{before}
<script async src="{live_url}/z.js" data-code="{website.tracking_code}"{attrs}></script>
</head><body><h1>Shop</h1></body></html>"""


def serve(page: Page, origin: str, html: str) -> None:
    """Answer every page request on `origin` with `html`; nothing else is intercepted.

    A pattern, not a Python predicate: Playwright matches it in its driver, whereas a
    predicate would hold every request (the tracker's too) until the sync API is next
    called, and the test waits on the database, not on Playwright.
    """
    page.route(
        re.compile("^" + re.escape(origin) + "/"),
        lambda route: route.fulfill(status=200, content_type="text/html", body=html),
    )


def open_page(page: Page, url: str) -> None:
    page.goto(url)
    page.wait_for_function("typeof window.zenovay === 'function'")


def stored(website: Website, **filters) -> list[tuple[str, str]]:
    events = Event.objects.filter(website=website, **filters).order_by("id")
    return list(events.values_list("type", "path"))


def collect_requests(page: Page, live_url: str) -> list[Request]:
    sent: list[Request] = []
    page.on("request", lambda r: sent.append(r) if r.url.startswith(live_url + "/e/") else None)
    return sent


# --- Pageviews, navigation and engaged time.


@pytest.mark.browser
def test_page_load_records_a_pageview(page, live_url, website):
    serve(page, SHOP, shop_html(live_url, website))
    open_page(page, f"{SHOP}/")

    wait_for(lambda: stored(website), "the pageview")

    event = Event.objects.get(website=website)
    assert (event.type, event.hostname, event.path) == (Event.PAGEVIEW, "shop.example", "/")
    assert (event.browser, event.device) == ("Chrome", "desktop")


@pytest.mark.browser
def test_pushstate_navigation_records_a_second_pageview(page, live_url, website):
    serve(page, SHOP, shop_html(live_url, website))
    open_page(page, f"{SHOP}/")
    wait_for(lambda: stored(website, type=Event.PAGEVIEW), "the first pageview")

    page.evaluate("history.pushState({}, '', '/pricing')")

    wait_for(lambda: len(stored(website, type=Event.PAGEVIEW)) >= 2, "the second pageview")
    assert stored(website, type=Event.PAGEVIEW) == [
        (Event.PAGEVIEW, "/"),
        (Event.PAGEVIEW, "/pricing"),
    ]
    session = Session.objects.get(website=website)
    assert (session.pageviews, session.entry_path, session.exit_path) == (2, "/", "/pricing")


@pytest.mark.browser
def test_hiding_the_page_records_the_engaged_time_of_the_current_page(
    page, context, live_url, website
):
    serve(page, SHOP, shop_html(live_url, website))
    open_page(page, f"{SHOP}/")
    wait_for(lambda: stored(website, type=Event.PAGEVIEW), "the first pageview")
    page.evaluate("history.pushState({}, '', '/pricing')")
    wait_for(lambda: len(stored(website, type=Event.PAGEVIEW)) == 2, "the second pageview")

    # The visitor switches to another tab: the shop's page becomes hidden.
    context.new_page().bring_to_front()

    wait_for(lambda: stored(website, type=Event.ENGAGEMENT, path="/pricing"), "the engagement")
    assert page.evaluate("window.visibility") == ["visible", "hidden"]
    assert stored(website, type=Event.PAGEVIEW) == [
        (Event.PAGEVIEW, "/"),
        (Event.PAGEVIEW, "/pricing"),
    ]
    # Leaving "/" for "/pricing" sent the time spent on "/"; hiding, the time on "/pricing".
    engagements = Event.objects.filter(website=website, type=Event.ENGAGEMENT).order_by("id")
    assert [(e.path, e.engaged_ms > 0) for e in engagements] == [("/", True), ("/pricing", True)]
    session = Session.objects.get(website=website)
    assert session.pageviews == 2
    assert set(engagements.values_list("visitor", flat=True)) == {session.visitor}
    assert session.last_event_at == engagements.last().ts  # hiding extended the session


# --- Custom events.


@pytest.mark.browser
def test_custom_event_is_stored_with_its_name_and_props(page, live_url, website):
    serve(page, SHOP, shop_html(live_url, website))
    open_page(page, f"{SHOP}/")

    page.evaluate("zenovay('signup', {plan: 'pro'})")

    wait_for(lambda: stored(website, type=Event.CUSTOM), "the custom event")
    event = Event.objects.get(website=website, type=Event.CUSTOM)
    assert (event.name, event.props, event.path) == ("signup", {"plan": "pro"}, "/")
    assert Session.objects.get(website=website).custom_events == 1


@pytest.mark.browser
def test_custom_event_queued_before_the_script_loads_is_sent(page, live_url, website):
    # The queue as the README documents it, then a call before z.js (async) has run.
    queue = (
        "<script>window.zenovay=window.zenovay||function(){(zenovay.q=zenovay.q||[])"
        ".push(arguments)}</script>\n<script>zenovay('signup', {plan: 'pro'})</script>"
    )
    serve(page, SHOP, shop_html(live_url, website, before=queue))
    open_page(page, f"{SHOP}/")

    wait_for(lambda: stored(website, type=Event.CUSTOM), "the queued custom event")
    event = Event.objects.get(website=website, type=Event.CUSTOM)
    assert (event.name, event.props) == ("signup", {"plan": "pro"})


# --- Local development pages.


@pytest.mark.browser
@pytest.mark.parametrize(
    "origin",
    [
        "http://localhost:8123",
        "http://127.0.0.1:8123",
        "http://[::1]:8123",
        "http://shop.localhost",
    ],
)
def test_page_on_a_local_host_sends_nothing(page, live_url, website, origin):
    sent = collect_requests(page, live_url)
    serve(page, origin, shop_html(live_url, website))
    open_page(page, f"{origin}/")

    page.evaluate("history.pushState({}, '', '/pricing'); zenovay('signup')")
    # A request the page makes after the tracker's: once it is seen, any earlier one would be.
    with page.expect_request(f"{live_url}/healthz"):
        page.evaluate(f"fetch('{live_url}/healthz', {{mode: 'no-cors'}})")

    assert [request.url for request in sent] == []
    assert stored(website) == []


@pytest.mark.browser
def test_localhost_page_with_data_allow_localhost_sends_a_pageview(page, live_url, website):
    website.extra_hostnames = "localhost"
    website.save()
    sent = collect_requests(page, live_url)
    serve(page, LOCAL, shop_html(live_url, website, attrs=" data-allow-localhost"))
    open_page(page, f"{LOCAL}/")

    wait_for(lambda: stored(website), "the pageview from localhost")
    assert Event.objects.get(website=website).hostname == "localhost"
    # The page's requests are seen, so the test above would see a pageview's.
    assert [request.url for request in sent] == [f"{live_url}/e/collect"]


@pytest.mark.browser
def test_public_host_that_merely_starts_with_localhost_is_tracked(page, live_url, website):
    origin = "http://localhost.shop.example"
    serve(page, origin, shop_html(live_url, website))
    open_page(page, f"{origin}/")

    wait_for(lambda: stored(website), "the pageview from localhost.shop.example")
    assert Event.objects.get(website=website).hostname == "localhost.shop.example"


# --- What the tracker says in the console: one line when a page is not counted.


def zenovay_lines(page: Page) -> list[tuple[str, str]]:
    """The console lines the tracker writes, as (type, text), gathered from now on."""
    lines: list[tuple[str, str]] = []
    page.on(
        "console",
        lambda m: lines.append((m.type, m.text)) if m.text.startswith("Zenovay:") else None,
    )
    return lines


def settle(page: Page, live_url: str) -> None:
    """A round trip to the server from the page: the tracker's earlier answers, and what it
    said about them, have been handled by the time it returns."""
    page.evaluate(f"fetch('{live_url}/healthz', {{mode: 'no-cors'}}).then(() => null)")


def navigate_and_wait_for_collect(page: Page, live_url: str) -> None:
    with page.expect_event("requestfinished", lambda r: r.url == f"{live_url}/e/collect"):
        page.evaluate("history.pushState({}, '', '/pricing')")
    settle(page, live_url)


@pytest.mark.browser
def test_a_skipped_local_page_says_why_once_in_the_console(page, live_url, website):
    lines = zenovay_lines(page)
    serve(page, LOCAL, shop_html(live_url, website))
    open_page(page, f"{LOCAL}/")

    page.evaluate("history.pushState({}, '', '/pricing'); zenovay('signup')")
    settle(page, live_url)

    assert lines == [
        (
            "info",
            "Zenovay: pages on localhost are not counted. To test on this computer, add "
            "data-allow-localhost to the script tag and localhost to the website's other "
            "host names.",
        )
    ]


@pytest.mark.browser
def test_a_page_opted_out_in_this_browser_says_so(page, live_url, website):
    lines = zenovay_lines(page)
    # An origin of its own: the module's browser profile keeps localStorage between tests.
    origin = "http://ignored.shop.example"
    opt_out = "<script>localStorage.setItem('zenovay_ignore', 'true')</script>"
    serve(page, origin, shop_html(live_url, website, before=opt_out))
    try:
        open_page(page, f"{origin}/")
        page.evaluate("history.pushState({}, '', '/pricing')")
        settle(page, live_url)
    finally:
        page.evaluate("localStorage.clear()")

    assert lines == [("info", "Zenovay: this browser is ignored (localStorage zenovay_ignore).")]
    assert stored(website) == []


@pytest.mark.browser
def test_a_refused_event_says_the_status_and_error_code_once(page, live_url, website):
    lines = zenovay_lines(page)
    # Tested on this computer with the attribute, but the website does not list localhost.
    serve(page, LOCAL, shop_html(live_url, website, attrs=" data-allow-localhost"))
    open_page(page, f"{LOCAL}/")
    wait_for(lambda: lines, "the console line", page=page)

    navigate_and_wait_for_collect(page, live_url)  # refused again, said no more

    assert lines == [
        (
            "warning",
            "Zenovay: collect answered 403 forbidden: The page's host is not shop.example "
            "or one of its hostnames.",
        )
    ]
    assert stored(website) == []


@pytest.mark.browser
def test_an_ignored_event_says_why_once(page, live_url, website):
    website.excluded_ips = "127.0.0.1"
    website.save()
    lines = zenovay_lines(page)
    serve(page, SHOP, shop_html(live_url, website))
    open_page(page, f"{SHOP}/")
    wait_for(lambda: lines, "the console line", page=page)

    navigate_and_wait_for_collect(page, live_url)

    assert lines == [("info", "Zenovay: this page was not counted (excluded_ip).")]


@pytest.mark.browser
def test_a_counted_page_says_nothing(page, live_url, website):
    lines = zenovay_lines(page)
    serve(page, SHOP, shop_html(live_url, website))
    open_page(page, f"{SHOP}/")
    wait_for(lambda: stored(website), "the pageview")

    navigate_and_wait_for_collect(page, live_url)

    assert len(stored(website, type=Event.PAGEVIEW)) == 2
    assert lines == []


# --- The script itself, over plain HTTP.


def test_script_is_cacheable_javascript_under_2_kb_gzipped(live_url):
    with urllib.request.urlopen(f"{live_url}/z.js", timeout=5) as response:
        body = response.read()
        content_type = response.headers["Content-Type"]
        cache_control = response.headers["Cache-Control"]

    assert content_type.split(";")[0].strip() in ("text/javascript", "application/javascript")
    max_age = [d.strip() for d in cache_control.split(",") if d.strip().startswith("max-age=")]
    assert max_age and int(max_age[0].removeprefix("max-age=")) > 0, cache_control
    assert len(gzip.compress(body, compresslevel=9)) <= 2048
