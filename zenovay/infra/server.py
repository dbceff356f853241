"""The ASGI server `manage.py serve` runs: uvicorn, with what it lacks against one abuser.

uvicorn (like Daphne) waits for request headers as long as a client likes and takes
any number of connections from one address, so 200 slowloris connections, or 1,000
idle sockets from one address against the common limit of 1,024 open files, hold the
server for everyone. Its protocols here add, per process:

- at most `ZENOVAY_CONNECTIONS_PER_IP` TCP connections from one client address (an IPv6
  /64 counts as one), HTTP and the WebSockets they upgrade to alike; the next is closed
  at once. Peers in `ZENOVAY_TRUSTED_PROXIES` are not counted: a load balancer carries
  many clients, whose sockets the ASGI guard counts instead (`zenovay.infra.guard`);
- request headers must be complete within `ZENOVAY_HEADER_TIMEOUT` seconds of their
  first byte (and of the connection), else 408 and the connection is closed.

Other options are chosen for a read-only widget server: small inbound WebSocket
frames (clients send nothing we read), no per-message deflate (frames are tiny, a
compression context per socket costs more memory than it saves), no `X-Forwarded-For`
rewriting (Zenovay reads it itself, trusting only `ZENOVAY_TRUSTED_PROXIES`), and
access logs without client addresses unless `ZENOVAY_ACCESS_LOG_IPS` is on.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from typing import Any

from django.conf import settings
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from zenovay import clientinfo

log = logging.getLogger("zenovay.server")
APP = "zenovay.asgi:application"
WS_MAX_BYTES = 4096  # inbound frames: widgets' sockets are read-only
TIMEOUT_RESPONSE = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: 20\r\nconnection: close\r\n\r\nRequest header slow."
)


class PeerCount:
    """Open TCP connections per client address in this process, by transport."""

    def __init__(self) -> None:
        self.open: collections.Counter[str] = collections.Counter()
        self.holders: dict[asyncio.BaseTransport, str] = {}

    def admit(self, transport: asyncio.BaseTransport) -> bool:
        peer = clientinfo.parse_ip((transport.get_extra_info("peername") or (None,))[0])
        if peer is None or clientinfo.is_trusted(peer):
            return True
        key = clientinfo.subscriber(peer)
        if self.open[key] >= settings.ZENOVAY_CONNECTIONS_PER_IP:
            return False
        self.open[key] += 1
        self.holders[transport] = key
        return True

    def release(self, transport: asyncio.BaseTransport) -> None:
        key = self.holders.pop(transport, None)
        if key is not None:
            self.open[key] -= 1
            if self.open[key] <= 0:
                del self.open[key]


peers = PeerCount()


class HttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, with the per-address cap and the header deadline."""

    header_deadline: asyncio.TimerHandle | None = None

    # asyncio.Protocol declares BaseTransport; a TCP connection is handed a Transport (as
    # uvicorn's own override says, with the same ignore)
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if not peers.admit(transport):
            transport.abort()
            return
        self._start_deadline()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._start_deadline()

    def on_headers_complete(self) -> None:
        self._stop_deadline()
        super().on_headers_complete()

    def handle_websocket_upgrade(self) -> None:
        self._stop_deadline()  # the socket keeps its place in `peers` until it closes
        super().handle_websocket_upgrade()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_deadline()
        peers.release(self.transport)
        super().connection_lost(exc)

    def _start_deadline(self) -> None:
        if self.header_deadline is None:
            self.header_deadline = self.loop.call_later(
                settings.ZENOVAY_HEADER_TIMEOUT, self._headers_too_slow
            )

    def _stop_deadline(self) -> None:
        if self.header_deadline is not None:
            self.header_deadline.cancel()
            self.header_deadline = None

    def _headers_too_slow(self) -> None:
        self.header_deadline = None
        if not self.transport.is_closing():
            self.transport.write(TIMEOUT_RESPONSE)
            self.transport.close()


class WebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's WebSocket protocol, giving its connection's place in `peers` back."""

    def connection_lost(self, exc: Exception | None) -> None:
        peers.release(self.transport)
        super().connection_lost(exc)


def access_log_config() -> dict[str, Any]:
    """uvicorn's logging, its access lines without the client address unless asked."""
    from uvicorn.config import LOGGING_CONFIG

    config = {**LOGGING_CONFIG, "formatters": dict(LOGGING_CONFIG["formatters"])}
    if not settings.ZENOVAY_ACCESS_LOG_IPS:
        config["formatters"]["access"] = {
            **LOGGING_CONFIG["formatters"]["access"],
            "fmt": '%(levelprefix)s "%(request_line)s" %(status_code)s',
        }
    return config


def options(host: str, port: int) -> dict[str, Any]:
    """uvicorn's settings for a Zenovay process (`manage.py serve`)."""
    return {
        "host": host,
        "port": port,
        "http": f"{__name__}:HttpProtocol",
        "ws": f"{__name__}:WebSocketProtocol",
        "ws_max_size": WS_MAX_BYTES,
        "ws_per_message_deflate": False,
        "proxy_headers": False,
        "server_header": False,
        "log_config": access_log_config(),
        "access_log": settings.ZENOVAY_ACCESS_LOG,
        "lifespan": "off",
    }


def run(host: str, port: int) -> None:
    import uvicorn

    uvicorn.run(APP, **options(host, port))
