"""Site owners: staff accounts allowed to manage their own websites in the admin."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser, Group, Permission

OWNERS_GROUP = "Site owners"
WEBSITE_PERMISSIONS = ["add_website", "change_website", "delete_website", "view_website"]
# Their own API keys, in the admin: listed and revoked (made in the dashboard).
API_KEY_PERMISSIONS = ["view_apikey", "delete_apikey"]


def owners_group() -> Group:
    group, _ = Group.objects.get_or_create(name=OWNERS_GROUP)
    group.permissions.set(
        Permission.objects.filter(
            content_type__app_label="zenovay",
            codename__in=WEBSITE_PERMISSIONS + API_KEY_PERMISSIONS,
        )
    )
    return group


def create_owner(username: str, password: str, email: str = "") -> AbstractUser:
    user = get_user_model().objects.create_user(username, email=email, password=password)
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    user.groups.add(owners_group())
    return user
