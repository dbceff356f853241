"""ASGI entry point: Django for HTTP, Channels for the widgets' WebSockets."""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "zenovay.settings")

from channels.routing import ProtocolTypeRouter, URLRouter
from django.core.asgi import get_asgi_application

django_application = get_asgi_application()

from widgets.routing import websocket_urlpatterns  # noqa: E402

# Widgets are embedded on any site, so sockets accept every origin; they are read-only.
application = ProtocolTypeRouter(
    {
        "http": django_application,
        "websocket": URLRouter(websocket_urlpatterns),
    }
)
