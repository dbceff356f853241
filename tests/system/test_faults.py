"""Faults with real processes: Redis, a server or PostgreSQL dies in the middle of traffic.

Each test starts its own PRIVATE Redis or PostgreSQL on a free port (never the shared
ones other test runs use) and real server processes, breaks one of them, and checks
what the contract promises: collect acknowledges only what is stored and keeps
answering quickly, reads answer from the database or with a JSON 503 instead of
hanging, and everything recovers without restarting the server.

Every wait is a polling loop with a deadline; every process and temporary directory
is removed in the fixtures' teardown, also when a test fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest
from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as ws_connect

from tests.factories import DESKTOP_UA, event_json
from tests.servers import (
    ROOT,
    PostgresCluster,
    RedisProcess,
    ServerProcess,
    Unavailable,
    free_port,
    server_env,
)
from tests.servers import private_redis as private_redis_process
from zenovay.models import Event, Website

pytestmark = pytest.mark.faults

# Proxies from the environment must not sit between the tests and 127.0.0.1.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
_visitors = iter(range(1, 10_000))


def new_visitor() -> str:
    """A user agent no request has used yet: a new visitor for the live count."""
    return DESKTOP_UA.replace("Chrome/131.0.0.0", f"Chrome/131.0.{next(_visitors)}.0")


# --- HTTP


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: object
    content_type: str
    seconds: float
    headers: dict[str, str]


def http(
    url: str, *, data: bytes | None = None, user_agent: str = DESKTOP_UA, timeout: float = 5.0
) -> Answer:
    """One request; HTTP errors are answers too, network errors raise OSError."""
    request = urllib.request.Request(url, data=data, headers={"User-Agent": user_agent})
    start = time.monotonic()
    try:
        with _opener.open(request, timeout=timeout) as response:
            status, raw, headers = response.status, response.read(), response.headers
    except urllib.error.HTTPError as exc:
        status, raw, headers = exc.code, exc.read(), exc.headers
    try:
        body = json.loads(raw)
    except ValueError:
        body = raw[:200]
    return Answer(
        status,
        body,
        headers.get("Content-Type", ""),
        time.monotonic() - start,
        dict(headers.items()),
    )


def collect(base: str, code: str, path: str = "/", **kwargs) -> Answer:
    return http(
        base + "/e/collect", data=json.dumps(event_json(code, "pageview", path)).encode(), **kwargs
    )


def read_urls(base: str, code: str, website_id: str) -> list[str]:
    return [
        f"{base}/e/live/{code}",
        f"{base}/e/realtime/{website_id}",
        f"{base}/e/stats/{code}",
        f"{base}/e/{code}/status",
    ]


def assert_unavailable(answer: Answer, url: str) -> None:
    """The contract's 503: JSON naming the error, never HTML, never a traceback."""
    assert answer.status == 503, (url, answer)
    assert answer.content_type.startswith("application/json"), (url, answer)
    assert isinstance(answer.body, dict), (url, answer)
    assert answer.body.get("error") == "unavailable", (url, answer)
    assert answer.body.get("message"), (url, answer)


def poll(check: Callable[[], object], timeout: float, interval: float = 0.1, what: str = ""):
    """`check()` until it returns something truthy, which is returned; fails at `timeout`.

    Assertion and network errors count as "not yet"; any other exception ends the wait.
    """
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            result = check()
            if result:
                return result
            last = result
        except (OSError, AssertionError, ConnectionClosed, InvalidHandshake) as exc:
            last = exc
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what or check} did not succeed within {timeout}s: {last!r}")
        time.sleep(interval)


