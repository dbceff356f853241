"""Rotating secret salts and the pseudonymous visitor identity they key.

A visitor is blake2b(website, IP, user agent) keyed by the salt of the current
period. When the period changes a new salt is made and every older one deleted,
so identities from different periods can never be linked again.

Deleting a row does not erase it. PostgreSQL keeps it on its heap page as a dead
tuple (autovacuum never visits a table this small), and VACUUM only marks that space
free: the bytes stay until something is written over them. SQLite keeps a deleted
row's page images in its write-ahead log. So a retired secret is overwritten with
zeros and deleted (SQLite with `secure_delete`), then PostgreSQL's table gets a new file
holding only the kept rows, and SQLite's log is checkpointed and truncated after commit.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import hashlib
import logging
import secrets
import threading
from collections.abc import Iterator

from django.conf import settings
from django.db import IntegrityError, OperationalError, connection, transaction

from zenovay.models import Salt

log = logging.getLogger("zenovay.salts")
SECRET_BYTES = 32
LOCK_WAIT = "2s"
LOCK_NOT_AVAILABLE = "55P03"  # PostgreSQL's SQLSTATE when lock_timeout expires
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


def known_salt(now: dt.datetime) -> bytes | None:
    """The period's secret if this process holds it already (no database), else None."""
    cached = _current
    return cached[1] if cached is not None and cached[0] == _period_of_day(now.date()) else None


@functools.lru_cache(maxsize=8)
def _period_of_day(day: dt.date) -> str:
    return period_of(dt.datetime.combine(day, dt.time(), dt.UTC))


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
                salt = Salt.objects.create(period=period, secret=secrets.token_bytes(SECRET_BYTES))
        except IntegrityError:  # another process made it first
            salt = Salt.objects.get(period=period)
    _retire_before(period)
    return bytes(salt.secret)


def _retire_before(period: str) -> None:
    """Erase the salts of earlier periods (and of another rotation setting), never later ones.

    Creating the salt of a past period (a backfill) must not delete the current one.
    """
    if not _retired_by(period):
        return
    try:
        with _secure_delete(), transaction.atomic():
            _lock_salt_table()
            retired = _retired_by(period)  # again: another process may have done it
            if retired:
                _erase(retired)
    except OperationalError as exc:
        if getattr(exc.__cause__, "sqlstate", None) != LOCK_NOT_AVAILABLE:
            raise
        # Events must not wait on this: a process that loads the salt later retries.
        log.warning("A reader held the salt table: retired salts not erased yet.")
        return
    if connection.vendor == "sqlite":
        # A checkpoint cannot run inside a transaction, and must follow the commit.
        transaction.on_commit(_truncate_sqlite_log, robust=True)


def _retired_by(period: str) -> list[int]:
    return [
        salt.pk
        for salt in Salt.objects.exclude(period=period).only("pk", "period")
        if not _same_kind(salt.period, period) or salt.period < period
    ]


def _same_kind(a: str, b: str) -> bool:
    return len(a) == len(b) and ("W" in a) == ("W" in b)


def _erase(pks: list[int]) -> None:
    # SQLite rewrites a same-size value in place and secure_delete zeroes what the DELETE
    # frees; PostgreSQL writes a new row version instead, so there the rewrite erases.
    doomed = Salt.objects.filter(pk__in=pks)
    doomed.update(secret=bytes(SECRET_BYTES))
    doomed.delete()
    if connection.vendor == "postgresql":
        _rewrite_salt_table()


def _lock_salt_table() -> None:
    """PostgreSQL: hold the table alone until commit, waiting for readers only briefly.

    Salt readers queue behind this lock, so a reader that never finishes (a forgotten
    psql session) must not make every process's salt lookup wait. SQLite's IMMEDIATE
    transactions already hold its single write lock.
    """
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('lock_timeout')")
        (before,) = cursor.fetchone()
        cursor.execute("SELECT set_config('lock_timeout', %s, true)", [LOCK_WAIT])
        cursor.execute(f"LOCK TABLE {_salt_table()} IN ACCESS EXCLUSIVE MODE")
        cursor.execute("SELECT set_config('lock_timeout', %s, true)", [before])


def _rewrite_salt_table() -> None:
    """PostgreSQL: move the kept rows to a new, empty file; the old one is emptied at commit.

    Neither VACUUM nor VACUUM (FREEZE) clears the bytes of a dead tuple, and VACUUM FULL
    copies every tuple that a transaction running anywhere on the server (another
    process's ingest, another database's job) could still see, which is often.
    TRUNCATE waits for no snapshot; the table lock means nobody sees it empty.
    """
    table = _salt_table()
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {table}")  # noqa: S608 (our own table name)
        rows = cursor.fetchall()
        columns = ", ".join(["%s"] * len(cursor.description))
        cursor.execute(f"TRUNCATE {table}")
        cursor.executemany(f"INSERT INTO {table} VALUES ({columns})", rows)  # noqa: S608


def _salt_table() -> str:
    return connection.ops.quote_name(Salt._meta.db_table)


@contextlib.contextmanager
def _secure_delete() -> Iterator[None]:
    """SQLite: zero the space freed meanwhile (not every build does so by default)."""
    if connection.vendor != "sqlite":
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA secure_delete")
        (before,) = cursor.fetchone()
        cursor.execute("PRAGMA secure_delete = ON")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"PRAGMA secure_delete = {int(before)}")


def _truncate_sqlite_log() -> None:
    """Copy the zeroed pages over the database file and empty the write-ahead log.

    Until then the log holds earlier images of the salt's page, secret included.
    """
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        busy, _, _ = cursor.fetchone()
    if busy:  # a reader outlasted the busy timeout; the log goes with the last connection
        log.warning("A reader held the SQLite log: retired salts may stay in it for now.")


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
