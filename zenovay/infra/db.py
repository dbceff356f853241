"""Running the ORM from async code on one long-lived database thread per process.

Django runs each ASGI request's synchronous work on a thread of its own, so every
request would open (and close) a database connection: on SQLite that also deletes
and recreates the write-ahead log each time the last connection closes. The hot
async paths (collect, the read endpoints' snapshots, the push ticker, sockets)
instead share one thread whose connection stays open. A database error closes
it, so the next call reconnects: that is how a restarted database is recovered.

Calls wait their turn on that one thread, and against a database that is down each
would wait for a connection until the pool's timeout: a burst of requests would queue
for minutes. So once a failed call finds the database unreachable, calls fail at once
(a 503, a socket closed with 4503, a skipped push) for `RETRY_SECONDS`; then one
call tries the database again while the others keep failing at once, until one succeeds.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError, connection

P = ParamSpec("P")
T = TypeVar("T")

log = logging.getLogger("zenovay.db")
RETRY_SECONDS = 2.0

_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="zenovay-db")
# The group commit's batches (zenovay.writer) have threads of their own, so reads never
# queue behind a commit. On PostgreSQL a few batches are written at once, each on its own
# connection: one batch's round trips and commit wait for the server while the next one
# goes ahead (the server merges their flushes). SQLite has one writer at a time anyway.
_writers: ThreadPoolExecutor | None = None


def writers() -> int:
    """How many batches this process writes at once."""
    if connection.vendor == "postgresql":
        return settings.ZENOVAY_DB_WRITERS
    return 1


def _write_executor() -> ThreadPoolExecutor:
    global _writers
    if _writers is None:
        _writers = ThreadPoolExecutor(max_workers=writers(), thread_name_prefix="zenovay-write")
    return _writers


# Long background work (the sealer's day at a time, seconds at 10^7 events a month) has a
# thread and connection of its own, so the push's and the endpoints' reads never wait on it.
_background = ThreadPoolExecutor(max_workers=1, thread_name_prefix="zenovay-background")

_down_until = 0.0  # monotonic time before which the database is taken to be down
_recovering = False  # it was down, and no call has been answered since
_probing = False  # a call is trying it again: the others fail at once meanwhile


async def run(fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """`fn(*args, **kwargs)` on the database thread, awaited."""
    return await _on(_executor, functools.partial(fn, *args, **kwargs))


async def background(fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """`fn(*args, **kwargs)` on the background thread, awaited."""
    return await _on(_background, functools.partial(fn, *args, **kwargs))


async def write(fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """`fn(*args, **kwargs)` on a writer thread (see `writers`), awaited."""
    return await _on(_write_executor(), functools.partial(fn, *args, **kwargs))


async def _on(executor: ThreadPoolExecutor, fn: Callable[[], T]) -> T:
    global _probing, _recovering
    if not settings.ZENOVAY_DB_THREAD:  # in-process tests share the test's transaction
        return await sync_to_async(fn)()
    _fail_fast()
    call = sync_to_async(functools.partial(_guarded, fn), thread_sensitive=False, executor=executor)
    if not _recovering:
        return await call()
    if _probing:
        raise _unavailable()
    _probing = True
    try:
        return await call()
    finally:
        _probing = False
        if time.monotonic() >= _down_until:  # whatever the answer, the database gave it
            _recovering = False


def _unavailable() -> OperationalError:
    return OperationalError("The database is unreachable; retrying in a moment.")


def _fail_fast() -> None:
    if time.monotonic() < _down_until:
        raise _unavailable()


def _guarded(fn: Callable[..., T], *args: object, **kwargs: object) -> T:
    global _down_until, _recovering
    _fail_fast()  # also for calls queued behind the one that found the database down
    try:
        return fn(*args, **kwargs)
    except DatabaseError as exc:
        connected = connection.connection is not None  # else getting one is what failed
        with contextlib.suppress(DatabaseError):
            connection.close()  # reconnect on the next call, e.g. after a restart
        if isinstance(exc, OperationalError | InterfaceError) and not (connected and _reachable()):
            _down_until = time.monotonic() + RETRY_SECONDS
            _recovering = True
            log.warning("database unreachable, failing fast for %.0fs: %s", RETRY_SECONDS, exc)
        raise


def _reachable() -> bool:
    """Whether a working connection can be had now (a restarted database: yes, at once)."""
    try:
        connection.ensure_connection()
        if connection.is_usable():
            return True
    except DatabaseError:
        pass
    with contextlib.suppress(DatabaseError):
        connection.close()
    return False
