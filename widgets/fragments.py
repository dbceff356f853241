"""HTML fragments of the iframe widgets, rendered once per snapshot per process.

Every viewer of a site gets the same bytes, so rendering is memoised on the
snapshot itself rather than repeated for each connection.
"""

from __future__ import annotations

import functools
import json

from django.template.loader import render_to_string

from zenovay import live as live_push
from zenovay import metrics
from zenovay.countries import flag


def live(realtime: metrics.RealtimeSnapshot) -> str:
    return _render("widgets/_live_fragment.html", json.dumps(live_push.live_of(realtime)))


def dashboard(realtime: metrics.RealtimeSnapshot) -> str:
    return _render("widgets/_dashboard_fragment.html", json.dumps(realtime))


@functools.lru_cache(maxsize=512)
def _render(template: str, snapshot_json: str) -> str:
    data = json.loads(snapshot_json)
    for country in data.get("countries", []):
        country["flag"] = flag(country["code"])
    return render_to_string(template, {"data": data})
