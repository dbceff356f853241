"""WebSocket routes, as Channels' `URLRouter` takes them.

A socket route is Django's `re_path` around an ASGI application (a consumer's `as_asgi()`,
or a middleware around one), which is what Channels documents. The type stubs disagree with
that one call: django-stubs types `re_path` for views only, and types-channels' `URLRouter`
asks for its own declared kind of pattern. The object is the same `URLPattern` at run time,
so `socket_path` says so once, for every route of the apps.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from django.urls import re_path

if TYPE_CHECKING:
    from channels.routing import _ExtendedURLPattern
    from channels.utils import _ChannelApplication


def socket_path(pattern: str, app: _ChannelApplication) -> _ExtendedURLPattern:
    return cast("_ExtendedURLPattern", re_path(pattern, cast(Any, app)))
