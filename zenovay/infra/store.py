"""Shared short-lived state for the hot read path: cached responses and rate-limit logs.

With `REDIS_URL` set it lives in Redis (so every server process sees the same
cached body and the same counts), spoken to with redis.asyncio so the event
loop never waits on a thread; without it, in this process's memory.

Redis failing must not take the API down: after an error the store is skipped
for a few seconds (responses are computed from the database, rate limits fail
open) instead of each request waiting for a timeout.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import math
import os
import time
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.conf import settings

if TYPE_CHECKING:
    import redis

log = logging.getLogger("zenovay.store")
BREAK_SECONDS = 5.0
MAX_LOG = 20_000  # entries kept per rate-limit key: bounds memory under a flood
# In-process store: expired values and idle rate-limit logs are swept at most this often,
# and the cached bodies are held to this many bytes (the oldest go first past it).
SWEEP_SECONDS = 10.0
MAX_VALUE_BYTES = 32 * 1024 * 1024


class _Breaker:
    """Skip Redis for a while after it fails, so an outage costs one timeout, not one each."""

    def __init__(self) -> None:
        self.until = 0.0

    @property
    def open(self) -> bool:
        return time.monotonic() < self.until

    def trip(self, exc: BaseException) -> None:
        if not self.open:
            log.warning("Redis unavailable for %.0fs, going without it: %r", BREAK_SECONDS, exc)
        self.until = time.monotonic() + BREAK_SECONDS


breaker = _Breaker()


@dataclass(frozen=True, slots=True)
class Limit:
    allowed: bool
    retry_after: int  # whole seconds, at least 1 when not allowed
    count: int = 0  # requests in the window, this one included (0: unknown, Redis skipped)


class MemoryStore:
    """One process's store. Nothing in it lives forever: expired values, locks, presence
    marks and the logs of clients idle for a whole window are swept every SWEEP_SECONDS,
    and cached bodies are bounded in bytes, since every distinct client and id adds one."""

    def __init__(self) -> None:
        self._values: dict[str, tuple[float, bytes]] = {}
        self._bytes = 0  # held by _values, keys included
        self._logs: dict[str, collections.deque[float]] = {}
        self._windows: dict[str, float] = {}  # each log's window, for the sweep
        self._locks: dict[str, float] = {}
        self._presence: dict[str, float] = {}
        self._swept = time.monotonic()

    async def get(self, key: str) -> bytes | None:
        item = self._values.get(key)
        if item is None or item[0] <= time.monotonic():
            return None
        return item[1]

    async def add(self, key: str, value: bytes, ttl: float) -> bytes:
        """Store unless a live value exists; return whichever value is stored."""
        current = await self.get(key)
        if current is not None:
            return current
        self._maybe_sweep()
        self._drop(key)
        self._values[key] = (time.monotonic() + ttl, value)
        self._bytes += len(key) + len(value)
        while self._bytes > MAX_VALUE_BYTES and len(self._values) > 1:
            self._drop(next(iter(self._values)))  # the oldest stored
        return value

    def usage(self) -> dict[str, Any]:
        """What is held: cached values and their bytes, rate-limit logs and their keys."""
        return {
            "values": len(self._values),
            "bytes": self._bytes,
            "logs": len(self._logs),
            "log_keys": list(self._logs),
        }

    def _drop(self, key: str) -> None:
        item = self._values.pop(key, None)
        if item is not None:
            self._bytes -= len(key) + len(item[1])

    def delete(self, keys: list[str]) -> None:
        for key in keys:
            self._drop(key)

    async def try_lock(self, key: str, ttl: float) -> bool:
        self._maybe_sweep()
        if self._locks.get(key, 0.0) > time.monotonic():
            return False
        self._locks[key] = time.monotonic() + ttl
        return True

    async def unlock(self, key: str) -> None:
        self._locks.pop(key, None)

    async def mark_presence(self, keys: list[str], ttl: float) -> None:
        until = time.monotonic() + ttl
        for key in keys:
            self._presence[key] = until

    async def has_presence(self, key: str) -> bool:
        return self._presence.get(key, 0.0) > time.monotonic()

    async def hit(self, key: str, limit: int, window: float = 60.0) -> Limit:
        self._maybe_sweep()
        now = time.monotonic()
        entries = self._logs.setdefault(key, collections.deque(maxlen=MAX_LOG))
        self._windows[key] = window
        while entries and entries[0] <= now - window:
            entries.popleft()
        entries.append(now)
        return _verdict(entries, limit, window, now)

    def _maybe_sweep(self) -> None:
        now = time.monotonic()
        if now - self._swept >= SWEEP_SECONDS:
            self._swept = now
            self.sweep(now)

    def sweep(self, now: float) -> None:
        """Forget what has expired, and the logs whose newest entry left their window."""
        for key in [k for k, (expires, _) in self._values.items() if expires <= now]:
            self._drop(key)
        for key in [
            k
            for k, entries in self._logs.items()
            if not entries or entries[-1] <= now - self._windows.get(k, 60.0)
        ]:
            del self._logs[key]
            self._windows.pop(key, None)
        for marks in (self._locks, self._presence):
            for key in [k for k, until in marks.items() if until <= now]:
                del marks[key]


def _verdict(entries, limit: int, window: float, now: float) -> Limit:
    """Every request counts, refused ones too; retry once enough old ones have aged out."""
    count = len(entries)
    if count <= limit:
        return Limit(True, 0, count)
    oldest_blocking = entries[count - limit]
    return Limit(False, max(1, math.ceil(oldest_blocking + window - now)), count)


_HIT_SCRIPT = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1] - ARGV[2])
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[4])
redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -tonumber(ARGV[5]) - 1)
redis.call('PEXPIRE', KEYS[1], math.ceil(ARGV[2] * 1000) + 1000)
local count = redis.call('ZCARD', KEYS[1])
local limit = tonumber(ARGV[3])
if count <= limit then return {count, '0'} end
local blocking = redis.call('ZRANGE', KEYS[1], count - limit, count - limit, 'WITHSCORES')
return {count, blocking[2]}
"""


