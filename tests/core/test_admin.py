"""The owner-scoped admin: one owner never sees or changes another's websites."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.urls import reverse

from zenovay.models import Website

pytestmark = pytest.mark.django_db


@pytest.fixture
def site(owner) -> Website:
    return Website.objects.create(domain="olivia.example", owner=owner)


def admin_url(name: str, *args) -> str:
    return reverse(f"admin:zenovay_website_{name}", args=args)


def signed_in(client, user):
    client.force_login(user)
    return client


def test_an_owner_sees_and_changes_their_website(client, owner, site):
    signed_in(client, owner)
    listing = client.get(admin_url("changelist"))
    assert listing.status_code == 200
    assert b"olivia.example" in listing.content
    page = client.get(admin_url("change", site.pk))
    assert page.status_code == 200
    assert site.tracking_code.encode() in page.content


def test_the_change_page_shows_every_snippet_with_a_copy_button(client, owner, site):
    page = signed_in(client, owner).get(admin_url("change", site.pk)).content.decode()
    for key in [
        "tracker",
        "counter-script",
        "counter-iframe",
        "dashboard-script",
        "dashboard-iframe",
    ]:
        assert f'id="snippet-{key}"' in page
        assert f'data-copy="snippet-{key}"' in page
    assert "/z.js" in page and "/widgets/dashboard/" in page
    assert "Waiting for the first event" in page


@pytest.mark.parametrize("view", ["change", "delete", "history"])
def test_a_teammate_cannot_open_someone_elses_website(client, teammate, site, view):
    response = signed_in(client, teammate).get(admin_url(view, site.pk))
    assert response.status_code in (302, 403, 404)
    assert b"olivia.example" not in response.content


def test_a_teammate_does_not_see_it_listed_or_found(client, teammate, site):
    signed_in(client, teammate)
    assert b"olivia.example" not in client.get(admin_url("changelist")).content
    assert b"olivia.example" not in client.get(admin_url("changelist") + "?q=olivia").content


def test_a_teammate_cannot_post_changes_to_it(client, teammate, site):
    signed_in(client, teammate)
    client.post(admin_url("change", site.pk), {"name": "hijacked", "domain": "evil.example"})
    client.post(admin_url("delete", site.pk), {"post": "yes"})
    site.refresh_from_db()
    assert (site.name, site.domain) == ("olivia.example", "olivia.example")


@pytest.mark.parametrize("action", ["disable", "regenerate_tracking_code"])
def test_actions_ignore_websites_the_user_does_not_own(client, teammate, site, action):
    signed_in(client, teammate)
    code = site.tracking_code
    client.post(
        admin_url("changelist"),
        {"action": action, "_selected_action": [site.pk], "confirmed": "yes"},
    )
    site.refresh_from_db()
    assert site.enabled and site.tracking_code == code


def test_an_outsider_is_sent_to_the_login_page(client, outsider, site):
    response = signed_in(client, outsider).get(admin_url("change", site.pk))
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_a_superuser_sees_all_websites(client, site):
    root = get_user_model().objects.create_superuser("root", password="pw-root-123")
    Website.objects.create(domain="other.example")
    listing = signed_in(client, root).get(admin_url("changelist")).content
    assert b"olivia.example" in listing and b"other.example" in listing


def test_adding_a_website_makes_the_user_its_owner(client, owner):
    signed_in(client, owner)
    response = client.post(
        admin_url("add"),
        {
            "name": "New",
            "domain": "New.Example",
            "timezone": "Europe/Berlin",
            "enabled": "on",
            "respect_dnt": "on",
            "extra_hostnames": "",
            "excluded_ips": "",
        },
    )
    assert response.status_code == 302, response.content
    website = Website.objects.get(domain="new.example")
    assert website.owner == owner


def test_a_bad_domain_or_time_zone_is_a_form_error(client, owner):
    signed_in(client, owner)
    response = client.post(
        admin_url("add"),
        {"name": "x", "domain": "not a domain", "timezone": "Mars/Base", "enabled": "on"},
    )
    assert response.status_code == 200
    assert response.content.count(b"is not a domain name") == 1  # under the field, once
    assert b"is not a time zone" in response.content


def test_a_bad_extra_host_name_is_said_once(client, owner):
    signed_in(client, owner)
    response = client.post(
        admin_url("add"),
        {"domain": "shop.example", "extra_hostnames": "ok.example\nbad_host!", "timezone": "UTC"},
    )
    assert response.status_code == 200
    assert response.content.count(b"is not a domain name") == 1


def test_regenerating_asks_for_confirmation_first(client, owner, site):
    signed_in(client, owner)
    code = site.tracking_code
    page = client.post(
        admin_url("changelist"),
        {"action": "regenerate_tracking_code", "_selected_action": [site.pk]},
    )
    assert page.status_code == 200
    assert b"stops working immediately" in page.content
    site.refresh_from_db()
    assert site.tracking_code == code
    client.post(
        admin_url("changelist"),
        {"action": "regenerate_tracking_code", "_selected_action": [site.pk], "confirmed": "yes"},
    )
    site.refresh_from_db()
    assert site.tracking_code != code


def test_disable_and_enable_actions(client, owner, site):
    signed_in(client, owner)
    client.post(admin_url("changelist"), {"action": "disable", "_selected_action": [site.pk]})
    site.refresh_from_db()
    assert not site.enabled
    client.post(admin_url("changelist"), {"action": "enable", "_selected_action": [site.pk]})
    site.refresh_from_db()
    assert site.enabled


def test_createowner_makes_a_staff_account_with_website_permissions(capsys):
    call_command("createowner", "nora")
    user = get_user_model().objects.get(username="nora")
    assert user.is_staff and not user.is_superuser
    assert user.has_perm("zenovay.add_website") and user.has_perm("zenovay.change_website")
    assert not user.has_perm("auth.change_user")
    assert "Password (shown once):" in capsys.readouterr().out
