"""Limits every request and socket is held to before Django or Channels sees it.

Django's ASGI handler reads a whole request body (spooling it to disk past 2.5 MB)
before any view can refuse it, and waits for it as long as the client likes; and a
public widget socket costs a file descriptor and memory for as long as it is open.
So, for every path and server:

- a `Content-Length` over the path's limit is answered 413 at once, unread; a body
  sent without one (chunked) is read up to the limit and cut off there with 413;
- the whole body must arrive within `ZENOVAY_BODY_TIMEOUT` seconds, else 408;
- one client (an IPv4 address or IPv6 /64) holds at most `ZENOVAY_CONNECTIONS_PER_IP`
  WebSockets in this process; the next is refused at the handshake (403), and the
  widgets fall back to polling, which is rate limited.

Slow or endless request headers never reach an ASGI app: the server times them out
(see `zenovay.infra.server`, which `manage.py serve` runs).
"""

from __future__ import annotations

import asyncio
import collections
import json
from collections.abc import Awaitable, Callable
from typing import Any

from django.conf import settings

from zenovay import clientinfo
from zenovay.payload import MAX_BODY_BYTES

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]


def body_limit(path: str) -> int:
    """The largest body a path takes: collect's 4 KiB, else Django's form limit."""
    if path.rstrip("/") == "/e/collect":
        return MAX_BODY_BYTES
    return settings.DATA_UPLOAD_MAX_MEMORY_SIZE


class Guard:
    """ASGI middleware around the whole application (see the module's docstring)."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.sockets: collections.Counter[str] = collections.Counter()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = body_limit(scope["path"])
        length = _header(scope, b"content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            await _refuse(scope, send, 413, f"The body is over {limit} bytes.")
            return
        try:
            async with asyncio.timeout(settings.ZENOVAY_BODY_TIMEOUT):
                body = await _read_body(receive, limit)
        except TimeoutError:
            seconds = settings.ZENOVAY_BODY_TIMEOUT
            await _refuse(scope, send, 408, f"The body did not arrive within {seconds:g}s.")
            return
        except _TooLarge:
            await _refuse(scope, send, 413, f"The body is over {limit} bytes.")
            return
        except _Disconnected:
            return
        await self.app(scope, _replay(body, receive), send)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        ip = clientinfo.of_scope(scope)
        if ip is None:  # a Unix socket or a test client: nothing to count by
            await self.app(scope, receive, send)
            return
        key = clientinfo.client_key(ip)
        if self.sockets[key] >= settings.ZENOVAY_CONNECTIONS_PER_IP:
            await receive()  # websocket.connect
            await send({"type": "websocket.close", "code": 1008})  # before accept: a 403
            return
        self.sockets[key] += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.sockets[key] -= 1
            if self.sockets[key] <= 0:
                del self.sockets[key]


class _TooLarge(Exception):
    pass


class _Disconnected(Exception):
    pass


async def _read_body(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """The body, read already, as one message; then the server's own messages
    (`http.disconnect`, which Django listens for while it answers)."""
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def replay() -> Message:
        if pending:
            return pending.pop()
        return await receive()

    return replay


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1").strip()
    return None


ERROR_CODES = {408: "request_timeout", 413: "payload_too_large"}


async def _refuse(scope: Scope, send: Send, status: int, message: str) -> None:
    """A JSON error, readable cross-origin on the public API, closing the connection
    (the unread body must not be taken for the next request)."""
    body = json.dumps({"error": ERROR_CODES[status], "message": message}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    if scope["path"].startswith("/e/"):
        headers.append((b"access-control-allow-origin", b"*"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
