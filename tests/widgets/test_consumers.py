"""The WebSocket consumers with WebsocketCommunicator, on the configured channel layer."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time

import pytest
from asgiref.sync import sync_to_async
from channels.layers import InMemoryChannelLayer
from channels.testing import WebsocketCommunicator
from django.db import connections
from django.test.utils import CaptureQueriesContext

from tests.factories import avisit, sender
from widgets import consumers
from zenovay import metrics, push
from zenovay.asgi import application
from zenovay.infra import store

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _fresh_push_state():
    store.reset()
    push.reset()
    yield
    push.reset()
    store.reset()


async def connect(path: str) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(application, path)
    connected, _ = await communicator.connect(timeout=5)
    assert connected
    return communicator


async def test_live_socket_sends_the_snapshot_on_connect(website):
    await avisit(website)
    ws = await connect(f"/ws/live/{website.tracking_code}")
    message = json.loads(await ws.receive_from(timeout=5))
    assert set(message) == {"liveCount", "timestamp"}
    assert message["liveCount"] == 1
    await ws.disconnect()


async def test_realtime_socket_sends_the_realtime_body(website):
    await avisit(website, path="/pricing")
    ws = await connect(f"/ws/realtime/{website.website_id}")
    message = json.loads(await ws.receive_from(timeout=5))
    assert set(message) == {"visitors", "pageViews", "countries", "topPages", "timestamp"}
    assert message["topPages"] == [{"path": "/pricing", "visitors": 1}]
    await ws.disconnect()


@pytest.mark.parametrize(
    "path",
    ["/ws/live/ZV_AAAAAAAAAAA", "/ws/live/garbage", "/ws/realtime/ws_unknown1", "/ws/realtime/x"],
)
async def test_unknown_ids_are_closed_with_4404(db, path):
    ws = WebsocketCommunicator(application, path)
    connected, _ = await ws.connect(timeout=5)
    assert connected
    closed = await ws.receive_output(timeout=5)
    assert closed["type"] == "websocket.close"
    assert closed["code"] == 4404
    assert closed.get("reason")


async def test_a_disabled_website_is_refused(website):
    website.enabled = False
    await website.asave()
    ws = WebsocketCommunicator(application, f"/ws/live/{website.tracking_code}")
    await ws.connect(timeout=5)
    assert (await ws.receive_output(timeout=5))["code"] == 4404


async def test_a_new_event_is_pushed_within_a_couple_of_seconds(website):
    ws = await connect(f"/ws/live/{website.tracking_code}")
    assert json.loads(await ws.receive_from(timeout=5))["liveCount"] == 0
    await avisit(website)
    push.site_changed(website.pk)  # what on_commit does after a real request
    message = json.loads(await ws.receive_from(timeout=3))
    assert message["liveCount"] == 1
    await ws.disconnect()


async def test_what_clients_send_is_ignored(website):
    ws = await connect(f"/ws/live/{website.tracking_code}")
    await ws.receive_from(timeout=5)
    await ws.send_to(text_data="{'evil': true}")
    await ws.send_to(bytes_data=b"\x00" * 1000)
    assert await ws.receive_nothing(timeout=0.3)
    await ws.disconnect()


async def test_the_iframe_socket_never_sends_markup_from_a_path(website):
    await avisit(website, path="/<img src=x onerror=alert(1)>")
    ws = await connect(f"/ws/widgets/dashboard/{website.website_id}")
    html = await ws.receive_from(timeout=5)
    assert 'id="zv-live-visitors" hx-swap-oob="true"' in html
    assert "<img src=x" not in html
    assert "/%3Cimg%20src=x%20onerror=alert(1)%3E" in html  # as a browser sends it
    await ws.disconnect()


@sync_to_async
def start_counting() -> CaptureQueriesContext:
    """Count queries on the thread where sync_to_async runs the ORM."""
    context = CaptureQueriesContext(connections["default"])
    context.__enter__()
    return context


@sync_to_async
def stop_counting(context: CaptureQueriesContext) -> int:
    context.__exit__(None, None, None)
    return len(context)


async def test_a_push_computes_the_snapshot_once_for_many_sockets(website, monkeypatch):
    sockets = [await connect(f"/ws/realtime/{website.website_id}") for _ in range(20)]
    for ws in sockets:
        await ws.receive_from(timeout=5)
    push.stop_tickers()  # this test pushes by hand, so the ticker must not push first
    await avisit(website)
    computed = []
    original = metrics.realtime
    monkeypatch.setattr(
        metrics, "realtime", lambda *a, **k: computed.append(1) or original(*a, **k)
    )
    context = await start_counting()
    assert await push.push(website.pk)
    for ws in sockets:
        assert json.loads(await ws.receive_from(timeout=5))["visitors"]["current"] == 1
    queries = await stop_counting(context)
    assert len(computed) == 1
    # The website, the window, whether aggregates are current, the day rows, and
    # yesterday's visitors and pageviews in the quarter of its cut-off: not one set per socket.
    assert queries <= 6
    for ws in sockets:
        await ws.disconnect()


async def test_many_sockets_connecting_at_once_share_one_snapshot(website, monkeypatch):
    computed = []
    original = metrics.realtime
    monkeypatch.setattr(
        metrics, "realtime", lambda *a, **k: computed.append(1) or original(*a, **k)
    )
    sockets = await asyncio.gather(
        *[connect(f"/ws/live/{website.tracking_code}") for _ in range(20)]
    )
    for ws in sockets:
        await ws.receive_from(timeout=5)
    assert len(computed) == 1
    for ws in sockets:
        await ws.disconnect()


async def test_a_push_renders_each_kind_of_frame_once(website, monkeypatch):
    rendered: list[str] = []
    for kind in (consumers.LiveConsumer, consumers.RealtimeConsumer):
        original = kind.render
        monkeypatch.setattr(
            kind,
            "render",
            lambda self, data, original=original, kind=kind: (
                rendered.append(kind.__name__) or original(self, data)
            ),
        )
    sockets = [await connect(f"/ws/live/{website.tracking_code}") for _ in range(10)]
    sockets += [await connect(f"/ws/realtime/{website.website_id}") for _ in range(10)]
    for ws in sockets:
        await ws.receive_from(timeout=5)
    push.stop_tickers()  # this test pushes by hand
    rendered.clear()
    await avisit(website)

    assert await push.push(website.pk)

    for ws in sockets[:10]:
        assert json.loads(await ws.receive_from(timeout=5))["liveCount"] == 1
    for ws in sockets[10:]:
        assert json.loads(await ws.receive_from(timeout=5))["visitors"]["current"] == 1
    assert sorted(rendered) == ["LiveConsumer", "RealtimeConsumer"]
    for ws in sockets:
        await ws.disconnect()


async def test_a_change_held_back_by_another_process_push_is_pushed_after_it(website):
    ws = await connect(f"/ws/live/{website.tracking_code}")
    assert json.loads(await ws.receive_from(timeout=5))["liveCount"] == 0
    # Another server process has just pushed this site, before the visit below was stored.
    assert await store.get_store().try_lock(f"push:{website.pk}", push.timing.CHANGE_DELAY * 0.9)
    await avisit(website)
    push.site_changed(website.pk)
    message = json.loads(await ws.receive_from(timeout=5))
    assert message["liveCount"] == 1
    await ws.disconnect()


async def test_a_socket_that_left_gets_nothing_and_the_hub_forgets_the_site(website):
    staying = await connect(f"/ws/live/{website.tracking_code}")
    leaving = await connect(f"/ws/live/{website.tracking_code}")
    for ws in (staying, leaving):
        await ws.receive_from(timeout=5)
    await leaving.disconnect()
    assert push.local_viewers() == {website.pk}
    await avisit(website)
    push.site_changed(website.pk)
    assert json.loads(await staying.receive_from(timeout=5))["liveCount"] == 1
    await staying.disconnect()
    assert push.local_viewers() == set()


def test_the_schedule_pushes_a_change_at_once_then_at_most_once_a_second():
    schedule = push.Schedule()
    schedule.changed(7, now=100.0)
    assert schedule.take_due(100.0) == [7]
    schedule.pushed[7] = 100.0
    schedule.changed(7, now=100.2)  # another change soon after: held back
    assert schedule.take_due(100.5) == []
    assert schedule.next_due() == pytest.approx(100.0 + push.timing.CHANGE_DELAY)
    schedule.changed(7, now=100.6)  # more changes meanwhile: still one push
    assert schedule.take_due(100.0 + push.timing.CHANGE_DELAY) == [7]
    assert schedule.next_due() is None
    schedule.changed(8, now=103.0)  # another site is not held back by site 7
    assert schedule.take_due(103.0) == [8]


class Recorder:
    """A stand-in socket for the hub: what it was sent."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    def frame(self, website_pk: int, realtime) -> str:
        return json.dumps(realtime)

    async def deliver(self, text: str) -> None:
        self.sent.append(text)


