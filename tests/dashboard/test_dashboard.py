"""The owner dashboard over HTTP and WebSocket: who sees what, fragments, charts, sign-in.

Olivia owns shop.example. Tom is a site owner too, but not of her website; Eve is a
signed-in user with no website at all. Neither may learn anything about shop.example:
its id answers 404 on the page, on every htmx fragment and on the dashboard sockets.
"""

from __future__ import annotations

import json
import re
import time
from zoneinfo import ZoneInfo

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.auth import SESSION_KEY, get_user_model
from django.test import Client
from django.utils import timezone

from dashboard import consumers
from tests.conftest import OWNER_PASSWORD
from tests.factories import DESKTOP_UA, record, visit, visitor
from zenovay import metrics, push, signin
from zenovay.asgi import application
from zenovay.infra import store
from zenovay.models import Website

PASSWORD = OWNER_PASSWORD
HTMX = {"HTTP_HX_REQUEST": "true"}


# --- Fixtures: an owner, a teammate, an outsider


@pytest.fixture
def site(owner) -> Website:
    return Website.objects.create(domain="shop.example", name="Shop", owner=owner)


@pytest.fixture
def olivia(client, owner) -> Client:
    client.force_login(owner)
    return client


def page_url(website: Website, query: str = "") -> str:
    return f"/dashboard/{website.website_id}/{query}"


def fragment(client: Client, website: Website, target: str, query: str = ""):
    return client.get(page_url(website, query), HTTP_HX_TARGET=target, **HTMX)


# --- Signing in and who sees what


def test_the_root_sends_a_signed_in_owner_to_the_dashboard(olivia):
    response = olivia.get("/")
    assert (response.status_code, response["Location"]) == (302, "/dashboard/")


@pytest.mark.parametrize("path", ["/", "/dashboard/", "/dashboard/ws_abcdef123/"])
def test_anonymous_visitors_are_sent_to_sign_in(client, db, path):
    response = client.get(path)
    assert response.status_code == 302
    assert response["Location"] == f"/login/?next={path}"


def test_an_htmx_request_without_a_session_sends_the_whole_page_to_sign_in(client, site):
    response = client.get(
        page_url(site, "?period=week"),
        HTTP_HX_TARGET="zv-period",
        HTTP_HX_CURRENT_URL=f"http://testserver{page_url(site)}",
        **HTMX,
    )
    assert response.status_code == 200
    assert response["HX-Redirect"] == f"/login/?next={page_url(site)}"
    assert b"zv-period" not in response.content


def test_only_a_deep_link_is_told_to_sign_in_to_see_it(client, db, site):
    notice = "Please sign in to see this page."
    home = client.get("/", follow=True)
    assert home.request["PATH_INFO"] == "/login/" and notice not in home.content.decode()
    deep = client.get(page_url(site), follow=True).content.decode()
    assert notice in deep


def test_the_sign_in_form_signs_an_owner_in_and_goes_to_the_dashboard(client, owner):
    page = client.get("/login/?next=/dashboard/")
    assert page.status_code == 200
    assert b'name="username"' in page.content and b'name="password"' in page.content
    response = client.post(
        "/login/", {"username": "olivia", "password": PASSWORD, "next": "/dashboard/"}
    )
    assert (response.status_code, response["Location"]) == (302, "/dashboard/")
    assert client.session[SESSION_KEY] == str(owner.pk)


def test_an_owner_sees_their_websites_with_live_counts(olivia, site, teammate):
    Website.objects.create(domain="tom.example", owner=teammate)
    visit(site, country="DE")

    page = olivia.get("/dashboard/").content.decode()

    assert "Shop" in page and "tom.example" not in page
    assert 'ws-connect="/ws/dashboard/sites"' in page
    assert re.search(rf'id="zv-{site.website_id}-live"[^>]*data-count="1"', page)
    assert re.search(rf'id="zv-{site.website_id}-views"[^>]*data-count="1"', page)
    assert f'href="/dashboard/{site.website_id}/"' in page


