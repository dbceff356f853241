"""Cross-cutting HTTP concerns of the public API, stacked on small async views."""

from __future__ import annotations

import functools
import hashlib
import logging
import math
import time
from collections.abc import Callable, Coroutine
from typing import Any

from django.conf import settings
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse, HttpResponseNotModified

from api.errors import json_error
from zenovay import clientinfo, conditional
from zenovay.infra import store

log = logging.getLogger("zenovay.api")
# Async function views: Django (and its URL patterns) take them for what they return, a coroutine.
AsyncView = Callable[..., Coroutine[Any, Any, HttpResponse]]

# The same lists the CORS middleware answers preflights with (settings.CORS_*).
CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": ", ".join(settings.CORS_ALLOW_METHODS),
    "Access-Control-Allow-Headers": ", ".join(settings.CORS_ALLOW_HEADERS),
    "Access-Control-Expose-Headers": ", ".join(settings.CORS_EXPOSE_HEADERS),
}


def add_cors_headers(response: HttpResponse) -> HttpResponse:
    for name, value in CORS_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def cors(view: AsyncView) -> AsyncView:
    """Every response of the view, errors included, is readable from any origin."""

    @functools.wraps(view)
    async def wrapper(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        return add_cors_headers(await view(request, *args, **kwargs))

    return wrapper


def allow_methods(*methods: str) -> Callable[[AsyncView], AsyncView]:
    """A JSON 405 with an Allow header for any other method; OPTIONS lists the methods.

    (CORS preflights never get here: the CORS middleware answers them.)
    """
    allowed = set(methods)

    def decorator(view: AsyncView) -> AsyncView:
        @functools.wraps(view)
        async def wrapper(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
            if request.method == "OPTIONS":
                response = HttpResponse(status=204)
                response["Allow"] = ", ".join(sorted(allowed | {"OPTIONS"}))
                return response
            if request.method not in allowed:
                response = json_error(405, f"Use {' or '.join(sorted(allowed))} here.")
                response["Allow"] = ", ".join(sorted(allowed))
                return response
            return await view(request, *args, **kwargs)

        return wrapper

    return decorator


def json_errors(view: AsyncView) -> AsyncView:
    """A database that is down is a 503 JSON answer, never a traceback."""

    @functools.wraps(view)
    async def wrapper(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        try:
            return await view(request, *args, **kwargs)
        except DatabaseError as exc:
            log.warning("database unavailable for %s: %s", request.path, exc)
            response = json_error(503, "The analytics database is unavailable; try again soon.")
            response["Retry-After"] = "5"
            return response

    return wrapper


def rate_limited(
    endpoint: str, per_minute: int | Callable[[], int]
) -> Callable[[AsyncView], AsyncView]:
    """Count every request per client and endpoint over a rolling minute; 429 past it.

    The client is its keyed-hashed address (an IPv6 /64 as one), so no key in Redis holds
    an IP. `per_minute` may be a callable read on each request (a setting); 0 is no limit.
    """

    def decorator(view: AsyncView) -> AsyncView:
        @functools.wraps(view)
        async def wrapper(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
            limit = per_minute() if callable(per_minute) else per_minute
            if limit <= 0:
                return await view(request, *args, **kwargs)
            key = f"{endpoint}:{clientinfo.client_key(clientinfo.of_request(request)[0])}"
            verdict = await store.get_store().hit(key, limit)
            if not verdict.allowed:
                response = json_error(
                    429, f"Over {limit} requests a minute; retry in {verdict.retry_after}s."
                )
                response["Retry-After"] = str(verdict.retry_after)
                return response
            return await view(request, *args, **kwargs)

        return wrapper

    return decorator


def valid_id(is_valid: Callable[[str], bool], message: str) -> Callable[[AsyncView], AsyncView]:
    """A 404 for an id of the wrong shape, before any cache or database sees it: made-up
    ids (up to the length of a URL) must not fill the cache of not-found answers."""

    def decorator(view: AsyncView) -> AsyncView:
        @functools.wraps(view)
        async def wrapper(request: HttpRequest, ident: str, **kwargs: object) -> HttpResponse:
            if not is_valid(ident):
                return json_error(404, message)
            return await view(request, ident, **kwargs)

        return wrapper

    return decorator


def cached(endpoint: str, ttl: int, variant: Callable[[HttpRequest], str] | None = None):
    """One body per id for `ttl` seconds across all processes, with ETag and 304.

    The first process to compute a body stores it with SET NX; everyone else gets
    exactly those bytes, so `timestamp` is identical within the TTL. Not-found
    answers are cached too, so floods of made-up ids do not reach the database.
    """

    def decorator(view: AsyncView) -> AsyncView:
        @functools.wraps(view)
        async def wrapper(request: HttpRequest, ident: str, **kwargs: object) -> HttpResponse:
            key = store.response_key(endpoint, ident, variant(request) if variant else "")
            backend = store.get_store()
            packed = await backend.get(key)
            if packed is None:
                fresh = await view(request, ident, **kwargs)
                if fresh.status_code not in (200, 404):
                    return fresh  # errors such as 503 are never cached
                packed = await backend.add(key, _pack(fresh), ttl)
            return _unpack(request, packed, ttl)

        return wrapper

    return decorator


def _pack(response: HttpResponse) -> bytes:
    """Status, ETag and the time the body was computed (for `Age`), then the body."""
    etag = '"' + hashlib.blake2b(response.content, digest_size=10).hexdigest() + '"'
    return f"{response.status_code} {time.time():.3f} {etag}\n".encode() + response.content


def _unpack(request: HttpRequest, packed: bytes, ttl: int) -> HttpResponse:
    head, _, body = packed.partition(b"\n")
    status, *computed, etag = head.decode().split(" ")  # no time: packed by an older version
    response: HttpResponse
    if status == "200" and conditional.etag_matches(request, etag):
        response = HttpResponseNotModified()
    else:
        response = HttpResponse(
            b"" if request.method == "HEAD" else body,
            status=int(status),
            content_type="application/json",
        )
        response["Content-Length"] = str(len(body))
    if status == "200":
        response["ETag"] = etag
        response["Cache-Control"] = f"public, max-age={ttl}"
        # A cache downstream (a browser, a CDN) keeps the body for max-age minus Age, so
        # nothing shows a body older than the TTL.
        age = math.floor(time.time() - float(computed[0])) if computed else 0
        response["Age"] = str(min(max(age, 0), ttl))
    return response