class Traffic:
    """Threads posting pageviews until stopped, counting what the server acknowledged."""

    def __init__(self, base: str, code: str, threads: int = 2) -> None:
        self.base = base
        self.code = code
        self.lock = threading.Lock()
        self.answers: list[tuple[float, Answer]] = []  # (monotonic start, answer)
        self.errors: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(n,), daemon=True) for n in range(threads)
        ]

    def __enter__(self) -> Traffic:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=15)

    def _run(self, n: int) -> None:
        sent = 0
        while not self._stop.is_set():
            sent += 1
            started = time.monotonic()
            try:
                answer = collect(self.base, self.code, f"/t{n}/{sent}")
            except OSError as exc:
                with self.lock:
                    self.errors.append((started, repr(exc)))
                self._stop.wait(0.02)  # a dead server refuses at once: do not spin
                continue
            with self.lock:
                self.answers.append((started, answer))

    @property
    def acks(self) -> int:
        with self.lock:
            return sum(1 for _, a in self.answers if a.status == 202 and a.body == {"ok": True})

    def since(self, moment: float) -> list[Answer]:
        with self.lock:
            return [answer for started, answer in self.answers if started >= moment]

    def before(self, moment: float) -> list[Answer]:
        with self.lock:
            return [answer for started, answer in self.answers if started < moment]


# --- WebSockets, as the widget scripts use them


def ws_url(base: str, path: str) -> str:
    return base.replace("http://", "ws://", 1) + path


def receive(ws: ClientConnection, timeout: float) -> dict:
    return json.loads(ws.recv(timeout=timeout))


@contextlib.contextmanager
def widget_socket(url: str, timeout: float = 3.0) -> Iterator[tuple[ClientConnection, dict]]:
    """Connect and read the snapshot sent on connect; raises if either does not happen."""
    with ws_connect(url, open_timeout=timeout, close_timeout=1, proxy=None) as ws:
        yield ws, receive(ws, timeout)


def socket_outcome(url: str) -> str | int:
    """The close code, or how the handshake was refused, or "served" if the snapshot came.

    A socket that neither answers nor closes fails the test: widgets must never hang.
    """
    try:
        with widget_socket(url, timeout=5.0):
            return "served"
    except InvalidHandshake as exc:
        return f"refused: {exc}"
    except ConnectionClosed as exc:
        assert exc.rcvd is not None, f"closed without a close frame: {exc!r}"
        assert exc.rcvd.code != 4404, exc
        return exc.rcvd.code
    except TimeoutError:
        pytest.fail(f"{url} neither answered nor closed within 5s")


def assert_refused_cleanly(url: str, timeout: float = 5.0) -> str | int:
    """Within `timeout`, a new socket is refused or closed with a retryable code (not 4404).

    Until then it may still be served: a snapshot computed a moment ago is shared.
    """
    return poll(lambda: (outcome := socket_outcome(url)) != "served" and outcome, timeout)


def wait_until_closed(ws: ClientConnection, timeout: float) -> ConnectionClosed:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            ws.recv(timeout=max(0.01, deadline - time.monotonic()))
        except TimeoutError:
            break
        except ConnectionClosed as exc:
            return exc
    raise AssertionError(f"the socket was still open after {timeout}s")


def wait_for_message(ws: ClientConnection, accept: Callable[[dict], bool], timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"no matching push within {timeout}s")
        try:
            message = receive(ws, remaining)
        except TimeoutError:
            raise AssertionError(f"no matching push within {timeout}s") from None
        if accept(message):
            return message


def assert_pushes_after_an_event(
    base: str, url: str, code: str, user_agent: str, timeout: float = 3.0
) -> float:
    """A fresh socket gets the snapshot, then a push counting a new visitor; seconds taken."""
    with widget_socket(url) as (ws, first):
        start = time.monotonic()
        answer = collect(base, code, "/pushed", user_agent=user_agent)
        assert (answer.status, answer.body) == (202, {"ok": True}), answer
        wait_for_message(ws, lambda m: m["liveCount"] > first["liveCount"], timeout)
        return time.monotonic() - start


def pushes_resume(base: str, url: str, code: str, when: str) -> tuple[float, float]:
    """Wait until a fresh socket gets its snapshot and a push again: (seconds from the
    event to its push, seconds this took)."""
    start = time.monotonic()
    pushed_in = poll(
        lambda: assert_pushes_after_an_event(base, url, code, new_visitor(), timeout=2.0),
        20,
        interval=0.2,
        what=f"widget snapshot and push {when}",
    )
    return pushed_in, time.monotonic() - start


