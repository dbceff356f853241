"""What one client may hold, on real servers: bodies, slow requests, connections, sockets,
ingest per minute, and what the server keeps and logs about clients (issue 13, items 5-8, 12).

Each test speaks from loopback addresses of its own (Linux routes all of 127/8 to lo), so
one test's client is another's "someone else".
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from urllib.parse import urlsplit

import pytest
import websockets

from tests.system.test_hostile_input import parse_reply, read_all
from zenovay.models import Event, Website

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def shop(transactional_db) -> Website:
    return Website.objects.create(domain="shop.example", name="Shop")


def connect(server, source: str, timeout: float = 10) -> socket.socket:
    address = urlsplit(server.url)
    return socket.create_connection(
        (address.hostname, address.port), timeout=timeout, source_address=(source, 0)
    )


def ask(server, source: str, data: bytes, timeout: float = 10):
    """Send raw bytes from `source` and read the answer until the server closes."""
    with connect(server, source, timeout) as sock:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(data)
        return parse_reply(read_all(sock))


def get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode()


def closed_within(sock: socket.socket, seconds: float) -> tuple[bool, bytes]:
    """Whether the server closes the connection within `seconds`, and what it sent."""
    sock.settimeout(seconds)
    try:
        return True, read_all(sock)
    except TimeoutError:
        return False, b""


# --- 6. Bodies: refused by their declared size at once, cut off when sent without one


@pytest.mark.parametrize("kind", ["serve", "uvicorn-plain"])
@pytest.mark.parametrize("path", ["/login/", "/admin/login/", "/e/collect", "/nowhere"])
def test_a_declared_body_over_the_paths_limit_is_413_before_it_is_sent(launch, kind, path):
    server = launch(kind)
    with connect(server, "127.2.0.1") as sock:
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\n"
            f"Content-Length: {300 * 1024 * 1024}\r\n\r\n".encode()
        )
        closed, raw = closed_within(sock, 5)  # not one byte of the 300 MiB was sent
    assert closed, "the server waited for a 300 MiB body"
    reply = parse_reply(raw)
    assert reply.status == 413
    assert reply.json()["error"] == "payload_too_large"


@pytest.mark.parametrize("kind", ["serve", "uvicorn-plain"])
def test_a_chunked_body_is_cut_off_at_the_limit(launch, kind):
    server = launch(kind)
    chunk = b"x" * 8192
    framed = b"%x\r\n%s\r\n" % (len(chunk), chunk)
    head = b"POST /login/ HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n"
    with connect(server, "127.2.0.2") as sock:
        sock.sendall(head)
        sent = 0
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            while sent < 1024 * 1024:  # stops early once the server has given up on us
                sock.sendall(framed)
                sent += len(chunk)
        closed, raw = closed_within(sock, 5)
    assert closed
    reply = parse_reply(raw)
    assert reply.status == 413
    assert reply.json()["error"] == "payload_too_large"


def test_a_chunked_collect_is_cut_off_at_4_kib(launch, shop):
    server = launch("serve")
    body = b'{"code": "' + shop.tracking_code.encode() + b'", "pad": "' + b"x" * 5000 + b'"}'
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (body[:3000], body[3000:]))
    reply = ask(
        server,
        "127.2.0.3",
        b"POST /e/collect HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n"
        b"Connection: close\r\n\r\n" + chunks + b"0\r\n\r\n",
    )
    assert reply.status == 413
    assert reply.headers["access-control-allow-origin"] == "*"
    assert Event.objects.count() == 0


@pytest.mark.parametrize("kind", ["serve", "uvicorn-plain"])
def test_a_body_that_does_not_arrive_in_time_is_408(launch, kind):
    server = launch(kind, ZENOVAY_BODY_TIMEOUT="2")
    with connect(server, "127.2.0.4") as sock:
        sock.sendall(b"POST /e/collect HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n{")
        started = time.monotonic()
        closed, raw = closed_within(sock, 8)
    assert closed, "a slow body held the connection"
    assert time.monotonic() - started < 6
    reply = parse_reply(raw)
    assert reply.status == 408
    assert reply.json()["error"] == "request_timeout"


# --- 5. Slow headers, connections and sockets per client


def test_headers_that_do_not_arrive_in_time_are_dropped(launch):
    server = launch("serve", ZENOVAY_HEADER_TIMEOUT="2")
    with connect(server, "127.2.1.1") as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")
        started = time.monotonic()
        answer = None
        sock.settimeout(0.5)
        while answer is None and time.monotonic() - started < 8:
            try:  # a header line every half second, for ever
                sock.sendall(b"X-Slow: 1\r\n")
                answer = sock.recv(65536)  # anything, even b"" (closed), means it gave up
            except (BrokenPipeError, ConnectionResetError):
                answer = b""
            except TimeoutError:
                continue
    assert answer is not None, "a slowloris connection was held for 8 s"
    assert time.monotonic() - started < 5
    if answer:
        assert answer.startswith(b"HTTP/1.1 408 ")


def test_one_address_holding_its_cap_and_slow_connections_does_not_starve_others(launch, shop):
    server = launch("serve", ZENOVAY_CONNECTIONS_PER_IP="20", ZENOVAY_HEADER_TIMEOUT="30")
    abuser = "127.2.2.1"
    held = [connect(server, abuser) for _ in range(20)]
    for sock in held:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # headers never end
    try:
        # The 21st connection from that address is closed at once, unanswered.
        with connect(server, abuser) as extra:
            closed, raw = closed_within(extra, 5)
        assert closed and raw == b""
        # Everyone else is served as usual: plain requests and a widget socket.
        reply = ask(server, "127.2.2.2", get("/healthz"))
        assert reply.status == 200
        frame = asyncio.run(first_frame(server, f"/ws/live/{shop.tracking_code}", "127.2.2.3"))
        assert json.loads(frame) == {"liveCount": 0, "timestamp": json.loads(frame)["timestamp"]}
    finally:
        for sock in held:
            sock.close()
    # Once they are gone, that address may connect again.
    assert wait_for(lambda: ask(server, abuser, get("/healthz")).status == 200)


def wait_for(condition, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
    return False


async def first_frame(server, path: str, source: str) -> str:
    address = urlsplit(server.url)
    async with websockets.connect(
        f"ws://{address.netloc}{path}", local_addr=(source, 0), open_timeout=5
    ) as socket_:
        return str(await asyncio.wait_for(socket_.recv(), 5))


@pytest.mark.parametrize("kind", ["daphne", "uvicorn-plain"])
def test_widget_sockets_per_address_are_capped_on_any_server(launch, shop, kind):
    """The ASGI guard counts sockets itself, so the cap holds on any server (and, behind a
    trusted proxy, per forwarded client)."""
    server = launch(kind, ZENOVAY_CONNECTIONS_PER_IP="5")
    address = urlsplit(server.url)
    url = f"ws://{address.netloc}/ws/live/{shop.tracking_code}"

    async def scenario() -> None:
        opened = [
            await websockets.connect(url, local_addr=("127.2.3.1", 0), open_timeout=5)
            for _ in range(5)
        ]
        try:
            with pytest.raises(websockets.InvalidStatus) as refused:
                await websockets.connect(url, local_addr=("127.2.3.1", 0), open_timeout=5)
            assert refused.value.response.status_code == 403
            other = await websockets.connect(url, local_addr=("127.2.3.2", 0), open_timeout=5)
            assert json.loads(await asyncio.wait_for(other.recv(), 5))["liveCount"] == 0
            await other.close()
        finally:
            for socket_ in opened:
                await socket_.close()
        # Closed sockets give their places back, once the server has seen them go (it
        # leaves the hub first: a moment after the client's close handshake ends).
        again = await connect_once_a_place_is_free(url, "127.2.3.1")
        await again.close()

    asyncio.run(scenario())


def test_serve_refuses_big_inbound_frames_on_read_only_sockets(launch, shop):
    server = launch("serve")
    address = urlsplit(server.url)

    async def scenario() -> int | None:
        async with websockets.connect(
            f"ws://{address.netloc}/ws/live/{shop.tracking_code}", max_size=None
        ) as socket_:
            await socket_.recv()
            with contextlib.suppress(websockets.ConnectionClosed):
                await socket_.send("x" * (1024 * 1024))
                await asyncio.wait_for(socket_.recv(), 5)
                await asyncio.wait_for(socket_.recv(), 5)
            return socket_.close_code

    assert asyncio.run(scenario()) == 1009  # message too big


# --- 12. No client address in logs or keys


def test_serve_writes_no_access_log_unless_asked(launch):
    server = launch("serve")
    assert ask(server, "127.2.4.76", get("/e/live/ZV_AAAAAAAAAAA")).status == 404
    assert ask(server, "127.2.4.76", get("/healthz")).status == 200
    assert "GET /e/live" not in server.log.read_text()


def test_the_access_log_of_serve_has_no_client_addresses(launch):
    server = launch("serve", ZENOVAY_ACCESS_LOG="1")
    assert ask(server, "127.2.4.77", get("/healthz")).status == 200
    assert wait_for(lambda: "GET /healthz" in server.log.read_text())
    assert "127.2.4.77" not in server.log.read_text()


def test_client_addresses_in_the_access_log_are_an_opt_in(launch):
    server = launch("serve", ZENOVAY_ACCESS_LOG="1", ZENOVAY_ACCESS_LOG_IPS="1")
    assert ask(server, "127.2.4.78", get("/healthz")).status == 200
    assert wait_for(lambda: "127.2.4.78" in server.log.read_text())


# --- 8. Ingest per client, and only from the website's own pages


def collect_request(code: str, origin: str | None = None) -> bytes:
    body = json.dumps({"code": code, "type": "pageview", "url": "https://shop.example/a"})
    head = (
        "POST /e/collect HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\n"
        f"User-Agent: Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0 Safari/537.36\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n"
    )
    if origin:
        head += f"Origin: {origin}\r\n"
    return (head + "\r\n" + body).encode()


def test_collect_is_limited_per_client_on_the_real_server(launch, shop):
    server = launch("serve", ZENOVAY_COLLECT_PER_MINUTE="5")
    answers = [ask(server, "127.2.5.1", collect_request(shop.tracking_code)) for _ in range(6)]
    assert [reply.status for reply in answers] == [202] * 5 + [429]
    assert answers[-1].json()["error"] == "rate_limited"
    assert int(answers[-1].headers["retry-after"]) >= 1
    assert answers[-1].headers["access-control-allow-origin"] == "*"
    assert ask(server, "127.2.5.2", collect_request(shop.tracking_code)).status == 202
    assert Event.objects.count() == 6


@pytest.mark.parametrize("kind", ["daphne", "serve"])
def test_a_429_says_too_many_requests_on_every_server(launch, shop, kind):
    server = launch(kind, ZENOVAY_COLLECT_PER_MINUTE="1")
    assert ask(server, "127.2.5.4", collect_request(shop.tracking_code)).status == 202
    with connect(server, "127.2.5.4", 10) as sock:
        sock.sendall(collect_request(shop.tracking_code))
        status_line = read_all(sock).split(b"\r\n", 1)[0]
    assert status_line == b"HTTP/1.1 429 Too Many Requests"


def test_collect_from_another_sites_page_is_403_on_the_real_server(launch, shop):
    server = launch("serve")
    reply = ask(server, "127.2.5.3", collect_request(shop.tracking_code, "https://evil.example"))
    assert reply.status == 403
    assert reply.json()["error"] == "forbidden"
    assert Event.objects.count() == 0


async def connect_once_a_place_is_free(url: str, address: str, timeout: float = 10.0):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            return await websockets.connect(url, local_addr=(address, 0), open_timeout=5)
        except websockets.InvalidStatus as refused:
            if refused.response.status_code != 403 or loop.time() > deadline:
                raise
            await asyncio.sleep(0.05)
