"""What is up and what is down, for /healthz."""

from __future__ import annotations

import asyncio

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import DatabaseError, connection

TIMEOUT_SECONDS = 2.0


def _database() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return "ok"
    except DatabaseError:
        return "down"


async def _redis() -> str:
    if not settings.REDIS_URL:
        return "disabled"
    import redis.asyncio as aioredis

    client = aioredis.from_url(settings.REDIS_URL, socket_connect_timeout=1, socket_timeout=1)
    try:
        await client.ping()
        return "ok"
    except (aioredis.RedisError, OSError):
        return "down"
    finally:
        await client.aclose()


async def _bounded(check, fallback: str = "down") -> str:
    try:
        return await asyncio.wait_for(check, TIMEOUT_SECONDS)
    except TimeoutError:
        return fallback


async def check() -> dict[str, str]:
    database, redis = await asyncio.gather(_bounded(sync_to_async(_database)()), _bounded(_redis()))
    return {"database": database, "redis": redis}
