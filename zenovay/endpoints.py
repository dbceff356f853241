"""The public read endpoints' contract, written once: name, path, kind of id, how long an
answer may be cached (TTL) and how many requests a client may make a minute.

Read by the API's decorators (api/views.py), its OpenAPI document (api/openapi.py) and
the widgets, whose iframes show the same numbers as /e/live and /e/realtime."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from zenovay import ids

IdKind = Literal["trackingCode", "websiteId"]


@dataclass(frozen=True, slots=True)
class PublicEndpoint:
    name: str
    path: str
    id_kind: IdKind
    ttl: int  # seconds
    per_minute: int  # requests per client address

    @property
    def is_valid_id(self) -> Callable[[object], bool]:
        return ids.is_tracking_code if self.id_kind == "trackingCode" else ids.is_website_id


ENDPOINTS: tuple[PublicEndpoint, ...] = (
    PublicEndpoint("live", "/e/live/{trackingCode}", "trackingCode", ttl=5, per_minute=1000),
    PublicEndpoint("realtime", "/e/realtime/{websiteId}", "websiteId", ttl=10, per_minute=500),
    PublicEndpoint("stats", "/e/stats/{trackingCode}", "trackingCode", ttl=30, per_minute=500),
    PublicEndpoint("status", "/e/{trackingCode}/status", "trackingCode", ttl=60, per_minute=100),
)


def endpoint(name: str) -> PublicEndpoint:
    return next(each for each in ENDPOINTS if each.name == name)