# --- Private Redis and PostgreSQL


@pytest.fixture
def private_redis() -> Iterator[RedisProcess]:
    try:
        with private_redis_process() as process:
            yield process
    except Unavailable as missing:
        pytest.skip(str(missing))


@pytest.fixture
def servers() -> Iterator[Callable[[dict[str, str]], ServerProcess]]:
    """Start server processes on demand; all of them are stopped at teardown."""
    started: list[ServerProcess] = []

    def start(env: dict[str, str]) -> ServerProcess:
        process = ServerProcess(port=free_port(), env=env)
        started.append(process)
        process.start()
        return process

    yield start
    for process in started:
        process.kill()
        if process.log.exists():  # shown by pytest only when the test failed
            print(f"--- {process.log.name} (last 4000 characters)")
            print(process.log.read_text(errors="replace")[-4000:])
            process.log.unlink()


@pytest.fixture
def postgres() -> Iterator[PostgresCluster]:
    try:
        cluster = PostgresCluster()
    except Unavailable as missing:
        pytest.skip(str(missing))
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        cluster.cleanup()


@pytest.fixture
def site(transactional_db) -> Website:
    """A website committed to the test database, visible to server processes."""
    return Website.objects.create(domain="shop.example", name="Shop")


def events_of(website: Website) -> int:
    return Event.objects.filter(website=website).count()


# --- 1. Redis dies while events come in


