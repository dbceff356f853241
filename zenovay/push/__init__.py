"""Push: "this site changed", each process's hub of viewers, and the ticker.

Ingest calls `site_changed()` after commit (`loops`); the ticker (`ticker`) pushes a
changed site when someone watches it, at most once a second (`schedule`), and refreshes
the sites watched here every few seconds. A push computes the site's snapshot once
(`snapshots`) and sends one channel-layer message per process, to that process's hub
(`hub`), which renders each kind of frame once and writes it to every socket it holds.
The tuning figures are in `timing`.

Callers use this package's names only: `from zenovay import push`, then
`push.site_changed(pk)`, `push.hub().join(...)`, `push.snapshot(pk)`.
"""

from __future__ import annotations

from zenovay.push import loops, snapshots, timing
from zenovay.push.hub import NO_LAYER, Hub, LayerUnavailable, Viewer, group_name
from zenovay.push.loops import hub, local_viewers, site_changed, stop_tickers, take_changed
from zenovay.push.schedule import Schedule
from zenovay.push.snapshots import live_of, push, snapshot
from zenovay.push.ticker import ensure_ticker, run_ticker

__all__ = [
    "NO_LAYER",
    "Hub",
    "LayerUnavailable",
    "Schedule",
    "Viewer",
    "ensure_ticker",
    "group_name",
    "hub",
    "live_of",
    "local_viewers",
    "loops",
    "push",
    "reset",
    "run_ticker",
    "site_changed",
    "snapshot",
    "snapshots",
    "stop_tickers",
    "take_changed",
    "timing",
]


def reset() -> None:
    """Forget every ticker, hub and snapshot (tests run each on an event loop of its own)."""
    loops.forget_all()
    snapshots.forget()
