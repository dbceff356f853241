"""Two server processes sharing one database and one Redis behave as one server."""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from email.message import Message

import pytest
import redis
from websockets.sync.client import connect

from tests.factories import DESKTOP_UA, post_collect
from tests.servers import ServerProcess, free_port, server_env

pytestmark = pytest.mark.django_db(transaction=True)

SHARED_REDIS = os.environ.get("ZENOVAY_TEST_SCALE_REDIS", "redis://127.0.0.1:6379/14")


@pytest.fixture(scope="module")
def pair(django_db_setup, django_db_blocker):
    """Servers A (Daphne) and B (uvicorn as the README deploys it) on the test database
    and one Redis."""
    redis.Redis.from_url(SHARED_REDIS).flushdb()
    env = server_env(REDIS_URL=SHARED_REDIS)
    servers = [
        ServerProcess(port=free_port(), env=env, server=name)
        for name in ("daphne", "uvicorn-plain")
    ]
    try:
        for server in servers:
            server.start()
        yield servers
    finally:
        for server in servers:
            server.stop()


def forget_rate_limits() -> None:
    shared = redis.Redis.from_url(SHARED_REDIS)
    for key in shared.scan_iter(match="*:rl:*"):
        shared.delete(key)


@pytest.fixture(autouse=True)
def _own_rate_limit_budget():
    """The pair is shared by this module's tests, in any order: each starts with no requests
    counted (flushing all would drop the servers' channel-layer groups too)."""
    forget_rate_limits()


def get(url: str) -> tuple[int, Message, bytes]:
    """Status, headers (names in any case: uvicorn sends them in lower case) and body."""
    request = urllib.request.Request(url, headers={"User-Agent": DESKTOP_UA})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def test_an_event_collected_by_a_reaches_a_widget_connected_to_b(pair, website):
    a, b = pair
    with connect(b.url.replace("http", "ws") + f"/ws/live/{website.tracking_code}") as socket:
        assert json.loads(socket.recv(timeout=5))["liveCount"] == 0
        assert post_collect(a.url, website.tracking_code) == 202
        started = time.monotonic()
        while True:  # the first push may still be a tick; wait for the count to move
            message = json.loads(socket.recv(timeout=3))
            if message["liveCount"] == 1:
                break
        assert time.monotonic() - started < 2.0


def test_the_cache_is_shared_between_processes(pair, website):
    a, b = pair
    status_a, headers_a, body_a = get(a.url + f"/e/{website.tracking_code}/status")
    assert (
        post_collect(b.url, website.tracking_code) == 202
    )  # would change last_event if B recomputed
    status_b, headers_b, body_b = get(b.url + f"/e/{website.tracking_code}/status")
    assert (status_a, status_b) == (200, 200)
    assert body_a == body_b
    assert headers_a["ETag"] == headers_b["ETag"]


def test_rate_limits_are_counted_across_processes(pair, website):
    a, b = pair
    url = f"/e/{website.tracking_code}/status"
    for i in range(100):
        assert get((a if i % 2 else b).url + url)[0] == 200
    status, headers, body = get(a.url + url)
    assert status == 429
    assert json.loads(body)["error"] == "rate_limited"
    assert int(headers["Retry-After"]) >= 1


@pytest.mark.parametrize("server", [0, 1], ids=["daphne", "uvicorn"])
def test_requests_reuse_the_processes_redis_connections(pair, website, server):
    base = pair[server].url
    assert (
        post_collect(base, website.tracking_code, "/warm-up") == 202
    )  # first connections may open now
    opened = redis.Redis.from_url(SHARED_REDIS)

    def connections_so_far() -> int:
        return opened.info("stats")["total_connections_received"]

    before = connections_so_far()
    for n in range(30):
        assert post_collect(base, website.tracking_code, f"/page/{n}") == 202
        assert get(base + f"/e/live/{website.tracking_code}")[0] == 200
    # Not one per request (each had its own cache client, with a pool of its own).
    assert connections_so_far() - before < 10
