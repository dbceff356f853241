"""Kept only for bench/traffic.py, which times `live._compute`: use `zenovay.push`."""

from __future__ import annotations

from zenovay.push.snapshots import _compute

__all__ = ["_compute"]
