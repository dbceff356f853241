"""A page that is not there, in the dashboard's own look: an unknown dashboard address, a
website the user may not see, a shared link that does not exist or was revoked. The JSON
APIs keep their JSON 404 (tests/api), and none of the request is echoed back."""

from __future__ import annotations

import pytest
from django.test import Client

from zenovay import access
from zenovay.models import SharedLink, Website

pytestmark = pytest.mark.django_db


@pytest.fixture
def olivia(client, owner) -> Client:
    client.force_login(owner)
    return client


def assert_styled_404(response, heading: str, back: str) -> str:
    html = response.content.decode()
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")
    assert "/static/zenovay/dashboard.css" in html and 'class="signin-card not-found"' in html
    assert f"<h1>{heading}</h1>" in html
    assert f'href="{back}"' in html
    return html


def test_an_unknown_dashboard_address_is_a_styled_404_with_a_way_back(olivia):
    response = olivia.get("/dashboard/ws_abc123/nothing/here/")
    assert_styled_404(response, "Page not found", "/dashboard/")


def test_a_website_the_user_may_not_see_is_a_styled_404(olivia, other_website):
    for ident in ("ws_zzzzzz", other_website.website_id):
        assert_styled_404(olivia.get(f"/dashboard/{ident}/"), "Page not found", "/dashboard/")


def test_signed_out_an_unknown_address_offers_to_sign_in(db):
    assert_styled_404(Client().get("/no/such/page/"), "Page not found", "/login/")


def test_an_unknown_or_revoked_shared_link_is_a_styled_404(website):
    link = SharedLink.objects.create(website=website, slug=access.new_secret())
    assert Client().get(f"/share/{link.slug}/").status_code == 200
    link.delete()  # revoked
    for slug in (link.slug, "nope", "a" * 200):
        response = Client().get(f"/share/{slug}/")
        assert_styled_404(response, "This shared link does not work", "/login/")


def test_a_disabled_websites_shared_link_is_a_styled_404(website):
    link = SharedLink.objects.create(website=website, slug=access.new_secret())
    Website.objects.filter(pk=website.pk).update(enabled=False)
    response = Client().get(f"/share/{link.slug}/")
    assert_styled_404(response, "This shared link does not work", "/login/")


def test_the_404_page_shows_nothing_of_the_address(olivia):
    script = "%3Cscript%3Ealert(1)%3C%2Fscript%3E"
    for client, path in (
        (olivia, f"/dashboard/{script}/"),
        (Client(), f"/share/{script}/"),
        (Client(), f"/{script}/"),
    ):
        response = client.get(path)
        html = response.content.decode()
        assert response.status_code == 404, path
        assert "<script>alert" not in html and "alert(1)" not in html
        assert "&lt;script&gt;" not in html  # not even escaped: the path is not shown
