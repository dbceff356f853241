"""API keys in a real headless Chromium against a real server: an owner makes a key, copies
its secret (shown once) from the page, the secret authenticates, and revoking it in the page
ends it. Screenshots land in var/screenshots/api-keys-*.png.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.browser.test_dashboard_browser import PASSWORD, screenshot, sign_in
from zenovay import apikeys
from zenovay.models import ApiKey
from zenovay.owners import create_owner

pytestmark = pytest.mark.browser

SECRET = re.compile(r"zv_[A-Za-z0-9_-]{40}")


def test_an_owner_makes_copies_and_revokes_a_key(page: Page, base: str):
    create_owner("olivia", PASSWORD)
    sign_in(page, base)
    page.locator(".sidebar").get_by_role("link", name="API keys").click()
    expect(page.get_by_role("heading", name="API keys", exact=True)).to_be_visible()
    expect(page.get_by_text("No keys yet.")).to_be_visible()

    # Make a key: its secret is on this page, once, to copy.
    page.get_by_label("Name").fill("Weekly report")
    page.get_by_role("button", name="Make a key").click()
    expect(page.get_by_role("status").filter(has_text="shown once")).to_be_visible()
    page.locator('[data-copy="zv-new-key"]').click()
    expect(page.locator('[data-copy="zv-new-key"]')).to_have_text("Copied")
    secret = page.evaluate("navigator.clipboard.readText()")
    assert SECRET.fullmatch(secret), secret
    row = page.locator("tr", has_text="Weekly report")
    expect(row).to_contain_text(f"zv_{secret[3:11]}…")
    expect(row).to_contain_text("never")
    screenshot(page, "api-keys-1-made")
    key = apikeys.authenticate(secret)
    assert key is not None
    assert (key.name, key.user.get_username()) == ("Weekly report", "olivia")

    # Opened again, the page lists the key but no longer holds its secret.
    page.goto(f"{base}/dashboard/account/api-keys/")
    expect(page.locator("tr", has_text="Weekly report")).to_be_visible()
    assert secret not in page.content()

    # Revoked in the page: it authenticates no more.
    page.get_by_role("button", name="Revoke Weekly report").click()
    expect(page.get_by_text("The key Weekly report is revoked")).to_be_visible()
    expect(page.locator("tr", has_text="Weekly report")).to_have_count(0)
    screenshot(page, "api-keys-2-revoked")
    assert apikeys.authenticate(secret) is None
    assert not ApiKey.objects.exists()
