"""ASGI entry point, the one place (with urls.py) that composes the apps: Django for HTTP,
the collect fast path before it, Channels for the widgets' WebSockets."""

from __future__ import annotations

import gc
import os
import sys
from typing import cast

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "zenovay.settings")

# Under Daphne, Twisted words the status line; it knows no 429 and would say "Unknown Status".
if "twisted.web.http" in sys.modules:
    sys.modules["twisted.web.http"].RESPONSES.setdefault(429, b"Too Many Requests")

from channels.routing import ProtocolTypeRouter, URLRouter
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
from django.core.asgi import get_asgi_application

# Static files (htmx for the iframe widgets) are served by the app itself, DEBUG or not,
# so one process is a complete deployment; a proxy or CDN in front may still cache them.
django_application = ASGIStaticFilesHandler(get_asgi_application())

from api.collect import CollectFastPath  # noqa: E402
from dashboard import routing as dashboard_routing  # noqa: E402
from widgets import routing as widget_routing  # noqa: E402
from zenovay.infra.guard import App, Guard  # noqa: E402

# Widgets are embedded on any site, so sockets accept every origin; they are read-only.
# Only the owner dashboard's sockets read the session (see dashboard.routing), and check
# that the page opening them is on this server (see dashboard.consumers).
# Guard: body limits and timeouts on every path, WebSockets per client (see its docstring).
# POST /e/collect, the hot path, is answered before Django (see api.collect).
# (The cast: Channels' stubs spell ASGI's scope and messages with asgiref's TypedDicts, the
# guard with plain dicts; it is the same protocol.)
application = Guard(
    cast(
        App,
        ProtocolTypeRouter(
            {
                "http": CollectFastPath(django_application),
                "websocket": URLRouter(
                    [
                        *widget_routing.websocket_urlpatterns,
                        *dashboard_routing.websocket_urlpatterns,
                    ]
                ),
            }
        ),
    )
)

# What exists now (Django, the apps, their modules) lives as long as the process: the
# cyclic garbage collector need not scan it again, and young objects, nearly all freed by
# reference counting, are collected less often. Under load (collect at 256 connections)
# its full collections had paused the event loop for up to 180 ms at a time, about 1 s in 8.
gc.freeze()
gc.set_threshold(20_000, 20, 20)