def test_an_owner_without_websites_is_invited_to_add_one(client, teammate):
    client.force_login(teammate)
    page = client.get("/dashboard/").content.decode()
    assert "Add your first website" in page
    assert 'href="/dashboard/new/"' in page
    assert "ws-connect" not in page


def test_a_superuser_sees_every_website(client, site, teammate):
    Website.objects.create(domain="tom.example", owner=teammate)
    client.force_login(get_user_model().objects.create_superuser("root", password="pw-root-1"))
    page = client.get("/dashboard/").content.decode()
    assert "Shop" in page and "tom.example" in page
    assert client.get(page_url(site)).status_code == 200


FRAGMENTS = [("", None), ("?period=week", "zv-period"), ("", "zv-charts"), ("", "zv-setup-status")]


@pytest.mark.parametrize("who", ["teammate", "outsider"])
@pytest.mark.parametrize(("query", "target"), FRAGMENTS)
def test_someone_elses_website_is_not_found_on_the_page_and_every_fragment(
    request, client, site, who, query, target
):
    visit(site, country="DE")
    client.force_login(request.getfixturevalue(who))
    headers = {"HTTP_HX_TARGET": target, **HTMX} if target else {}

    response = client.get(page_url(site, query), **headers)

    assert response.status_code == 404
    assert b"shop.example" not in response.content and b"Shop" not in response.content


@pytest.mark.parametrize("ident", ["ws_unknown123", "garbage", "ZV_AAAAAAAAAAA"])
def test_an_unknown_or_malformed_website_id_is_not_found(olivia, site, ident):
    assert olivia.get(f"/dashboard/{ident}/").status_code == 404


# --- A website's dashboard


def test_the_page_shows_the_realtime_panel_pushed_over_the_owners_socket(olivia, site):
    visit(site, "/pricing", country="DE")
    page = olivia.get(page_url(site)).content.decode()
    assert f'ws-connect="/ws/dashboard/{site.website_id}"' in page
    assert re.search(r'id="zv-rt-live"[^>]*data-count="1"', page)
    assert "/pricing" in page and "Germany" in page and "🇩🇪" in page
    assert f'href="/dashboard/{site.website_id}/settings/"' in page  # the owner's settings
    assert '<form method="post" action="/logout/">' in page


def test_the_period_picker_fragment_has_only_the_chosen_period(olivia, site):
    visit(site, "/pricing", country="DE")

    response = fragment(olivia, site, "zv-period", "?period=week")

    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith('<section id="zv-period"')
    assert "<html" not in html and "zv-rt-live" not in html
    assert re.search(r'aria-current="true">This week<', html)
    assert 'hx-push-url="true"' in html
    assert re.search(r'id="zv-period-visitors">1<', html)
    assert "HX-Request" in response["Vary"] and "HX-Target" in response["Vary"]


def test_the_period_picker_falls_back_to_today(olivia, site):
    html = fragment(olivia, site, "zv-period", "?period=decade").content.decode()
    assert re.search(r'aria-current="true">Today<', html)


def test_the_page_opens_on_the_period_in_its_address(olivia, site):
    visit(site, country="DE")
    html = olivia.get(page_url(site, "?period=month")).content.decode()
    assert re.search(r'aria-current="true">This month<', html)
    assert "<html" in html


def test_breakdowns_list_pages_sources_places_devices_and_custom_events(olivia, site):
    visit(
        site,
        "/pricing?utm_source=newsletter",
        referrer="https://news.ycombinator.com/x",
        country="DE",
    )
    visit(site, "/docs", who=2, country="DE")
    record(site, kind="event", path="/pricing", country="DE", name="signup", props={"plan": "pro"})

    html = fragment(olivia, site, "zv-period").content.decode()

    for title in ["Top pages", "Referrers", "UTM sources", "Countries", "Devices", "Browsers",
                  "Operating systems", "Custom events", "Latest custom events"]:  # fmt: skip
        assert f">{title}</h3>" in html
    for text in ["/pricing", "/docs", "newsletter", "Germany", "Desktop", "Chrome", "Linux"]:
        assert text in html
    assert 'href="https://news.ycombinator.com/"' in html  # a plain domain: linked
    assert re.search(r'<td class="mono"><a [^>]*event=signup[^>]*>signup</a></td>', html)
    assert "<dt>plan</dt><dd>pro</dd>" in html


