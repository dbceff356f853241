from __future__ import annotations

from django.urls import re_path

from widgets import consumers

websocket_urlpatterns = [
    re_path(r"^ws/live/(?P<ident>[^/]+)/?$", consumers.LiveConsumer.as_asgi()),
    re_path(r"^ws/realtime/(?P<ident>[^/]+)/?$", consumers.RealtimeConsumer.as_asgi()),
    re_path(r"^ws/widgets/live/(?P<ident>[^/]+)/?$", consumers.LiveFragmentConsumer.as_asgi()),
    re_path(
        r"^ws/widgets/dashboard/(?P<ident>[^/]+)/?$",
        consumers.DashboardFragmentConsumer.as_asgi(),
    ),
    # The owner dashboard: signed-in users only, same origin only.
    re_path(r"^ws/dashboard/sites/?$", consumers.OwnerSitesConsumer.as_asgi()),
    re_path(r"^ws/dashboard/(?P<ident>[^/]+)/?$", consumers.OwnerSiteConsumer.as_asgi()),
]