class RedisStore:
    def __init__(self, url: str) -> None:
        self.url = url
        self.prefix = "zenovay:store:"
        self._clients: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._scripts: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._sync_client: redis.Redis | None = None
        self._sequence = 0

    def _client(self):
        import redis.asyncio as aioredis

        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            client = aioredis.from_url(
                self.url, socket_connect_timeout=0.5, socket_timeout=0.5, health_check_interval=10
            )
            self._clients[loop] = client
        return client

    def _hit_script(self):
        """The rate-limit script, sent by its SHA once Redis knows it (EVALSHA)."""
        loop = asyncio.get_running_loop()
        script = self._scripts.get(loop)
        if script is None:
            script = self._scripts[loop] = self._client().register_script(_HIT_SCRIPT)
        return script

    async def get(self, key: str) -> bytes | None:
        if breaker.open:
            return None
        try:
            return await self._client().get(self.prefix + key)
        except Exception as exc:  # any Redis failure means "not cached"
            breaker.trip(exc)
            return None

    async def add(self, key: str, value: bytes, ttl: float) -> bytes:
        if breaker.open:
            return value
        try:
            client = self._client()
            if await client.set(self.prefix + key, value, px=int(ttl * 1000), nx=True):
                return value
            return await client.get(self.prefix + key) or value
        except Exception as exc:
            breaker.trip(exc)
            return value

    def delete(self, keys: list[str]) -> None:
        """Called from synchronous code (signals after a website is saved); one client with
        its own pool serves every thread, rather than a connection per call."""
        import redis

        if not keys:
            return
        try:
            if self._sync_client is None:
                self._sync_client = redis.Redis.from_url(
                    self.url, socket_connect_timeout=0.5, socket_timeout=0.5
                )
            self._sync_client.delete(*(self.prefix + key for key in keys))
        except Exception as exc:
            breaker.trip(exc)

    async def try_lock(self, key: str, ttl: float) -> bool:
        """True for exactly one caller across all processes until `ttl` passes."""
        if breaker.open:
            return True  # without Redis, each process pushes its own viewers
        try:
            return bool(
                await self._client().set(
                    self.prefix + "lock:" + key, b"1", px=int(ttl * 1000), nx=True
                )
            )
        except Exception as exc:
            breaker.trip(exc)
            return True

    async def unlock(self, key: str) -> None:
        """Let the next caller have a lock its holder is done with before `ttl` passes."""
        if breaker.open:
            return  # it expires on its own
        try:
            await self._client().delete(self.prefix + "lock:" + key)
        except Exception as exc:
            breaker.trip(exc)

    async def mark_presence(self, keys: list[str], ttl: float) -> None:
        if not keys or breaker.open:
            return
        try:
            async with self._client().pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.set(self.prefix + "presence:" + key, b"1", px=int(ttl * 1000))
                await pipe.execute()
        except Exception as exc:
            breaker.trip(exc)

    async def has_presence(self, key: str) -> bool:
        if breaker.open:
            return False
        try:
            return bool(await self._client().exists(self.prefix + "presence:" + key))
        except Exception as exc:
            breaker.trip(exc)
            return False

    async def ping(self) -> bool:
        """Whether Redis answers (for /healthz): no while the breaker is open, since the
        app is going without Redis meanwhile; a failed ping opens it, as any call does."""
        from redis.exceptions import RedisError

        if breaker.open:
            return False
        try:
            return bool(await self._client().ping())
        except (RedisError, OSError) as exc:
            breaker.trip(exc)
            return False

    async def hit(self, key: str, limit: int, window: float = 60.0) -> Limit:
        if breaker.open:
            return Limit(True, 0)  # fail open: no rate limit beats no API
        self._sequence += 1
        now = time.time()
        member = f"{now:.6f}:{os.getpid()}:{self._sequence}"
        try:
            count, blocking = await self._hit_script()(
                keys=[self.prefix + "rl:" + key], args=[now, window, limit, member, MAX_LOG]
            )
        except Exception as exc:
            breaker.trip(exc)
            return Limit(True, 0)
        if int(count) <= limit:
            return Limit(True, 0, int(count))
        return Limit(False, max(1, math.ceil(float(blocking) + window - now)), int(count))


_stores: dict[str, MemoryStore | RedisStore] = {}


def get_store() -> MemoryStore | RedisStore:
    url = settings.REDIS_URL
    store = _stores.get(url)
    if store is None:
        store = _stores[url] = RedisStore(url) if url else MemoryStore()
    return store


def reset() -> None:
    """Forget everything held in this process (tests)."""
    _stores.clear()
    breaker.until = 0.0


def response_key(endpoint: str, ident: str, variant: str = "") -> str:
    return f"resp:{endpoint}:{ident}:{variant}"


def website_response_keys(tracking_code: str, website_id: str) -> list[str]:
    """Every cached API answer about one website, to drop when it changes."""
    keys = [
        response_key("live", tracking_code),
        response_key("status", tracking_code),
        response_key("realtime", website_id),
    ]
    keys += [response_key("stats", tracking_code, period) for period in ("today", "week", "month")]
    return keys
