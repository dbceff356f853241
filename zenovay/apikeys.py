"""Keys of the External API: made, recognised, and their last use noted.

A key's secret is `zv_` and 40 random URL-safe characters (240 bits). Only its SHA-256 is
stored (`access.digest`, as for invitations): a random secret needs no salt nor slow hash, and
a lookup by hash costs one indexed query whatever the secret is, right or wrong. The secret is
returned once, when the key is made; losing it means making another key.

`last_used` is written at most once a minute per key, and only by a conditional UPDATE, so a
busy key (or many processes serving it) does not write a row on every request.
"""

from __future__ import annotations

import datetime as dt
import secrets

from django.db.models import Q
from django.utils import timezone

from zenovay import access
from zenovay.models import ApiKey

PREFIX = "zv_"
SECRET_LENGTH = len(PREFIX) + 40  # token_urlsafe(30): 30 bytes, 40 characters
SHOWN_CHARACTERS = 8  # of the secret after zv_, kept in the clear to tell keys apart
TOUCH_EVERY = dt.timedelta(seconds=60)


def new_key(user, name: str) -> tuple[ApiKey, str]:
    """Make a key for `user`; return it and its secret, which is never available again."""
    secret = PREFIX + secrets.token_urlsafe(30)
    key = ApiKey.objects.create(
        user=user,
        name=name,
        prefix=secret[len(PREFIX) : len(PREFIX) + SHOWN_CHARACTERS],
        key_hash=access.digest(secret),
    )
    return key, secret


def authenticate(secret: str) -> ApiKey | None:
    """The key with this secret, its user loaded, if the key exists and its user is active."""
    if len(secret) != SECRET_LENGTH or not secret.startswith(PREFIX):
        return None
    return (
        ApiKey.objects.select_related("user")
        .filter(key_hash=access.digest(secret), user__is_active=True)
        .first()
    )


def touch(key: ApiKey) -> None:
    """Note that the key is used now, unless that was noted within the last minute."""
    now = timezone.now()
    since = now - TOUCH_EVERY
    if key.last_used is not None and key.last_used >= since:
        return  # as loaded with the key: no query at all
    stale = Q(last_used__isnull=True) | Q(last_used__lt=since)
    if ApiKey.objects.filter(stale, pk=key.pk).update(last_used=now):
        key.last_used = now
