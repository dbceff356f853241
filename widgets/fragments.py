"""HTML fragments of the iframe widgets, rendered once per snapshot per process.

Every viewer of a site gets the same bytes, so rendering is memoised on the
snapshot itself rather than repeated for each connection. The widget pages
include the same partials, so first paint and every push look alike.
"""

from __future__ import annotations

import functools
import json
from typing import Any, Literal

from django.template.loader import render_to_string

from zenovay import metrics, push
from zenovay.countries import flag


def live(realtime: metrics.RealtimeSnapshot) -> str:
    return _render("widgets/_live_fragment.html", json.dumps(push.live_of(realtime)))


def dashboard(realtime: metrics.RealtimeSnapshot) -> str:
    return _render("widgets/_dashboard_fragment.html", json.dumps(realtime))


def context(
    kind: Literal["live", "dashboard"], realtime: metrics.RealtimeSnapshot
) -> dict[str, Any]:
    """The template context of a fragment, for the page that shows it first."""
    data = push.live_of(realtime) if kind == "live" else realtime
    return _context(json.dumps(data))


@functools.lru_cache(maxsize=512)
def _render(template: str, snapshot_json: str) -> str:
    return render_to_string(template, _context(snapshot_json))


def _context(snapshot_json: str) -> dict[str, Any]:
    # A copy decoded from JSON, so adding flags never touches the shared snapshot.
    data = json.loads(snapshot_json)
    for country in data.get("countries", []):
        country["flag"] = flag(country["code"])
    return {"data": data}
