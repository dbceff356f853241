"""The widgets over HTTP, without a browser: scripts, iframe pages, fragments, framing, cookies."""

from __future__ import annotations

import gzip
import re
import urllib.request

import pytest
from asgiref.sync import async_to_sync
from django.db import OperationalError

from tests.factories import sender, visit
from widgets import fragments
from zenovay import push, sites
from zenovay.models import Website

pytestmark = pytest.mark.django_db

SCRIPT_BUDGET = 3 * 1024 + 256  # gzipped bytes: a widget must not weigh on the customer's page


@pytest.fixture(autouse=True)
def _fresh_snapshots():
    """Snapshots are memoised per website pk for a second; pks repeat across tests."""
    push.reset()
    yield
    push.reset()


def pages(website: Website) -> dict[str, str]:
    return {
        "live": f"/widgets/live/{website.tracking_code}",
        "dashboard": f"/widgets/dashboard/{website.website_id}",
    }


def assert_framable(response) -> None:
    assert response["Content-Security-Policy"] == "frame-ancestors *"
    assert "X-Frame-Options" not in response


# --- The scripts.


@pytest.mark.parametrize("name", ["live.js", "dashboard.js"])
def test_the_scripts_are_cacheable_javascript_within_budget(client, name):
    response = client.get(f"/widgets/{name}")

    assert response.status_code == 200
    assert response["Content-Type"] == "text/javascript; charset=utf-8"
    assert response["Cache-Control"] == "public, max-age=86400"
    assert response["Access-Control-Allow-Origin"] == "*"
    assert response["ETag"]
    assert len(gzip.compress(response.content, compresslevel=9)) <= SCRIPT_BUDGET


@pytest.mark.parametrize("name", ["live.js", "dashboard.js"])
def test_a_matching_etag_gets_a_304(client, name):
    etag = client.get(f"/widgets/{name}")["ETag"]

    response = client.get(f"/widgets/{name}", headers={"If-None-Match": etag})

    assert response.status_code == 304
    assert response["Cache-Control"] == "public, max-age=86400"


@pytest.mark.parametrize("name", ["live.js", "dashboard.js"])
def test_scripts_are_served_without_comment_lines_or_indentation(client, name):
    served = client.get(f"/widgets/{name}").content.decode()

    assert served.startswith("/*! Zenovay")
    assert not re.search(r"(?m)^\s*//", served)
    assert not re.search(r"(?m)^[ \t]", served)


@pytest.mark.parametrize("name", ["live.js", "dashboard.js"])
def test_scripts_never_write_html(client, name):
    served = client.get(f"/widgets/{name}").content.decode()

    assert "innerHTML" not in served
    assert "insertAdjacentHTML" not in served
    assert "textContent" in served


# --- The iframe pages: framing, options, first paint.


@pytest.mark.parametrize("kind", ["live", "dashboard"])
def test_widget_pages_may_be_framed_by_any_site(client, website, kind):
    response = client.get(pages(website)[kind])

    assert response.status_code == 200
    assert response["Content-Type"] == "text/html; charset=utf-8"
    assert_framable(response)


def test_other_pages_still_refuse_to_be_framed(client, db):
    response = client.get("/admin/login/")

    assert response["X-Frame-Options"] == "DENY"
    assert "frame-ancestors" not in response.get("Content-Security-Policy", "")


@pytest.mark.parametrize("kind", ["live", "dashboard"])
@pytest.mark.parametrize("suffix", ["", "/fragment"])
def test_widget_pages_set_no_cookies(client, website, kind, suffix):
    response = client.get(pages(website)[kind] + suffix)

    assert response.status_code == 200
    assert "Set-Cookie" not in response
    assert not response.cookies


@pytest.mark.parametrize(
    "path",
    [
        "/widgets/live/ZV_AAAAAAAAAAA",
        "/widgets/live/garbage",
        "/widgets/live/ZV_AAAAAAAAAAA/fragment",
        "/widgets/dashboard/ws_unknown1",
        "/widgets/dashboard/x",
        "/widgets/dashboard/ws_unknown1/fragment",
    ],
)
def test_unknown_ids_get_a_friendly_page_inside_the_frame(client, db, path):
    response = client.get(path)

    assert response.status_code == 404
    assert response["Content-Type"] == "text/html; charset=utf-8"
    assert b"Unknown widget" in response.content
    assert_framable(response)
    assert not response.cookies


@pytest.mark.parametrize("suffix", ["", "/fragment"])
def test_a_database_outage_is_a_framable_503_not_a_crash(client, website, monkeypatch, suffix):
    def down(ident: str) -> None:
        raise OperationalError("connection refused")

    monkeypatch.setattr(sites, "by_code", down)

    response = client.get(pages(website)["live"] + suffix)

    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert b"Temporarily unavailable" in response.content
    assert_framable(response)


@pytest.mark.parametrize("kind", ["live", "dashboard"])
def test_a_disabled_website_has_no_widget(client, website, kind):
    website.enabled = False
    website.save()

    assert client.get(pages(website)[kind]).status_code == 404


@pytest.mark.parametrize("kind", ["live", "dashboard"])
def test_widget_pages_only_answer_safe_methods(client, website, kind):
    assert client.post(pages(website)[kind]).status_code == 405