async def test_a_newer_push_supersedes_the_one_being_written():
    hub = push.Hub()
    viewers = [Recorder() for _ in range(3 * push.timing.YIELD_EVERY)]
    hub.sites[1] = set(viewers)
    older = {"type": "site.snapshot", "website": 1, "realtime": {"n": 1}}
    newer = {"type": "site.snapshot", "website": 1, "realtime": {"n": 2}}
    hub._newest[1] = newer  # arrived while the older one is being written

    await hub.dispatch(1, older)
    written = [v for v in viewers if v.sent]
    assert 0 < len(written) < len(viewers)  # it stopped at the first turn of the loop

    await hub.dispatch(1, hub._newest.pop(1))
    assert all(v.sent[-1] == '{"n": 2}' for v in viewers)


class Broken(Recorder):
    def frame(self, website_pk: int, realtime) -> str:
        raise KeyError(website_pk)


async def test_a_kind_of_frame_that_fails_to_render_does_not_stop_the_others():
    hub = push.Hub()
    fine, broken = [Recorder() for _ in range(3)], [Broken() for _ in range(3)]
    hub.sites[1] = {*fine, *broken}

    await hub.dispatch(1, {"type": "site.snapshot", "website": 1, "realtime": {"n": 1}})

    assert all(v.sent == ['{"n": 1}'] for v in fine)
    assert all(v.sent == [] for v in broken)


