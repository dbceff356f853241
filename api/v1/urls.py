"""The External API's routes, under /api/v1/ (a trailing slash is optional, as under /e/)."""

from __future__ import annotations

from django.urls import re_path

from api.v1 import views

urlpatterns = [
    re_path(r"^sites/?$", views.sites, name="api-v1-sites"),
    re_path(r"^query/?$", views.query_view, name="api-v1-query"),
    re_path(r"^export/?$", views.export, name="api-v1-export"),
]
