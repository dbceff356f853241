"""What is up and what is down, for /healthz."""

from __future__ import annotations

import asyncio

from asgiref.sync import sync_to_async
from django.db import DatabaseError, connection

from zenovay.infra import store

TIMEOUT_SECONDS = 2.0


def _database() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return "ok"
    except DatabaseError:
        return "down"


async def _redis() -> str:
    """Asked through the store's client, behind the breaker every use of Redis shares."""
    backend = store.get_store()
    if not isinstance(backend, store.RedisStore):
        return "disabled"
    return "ok" if await backend.ping() else "down"


async def _bounded(check, fallback: str = "down") -> str:
    try:
        return await asyncio.wait_for(check, TIMEOUT_SECONDS)
    except TimeoutError:
        return fallback


async def check() -> dict[str, str]:
    database, redis = await asyncio.gather(_bounded(sync_to_async(_database)()), _bounded(_redis()))
    return {"database": database, "redis": redis}
