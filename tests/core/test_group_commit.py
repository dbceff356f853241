"""The write path under concurrency (issue 12): group commit, failures confined to their
own requests, and one open session per visitor whatever the number of processes."""

from __future__ import annotations

import asyncio
import json
import threading
import types

import pytest
from asgiref.sync import sync_to_async
from django.db import DataError, connection, transaction
from django.db.models import Count
from django.utils import timezone

from tests.factories import DESKTOP_UA, body, post_collect, sender
from tests.servers import wait_until
from zenovay import ingest, payload, salts, writer
from zenovay.models import Event, Session, Website

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def shop(transactional_db) -> Website:
    salts.salt_for(timezone.now())  # so that accept() needs no database in the async tests
    return Website.objects.create(domain="shop.example", name="Shop")


def pending(website: Website, path: str, agent: str = DESKTOP_UA) -> ingest.Pending:
    parsed = payload.parse_payload(body(website, "pageview", path))
    accepted = ingest.accept(
        website=website, payload=parsed, client=sender(None, country="", ua=agent)
    )
    assert isinstance(accepted, ingest.Pending)
    return accepted


@pytest.fixture
def batches(monkeypatch) -> list[int]:
    """The size of every batch `ingest.store` is handed."""
    sizes: list[int] = []
    store = ingest.store

    def counting(batch):
        sizes.append(len(batch))
        return store(batch)

    monkeypatch.setattr(ingest, "store", counting)
    return sizes


async def test_concurrent_events_are_written_in_few_transactions(shop, batches):
    events = [pending(shop, f"/p{n}") for n in range(60)]
    await asyncio.gather(*(writer.submit(event) for event in events))
    assert sum(batches) == 60
    assert len(batches) < 10, batches  # one batch per commit, not one per event
    assert await Event.objects.acount() == 60


async def test_an_event_alone_is_written_at_once(shop, batches):
    await writer.submit(pending(shop, "/alone"))
    assert batches == [1]
    assert await Event.objects.filter(path="/alone").aexists()


