"""Who may see and manage a website: its owner, its members, superusers, shared links.

- The owner (`Website.owner`) does everything, deleting the website included.
- A member with the admin role manages it: settings, tracking code, members, shared
  links and goals; not deleting it.
- A viewer member sees its dashboard, nothing else.
- A superuser is an operator: every website, as its owner.
- A shared link shows one website's dashboard to anyone holding it (and its password,
  when it has one), without signing in; it grants nothing else.

Anything a user may not see answers 404, as if it did not exist, so ids cannot be probed;
what they see but may not change answers 403.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Any, Literal

from django.contrib.auth.hashers import check_password
from django.core import signing
from django.db.models import Q, QuerySet
from django.utils.crypto import constant_time_compare, salted_hmac

from zenovay import ids
from zenovay.models import Membership, SharedLink, Website

Role = Literal["owner", "admin", "viewer"]
SHARE_COOKIE_AGE = 30 * 86_400  # a shared link's password is asked again after 30 days


def _active(user: Any) -> bool:
    return bool(user and user.is_authenticated and user.is_active)


def visible_websites(user: Any) -> QuerySet[Website]:
    """The websites a user may look at: owned, shared with them, or all for a superuser."""
    if not _active(user):
        return Website.objects.none()
    if user.is_superuser:
        return Website.objects.all()
    return Website.objects.filter(Q(owner=user) | Q(memberships__user=user)).distinct()


def visible_website(user: Any, website_id: str, *, enabled_only: bool = False) -> Website | None:
    if not ids.is_website_id(website_id):
        return None
    websites = visible_websites(user)
    if enabled_only:
        websites = websites.filter(enabled=True)
    return websites.filter(website_id=website_id).first()


def role(user: Any, website: Website) -> Role | None:
    if not _active(user):
        return None
    if user.is_superuser or website.owner_id == user.pk:
        return "owner"
    member = Membership.objects.filter(website=website, user=user).values_list("role", flat=True)
    found = member.first()
    return None if found is None else ("admin" if found == Membership.ADMIN else "viewer")


def may_manage(user: Any, website: Website) -> bool:
    return role(user, website) in ("owner", "admin")


# --- Secrets of invitations and shared links


def new_secret() -> str:
    return secrets.token_urlsafe(18)  # 24 characters, 144 bits


def digest(secret: str) -> str:
    """What is stored of an invitation's secret: its SHA-256 (the secret is random)."""
    return hashlib.sha256(secret.encode()).hexdigest()


def shared_link(slug: str) -> SharedLink | None:
    """The live link behind a slug, with its website, when that website is enabled."""
    if not (0 < len(slug) <= 32 and slug.replace("-", "").replace("_", "").isalnum()):
        return None
    return (
        SharedLink.objects.select_related("website")
        .filter(slug=slug, website__enabled=True)
        .first()
    )


def share_cookie_name(link: SharedLink) -> str:
    return f"zv_share_{link.slug}"


def share_pass(link: SharedLink) -> str:
    """The cookie value proving a link's password was given; a new password voids it."""
    return salted_hmac("zenovay.share", f"{link.slug}:{link.password}").hexdigest()


def share_cookie_value(link: SharedLink) -> str:
    return signing.dumps(share_pass(link), salt=share_cookie_name(link))


def share_unlocked(link: SharedLink, cookies: dict[str, str]) -> bool:
    """A link without a password is open; otherwise its signed cookie must match."""
    if not link.password:
        return True
    raw = cookies.get(share_cookie_name(link))
    if not raw:
        return False
    try:
        value = signing.loads(raw, salt=share_cookie_name(link), max_age=SHARE_COOKIE_AGE)
    except signing.BadSignature:
        return False
    return isinstance(value, str) and constant_time_compare(value, share_pass(link))


def share_password_matches(link: SharedLink, password: str) -> bool:
    return bool(link.password) and check_password(password, link.password)
