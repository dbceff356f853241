"""A website's settings in the app, its members, shared links and goals, over HTTP and sockets.

Olivia owns shop.example. Vera is invited as a viewer, Adam as an admin; Eve is signed in
but has nothing to do with it. Each sees exactly what their role allows: viewers read,
admins manage, only the owner deletes, outsiders get 404 for everything. A shared link
shows one dashboard to anyone holding it, and nothing else.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth import SESSION_KEY, get_user_model
from django.core import mail
from django.test import Client
from django.utils import timezone

from tests.dashboard.test_dashboard import (
    HTMX,
    _fresh_push_state,  # noqa: F401  (fixtures)
    _quick_rechecks,  # noqa: F401
    close_code,
    closed_with,
    fragment,
    open_socket,
    page_url,
    session_headers,
)
from tests.factories import visit
from zenovay import access, sites
from zenovay.models import Goal, Invitation, Membership, SharedLink, Website

pytestmark = pytest.mark.django_db


@pytest.fixture
def site(owner) -> Website:
    return Website.objects.create(domain="shop.example", name="Shop", owner=owner)


@pytest.fixture
def other_site(owner) -> Website:
    return Website.objects.create(domain="blog.example", name="Blog", owner=owner)


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def olivia(owner) -> Client:
    return signed_in(owner)


def member(site: Website, name: str, role: str):
    user = get_user_model().objects.create_user(name, password=f"pw-{name}-123")
    Membership.objects.create(website=site, user=user, role=role)
    return user


@pytest.fixture
def vera(site):
    return member(site, "vera", Membership.VIEWER)


@pytest.fixture
def adam(site):
    return member(site, "adam", Membership.ADMIN)


def settings_url(site: Website, rest: str = "") -> str:
    return f"/dashboard/{site.website_id}/{rest or 'settings/'}"


def add_goal(client: Client, site: Website, kind: str, value: str):
    return client.post(settings_url(site, "goals/"), {"goal-kind": kind, "goal-value": value})


def delete_website(client: Client, site: Website, typed: str):
    return client.post(settings_url(site, "settings/delete/"), {"delete-confirm": typed})


def invite_link(client: Client, site: Website, role: str = "viewer", email: str = "") -> str:
    data = {"invite-role": role, "invite-email": email}
    response = client.post(settings_url(site, "members/"), data)
    assert response.status_code == 200
    found = re.search(r'<pre id="zv-invite-url">([^<]+)</pre>', response.content.decode())
    assert found, "the new invitation's link is shown"
    return found.group(1).replace("http://127.0.0.1:8000", "")


# --- Adding and editing a website


def test_a_signed_in_user_adds_a_website_they_own_and_lands_on_its_install_guide(outsider):
    client = signed_in(outsider)  # not staff: adding websites is not an admin's privilege
    page = client.get("/dashboard/new/").content.decode()
    assert 'list="zv-zones"' in page and '<option value="Europe/Paris">' in page
    assert "data-browser-zone" in page  # preset from the browser's zone

    response = client.post(
        "/dashboard/new/", {"name": "", "domain": "WWW.Cafe.Example", "timezone": "Asia/Tokyo"}
    )

    website = Website.objects.get()
    assert (website.owner, website.domain, website.name) == (
        outsider,
        "cafe.example",
        "cafe.example",
    )
    assert website.timezone == "Asia/Tokyo" and website.enabled
    assert response["Location"] == page_url(website)
    guide = client.get(page_url(website)).content.decode()
    assert "Install the tracker on cafe.example" in guide and website.tracking_code in guide


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("domain", "not a domain", "is not a domain name"),
        ("timezone", "Mars/Olympus", "is not a time zone"),
    ],
)
def test_adding_a_website_with_a_bad_value_says_what_is_wrong_once(olivia, field, value, error):
    data = {"domain": "ok.example", "timezone": "UTC", field: value}
    response = olivia.post("/dashboard/new/", data)
    assert response.status_code == 400
    assert response.content.decode().count(error) == 1
    assert not Website.objects.exists()


def test_the_owner_edits_hosts_excluded_ranges_zone_and_disables_the_website(olivia, site):
    page = olivia.get(settings_url(site))
    assert page.status_code == 200 and b'value="shop.example"' in page.content

    response = olivia.post(
        settings_url(site),
        {
            "name": "The shop",
            "domain": "shop.example",
            "timezone": "Europe/Paris",
            "extra_hostnames": "Shop-Preview.Example, localhost",
            "excluded_ips": "10.0.0.0/8",
            "respect_dnt": "on",
        },  # "enabled" left out: unchecked
    )

    assert response.status_code == 302
    site.refresh_from_db()
    assert (site.name, site.timezone, site.enabled) == ("The shop", "Europe/Paris", False)
    assert site.extra_hostnames == "shop-preview.example\nlocalhost"
    assert site.excludes_ip(ipaddress.ip_address("10.1.2.3"))
    after = olivia.get(response["Location"]).content.decode()
    assert "Settings saved." in after


def test_regenerating_the_code_stops_the_old_snippet_at_once(olivia, site):
    old = site.tracking_code
    response = olivia.post(settings_url(site, "settings/code/"))
    assert response.status_code == 302
    site.refresh_from_db()
    assert site.tracking_code != old
    assert sites.by_code(old) is None
    assert sites.by_code(site.tracking_code) == site
    assert olivia.get(settings_url(site, "settings/code/")).status_code == 405  # POST only


def test_deleting_asks_for_the_domain_and_then_deletes_everything(olivia, site, vera):
    visit(site, country="DE")
    wrong = delete_website(olivia, site, "shop")
    assert wrong.status_code == 400 and "Type shop.example to delete" in wrong.content.decode()
    assert Website.objects.filter(pk=site.pk).exists()

    response = delete_website(olivia, site, "shop.example")

    assert response["Location"] == "/dashboard/"
    assert not Website.objects.filter(pk=site.pk).exists()
    assert not Membership.objects.exists()
    assert "Shop and all its data are deleted." in olivia.get("/dashboard/").content.decode()


# --- Roles: who may do what


def every_settings_request(site: Website, pk: int = 1) -> list[tuple[str, str]]:
    return [
        ("get", settings_url(site)),
        ("post", settings_url(site)),
        ("post", settings_url(site, "settings/code/")),
        ("post", settings_url(site, "settings/delete/")),
        ("post", settings_url(site, "members/")),
        ("post", settings_url(site, f"members/{pk}/remove/")),
        ("post", settings_url(site, f"invitations/{pk}/revoke/")),
        ("post", settings_url(site, "links/")),
        ("post", settings_url(site, f"links/{pk}/revoke/")),
        ("post", settings_url(site, "goals/")),
        ("post", settings_url(site, f"goals/{pk}/delete/")),
    ]


def test_a_viewer_sees_the_dashboard_but_no_setting(site, vera):
    client = signed_in(vera)
    page = client.get(page_url(site)).content.decode()
    assert "Install the tracker" in page  # the page itself
    assert settings_url(site) not in page
    for method, url in every_settings_request(site):
        assert getattr(client, method)(url).status_code == 403, url
    site.refresh_from_db()
    assert Website.objects.filter(pk=site.pk).exists() and site.enabled


def test_an_outsider_gets_404_for_everything_of_the_website(site, outsider):
    client = signed_in(outsider)
    assert client.get(page_url(site)).status_code == 404
    for method, url in every_settings_request(site):
        assert getattr(client, method)(url).status_code == 404, url


def test_an_admin_manages_the_website_but_cannot_delete_it(site, adam):
    client = signed_in(adam)
    assert settings_url(site) in client.get(page_url(site)).content.decode()
    page = client.get(settings_url(site)).content.decode()
    assert "you are its admin" in page and 'id="danger"' not in page
    assert add_goal(client, site, "event", "signup").status_code == 302
    assert delete_website(client, site, "shop.example").status_code == 403
    assert Website.objects.filter(pk=site.pk).exists()


def test_members_see_only_the_websites_shared_with_them(site, other_site, vera):
    client = signed_in(vera)
    sites = client.get("/dashboard/").content.decode()
    assert "shop.example" in sites and "blog.example" not in sites
    assert client.get(page_url(other_site)).status_code == 404


# --- Invitations


def test_an_invitation_link_is_shown_once_stored_hashed_and_used_once(olivia, site, outsider):
    link = invite_link(olivia, site, "viewer")
    secret = link.rstrip("/").rsplit("/", 1)[1]
    invitation = Invitation.objects.get()
    assert invitation.token_hash == access.digest(secret) and secret not in invitation.token_hash
    assert secret not in olivia.get(settings_url(site)).content.decode()  # never shown again

    eve = signed_in(outsider)
    offer = eve.get(link).content.decode()
    assert "Join Shop" in offer and "as a viewer" in offer and "olivia invites you" in offer
    response = eve.post(link, {"accept": "1"})

    assert response["Location"] == page_url(site)
    assert Membership.objects.get(website=site, user=outsider).role == "viewer"
    assert eve.get(page_url(site)).status_code == 200
    assert eve.get(link).status_code == 404  # used
    assert signed_in(outsider).post(link, {"accept": "1"}).status_code == 404


def test_someone_without_an_account_makes_one_through_the_invitation(olivia, site):
    link = invite_link(olivia, site, "admin")
    visitor = Client()
    offer = visitor.get(link).content.decode()
    assert "I have an account: sign in" in offer and 'name="password2"' in offer

    bad = visitor.post(
        link, {"signup": "1", "username": "nina", "password1": "x", "password2": "y"}
    )
    assert bad.status_code == 400 and not get_user_model().objects.filter(username="nina").exists()

    response = visitor.post(
        link,
        {
            "signup": "1",
            "username": "nina",
            "password1": "s3cret-Pass!",
            "password2": "s3cret-Pass!",
        },
    )

    nina = get_user_model().objects.get(username="nina")
    assert response["Location"] == page_url(site)
    assert visitor.session[SESSION_KEY] == str(nina.pk) and not nina.is_staff
    assert Membership.objects.get(user=nina).role == "admin"


def test_an_expired_or_withdrawn_invitation_is_no_longer_valid(olivia, site, outsider):
    expired = invite_link(olivia, site)
    Invitation.objects.update(expires=timezone.now() - dt.timedelta(seconds=1))
    assert signed_in(outsider).get(expired).status_code == 404

    withdrawn = invite_link(olivia, site)
    pending = Invitation.objects.filter(expires__gt=timezone.now()).get()
    olivia.post(settings_url(site, f"invitations/{pending.pk}/revoke/"))
    page = signed_in(outsider).get(withdrawn)
    assert page.status_code == 404 and "no longer valid" in page.content.decode()
    assert signed_in(outsider).get("/invite/" + "x" * 500 + "/").status_code == 404


def test_an_invitation_is_emailed_when_this_server_sends_email(olivia, site, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    link = invite_link(olivia, site, "viewer", email="vera@example.org")
    assert [m.to for m in mail.outbox] == [["vera@example.org"]]
    assert link.rsplit("/invite/", 1)[1] in mail.outbox[0].body

    settings.EMAIL_BACKEND = "django.core.mail.backends.dummy.EmailBackend"
    mail.outbox.clear()
    invite_link(olivia, site, "viewer", email="vera@example.org")  # still shown to copy
    assert mail.outbox == []


def test_removing_a_member_ends_their_access(olivia, site, vera):
    membership = Membership.objects.get(user=vera)
    page = olivia.get(settings_url(site)).content.decode()
    assert 'data-member="vera"' in page
    olivia.post(settings_url(site, f"members/{membership.pk}/remove/"))
    assert not Membership.objects.exists()
    assert signed_in(vera).get(page_url(site)).status_code == 404


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("_quick_rechecks")
async def test_a_members_socket_is_live_and_closes_when_they_are_removed(site, vera):
    headers = await sync_to_async(session_headers)(vera)
    ws = await open_socket(f"/ws/dashboard/{site.website_id}", headers)
    assert 'id="zv-rt-live"' in await ws.receive_from(timeout=5)

    await Membership.objects.filter(user=vera).adelete()

    assert await close_code(ws) == 4404


# --- Shared links


def make_link(client: Client, site: Website, password: str = "") -> str:
    data = {"link-name": "Team", "link-password": password}
    response = client.post(settings_url(site, "links/"), data)
    assert response.status_code == 302
    return f"/share/{SharedLink.objects.latest('pk').slug}/"


def test_a_shared_link_shows_the_dashboard_signed_out_and_nothing_else(olivia, site, other_site):
    visit(site, "/pricing", country="DE")
    link = make_link(olivia, site)
    assert link in olivia.get(settings_url(site)).content.decode()

    anyone = Client()
    page = anyone.get(link)
    html = page.content.decode()
    assert page.status_code == 200 and "a shared dashboard, read-only" in html
    assert "/pricing" in html and f'ws-connect="/ws/share/{link.split("/")[2]}"' in html
    assert "blog.example" not in html and "/settings/" not in html and "Sign out" not in html
    period = anyone.get(f"{link}?period=week", HTTP_HX_TARGET="zv-period", **HTMX)
    assert period.status_code == 200 and "/pricing" in period.content.decode()
    assert anyone.get(page_url(site)).status_code == 302  # the link is not a session
    assert anyone.get(settings_url(site)).status_code == 302
    assert SESSION_KEY not in anyone.session


def test_a_revoked_link_or_a_disabled_website_shows_nothing(olivia, site):
    link = make_link(olivia, site)
    Website.objects.filter(pk=site.pk).update(enabled=False)
    assert Client().get(link).status_code == 404
    Website.objects.filter(pk=site.pk).update(enabled=True)
    olivia.post(settings_url(site, f"links/{SharedLink.objects.get().pk}/revoke/"))
    assert Client().get(link).status_code == 404
    for hostile in ("/share/..%2f..%2fadmin/", "/share/" + "a" * 200 + "/", "/share/%00/"):
        assert Client().get(hostile).status_code == 404


def test_a_password_protected_link_asks_once_per_browser(olivia, site, other_site):
    link = make_link(olivia, site, password="open sesame")
    assert SharedLink.objects.get().password.startswith("pbkdf2_")  # hashed
    other = make_link(olivia, other_site, password="open sesame")

    anyone = Client()
    locked = anyone.get(link)
    assert locked.status_code == 403 and 'name="password"' in locked.content.decode()
    assert anyone.get(link, HTTP_HX_TARGET="zv-period", **HTMX).status_code == 403
    wrong = anyone.post(link, {"password": "guess"})
    assert wrong.status_code == 403 and "not the password" in wrong.content.decode()

    assert anyone.post(link, {"password": "open sesame"})["Location"] == link
    assert anyone.get(link).status_code == 200
    assert anyone.get(other).status_code == 403  # one link's cookie opens only that link

    link_row = SharedLink.objects.get(website=site)
    link_row.password = "pbkdf2_sha256$1$new$hash"  # a new password voids the cookie
    link_row.save()
    assert anyone.get(link).status_code == 403


def test_wrong_passwords_of_a_shared_link_are_throttled(olivia, site, settings):
    link = make_link(olivia, site, password="open sesame")
    anyone = Client()
    for _ in range(settings.ZENOVAY_SIGNIN_FAILURES):
        anyone.post(link, {"password": "guess"})
    refused = anyone.post(link, {"password": "open sesame"})
    assert refused.status_code == 403 and "Too many wrong passwords" in refused.content.decode()


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("_quick_rechecks")
async def test_a_shared_links_socket_is_live_until_the_link_is_revoked(site):
    link = await SharedLink.objects.acreate(website=site, slug=access.new_secret())
    ws = await open_socket(f"/ws/share/{link.slug}")
    assert 'id="zv-rt-live"' in await ws.receive_from(timeout=5)

    await SharedLink.objects.filter(pk=link.pk).adelete()

    assert await close_code(ws) == 4404
    locked = await SharedLink.objects.acreate(
        website=site, slug=access.new_secret(), password="pbkdf2_sha256$1$s$h"
    )
    assert await closed_with(await open_socket(f"/ws/share/{locked.slug}")) == 4404
    cookie = f"{access.share_cookie_name(locked)}={access.share_cookie_value(locked)}"
    unlocked = await open_socket(f"/ws/share/{locked.slug}", [(b"cookie", cookie.encode())])
    assert 'id="zv-rt-live"' in await unlocked.receive_from(timeout=5)
    await unlocked.disconnect()
    assert await closed_with(await open_socket("/ws/share/nope")) == 4404


# --- Goals


@pytest.mark.parametrize("period", ["today", "7d", "30d"])  # aggregates; day sketches
def test_goals_show_converters_conversions_and_rate_for_the_period(olivia, site, period):
    for who in (1, 2, 3, 4):
        visit(site, "/", who=who, country="DE")
    visit(site, "/blog/a", who=1, country="DE")
    visit(site, "/blog/b", who=1, country="DE")
    visit(site, "/blog/b", who=2, country="DE")
    for who in (3, 3):
        visit(site, "/", who=who, type="event", name="signup", props={"plan": "pro"}, country="DE")
    for kind, value in (("event", "signup"), ("page", "/blog/*"), ("page", "/nowhere")):
        assert add_goal(olivia, site, kind, value).status_code == 302

    html = fragment(olivia, site, "zv-period", f"?period={period}").content.decode()

    rows = dict(re.findall(r'<tr data-goal="\d+"><td>(.*?)</td>(.*?)</tr>', html))
    numbers = {
        label: re.findall(r'<td class="n">([^<]+)</td>', cells) for label, cells in rows.items()
    }
    assert numbers['<span class="mono">signup</span>'] == ["1", "2", "25.0%"]
    assert numbers['<span class="muted">Visit</span> <span class="mono">/blog/*</span>'] == [
        "2",
        "3",
        "50.0%",
    ]
    assert numbers['<span class="muted">Visit</span> <span class="mono">/nowhere</span>'] == [
        "0",
        "0",
        "0.0%",
    ]


@pytest.mark.parametrize(
    ("kind", "value", "error"),
    [
        ("page", "blog", "A page path starts with /"),
        ("event", "   ", "Give the custom event"),
        ("other", "x", "Select a valid choice"),
    ],
)
def test_a_bad_goal_is_refused_with_its_reason(olivia, site, kind, value, error):
    response = add_goal(olivia, site, kind, value)
    assert response.status_code == 400 and error in response.content.decode()
    assert not Goal.objects.exists()


def test_a_goal_is_stored_as_pageviews_are_and_not_twice(olivia, site):
    add_goal(olivia, site, "page", "/café <b>")
    assert Goal.objects.get().value == "/caf%C3%A9%20%3Cb%3E"
    again = add_goal(olivia, site, "page", "/café <b>")
    assert again.status_code == 400 and "has this goal already" in again.content.decode()


def test_a_custom_events_properties_are_broken_down(olivia, site):
    visit(
        site, "/", who=1, type="event", name="signup", props={"plan": "pro", "n": 2}, country="DE"
    )
    visit(site, "/", who=2, type="event", name="signup", props={"plan": "pro"}, country="DE")
    visit(
        site, "/", who=2, type="event", name="signup", props={"plan": "<i>free</i>"}, country="DE"
    )

    html = fragment(olivia, site, "zv-period", "?period=today&event=signup").content.decode()

    assert 'id="t-props"' in html and "Properties of" in html
    rows = re.findall(
        r'<tr><td class="mono">([^<]*)</td><td class="mono">([^<]*)</td>'
        r'<td class="n">(\d+)</td><td class="n">(\d+)</td></tr>',
        html,
    )
    assert rows == [
        ("plan", "pro", "2", "2"),
        ("n", "2", "1", "1"),
        ("plan", "&lt;i&gt;free&lt;/i&gt;", "1", "1"),
    ]
    assert "event=signup" in re.search(r'id="zv-period"[^>]*hx-get="([^"]+)"', html).group(1)
