from __future__ import annotations

from widgets import consumers
from zenovay.infra.routing import socket_path

websocket_urlpatterns = [
    # Public widget sockets: no session, no user; they accept every origin.
    socket_path(r"^ws/live/(?P<ident>[^/]+)/?$", consumers.LiveConsumer.as_asgi()),
    socket_path(r"^ws/realtime/(?P<ident>[^/]+)/?$", consumers.RealtimeConsumer.as_asgi()),
    socket_path(r"^ws/widgets/live/(?P<ident>[^/]+)/?$", consumers.LiveFragmentConsumer.as_asgi()),
    socket_path(
        r"^ws/widgets/dashboard/(?P<ident>[^/]+)/?$",
        consumers.DashboardFragmentConsumer.as_asgi(),
    ),
]