def test_charts_are_inline_svg_with_24_hourly_and_30_daily_bars(olivia, site):
    visit(site, country="DE")
    html = olivia.get(page_url(site)).content.decode()

    charts = dict(re.findall(r'<svg id="(chart-\w+)"(.*?)</svg>', html, re.S))

    assert set(charts) == {"chart-hourly", "chart-daily"}
    for chart_id, bars in (("chart-hourly", 24), ("chart-daily", 30)):
        svg = charts[chart_id]
        assert svg.count('class="bar-v"') == bars
        assert svg.count('class="bar-pv"') == bars
        assert svg.count("<title>") == bars  # one tooltip per bar
        assert f'role="img" aria-labelledby="{chart_id}-title {chart_id}-desc"' in svg
        assert f'<title id="{chart_id}-title">Visitors and pageviews per ' in svg
        assert "1 pageview from" in svg  # the description for screen readers
    assert len(re.findall(r'class="y-label"', charts["chart-hourly"])) == 5


def test_the_charts_fragment_refreshes_by_itself(olivia, site):
    visit(site, country="DE")
    html = fragment(olivia, site, "zv-charts").content.decode()
    assert 'id="zv-charts"' in html and 'hx-trigger="every 60s, zv:pushed from:body"' in html
    assert html.count('class="bar-v"') == 54 and "<html" not in html


# --- The empty state


def test_a_website_without_events_shows_how_to_install_the_snippet(olivia, site):
    html = olivia.get(page_url(site)).content.decode()

    src = f'<span class="nb">src=&quot;{settings.ZENOVAY_PUBLIC_URL}/z.js&quot;</span>'
    assert '<pre id="zv-snippet"><span class="nb">&lt;script</span>' in html
    assert src in html and site.tracking_code in html
    assert 'data-copy="zv-snippet"' in html
    assert f'href="/dashboard/{site.website_id}/settings/#tracking"' in html
    assert re.search(r'id="zv-setup-status"[^>]*hx-trigger="every 3s"', html)
    assert "ws-connect" not in html and "chart-hourly" not in html


def test_the_setup_status_keeps_polling_until_the_first_event(olivia, site):
    waiting = fragment(olivia, site, "zv-setup-status")
    assert waiting.status_code == 200
    assert "Waiting for the first event" in waiting.content.decode()
    assert 'hx-trigger="every 3s"' in waiting.content.decode()
    assert "HX-Retarget" not in waiting

    visit(site, "/first", country="DE")
    arrived = fragment(olivia, site, "zv-setup-status")

    html = arrived.content.decode()
    assert (arrived["HX-Retarget"], arrived["HX-Reswap"]) == ("#zv-panel", "outerHTML")
    assert html.lstrip().startswith('<div id="zv-panel"')
    assert f'ws-connect="/ws/dashboard/{site.website_id}"' in html
    assert re.search(r'id="zv-rt-live"[^>]*data-count="1"', html)
    assert "every 3s" not in html


# --- Escaping what visitors control


PWN = "window.__pwned=1"


def test_visitor_controlled_text_is_escaped_and_never_linked_unsafely(olivia, site):
    visit(site, f"/<script>{PWN}</script>?utm_source=<img src=x onerror={PWN}>",
          referrer=f"https://<img src=x onerror={PWN}>/", country="DE")  # fmt: skip
    visit(site, f"/javascript:{PWN}?utm_source=javascript:{PWN}", who=2,
          referrer=f"https://javascript:{PWN}@evil.example/", country="DE")  # fmt: skip
    record(
        site,
        who=visitor(9, country=""),
        kind="event",
        name=f"<img src=x onerror={PWN}>",
        props={f"<b>{PWN}</b>": f'"><script>{PWN}</script>'},
    )

    for html in (
        olivia.get(page_url(site)).content.decode(),
        fragment(olivia, site, "zv-period", "?period=month").content.decode(),
    ):
        assert "<script>window" not in html and "<img src=x" not in html and "<b>window" not in html
        assert f"&lt;script&gt;{PWN}&lt;/script&gt;" in html
        assert f"&lt;img src=x onerror={PWN}&gt;" in html
        assert not re.search(r'href="\s*javascript:', html, re.I)
        assert 'href="https://evil.example/"' in html  # the host of that referrer, nothing more


