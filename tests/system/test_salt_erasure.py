"""A retired salt is gone from the database's storage, not only from its queries.

The README promises that old salts cannot be linked again, "not even by the operator":
so these tests read what the database keeps, page by page (PostgreSQL, through
`pageinspect`) or byte by byte (SQLite's file and its write-ahead log), and look for the
retired secret. Each also finds the current secret there, so the scan is not vacuous.
The erasure completes at commit (PostgreSQL empties the table's old file then, SQLite's
log is checkpointed after it): these tests commit for real.
"""

from __future__ import annotations

import datetime as dt
import subprocess
from pathlib import Path

import pytest
from django.db import connection, connections, transaction

from zenovay import salts
from zenovay.models import Salt

pytestmark = pytest.mark.django_db(transaction=True)
only_postgresql = pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's")
only_sqlite = pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's")

NOW = dt.datetime(2026, 3, 14, 12, 0, tzinfo=dt.UTC)
NEXT_MONTH = NOW + dt.timedelta(days=31)
LAST_MONTH = NOW - dt.timedelta(days=31)


@pytest.fixture(autouse=True)
def _monthly(settings):
    settings.ZENOVAY_SALT_ROTATION = "monthly"


def stored_bytes() -> bytes:
    """Everything the database holds for the salt table, as it would be read off disk."""
    if connection.vendor == "postgresql":
        return b"".join(_heap_pages())
    name = Path(connection.settings_dict["NAME"])
    files = [str(path) for path in (name, Path(f"{name}-wal")) if path.exists()]
    # Read by another process: closing a file descriptor of the database file in this one
    # would drop every POSIX lock this process's SQLite connections hold on it (SQLite's
    # documented pitfall), and another process could then reset the WAL under them.
    return subprocess.run(["cat", *files], capture_output=True, check=True).stdout


def _heap_pages() -> list[bytes]:
    table = Salt._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute("CREATE EXTENSION IF NOT EXISTS pageinspect")
        cursor.execute(
            "SELECT get_raw_page(%s, n) FROM generate_series(0, "
            "pg_relation_size(%s) / current_setting('block_size')::int - 1) AS n",
            [table, table],
        )
        return [bytes(page) for (page,) in cursor.fetchall()]


def assert_erased(retired: bytes, kept: bytes) -> None:
    stored = stored_bytes()
    assert kept in stored  # the scan reads where the salts are
    assert retired not in stored


def rotate(first: dt.datetime, then: dt.datetime) -> tuple[bytes, bytes]:
    """Make the salt of `first`, then use `then` as another process would: (retired, kept)."""
    retired = salts.salt_for(first)
    salts.forget_cached_salt()
    kept = salts.salt_for(then)
    assert Salt.objects.count() == 1
    return retired, kept


def test_a_rotated_salt_leaves_no_bytes_in_storage():
    retired, kept = rotate(NOW, NEXT_MONTH)
    assert_erased(retired, kept)


def test_a_retired_backfill_salt_leaves_no_bytes_in_storage():
    # The current salt sits first on the page and the backfill's after it: a plain VACUUM
    # frees the backfill's tuple but leaves its bytes where they were.
    kept = salts.salt_for(NOW)
    salts.forget_cached_salt()
    retired = salts.salt_for(LAST_MONTH)  # a backfill into last month
    salts.forget_cached_salt()
    assert salts.salt_for(NOW) == kept  # the next current-period use retires the past one
    assert Salt.objects.count() == 1
    assert_erased(retired, kept)


def test_a_salt_retired_inside_a_transaction_is_erased_after_commit():
    retired = salts.salt_for(NOW)
    salts.forget_cached_salt()
    with transaction.atomic():  # as a backfill batch of `simulate` calls it
        kept = salts.salt_for(NEXT_MONTH)
    assert_erased(retired, kept)


@pytest.fixture
def sqlite_keeping_deleted_bytes():
    """SQLite as its own builds come (Debian's zero deleted content by default)."""
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA secure_delete")
        (before,) = cursor.fetchone()
        cursor.execute("PRAGMA secure_delete = OFF")
    yield
    with connection.cursor() as cursor:
        cursor.execute(f"PRAGMA secure_delete = {before}")


@only_sqlite
def test_sqlite_erases_even_where_its_build_keeps_deleted_bytes(sqlite_keeping_deleted_bytes):
    retired, kept = rotate(NOW, NEXT_MONTH)
    assert_erased(retired, kept)


@only_postgresql
def test_no_dead_salt_tuple_is_left_on_the_heap():
    rotate(NOW, NEXT_MONTH)
    with connection.cursor() as cursor:
        cursor.execute("CREATE EXTENSION IF NOT EXISTS pageinspect")
        items = []
        for page in _heap_pages():
            cursor.execute("SELECT lp_flags, t_xmax::text::bigint FROM heap_page_items(%s)", [page])
            items += cursor.fetchall()
    assert items == [(1, 0)]  # one normal, never-deleted tuple: the current salt


@pytest.fixture
def elsewhere():
    """Another session on the same database, inside a transaction until the test ends."""
    other = connections.create_connection("default")
    other.set_autocommit(False)
    yield other
    other.rollback()
    other.close()


@only_postgresql
def test_a_transaction_running_elsewhere_does_not_keep_the_secret(elsewhere):
    # VACUUM FULL would copy the dead tuple: this transaction might still see it.
    elsewhere.cursor().execute("SELECT txid_current()")
    retired, kept = rotate(NOW, NEXT_MONTH)
    assert_erased(retired, kept)


@only_postgresql
def test_a_reader_holding_the_table_delays_the_erasure_not_the_salt(elsewhere, monkeypatch, caplog):
    monkeypatch.setattr(salts, "LOCK_WAIT", "50ms")
    retired = salts.salt_for(NOW)
    salts.forget_cached_salt()
    elsewhere.cursor().execute("SELECT * FROM zenovay_salt")  # and keeps its lock
    kept = salts.salt_for(NEXT_MONTH)
    assert Salt.objects.count() == 2
    assert "retired salts not erased yet" in caplog.text
    elsewhere.rollback()
    salts.forget_cached_salt()
    assert salts.salt_for(NEXT_MONTH) == kept  # the next process to load it erases
    assert_erased(retired, kept)