class HeldStore:
    """Stands in for `ingest.store` on threads of its own: each batch it is handed is kept
    and held until `release` is set."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.release = threading.Event()

    def __call__(self, batch):
        self.batches.append([event.n for event in batch])
        assert self.release.wait(10)
        return [(event, None, None) for event in batch]


@pytest.fixture
def held(monkeypatch) -> HeldStore:
    store = HeldStore()

    async def write(fn, batch):
        return await asyncio.to_thread(store, batch)

    monkeypatch.setattr(writer.db, "write", write)
    yield store
    store.release.set()


async def until(condition, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.005)


def events(*numbers: int) -> list[types.SimpleNamespace]:
    return [types.SimpleNamespace(n=n) for n in numbers]


async def test_events_arriving_while_the_one_writer_is_busy_become_the_next_batch(
    held, monkeypatch
):
    monkeypatch.setattr(writer.db, "writers", lambda: 1)
    first = asyncio.ensure_future(writer.submit(events(0)[0]))
    await until(lambda: held.batches == [[0]])
    rest = asyncio.gather(*(writer.submit(event) for event in events(1, 2, 3)))
    held.release.set()
    await asyncio.wait_for(asyncio.gather(first, rest), 10)
    assert held.batches == [[0], [1, 2, 3]]


async def test_a_queue_longer_than_a_batch_is_written_in_order_in_batches_of_at_most_max(
    held, monkeypatch
):
    monkeypatch.setattr(writer.db, "writers", lambda: 1)
    monkeypatch.setattr(writer, "MAX_BATCH", 4)
    first = asyncio.ensure_future(writer.submit(events(0)[0]))
    await until(lambda: held.batches == [[0]])
    rest = asyncio.gather(*(writer.submit(event) for event in events(*range(1, 11))))
    held.release.set()
    await asyncio.wait_for(asyncio.gather(first, rest), 10)
    assert held.batches == [[0], [1, 2, 3, 4], [5, 6, 7, 8], [9, 10]]


async def test_with_a_second_writer_free_arrivals_start_a_batch_at_once(held, monkeypatch):
    monkeypatch.setattr(writer.db, "writers", lambda: 2)
    first = asyncio.ensure_future(writer.submit(events(0)[0]))
    await until(lambda: held.batches == [[0]])
    rest = asyncio.gather(*(writer.submit(event) for event in events(1, 2, 3)))
    await until(lambda: len(held.batches) == 2)  # while the first is still held
    assert held.batches == [[0], [1, 2, 3]]
    held.release.set()
    await asyncio.wait_for(asyncio.gather(first, rest), 10)


async def test_a_refused_batch_fails_only_the_event_that_caused_it(shop, monkeypatch):
    store = ingest.store

    def refusing(batch):
        if any(item.payload.path == "/poison" for item in batch):
            raise DataError("value out of range")  # what bad data gets from the database
        return store(batch)

    monkeypatch.setattr(ingest, "store", refusing)
    events = [pending(shop, f"/p{n}") for n in range(10)]
    events.insert(5, pending(shop, "/poison"))
    results = await asyncio.gather(
        *(writer.submit(event) for event in events), return_exceptions=True
    )
    assert [type(result).__name__ for result in results].count("DataError") == 1
    assert isinstance(results[5], DataError)
    assert await Event.objects.acount() == 10
    assert not await Event.objects.filter(path="/poison").aexists()


async def test_an_event_the_database_refuses_fails_alone(shop):
    events = [pending(shop, f"/p{n}", agent=f"{DESKTOP_UA} v/{n}") for n in range(6)]
    events[2].payload.engaged_ms = -1  # what the table's check refuses
    results = await asyncio.gather(
        *(writer.submit(event) for event in events), return_exceptions=True
    )
    assert [type(result).__name__ for result in results] == (
        ["NoneType"] * 2 + ["IntegrityError"] + ["NoneType"] * 3
    )
    assert await Event.objects.acount() == 5
    assert await Session.objects.acount() == 5


async def test_a_visitors_events_in_one_batch_make_one_session(shop):
    events = [pending(shop, f"/p{n}") for n in range(5)]
    await asyncio.gather(*(writer.submit(event) for event in events))
    session = await Session.objects.aget()
    assert session.pageviews == 5
    assert session.entry_path == "/p0"
    assert session.exit_path == "/p4"


async def test_events_of_a_website_deleted_on_their_way_are_refused_and_not_stored(shop):
    other = await Website.objects.acreate(domain="other.example", name="Other")
    doomed = [pending(other, f"/gone{n}") for n in range(3)]
    kept = [pending(shop, f"/kept{n}") for n in range(3)]
    await Website.objects.filter(pk=other.pk).adelete()  # accepted, then deleted, then written
    results = await asyncio.gather(
        *(writer.submit(event) for event in [*doomed, *kept]), return_exceptions=True
    )
    assert [type(result).__name__ for result in results] == ["NotFound"] * 3 + ["NoneType"] * 3
    assert results[0].status == 404
    assert sorted([path async for path in Event.objects.values_list("path", flat=True)]) == [
        "/kept0",
        "/kept1",
        "/kept2",
    ]
    raw = json.dumps({"code": other.tracking_code, "url": "https://other.example/"}).encode()
    with pytest.raises(payload.NotFound):  # the synchronous way in says the same
        await sync_to_async(ingest.record_event)(
            website=other, payload=payload.parse_payload(raw), client=sender(None, country="")
        )
    assert await Event.objects.acount() == 3


@pytest.mark.faults
def test_first_pageviews_at_once_on_several_processes_open_one_session_per_visitor(launch, shop):
    servers = [launch("serve") for _ in range(3)]
    agents = [f"{DESKTOP_UA} visitor/{n}" for n in range(60)]
    start = threading.Barrier(len(agents) * len(servers))
    statuses: list[int] = []

    def visit(server, agent: str, n: int) -> None:
        start.wait()
        statuses.append(
            post_collect(server.url, shop.tracking_code, f"/page{n}", ua=agent, timeout=20)
        )

    threads = [
        threading.Thread(target=visit, args=(server, agent, n))
        for agent in agents
        for n, server in enumerate(servers)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert statuses == [202] * len(threads)
    assert Event.objects.count() == len(threads)
    doubled = Session.objects.values("visitor").annotate(n=Count("id")).filter(n__gt=1)
    assert list(doubled) == []
    assert Session.objects.count() == len(agents)
    assert sorted(Session.objects.values_list("pageviews", flat=True)) == [3] * len(agents)


def _waiting_on_a_lock() -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return cursor.fetchone()[0] > 0


def _in_thread(work) -> tuple[threading.Thread, list]:
    """`work()` on a thread with its own connection; what it returned or raised, once done."""
    outcome: list = []

    def run() -> None:
        try:
            outcome.append(work())
        except Exception as exc:  # handed to the test
            outcome.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


@pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite has one writer")
def test_a_website_deleted_while_a_batch_writes_to_it_takes_the_batchs_events_with_it(shop):
    """Events have no foreign-key constraint: the batch's lock on its website keeps the
    deletion waiting until the batch has committed, and the deletion then takes its rows."""
    stored, release = threading.Event(), threading.Event()

    def write_and_hold() -> int:
        with transaction.atomic():
            changes = ingest.store([pending(shop, f"/late{n}") for n in range(3)])
            stored.set()
            assert release.wait(20)
        return len(changes)

    writing, written = _in_thread(write_and_hold)
    assert stored.wait(20)
    deleting, deleted = _in_thread(lambda: Website.objects.filter(pk=shop.pk).delete())
    wait_until(lambda: _waiting_on_a_lock() or deleted, 20, "the deletion waits or ends")
    release.set()
    writing.join(20)
    deleting.join(20)
    assert written == [3]
    assert not isinstance(deleted[0], Exception), deleted
    assert not Website.objects.filter(pk=shop.pk).exists()
    assert Event.objects.filter(website_id=shop.pk).count() == 0  # no orphans
    assert Session.objects.filter(website_id=shop.pk).count() == 0


@pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite has one writer")
def test_a_batch_that_comes_while_its_website_is_deleted_waits_and_stores_nothing(shop):
    deleted, release = threading.Event(), threading.Event()

    def delete_and_hold() -> None:
        with transaction.atomic():
            Website.objects.filter(pk=shop.pk).delete()
            deleted.set()
            assert release.wait(20)

    deleting, _ = _in_thread(delete_and_hold)
    assert deleted.wait(20)
    writing, written = _in_thread(
        lambda: ingest.store([pending(shop, f"/after{n}") for n in range(3)])
    )
    wait_until(lambda: _waiting_on_a_lock() or written, 20, "the batch waits or ends")
    release.set()
    deleting.join(20)
    writing.join(20)
    assert written == [[]]  # its website is gone: nothing stored, the writer answers 404
    assert Event.objects.filter(website_id=shop.pk).count() == 0
    assert Session.objects.filter(website_id=shop.pk).count() == 0