@pytest.mark.parametrize(
    ("query", "html_class"),
    [
        ("", "light"),
        ("?theme=dark", "dark"),
        ("?theme=auto&size=compact", "auto compact"),
        ("?theme=<b>&size=huge", "light"),
    ],
)
@pytest.mark.parametrize("kind", ["live", "dashboard"])
def test_theme_and_size_options_become_classes(client, website, kind, query, html_class):
    response = client.get(pages(website)[kind] + query)

    assert f'<html lang="en" class="{html_class}">' in response.content.decode()


def test_the_label_option_replaces_the_default_label_escaped(client, website):
    response = client.get(pages(website)["live"] + "?label=<img src=x onerror=alert(1)> here")

    html = response.content.decode()
    assert "&lt;img src=x onerror=alert(1)&gt; here" in html
    assert "<img src=x" not in html
    assert "visitors online" not in html


def test_the_counter_page_shows_the_live_count_at_first_paint(client, website):
    visit(website)

    html = client.get(pages(website)["live"]).content.decode()

    assert '<span id="zv-live-count" hx-swap-oob="true" data-count="1">1</span>' in html
    assert "visitor online" in html
    assert f'ws-connect="/ws/widgets/live/{website.tracking_code}"' in html
    assert f'data-poll="/widgets/live/{website.tracking_code}/fragment"' in html
    assert 'data-ttl="5"' in html


def test_the_dashboard_page_shows_numbers_countries_and_pages_at_first_paint(client, website):
    visit(website, path="/pricing")
    visit(website, path="/", who=sender("81.2.69.161"))

    html = client.get(pages(website)["dashboard"]).content.decode()

    assert 'id="zv-live-visitors" hx-swap-oob="true" data-count="2"' in html
    assert 'id="zv-today-pageviews" hx-swap-oob="true" data-count="2"' in html
    assert (
        '\U0001f1ec\U0001f1e7</span><i class="cc" aria-hidden="true">GB</i>'
        '<span class="name">United Kingdom</span><b>2</b>'
    ) in html
    assert '<span class="path" title="/pricing">/pricing</span><b>1</b>' in html
    assert f'ws-connect="/ws/widgets/dashboard/{website.website_id}"' in html
    assert 'data-ttl="10"' in html


def test_big_numbers_are_grouped(client, website, monkeypatch):
    snapshot = {"liveCount": 12345, "timestamp": "2026-03-10T12:00:00Z"}
    monkeypatch.setattr(push, "live_of", lambda realtime: snapshot)

    html = client.get(pages(website)["live"]).content.decode()

    assert 'data-count="12345">12,345</span>' in html


def test_visitor_controlled_paths_never_reach_the_page_as_markup(client, website):
    visit(website, path="/<img src=x onerror=alert(1)>")

    html = client.get(pages(website)["dashboard"]).content.decode()

    assert "/%3Cimg%20src=x%20onerror=alert(1)%3E" in html  # as a browser sends the path
    assert "<img src=x" not in html


def test_the_pages_load_htmx_and_its_websocket_extension(client, website):
    html = client.get(pages(website)["dashboard"]).content.decode()

    assert '<script src="/static/django_htmx/htmx-2.min.js" defer></script>' in html
    assert '<script src="/static/django_htmx/ext/hx-ws-2.min.js" defer></script>' in html
    assert 'hx-ext="ws"' in html


def test_the_pages_never_ask_for_a_csrf_token(client, website):
    for url in pages(website).values():
        html = client.get(url).content.decode()
        assert "csrfmiddlewaretoken" not in html


# --- Fragments: the polling fallback of the iframes.


@pytest.mark.parametrize(("kind", "ttl"), [("live", 5), ("dashboard", 10)])
def test_fragments_are_the_pushed_html_cached_for_the_api_ttl(client, website, kind, ttl):
    visit(website)

    response = client.get(pages(website)[kind] + "/fragment")

    assert response.status_code == 200
    assert response["Cache-Control"] == f"public, max-age={ttl}"
    assert_framable(response)
    html = response.content.decode()
    assert "<html" not in html
    assert 'hx-swap-oob="true"' in html
    assert 'id="zv-updated"' in html


def test_the_live_fragment_is_what_the_socket_pushes(client, website):
    visit(website)

    html = client.get(pages(website)["live"] + "/fragment").content.decode()

    # The memoised snapshot the view used, as a socket connecting now would be sent it.
    assert html == fragments.live(async_to_sync(push.snapshot)(website.pk))


def test_an_htmx_request_for_the_page_gets_the_fragment(client, website):
    response = client.get(pages(website)["dashboard"], headers={"HX-Request": "true"})

    assert "<html" not in response.content.decode()
    assert 'id="zv-countries" hx-swap-oob="true"' in response.content.decode()
    assert "HX-Request" in response["Vary"]


@pytest.mark.parametrize("kind", ["live", "dashboard"])
def test_pages_are_cached_no_longer_than_their_data(client, website, kind):
    response = client.get(pages(website)[kind])

    assert response["Cache-Control"] == f"public, max-age={5 if kind == 'live' else 10}"
    assert "HX-Request" in response["Vary"]


# --- Static files under the real ASGI server (no DEBUG, no collectstatic).


def test_the_server_serves_htmx_without_debug(live_url):
    for path in ("django_htmx/htmx-2.min.js", "django_htmx/ext/hx-ws-2.min.js"):
        with urllib.request.urlopen(f"{live_url}/static/{path}", timeout=5) as response:
            assert response.status == 200
            assert "javascript" in response.headers["Content-Type"]