# --- Sign-in throttling


def post_login(client: Client, password: str, username: str = "olivia", ip: str = "10.0.0.1"):
    return client.post("/login/", {"username": username, "password": password}, REMOTE_ADDR=ip)


def signed_in(client: Client) -> bool:
    return SESSION_KEY in client.session


def test_the_sixth_attempt_is_refused_while_locked_even_with_the_right_password(client, owner):
    for _ in range(5):
        assert post_login(client, "wrong").status_code == 200

    response = post_login(client, PASSWORD)

    assert response.status_code == 200
    assert not signed_in(client)
    html = response.content.decode()
    assert "Too many failed sign-in attempts" in html
    assert "15 more minute(s)" in html
    assert 'role="alert"' in html


def test_the_fifth_failure_already_says_that_signing_in_is_paused(client, owner):
    for _ in range(4):
        assert "Please enter a correct username" in post_login(client, "wrong").content.decode()
    assert "Too many failed sign-in attempts" in post_login(client, "wrong").content.decode()


def test_the_lock_ends_after_fifteen_minutes(client, owner, monkeypatch):
    for _ in range(5):
        post_login(client, "wrong")
    later = time.time() + signin.LOCK_SECONDS + 1
    monkeypatch.setattr(time, "time", lambda: later)  # the cache's clock too

    response = post_login(client, PASSWORD)

    assert response.status_code == 302 and signed_in(client)


def test_a_successful_sign_in_clears_the_usernames_failures(client, owner):
    for _ in range(4):
        post_login(client, "wrong", ip="10.0.3.1")
    post_login(client, PASSWORD, ip="10.0.3.2")
    client.logout()
    for _ in range(4):
        post_login(client, "wrong", ip="10.0.3.3")
    post_login(client, PASSWORD, ip="10.0.3.4")
    assert signed_in(client)


def test_the_admin_sign_in_is_throttled_too(client, owner):
    for _ in range(5):
        client.post("/admin/login/", {"username": "olivia", "password": "wrong"})

    response = client.post(
        "/admin/login/?next=/admin/", {"username": "olivia", "password": PASSWORD}
    )

    assert response.status_code == 200 and not signed_in(client)
    assert "Too many failed sign-in attempts" in response.content.decode()


def test_the_admin_still_refuses_non_staff_users(client, outsider):
    response = client.post("/admin/login/", {"username": "eve", "password": "pw-eve-123"})
    assert response.status_code == 200 and not signed_in(client)


# --- CSRF


def test_sign_in_without_a_csrf_token_is_refused(db, owner):
    csrf_client = Client(enforce_csrf_checks=True)
    response = csrf_client.post("/login/", {"username": "olivia", "password": PASSWORD})
    assert response.status_code == 403
    assert not signed_in(csrf_client)


def test_sign_in_with_the_forms_csrf_token_works(db, owner):
    csrf_client = Client(enforce_csrf_checks=True)
    page = csrf_client.get("/login/").content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)[1]
    response = csrf_client.post(
        "/login/", {"username": "olivia", "password": PASSWORD, "csrfmiddlewaretoken": token}
    )
    assert response.status_code == 302 and signed_in(csrf_client)


def test_sign_out_needs_a_post_with_the_csrf_token(db, owner):
    csrf_client = Client(enforce_csrf_checks=True)
    csrf_client.force_login(owner)

    assert csrf_client.get("/logout/").status_code == 405
    assert csrf_client.post("/logout/").status_code == 403
    assert signed_in(csrf_client)

    page = csrf_client.get("/dashboard/").content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)[1]
    response = csrf_client.post("/logout/", {"csrfmiddlewaretoken": token})
    assert (response.status_code, response["Location"]) == (302, "/login/")
    assert not signed_in(csrf_client)