def test_a_new_event_loop_gets_pushes_after_an_old_one_closed_with_sockets_open(website):
    """Each test (and a server whose loop is replaced) runs on a new event loop: nothing
    of the push machinery made on an earlier loop (hub, locks, channel-layer receive
    state) may be handed to the next one, even when the old loop was closed with its
    sockets open and its tasks never finished."""

    async def follow_and_push(ip: str, visitors: int) -> None:
        ws = await connect(f"/ws/live/{website.tracking_code}")
        await ws.receive_from(timeout=5)
        await avisit(website, who=sender(ip))
        await push.push(website.pk)  # or the ticker, woken by the visit, pushes first
        while json.loads(await ws.receive_from(timeout=5))["liveCount"] != visitors:
            pass  # a refresh from before the visit
        await sync_to_async(connections.close_all)()  # the socket is left open on purpose

    abandoned = []  # held, so that no garbage collection finishes their coroutines
    for visitors, ip in enumerate(["81.2.69.160", "5.9.0.1", "81.2.69.161"], 1):
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(follow_and_push(ip, visitors))
        finally:
            abandoned += asyncio.all_tasks(loop)
            loop.close()  # the hub's tasks are never cancelled nor finished
    for task in abandoned:  # what garbage collection would do to them, at last
        with contextlib.suppress(RuntimeError):
            task.get_coro().close()


# --- A channel layer that hangs (Redis stopped, not dead) is given up on within bounds


