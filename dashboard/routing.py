from __future__ import annotations

from channels.auth import AuthMiddlewareStack

from dashboard import consumers
from zenovay.infra.routing import socket_path

websocket_urlpatterns = [
    # A shared link's dashboard: the link (and its password's cookie) is the key.
    socket_path(r"^ws/share/(?P<ident>[^/]+)/?$", consumers.SharedSiteConsumer.as_asgi()),
    # The owner dashboard: the session says who is signed in; same origin only.
    socket_path(
        r"^ws/dashboard/sites/?$", AuthMiddlewareStack(consumers.OwnerSitesConsumer.as_asgi())
    ),
    socket_path(
        r"^ws/dashboard/(?P<ident>[^/]+)/?$",
        AuthMiddlewareStack(consumers.OwnerSiteConsumer.as_asgi()),
    ),
]
