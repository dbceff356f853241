"""The seed's own JavaScript usage, run unchanged on a customer page in Chromium.

The customer page (http://customer.example/, another origin) carries the seed's
LiveVisitorCounter, updateDashboard and fetchWithRetry, pointed at the live server
instead of api.zenovay.com. The numbers they show must be the server's.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json

import pytest
from playwright.sync_api import expect

from tests.factories import DESKTOP_UA, record, sender

pytestmark = pytest.mark.browser

SEED_CODE = """
class LiveVisitorCounter {
  constructor(trackingCode, elementId) {
    this.trackingCode = trackingCode;
    this.element = document.getElementById(elementId);
    this.intervalId = null;
  }
  async fetchCount() {
    try {
      const response = await fetch(`BASE/e/live/${this.trackingCode}`);
      const data = await response.json();
      this.updateDisplay(data.liveCount);
    } catch (error) {
      console.error('Failed to fetch visitor count:', error);
    }
  }
  updateDisplay(count) {
    if (this.element) {
      this.element.textContent = count.toLocaleString();
      this.element.classList.add('updated');
      setTimeout(() => this.element.classList.remove('updated'), 300);
    }
  }
  start(intervalMs = 30000) {
    this.fetchCount();
    this.intervalId = setInterval(() => this.fetchCount(), intervalMs);
  }
  stop() { if (this.intervalId) { clearInterval(this.intervalId); } }
}

async function updateDashboard(websiteId) {
  try {
    const response = await fetch(`BASE/e/realtime/${websiteId}`);
    const data = await response.json();
    document.getElementById('live-visitors').textContent = data.visitors.current;
    document.getElementById('today-visitors').textContent = data.visitors.today.toLocaleString();
    document.getElementById('live-pageviews').textContent = data.pageViews.current;
    const countriesList = document.getElementById('top-countries');
    countriesList.innerHTML = data.countries.slice(0, 5)
      .map(c => `<li>${c.name}: ${c.count}</li>`).join('');
    const pagesList = document.getElementById('top-pages');
    pagesList.innerHTML = data.topPages.slice(0, 5)
      .map(p => `<li>${p.path}: ${p.visitors}</li>`).join('');
  } catch (error) {
    console.error('Dashboard update failed:', error);
  }
}

async function fetchWithRetry(url, maxRetries = 3) {
  for (let i = 0; i < maxRetries; i++) {
    try {
      const response = await fetch(url);
      if (response.status === 429) {
        const retryAfter = response.headers.get('Retry-After') || '60';
        await new Promise(r => setTimeout(r, parseInt(retryAfter) * 1000));
        continue;
      }
      if (!response.ok) { throw new Error(`HTTP ${response.status}`); }
      return await response.json();
    } catch (error) {
      if (i === maxRetries - 1) throw error;
      await new Promise(r => setTimeout(r, Math.pow(2, i) * 1000));
    }
  }
}
"""

# Waits the page asks for are recorded, then shortened, so a 60-second Retry-After
# can be checked without waiting a minute.
RECORD_WAITS = """
window.waits = [];
const realSetTimeout = window.setTimeout.bind(window);
window.setTimeout = (fn, ms, ...rest) => {
  if (ms >= 1000) window.waits.push(ms);
  return realSetTimeout(fn, Math.min(ms, 20), ...rest);
};
"""


def customer_page(base: str) -> str:
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>Customer</title>
<script>{RECORD_WAITS}</script><script>{SEED_CODE.replace("BASE", base)}</script></head>
<body><p>Visitors online: <span id="visitor-count">…</span></p>
<p><span id="live-visitors"></span> live, <span id="today-visitors"></span> today,
<span id="live-pageviews"></span> pageviews</p>
<ul id="top-countries"></ul><ul id="top-pages"></ul></body></html>"""


@pytest.fixture
def traffic(website):
    """Two visitors in the last minutes: one from GB on /pricing, one from DE on /."""
    now = dt.datetime.now(dt.UTC)
    for ip, country, path, ago in [
        ("81.2.69.160", "GB", "/", 120),
        ("81.2.69.160", "GB", "/pricing", 60),
        ("5.9.0.1", "DE", "/", 30),
    ]:
        record(website, now - dt.timedelta(seconds=ago), sender(ip, country=country), path)
    return website


@contextlib.contextmanager
def customer_tab(browser, base: str):
    context = browser.new_context(user_agent=DESKTOP_UA)
    page = context.new_page()
    page.route(
        "http://customer.example/",
        lambda route: route.fulfill(body=customer_page(base), content_type="text/html"),
    )
    page.goto("http://customer.example/")
    yield page
    context.close()


@pytest.fixture
def page(browser, live_url):
    with customer_tab(browser, live_url) as tab:
        yield tab


@pytest.fixture
def own_page(browser, own_server_url):
    """The customer page against a server of its own: the test spends a whole budget."""
    with customer_tab(browser, own_server_url) as tab:
        yield tab


def test_the_live_counter_class_shows_the_live_count(page, traffic):
    page.evaluate(
        f"new LiveVisitorCounter({json.dumps(traffic.tracking_code)}, 'visitor-count').start(1000)"
    )
    expect(page.locator("#visitor-count")).to_have_text("2")


def test_update_dashboard_shows_visitors_pages_and_countries(page, traffic):
    page.evaluate(f"updateDashboard({json.dumps(traffic.website_id)})")
    expect(page.locator("#live-visitors")).to_have_text("2")
    expect(page.locator("#today-visitors")).to_have_text("2")
    expect(page.locator("#live-pageviews")).to_have_text("3")
    expect(page.locator("#top-countries li")).to_have_text(["Germany: 1", "United Kingdom: 1"])
    expect(page.locator("#top-pages li")).to_have_text(["/: 1", "/pricing: 1"])


def test_fetch_with_retry_returns_the_body(page, traffic, live_url):
    data = page.evaluate(f"fetchWithRetry('{live_url}/e/live/{traffic.tracking_code}')")
    assert data["liveCount"] == 2


def test_fetch_with_retry_waits_for_the_servers_retry_after(own_page, traffic, own_server_url):
    page = own_page
    status = f"{own_server_url}/e/{traffic.tracking_code}/status"
    codes = page.evaluate(
        f"""async () => {{
          const codes = [];
          for (let i = 0; i < 100; i++) codes.push((await fetch('{status}')).status);
          const refused = await fetch('{status}');
          return {{codes, refused: refused.status, retryAfter: refused.headers.get('Retry-After')}};
        }}"""
    )
    assert set(codes["codes"]) == {200}
    assert codes["refused"] == 429
    retry_after = int(codes["retryAfter"])  # readable cross-origin: Expose-Headers works
    assert 1 <= retry_after <= 60
    page.evaluate("window.waits = []")
    result = page.evaluate(f"fetchWithRetry('{status}')")
    assert result is None  # three 429s: the seed's helper gives up without data
    waits = page.evaluate("window.waits")
    assert len(waits) == 3
    assert all(abs(wait - retry_after * 1000) <= 1000 for wait in waits)