def test_collect_is_the_one_post_without_csrf(db, site):
    csrf_client = Client(enforce_csrf_checks=True)
    response = csrf_client.post(
        "/e/collect",
        json.dumps(
            {"code": site.tracking_code, "type": "pageview", "url": "https://shop.example/"}
        ),
        content_type="text/plain",
        HTTP_USER_AGENT=DESKTOP_UA,
    )
    assert response.status_code == 202


# --- The dashboard sockets, through the real AuthMiddlewareStack


@pytest.fixture
def _fresh_push_state():
    store.reset()
    push.reset()
    yield
    push.reset()
    store.reset()


def signed_in_browser(
    user, origin: bytes | None = b"http://testserver"
) -> tuple[Client, list[tuple[bytes, bytes]]]:
    """A browser signed in as `user`, and the handshake its dashboard page sends: its
    session cookie and origin. The client signs that session out with `logout()`."""
    client = Client()
    client.force_login(user)
    cookie = f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"
    headers = [(b"cookie", cookie.encode()), (b"host", b"testserver")]
    return client, headers + ([(b"origin", origin)] if origin else [])


def session_headers(user, origin: bytes | None = b"http://testserver") -> list[tuple[bytes, bytes]]:
    return signed_in_browser(user, origin)[1]


async def open_socket(path: str, headers: list[tuple[bytes, bytes]] | None = None):
    ws = WebsocketCommunicator(application, path, headers=headers or [])
    connected, _ = await ws.connect(timeout=5)
    assert connected
    return ws


async def closed_with(ws: WebsocketCommunicator) -> int:
    message = await ws.receive_output(timeout=5)
    assert message["type"] == "websocket.close", message
    return message["code"]


@pytest.mark.parametrize("origin", [b"http://testserver", None])
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("_fresh_push_state")
async def test_the_owner_gets_the_realtime_panel_over_their_socket(owner, site, origin):
    await sync_to_async(visit)(site, "/<b>bold</b>")
    headers = await sync_to_async(session_headers)(owner, origin)

    ws = await open_socket(f"/ws/dashboard/{site.website_id}", headers)
    html = await ws.receive_from(timeout=5)

    assert re.search(r'id="zv-rt-live" class="num" hx-swap-oob="true" data-count="1"', html)
    assert "/%3Cb%3Ebold%3C/b%3E" in html and "<b>bold" not in html  # stored as browsers send it
    await ws.disconnect()


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("_fresh_push_state")
async def test_the_owner_socket_pushes_new_events(owner, site):
    headers = await sync_to_async(session_headers)(owner)
    ws = await open_socket(f"/ws/dashboard/{site.website_id}", headers)
    assert 'data-count="0"' in await ws.receive_from(timeout=5)

    await sync_to_async(visit)(site, "/pricing")
    push.site_changed(site.pk)  # what on_commit does after a real request

    html = await ws.receive_from(timeout=3)
    assert re.search(r'id="zv-rt-live"[^>]*data-count="1"', html) and "/pricing" in html
    await ws.disconnect()


@pytest.mark.parametrize("who", ["teammate", "outsider"])
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("_fresh_push_state")
async def test_someone_elses_website_socket_is_closed_with_4404(request, site, who):
    user = await sync_to_async(request.getfixturevalue)(who)
    headers = await sync_to_async(session_headers)(user)
    ws = await open_socket(f"/ws/dashboard/{site.website_id}", headers)
    assert await closed_with(ws) == 4404


@pytest.mark.parametrize("ident", ["ws_unknown123", "garbage"])
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("_fresh_push_state")
async def test_an_unknown_website_socket_is_closed_with_4404(owner, ident):
    headers = await sync_to_async(session_headers)(owner)
    ws = await open_socket(f"/ws/dashboard/{ident}", headers)
    assert await closed_with(ws) == 4404


@pytest.mark.parametrize("path", ["/ws/dashboard/{id}", "/ws/dashboard/sites"])
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("_fresh_push_state")
async def test_dashboard_sockets_without_a_session_are_closed_with_4403(site, path):
    ws = await open_socket(path.format(id=site.website_id), [(b"origin", b"http://testserver")])
    assert await closed_with(ws) == 4403


