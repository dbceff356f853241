from __future__ import annotations

from django.urls import re_path

from widgets import consumers

websocket_urlpatterns = [
    # Public widget sockets: no session, no user; they accept every origin.
    re_path(r"^ws/live/(?P<ident>[^/]+)/?$", consumers.LiveConsumer.as_asgi()),
    re_path(r"^ws/realtime/(?P<ident>[^/]+)/?$", consumers.RealtimeConsumer.as_asgi()),
    re_path(r"^ws/widgets/live/(?P<ident>[^/]+)/?$", consumers.LiveFragmentConsumer.as_asgi()),
    re_path(
        r"^ws/widgets/dashboard/(?P<ident>[^/]+)/?$",
        consumers.DashboardFragmentConsumer.as_asgi(),
    ),
]
