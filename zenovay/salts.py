"""Rotating secret salts and the pseudonymous visitor identity they key.

A visitor is blake2b(website, IP, user agent) keyed by the salt of the current
period. When the period changes a new salt is made and every older one deleted,
so identities from different periods can never be linked again.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import threading

from django.conf import settings
from django.db import IntegrityError, transaction

from zenovay.models import Salt

_lock = threading.Lock()
_current: tuple[str, bytes] | None = None


def period_of(now: dt.datetime, rotation: str | None = None) -> str:
    rotation = rotation or settings.ZENOVAY_SALT_ROTATION
    day = now.astimezone(dt.UTC).date()
    if rotation == "daily":
        return day.isoformat()
    if rotation == "weekly":
        year, week, _ = day.isocalendar()
        return f"{year}-W{week:02d}"
    return f"{day:%Y-%m}"


def salt_for(now: dt.datetime) -> bytes:
    """The secret of the period containing `now`, creating it (and retiring others) once."""
    global _current
    period = period_of(now)
    cached = _current
    if cached is not None and cached[0] == period:
        return cached[1]
    with _lock:
        secret = _load_or_create(period)
        _current = (period, secret)
    return secret


def _load_or_create(period: str) -> bytes:
    salt = Salt.objects.filter(period=period).first()
    if salt is None:
        try:
            with transaction.atomic():
                salt = Salt.objects.create(period=period, secret=secrets.token_bytes(32))
        except IntegrityError:  # another process made it first
            salt = Salt.objects.get(period=period)
    _retire_before(period)
    return bytes(salt.secret)


def _retire_before(period: str) -> None:
    """Delete the salts of earlier periods (and of another rotation setting), never later ones.

    Creating the salt of a past period (a backfill) must not delete the current one.
    """
    for salt in Salt.objects.exclude(period=period).only("pk", "period"):
        same_kind = len(salt.period) == len(period) and ("W" in salt.period) == ("W" in period)
        if not same_kind or salt.period < period:
            salt.delete()


def forget_cached_salt() -> None:
    global _current
    _current = None


def visitor_id(*, salt: bytes, website_pk: int, ip: str, user_agent: str) -> int:
    """A signed 64-bit id: unlinkable without the salt, stable within one period."""
    digest = hashlib.blake2b(
        f"{website_pk}\x00{ip}\x00{user_agent}".encode("utf-8", "surrogatepass"),
        key=salt,
        digest_size=8,
    ).digest()
    return int.from_bytes(digest, "big", signed=True)