@pytest.mark.parametrize("path", ["/ws/dashboard/{id}", "/ws/dashboard/sites"])
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("_fresh_push_state")
async def test_dashboard_sockets_opened_by_another_sites_page_are_closed_with_4403(
    owner, site, path
):
    headers = await sync_to_async(session_headers)(owner, b"https://evil.example")
    ws = await open_socket(path.format(id=site.website_id), headers)
    assert await closed_with(ws) == 4403


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("_fresh_push_state")
async def test_the_websites_socket_sends_each_of_the_owners_cards(owner, site, teammate):
    other = await Website.objects.acreate(domain="blog.example", owner=owner)
    toms = await Website.objects.acreate(domain="tom.example", owner=teammate)
    await sync_to_async(visit)(site)
    ws = await open_socket("/ws/dashboard/sites", await sync_to_async(session_headers)(owner))

    messages = [await ws.receive_from(timeout=5) for _ in range(2)]
    # The ticker may also push the visit stored just before: all the socket says is read.
    while not await ws.receive_nothing(timeout=0.3):
        messages.append(await ws.receive_from())

    joined = "".join(messages)
    assert re.search(rf'id="zv-{site.website_id}-live"[^>]*data-count="1"', joined)
    assert re.search(rf'id="zv-{other.website_id}-live"[^>]*data-count="0"', joined)
    assert toms.website_id not in joined
    await ws.disconnect()


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("_fresh_push_state")
async def test_the_websites_socket_pushes_the_card_of_the_site_that_changed(owner, site):
    other = await Website.objects.acreate(domain="blog.example", owner=owner)
    ws = await open_socket("/ws/dashboard/sites", await sync_to_async(session_headers)(owner))
    for _ in range(2):
        await ws.receive_from(timeout=5)

    await sync_to_async(visit)(site, "/pricing")
    await push.push(site.pk)  # or the ticker, woken by the stored event, pushes first

    html = await ws.receive_from(timeout=3)
    assert re.search(rf'id="zv-{site.website_id}-live"[^>]*data-count="1"', html)
    assert other.website_id not in html
    await ws.disconnect()


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("_fresh_push_state")
async def test_a_teammates_websites_socket_hears_nothing_of_olivias_site(site, teammate):
    ws = await open_socket("/ws/dashboard/sites", await sync_to_async(session_headers)(teammate))
    await sync_to_async(visit)(site)
    await push.push(site.pk)
    assert await ws.receive_nothing(timeout=0.5)
    await ws.disconnect()


@pytest.mark.parametrize("path", ["/ws/live/{code}", "/ws/realtime/{id}"])
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("_fresh_push_state")
async def test_public_widget_sockets_still_accept_any_origin(site, path):
    url = path.format(code=site.tracking_code, id=site.website_id)
    ws = await open_socket(url, [(b"origin", b"https://customer.example")])
    assert "timestamp" in json.loads(await ws.receive_from(timeout=5))
    await ws.disconnect()


@pytest.mark.parametrize("path", ["/ws/dashboard/{id}", "/ws/dashboard/sites"])
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("_fresh_push_state")
async def test_a_page_of_this_host_over_another_scheme_may_not_open_dashboard_sockets(
    owner, site, path
):
    headers = await sync_to_async(session_headers)(owner, b"https://testserver")  # ws://, not wss
    ws = await open_socket(path.format(id=site.website_id), headers)
    assert await closed_with(ws) == 4403


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("_fresh_push_state")
async def test_behind_a_tls_proxy_the_https_page_opens_the_dashboard_socket(owner, site, settings):
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    headers = await sync_to_async(session_headers)(owner, b"https://testserver")
    ws = await open_socket(
        f"/ws/dashboard/{site.website_id}", [*headers, (b"x-forwarded-proto", b"https")]
    )
    assert 'id="zv-rt-live"' in await ws.receive_from(timeout=5)
    await ws.disconnect()
    plain = await open_socket(f"/ws/dashboard/{site.website_id}", headers)  # no proxy said so
    assert await closed_with(plain) == 4403


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("_fresh_push_state")
async def test_an_origin_trusted_for_csrf_may_open_the_dashboard_socket(owner, site, settings):
    settings.CSRF_TRUSTED_ORIGINS = ["https://dash.example"]
    headers = await sync_to_async(session_headers)(owner, b"https://dash.example")
    ws = await open_socket(f"/ws/dashboard/{site.website_id}", headers)
    assert 'id="zv-rt-live"' in await ws.receive_from(timeout=5)
    await ws.disconnect()


