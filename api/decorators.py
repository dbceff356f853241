"""Cross-cutting HTTP concerns of the public API, stacked on small async views."""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable

from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse

from api.errors import json_error

log = logging.getLogger("zenovay.api")
AsyncView = Callable[..., Awaitable[HttpResponse]]

CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, OPTIONS",
    "Access-Control-Allow-Headers": "Content-Type",
    "Access-Control-Expose-Headers": "Retry-After",
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
    """A JSON 405 with an Allow header for any other method."""
    allowed = set(methods)

    def decorator(view: AsyncView) -> AsyncView:
        @functools.wraps(view)
        async def wrapper(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
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
