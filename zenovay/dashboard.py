"""Kept only for bench/traffic.py, which times `dashboard._period_context`: the owner UI
is the `dashboard` app now (dashboard/views.py)."""

from __future__ import annotations

from dashboard.views import _period_context

__all__ = ["_period_context"]