# --- Open dashboard sockets lose access with the session, the account or the website

RECHECK = 0.1  # seconds between two checks of an open dashboard socket's rights, in tests
CLOSE_WITHIN = 3.0  # many rechecks, on a busy machine


@pytest.fixture
def _quick_rechecks(monkeypatch, _fresh_push_state):
    # raising=False: on code without rechecks the tests fail on what they assert.
    monkeypatch.setattr(consumers, "RECHECK_SECONDS", RECHECK, raising=False)


async def close_code(ws: WebsocketCommunicator, within: float = CLOSE_WITHIN) -> int:
    """The code the socket is closed with within `within` seconds (pushes before it skipped)."""
    deadline = time.monotonic() + within
    while (left := deadline - time.monotonic()) > 0:
        try:
            message = await ws.receive_output(timeout=left)
        except TimeoutError:
            break
        if message["type"] == "websocket.close":
            return message["code"]
    pytest.fail(f"the socket was still open {within}s later")


async def push_reaches(ws: WebsocketCommunicator, pattern: str, within: float = 5.0) -> str:
    """The first frame matching `pattern` within `within` seconds (earlier refreshes skipped)."""
    deadline = time.monotonic() + within
    while (left := deadline - time.monotonic()) > 0:
        html = await ws.receive_from(timeout=left)
        if re.search(pattern, html):
            return html
    pytest.fail(f"no frame matching {pattern!r} within {within}s")


@pytest.mark.parametrize("path", ["/ws/dashboard/{id}", "/ws/dashboard/sites"])
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("_quick_rechecks")
async def test_signing_out_closes_that_sessions_open_dashboard_socket_with_4403(owner, site, path):
    url = path.format(id=site.website_id)
    browser, headers = await sync_to_async(signed_in_browser)(owner)
    leaving = await open_socket(url, headers)
    staying = await open_socket(url, await sync_to_async(session_headers)(owner))  # 2nd browser
    for ws in (leaving, staying):
        await ws.receive_from(timeout=5)

    await sync_to_async(browser.logout)()  # deletes the session, as /logout/ does
    signed_out = time.monotonic()

    assert await close_code(leaving) == 4403
    print(f"\nclosed {time.monotonic() - signed_out:.2f}s after sign-out (rechecks {RECHECK}s)")
    # The owner's other session is still signed in: its socket is left open and pushed to.
    await sync_to_async(visit)(site, "/pricing")
    await push_reaches(staying, r'-live"[^>]*data-count="1"')
    await staying.disconnect()


@pytest.mark.parametrize("path", ["/ws/dashboard/{id}", "/ws/dashboard/sites"])
@pytest.mark.parametrize("change", ["deactivated", "password changed"])
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("_quick_rechecks")
async def test_a_deactivated_account_or_changed_password_closes_dashboard_sockets_with_4403(
    owner, site, path, change
):
    ws = await open_socket(
        path.format(id=site.website_id), await sync_to_async(session_headers)(owner)
    )
    await ws.receive_from(timeout=5)

    if change == "deactivated":
        await get_user_model().objects.filter(pk=owner.pk).aupdate(is_active=False)
    else:  # elsewhere: every other session of the account ends (Django's session auth hash)
        owner.set_password("a-new-secret-42")
        await owner.asave()

    assert await close_code(ws) == 4403


