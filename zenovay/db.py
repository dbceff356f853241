"""Running the ORM from async code on one long-lived database thread per process.

Django runs each ASGI request's synchronous work on a thread of its own, so every
request would open (and close) a database connection: on SQLite that also deletes
and recreates the write-ahead log each time the last connection closes. The hot
async paths (collect, the read endpoints' snapshots, the push ticker, sockets)
instead share one thread whose connection stays open. A database error closes
it, so the next call reconnects: that is how a restarted database is recovered.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import DatabaseError, connection

P = ParamSpec("P")
T = TypeVar("T")

_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="zenovay-db")


async def run(fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """`fn(*args, **kwargs)` on the database thread, awaited."""
    if not settings.ZENOVAY_DB_THREAD:  # in-process tests share the test's transaction
        return await sync_to_async(fn)(*args, **kwargs)
    call = functools.partial(_guarded, fn, *args, **kwargs)
    return await sync_to_async(call, thread_sensitive=False, executor=_executor)()


def _guarded(fn: Callable[..., T], *args: object, **kwargs: object) -> T:
    try:
        return fn(*args, **kwargs)
    except DatabaseError:
        with contextlib.suppress(DatabaseError):
            connection.close()  # reconnect on the next call, e.g. after a restart
        raise