def test_redis_outage_loses_no_event_and_widgets_recover(site, private_redis, servers):
    server = servers(server_env(REDIS_URL=private_redis.url))
    base, code = server.url, site.tracking_code
    widget = ws_url(base, f"/ws/live/{code}")

    # Before: the socket gets the snapshot and a push when a new visitor arrives.
    assert_pushes_after_an_event(base, widget, code, new_visitor())

    with widget_socket(widget) as (old_ws, _), Traffic(base, code, threads=3) as traffic:
        poll(lambda: traffic.acks >= 10, 10, what="acks before the outage")
        private_redis.kill()
        killed = time.monotonic()

        # Reads answer from the database (200) or say 503, within seconds, never hang.
        for url in read_urls(base, code, site.website_id):
            answer = http(url)
            assert answer.seconds < 3, (url, answer)
            assert answer.status in (200, 503), (url, answer)
            if answer.status == 503:
                assert_unavailable(answer, url)
        health = http(base + "/healthz")
        assert health.seconds < 3, health
        assert (health.status, health.body["redis"]) == (503, "down"), health

        # The socket open through the outage is closed with a code, so the widget reconnects;
        # one opened while Redis is down is closed with 4503 at once.
        dropped = wait_until_closed(old_ws, 10)
        assert dropped.rcvd is not None and dropped.rcvd.code in (1011, 4503), dropped
        assert assert_refused_cleanly(widget) == 4503

        # Keep the traffic up past the store's 5 s break, so Redis is retried and fails again.
        poll(lambda: time.monotonic() - killed > 7 and len(traffic.since(killed)) >= 20, 20,
             what="traffic through the outage")  # fmt: skip
    during = traffic.since(killed)
    before = traffic.before(killed)
    assert traffic.errors == [], traffic.errors[:5]
    assert all(a.status == 202 and a.body == {"ok": True} for a in during), during[:5]
    times = sorted(a.seconds for a in during)
    slowest, median = times[-1], times[len(times) // 2]
    assert slowest < 2, f"collect took {slowest:.2f}s during the Redis outage"
    # Every acknowledged event is in the database (and nothing else was sent).
    assert events_of(site) == traffic.acks + 1

    # Redis comes back on the same port; the same server recovers without a restart.
    private_redis.start()
    pushed_in, recovered = pushes_resume(base, widget, code, "after Redis came back")
    health = poll(lambda: (a := http(base + "/healthz")).status == 200 and a, 10, what="healthz")
    assert health.body == {"status": "ok", "database": "ok", "redis": "ok"}
    for url in read_urls(base, code, site.website_id):
        assert http(url).status == 200, url
    print(
        f"\nredis outage: collect slowest {max(a.seconds for a in before):.3f}s before, "
        f"{len(during)} during: median {median:.3f}s, slowest {slowest:.3f}s; old socket "
        f"closed {dropped.rcvd.code}; widgets pushing again {recovered:.2f}s after Redis "
        f"restarted (push {pushed_in:.2f}s after the event)"
    )


# --- 2. A server process is killed with SIGKILL while events come in


def test_a_killed_server_loses_no_acknowledged_event(site, servers):
    env = server_env()
    first = servers(env)
    with Traffic(first.url, site.tracking_code, threads=4) as traffic:
        poll(lambda: traffic.acks >= 40, 20, what="acks before the kill")
        first.kill()
        assert first.proc.returncode == -signal.SIGKILL
        poll(lambda: len(traffic.errors) >= 4, 10, what="posters noticing the dead server")
    stored, acked = events_of(site), traffic.acks
    assert acked >= 40
    assert stored >= acked, f"{acked} acknowledged, only {stored} stored"
    assert stored <= acked + 4, "more events than requests in flight"

    second = servers(env)
    answer = collect(second.url, site.tracking_code, "/after-restart")
    assert (answer.status, answer.body) == (202, {"ok": True}), answer
    assert events_of(site) == stored + 1
    live = http(f"{second.url}/e/live/{site.tracking_code}")
    assert live.status == 200 and live.body["liveCount"] == 1, live
    print(f"\nserver kill: {acked} acknowledged, {stored} stored")


# --- 3. PostgreSQL restarts under a running server


def manage(*args: str, env: dict[str, str]) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_postgresql_restart_is_a_503_then_full_recovery(postgres, servers, request):
    postgres.query("postgres", "CREATE DATABASE zenovay")
    # With Redis when the suite runs with Redis, but a private one: this database's website
    # ids would collide with other runs' in a shared Redis (push locks, channel groups).
    redis_url = ""
    if os.environ.get("REDIS_URL"):
        redis_url = request.getfixturevalue("private_redis").url
    env = server_env(DATABASE_URL=postgres.url("zenovay"), REDIS_URL=redis_url)
    manage("migrate", "--noinput", env=env)
    created = json.loads(manage("addsite", "shop.example", env=env))
    code, website_id = created["tracking_code"], created["website_id"]
    server = servers(env)
    base = server.url

    def stored() -> int:
        return postgres.query(
            "zenovay",
            "SELECT count(*) FROM zenovay_event e JOIN zenovay_website w ON w.id = e.website_id"
            " WHERE w.tracking_code = %s",
            code,
        )[0][0]

    answer = collect(base, code, "/before")
    assert (answer.status, answer.body) == (202, {"ok": True}), answer
    assert stored() == 1
    widget = ws_url(base, f"/ws/live/{code}")
    assert_pushes_after_an_event(base, widget, code, new_visitor())

    postgres.stop("fast")
    # A burst at once: requests must not queue up behind each other's wait for the database.
    with ThreadPoolExecutor(8) as burst:
        answers = list(burst.map(lambda n: collect(base, code, f"/during/{n}"), range(8)))
    for answer in answers:
        assert answer.seconds < 5, answer
        assert_unavailable(answer, "/e/collect")
    outage_seconds = [answer.seconds for answer in answers]
    for url in read_urls(base, code, website_id):
        answer = http(url)
        assert answer.seconds < 5, (url, answer)
        assert_unavailable(answer, url)
        assert answer.headers.get("Access-Control-Allow-Origin") == "*", answer
        outage_seconds.append(answer.seconds)
    health = http(base + "/healthz")
    assert health.seconds < 5, health
    assert health.status == 503, health
    assert health.body["database"] == "down", health
    # A widget connecting now is closed with 4503 (not 4404), so it retries.
    assert assert_refused_cleanly(widget) == 4503

    postgres.start()
    back = time.monotonic()

    def collected() -> bool:
        answer = collect(base, code, "/after")
        assert answer.seconds < 5, answer
        if answer.status == 503:
            return False
        assert (answer.status, answer.body) == (202, {"ok": True}), answer
        return True

    poll(collected, 15, interval=0.2, what="collect after PostgreSQL came back")
    recovered = time.monotonic() - back
    assert stored() == 3  # /before, the push check's event and /after; /during/* were refused
    for url in read_urls(base, code, website_id):
        answer = http(url)
        assert answer.status == 200, (url, answer)
    health = http(base + "/healthz")
    assert (health.status, health.body["database"]) == (200, "ok"), health
    assert_pushes_after_an_event(base, widget, code, new_visitor())
    # A website the consumers look up in the database for the first time since the restart.
    with widget_socket(ws_url(base, f"/ws/realtime/{website_id}")) as (_, realtime):
        assert realtime["visitors"]["current"] == 3, realtime
    print(
        f"\npostgres outage: 503s in at most {max(outage_seconds):.3f}s; "
        f"collect stored again {recovered:.2f}s after PostgreSQL was back"
    )


# --- 4. Redis hangs (SIGSTOP) under a running server


def closed_code(url: str, timeout: float) -> tuple[int, float]:
    """Open a widget socket; the code it is closed with, and the seconds that took.

    A frame instead of a close, or neither within `timeout`, fails the test."""
    start = time.monotonic()
    with ws_connect(url, open_timeout=timeout, close_timeout=1, proxy=None) as ws:
        try:
            message = ws.recv(timeout=timeout)
        except TimeoutError:
            pytest.fail(f"{url} neither answered nor closed within {timeout}s")
        except ConnectionClosed as exc:
            assert exc.rcvd is not None, f"closed without a close frame: {exc!r}"
            return exc.rcvd.code, time.monotonic() - start
    pytest.fail(f"{url} was served while Redis is frozen: {message!r}")


def test_a_frozen_redis_closes_sockets_with_4503_and_everything_recovers(
    site, private_redis, servers
):
    server = servers(server_env(REDIS_URL=private_redis.url))
    base, code = server.url, site.tracking_code
    other = Website.objects.create(domain="blog.example", name="Blog")
    widget = ws_url(base, f"/ws/live/{code}")
    assert_pushes_after_an_event(base, widget, code, new_visitor())

    with widget_socket(widget) as (old_ws, _), private_redis.frozen():
        frozen = time.monotonic()
        # A socket for a site this process does not follow yet must join its group: 4503
        # within seconds, instead of an open socket that never hears anything.
        new_code, new_seconds = closed_code(ws_url(base, f"/ws/realtime/{other.website_id}"), 6)
        assert new_code == 4503
        # The HTTP API answers from the database meanwhile.
        answer = http(f"{base}/e/live/{code}")
        assert answer.status == 200 and answer.seconds < 3, answer
        assert answer.body["liveCount"] == 1, answer
        # The socket that was open when Redis froze is told too, so the widget polls.
        dropped = wait_until_closed(old_ws, 12)
        assert dropped.rcvd is not None and dropped.rcvd.code == 4503, dropped
        old_seconds = time.monotonic() - frozen
        assert closed_code(widget, 6)[0] == 4503

    pushed_in, recovered = pushes_resume(base, widget, code, "after Redis was thawed")
    with widget_socket(ws_url(base, f"/ws/realtime/{other.website_id}")) as (_, realtime):
        assert realtime["visitors"]["current"] == 0, realtime
    print(
        f"\nfrozen redis: new socket closed 4503 after {new_seconds:.2f}s, the open one "
        f"{old_seconds:.2f}s after the freeze; widgets pushing again {recovered:.2f}s after "
        f"SIGCONT (push {pushed_in:.2f}s after the event)"
    )