@pytest.mark.parametrize("change", ["given to another owner", "disabled"])
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("_quick_rechecks")
async def test_a_website_no_longer_the_owners_closes_its_dashboard_socket_with_4404(
    owner, teammate, site, change
):
    ws = await open_socket(
        f"/ws/dashboard/{site.website_id}", await sync_to_async(session_headers)(owner)
    )
    await ws.receive_from(timeout=5)
    push.stop_tickers()  # nothing pushes the site: the close cannot come from a push

    fields = {"owner": teammate} if change == "given to another owner" else {"enabled": False}
    await Website.objects.filter(pk=site.pk).aupdate(**fields)

    assert await close_code(ws) == 4404


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("_quick_rechecks")
async def test_the_websites_socket_drops_a_website_given_away_and_keeps_the_others(
    owner, teammate, site
):
    other = await Website.objects.acreate(domain="blog.example", owner=owner)
    ws = await open_socket("/ws/dashboard/sites", await sync_to_async(session_headers)(owner))
    for _ in range(2):
        await ws.receive_from(timeout=5)

    await Website.objects.filter(pk=other.pk).aupdate(owner=teammate)
    deadline = time.monotonic() + CLOSE_WITHIN
    while other.pk in push.local_viewers():  # the only socket following it lets it go
        assert time.monotonic() < deadline, "the given-away website is still followed"
        await ws.receive_nothing(timeout=RECHECK)

    await sync_to_async(visit)(other, who=2, url="https://blog.example/")
    await push.push(other.pk)
    await sync_to_async(visit)(site, "/pricing")
    html = await push_reaches(ws, rf'id="zv-{site.website_id}-live"[^>]*data-count="1"')
    frames = [html]
    while not await ws.receive_nothing(timeout=0.3):
        frames.append(await ws.receive_from())
    assert not any(other.website_id in frame for frame in frames)
    await ws.disconnect()


def test_the_period_fragment_carries_the_headers_badge(olivia, site):
    badge = '<span id="zv-badge" hx-swap-oob="true" class="badge {}">{}<'
    html = fragment(olivia, site, "zv-period").content.decode()
    assert badge.format("wait", "No events yet") in html
    visit(site, country="DE")
    html = fragment(olivia, site, "zv-period").content.decode()
    assert badge.format("on", "Active") in html
    page = olivia.get(page_url(site)).content.decode()
    assert 'id="zv-badge" class="badge on">Active<' in page and "hx-swap-oob" not in page


def test_times_on_the_page_are_in_the_websites_zone(olivia, site):
    site.timezone = "Asia/Kathmandu"
    site.save()
    waiting = olivia.get(page_url(site)).content.decode()
    assert re.search(r"checked at \d\d:\d\d:\d\d \+0545;", waiting)
    visit(site, country="DE")
    html = olivia.get(page_url(site)).content.decode()
    assert re.search(r'<time datetime="[^"]+Z">\d\d:\d\d:\d\d \+0545</time>', html)
    assert " UTC" not in html


def test_the_pushed_panel_shows_its_time_in_the_websites_zone():
    from dashboard import views as dashboard

    snapshot = {
        "visitors": {"current": 1, "today": 1, "change": 0.0},
        "pageViews": {"current": 1, "today": 1, "change": 0.0},
        "countries": [],
        "topPages": [],
        "timestamp": "2026-03-10T13:05:09Z",
    }
    paris = dashboard.realtime_fragment(snapshot, "Europe/Paris")
    assert '<time datetime="2026-03-10T13:05:09Z">14:05:09 CET</time>' in paris
    assert ">09:05:09 EDT</time>" in dashboard.realtime_fragment(snapshot, "America/New_York")


@pytest.mark.parametrize("period", ["today", "week", "month"])
def test_a_period_shows_the_dates_it_covers(olivia, site, period):
    site.timezone = "Pacific/Auckland"  # a day ahead of UTC for half of it
    site.save()
    visit(site, country="DE")
    html = olivia.get(page_url(site, f"?period={period}")).content.decode()
    now = timezone.now()
    local = metrics.period_start(now, site, period).astimezone(ZoneInfo("Pacific/Auckland"))
    assert (local.hour, local.minute) == (0, 0)
    day = f"{local:%a} {local.day} {local:%b}"
    shown = day if local.date() == now.astimezone(local.tzinfo).date() else f"{day} \N{EN DASH} now"
    assert f'<span class="period-dates">{shown}</span>' in html
