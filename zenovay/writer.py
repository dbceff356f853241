"""Group commit: the events of concurrent collect requests are written together.

A request hands its accepted event to `submit()` and waits. Up to `db.writers()` batches
are written at once, each on its own connection, in one transaction (`ingest.store`). An
event that finds a writer free starts a batch at once, with whatever else arrived in the
same turn of the event loop; one that finds every writer busy queues up, and the queue is
written as the next batch as soon as one is free. So under load a batch holds whatever
came during one commit (up to `MAX_BATCH`), and alone an event is written at once:
batching adds no waiting of its own. A request is answered only after its own
batch has committed, so an acknowledged event is never lost.

A batch that fails fails only its own requests. When the database is unreachable they all
get its error (each would fail alike); when the batch itself is refused (a constraint, bad
data) each of its events is written again alone, so one poisoned event costs only itself.

The queue and the flushing task belong to the running event loop (tests run many loops).
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Sequence

from django.db import DatabaseError, InterfaceError, OperationalError

from zenovay import ingest, payload
from zenovay.infra import db

log = logging.getLogger("zenovay.writer")
# A batch's limit also paces the pipeline: under heavy load without one, nearly every
# request in flight joined one batch, and the process alternated between writing it (the
# event loop idle) and answering it and parsing the next requests (the writer idle). With
# 128, the requests of one batch are answered while the next is written. At 256
# connections (bench/ingest.py, own wrk runs): p99 112 -> 75-83 ms on PostgreSQL and 89 ->
# 70 ms on SQLite, for 4-6% fewer events a second; below 128 at once nothing changes.
MAX_BATCH = 128


class _Queue:
    def __init__(self) -> None:
        self.waiting: list[tuple[ingest.Pending, asyncio.Future[None]]] = []
        self.flushing: asyncio.Task[None] | None = None
        self.wake: asyncio.Future[None] | None = None  # the flusher waits on it for arrivals


_queues: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Queue] = weakref.WeakKeyDictionary()


async def submit(pending: ingest.Pending) -> None:
    """Write the event with whatever else is waiting; returns once it is committed."""
    loop = asyncio.get_running_loop()
    queue = _queues.get(loop)
    if queue is None:
        queue = _queues[loop] = _Queue()
    done: asyncio.Future[None] = loop.create_future()
    queue.waiting.append((pending, done))
    if queue.flushing is None or queue.flushing.done():
        queue.flushing = loop.create_task(_flush(queue))
    elif queue.wake is not None and not queue.wake.done():
        queue.wake.set_result(None)
    await done


async def _flush(queue: _Queue) -> None:
    """Write batches until nothing waits, up to `db.writers()` of them at once; the task
    ends then (a new one starts on demand)."""
    loop = asyncio.get_running_loop()
    writing: set[asyncio.Future[None]] = set()
    while True:
        await asyncio.sleep(0)  # requests that are ready in this turn of the loop join in
        while queue.waiting and len(writing) < db.writers():
            batch, queue.waiting = queue.waiting[:MAX_BATCH], queue.waiting[MAX_BATCH:]
            writing.add(asyncio.ensure_future(_write(batch)))
        if not writing:
            return
        waits: set[asyncio.Future[None]] = set(writing)
        if len(writing) < db.writers():  # a writer is free: an arrival starts a batch
            queue.wake = loop.create_future()
            waits.add(queue.wake)
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        queue.wake = None
        writing = {one for one in writing if not one.done()}


async def _write(batch: Sequence[tuple[ingest.Pending, asyncio.Future[None]]]) -> None:
    try:
        changes = await db.write(ingest.store, [pending for pending, _ in batch])
    except (OperationalError, InterfaceError) as exc:  # unreachable: every event alike
        _settle(batch, exc)
    except DatabaseError as exc:
        if len(batch) == 1:
            _settle(batch, exc)
            return
        log.warning("a batch of %d events was refused, writing each alone: %r", len(batch), exc)
        for one in batch:
            await _write([one])
    except Exception as exc:  # a bug: the requests fail (500), the flusher goes on
        log.exception("writing a batch of %d events failed", len(batch))
        _settle(batch, exc)
    else:
        stored = {id(pending) for pending, _, _ in changes}
        _settle([one for one in batch if id(one[0]) in stored], None)
        gone = [one for one in batch if id(one[0]) not in stored]  # its website was deleted
        if gone:
            _settle(gone, payload.NotFound(payload.UNKNOWN_CODE))


def _settle(
    batch: Sequence[tuple[ingest.Pending, asyncio.Future[None]]], error: BaseException | None
) -> None:
    for _, done in batch:
        if done.done():  # its request was cancelled (the client left)
            continue
        if error is None:
            done.set_result(None)
        else:
            done.set_exception(error)