class HungLayer(InMemoryChannelLayer):
    """Redis frozen: calls that reach it are never answered, and never fail."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    async def _hang(self, name: str) -> None:
        self.calls.append(name)
        await asyncio.Event().wait()

    async def group_add(self, group: str, channel: str) -> None:
        await self._hang("group_add")

    async def group_discard(self, group: str, channel: str) -> None:
        await self._hang("group_discard")

    async def group_send(self, group: str, message: dict) -> None:
        await self._hang("group_send")


class Closable(Recorder):
    def __init__(self) -> None:
        super().__init__()
        self.closed: list[str] = []

    async def gone(self, website_pk: int) -> None:
        self.closed.append("gone")

    async def unavailable(self) -> None:
        self.closed.append("unavailable")


@pytest.fixture
def quick_layer_bounds(monkeypatch):
    # raising=False: on code without these bounds the tests fail on what they assert.
    monkeypatch.setattr(push.timing, "LAYER_SECONDS", 0.2, raising=False)
    monkeypatch.setattr(push.timing, "RETRY_SECONDS", 0.3)
    monkeypatch.setattr(push.timing, "TICK_SECONDS", 0.1)


async def test_joins_fail_within_the_bound_when_the_layer_hangs_and_the_lock_is_freed(
    quick_layer_bounds,
):
    hub = push.Hub()
    hub._layer = HungLayer()
    started = time.monotonic()
    outcomes = await asyncio.wait_for(
        asyncio.gather(*[hub.join(pk, Closable()) for pk in range(1, 11)], return_exceptions=True),
        timeout=5,
    )
    # Each fails (the socket is closed with 4503), all within one bound: those queued for
    # the membership lock behind the hung call do not each wait their turn to hang.
    assert all(isinstance(outcome, Exception) for outcome in outcomes), outcomes
    assert time.monotonic() - started < 1.0
    assert hub.sites == {}

    hub._layer = InMemoryChannelLayer()  # Redis answers again
    while hub.down:  # for RETRY_SECONDS after a failure, joins fail at once
        await asyncio.sleep(0.05)
    viewer = Closable()
    await asyncio.wait_for(hub.join(1, viewer), timeout=5)
    assert hub.sites == {1: {viewer}}
    hub.close()


async def test_open_sockets_are_closed_with_4503_when_the_layer_hangs_and_the_ticker_goes_on(
    website, quick_layer_bounds
):
    hub = push.hub()
    hub._layer = layer = HungLayer()
    hub.channel = "hub-channel"
    viewers = {Closable(), Closable()}
    hub.sites[website.pk] = set(viewers)
    push.ensure_ticker()

    deadline = time.monotonic() + 5
    while not all(viewer.closed for viewer in viewers):
        assert time.monotonic() < deadline, "the sockets were not told within 5s"
        await asyncio.sleep(0.05)
    # Told "unavailable" (4503), never "gone" (4404). These fakes do not leave the hub as a
    # closed socket would, so a later failure (the receive loop's) may tell them again.
    assert all(set(viewer.closed) == {"unavailable"} for viewer in viewers)
    # The ticker was not stuck in that call: it tries the layer again on the next ticks.
    while layer.calls.count("group_add") < 2:
        assert time.monotonic() < deadline, f"the ticker stopped: {layer.calls}"
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("turns", [0, 1, 2, 3])
async def test_the_ticker_ends_when_cancelled_just_as_it_is_woken(db, turns):
    """A cancellation that arrives as the ticker's wake-up event is set must still end it
    (asyncio.wait_for on Python 3.11 dropped it: the loop ran on, and closing the event
    loop waited for it for ever)."""
    push.ensure_ticker()
    state = push.loops.here()
    ticker = state.ticker
    for _ in range(5):  # let it reach its wait
        await asyncio.sleep(0)
    state.wake.set()
    for _ in range(turns):  # the cancellation lands at each step of the wake-up in turn
        await asyncio.sleep(0)
    ticker.cancel()
    done, _ = await asyncio.wait({ticker}, timeout=2)
    assert done == {ticker}, "the ticker ignored its cancellation"
    assert ticker.cancelled()
