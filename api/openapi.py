"""The OpenAPI 3.1 description of the public API, built once as a plain dict.

It is the machine-readable form of the public contract: `/e/openapi.json` serves it,
`/docs/api` renders it for people, and `tests/api/test_openapi.py` validates real responses
of every endpoint against it. Response bodies are closed (`additionalProperties: false`,
every field required) so a field added, dropped or retyped in `zenovay.metrics` fails
the tests instead of silently changing what users get.
"""

from __future__ import annotations

import copy
import functools
import json
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from django.conf import settings

from api.errors import CODES
from zenovay import endpoints

Schema = dict[str, Any]

TRACKING_CODE_PATTERN = r"^ZV_[A-Z0-9]{11}$"
WEBSITE_ID_PATTERN = r"^ws_[a-z0-9]{6,16}$"
TIMESTAMP_PATTERN = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$"
COUNTRY_CODE_PATTERN = r"^[A-Z]{2}$"

# `POST /e/collect` as zenovay.ingest reads it. The page URL: http or https (any case), optional
# user info, a host name of labels of 1 to 63 characters from `A-Za-z0-9_-` (at most 253 in
# all), an optional port from 0 to 65535, then anything from `/`, `?` or `#` on. The server
# also takes what browsers never send in `location.href` (Unicode and IPv6 hosts, spaces before
# the scheme); the schema leaves those out, so every URL it accepts is one the server takes.
MAX_URL_LENGTH = 2048
PAGE_URL_PATTERN = (
    r"^[Hh][Tt][Tt][Pp][Ss]?://"
    r"([-A-Za-z0-9._~%!$&'()*+,;=:]*@)?"
    r"(?=[-A-Za-z0-9_.]{1,253}([:/?#]|$))[-A-Za-z0-9_]{1,63}(\.[-A-Za-z0-9_]{1,63})*\.?"
    r"(:0*([0-9]{1,4}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])?)?"
    r"([/?#][\s\S]*)?$"
)
# A name must keep a character once NUL is dropped and Python's `str.strip()` has run: one
# that is neither NUL nor whitespace as `str.isspace()` defines it (not the same as `\s`).
EVENT_NAME_PATTERN = (
    r"[^\u0000\u0009-\u000d\u001c-\u0020\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029"
    r"\u202f\u205f\u3000]"
)
MAX_PROP_NUMBER = 2**53  # larger numbers lose precision as doubles

EXAMPLE_CODE = "ZV_7K2M9Q4XW1B"
EXAMPLE_WEBSITE_ID = "ws_abc123"
EXAMPLE_TIMESTAMP = "2025-01-20T14:30:00Z"

# Reasons `POST /e/collect` gives for dropping an event on purpose (see zenovay.ingest).
IGNORED_REASONS = ("bot", "do_not_track", "excluded_ip")

DOC_MAX_AGE = 3600  # /e/openapi.json and /docs/api


def api_version() -> str:
    try:
        return version("zenovay")
    except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "0.1.0"


# --- Small schema builders


def ref(kind: str, name: str) -> Schema:
    return {"$ref": f"#/components/{kind}/{name}"}


def closed(properties: dict[str, Schema], description: str = "") -> Schema:
    """An object with exactly these properties, all required."""
    schema: Schema = {
        "type": "object",
        "additionalProperties": False,
        "required": list(properties),
        "properties": properties,
    }
    if description:
        schema["description"] = description
    return schema


def count(description: str) -> Schema:
    return {"type": "integer", "minimum": 0, "description": description}


def rate(description: str) -> Schema:
    return {"type": "number", "minimum": 0, "maximum": 1, "description": description}


def timestamp(description: str) -> Schema:
    return {**ref("schemas", "Timestamp"), "description": description}


# --- Examples (the seed's figures)

LIVE_EXAMPLE = {"liveCount": 42, "timestamp": EXAMPLE_TIMESTAMP}
REALTIME_EXAMPLE = {
    "visitors": {"current": 42, "today": 1234, "change": 12.5},
    "pageViews": {"current": 156, "today": 4567, "change": 8.3},
    "countries": [
        {"code": "US", "name": "United States", "count": 18},
        {"code": "GB", "name": "United Kingdom", "count": 8},
        {"code": "DE", "name": "Germany", "count": 6},
    ],
    "topPages": [
        {"path": "/", "visitors": 15},
        {"path": "/pricing", "visitors": 8},
        {"path": "/features", "visitors": 5},
    ],
    "timestamp": EXAMPLE_TIMESTAMP,
}
STATS_EXAMPLE = {
    "visitors": {"live": 42, "today": 1234, "week": 8765, "month": 34521},
    "bounceRate": 0.42,
    "avgSessionDuration": 185,
    "pagesPerSession": 2.9,
    "newVisitorRate": 0.65,
    "returningVisitorRate": 0.35,
    "timestamp": EXAMPLE_TIMESTAMP,
}
STATUS_EXAMPLE = {
    "active": True,
    "tracking_code": EXAMPLE_CODE,
    "domain": "example.com",
    "last_event": "2025-01-20T14:29:55Z",
}
COLLECT_EXAMPLES = {
    "pageview": {
        "summary": "A pageview (what the tracker sends on load and on navigation)",
        "value": {
            "code": EXAMPLE_CODE,
            "type": "pageview",
            "url": "https://example.com/pricing?utm_source=newsletter",
            "referrer": "https://www.google.com/",
        },
    },
    "engagement": {
        "summary": "Engagement, sent when the page is hidden or left",
        "value": {
            "code": EXAMPLE_CODE,
            "type": "engagement",
            "url": "https://example.com/pricing",
            "engagedMs": 18250,
        },
    },
    "event": {
        "summary": "A custom event",
        "value": {
            "code": EXAMPLE_CODE,
            "type": "event",
            "url": "https://example.com/pricing",
            "name": "signup",
            "props": {"plan": "pro", "seats": 3, "trial": True},
        },
    },
}
ERROR_EXAMPLES = {
    400: "'period' must be today, week or month.",
    403: "The page's host is not example.com or one of its hostnames.",
    404: "No enabled website has this id.",
    405: "Use GET or HEAD here.",
    413: "The body is over 4096 bytes.",
    429: "Over 100 requests a minute; retry in 12s.",
    503: "The analytics database is unavailable; try again soon.",
}


# --- Components

SCHEMAS: dict[str, Schema] = {
    "Timestamp": {
        "type": "string",
        "pattern": TIMESTAMP_PATTERN,
        "description": "UTC, ISO 8601, second precision, `Z` suffix.",
        "examples": [EXAMPLE_TIMESTAMP],
    },
    "TrackingCode": {
        "type": "string",
        "pattern": TRACKING_CODE_PATTERN,
        "description": "`ZV_` and 11 characters from `A-Z0-9`; case-sensitive. Public.",
        "examples": [EXAMPLE_CODE],
    },
    "WebsiteId": {
        "type": "string",
        "pattern": WEBSITE_ID_PATTERN,
        "description": "`ws_` and 6 to 16 characters from `a-z0-9`. Public.",
        "examples": [EXAMPLE_WEBSITE_ID],
    },
    "LiveSnapshot": closed(
        {
            "liveCount": count(
                "Distinct visitors with at least one event (pageview, engagement or "
                "custom event) in the 300 seconds ending at `timestamp`."
            ),
            "timestamp": timestamp("When the figures were computed."),
        },
        "Body of `GET /e/live/{trackingCode}`.",
    ),
    "VisitorTrend": closed(
        {
            "current": count(
                "Visitors online now: distinct visitors with any event in the current "
                "window (equals `liveCount`)."
            ),
            "today": count(
                "Distinct visitors with a pageview since 00:00 in the website's time zone."
            ),
            "change": {
                "type": "number",
                "description": (
                    "Percent change of `today` against yesterday over the same span "
                    "(yesterday 00:00 up to yesterday at the current time of day), one "
                    "decimal; `0.0` when both are 0, `100.0` when only yesterday is 0."
                ),
            },
        }
    ),
    "PageViewTrend": closed(
        {
            "current": count("Pageview events in the current window (the last 300 seconds)."),
            "today": count("Pageviews since 00:00 in the website's time zone."),
            "change": {
                "type": "number",
                "description": "Percent change of `today` against yesterday's same span.",
            },
        }
    ),
    "CountryCount": closed(
        {
            "code": {
                "type": "string",
                "pattern": COUNTRY_CODE_PATTERN,
                "description": "ISO 3166-1 alpha-2 code.",
            },
            "name": {
                "type": "string",
                "minLength": 1,
                "description": 'Common English name ("United States", "United Kingdom").',
            },
            "count": {
                "type": "integer",
                "minimum": 1,
                "description": "Current visitors whose latest event in the window came from here.",
            },
        }
    ),
    "PageCount": closed(
        {
            "path": {
                "type": "string",
                "pattern": "^/[^\\s<>\"'`{}]*$",
                "description": (
                    "URL path without query string or fragment, percent-encoded exactly as a "
                    "browser sends it in `location.pathname` (non-ASCII as UTF-8 escapes); "
                    "spaces, `<`, `>`, `\"`, `'`, backticks and braces never appear raw, so "
                    "a page may write it with `innerHTML`."
                ),
            },
            "visitors": {
                "type": "integer",
                "minimum": 1,
                "description": "Current visitors whose latest pageview in the window was here.",
            },
        }
    ),
    "RealtimeSnapshot": closed(
        {
            "visitors": {
                **ref("schemas", "VisitorTrend"),
                "description": "Visitors now and today, with the change against yesterday.",
            },
            "pageViews": {
                **ref("schemas", "PageViewTrend"),
                "description": "Pageviews now and today, with the change against yesterday.",
            },
            "countries": {
                "type": "array",
                "maxItems": 10,
                "items": ref("schemas", "CountryCount"),
                "description": (
                    "Top 10 countries by current visitors (each counted once, under the "
                    "country of its latest event), ties by code; unknown countries left out."
                ),
            },
            "topPages": {
                "type": "array",
                "maxItems": 10,
                "items": ref("schemas", "PageCount"),
                "description": (
                    "Top 10 pages by current visitors (each counted once, under the path of "
                    "its latest pageview: where visitors are now), ties by path."
                ),
            },
            "timestamp": timestamp("When the figures were computed; the window ends here."),
        },
        "Body of `GET /e/realtime/{websiteId}` and of the `/ws/realtime/{websiteId}` socket.",
    ),
    "VisitorCounts": closed(
        {
            "live": count("Visitors online now (equals `liveCount`)."),
            "today": count("Distinct visitors with a pageview since 00:00 (website time zone)."),
            "week": count("Distinct visitors since Monday 00:00 of the current ISO week."),
            "month": count("Distinct visitors since 00:00 on the 1st of the current month."),
        }
    ),
    "StatsSnapshot": closed(
        {
            "visitors": {
                **ref("schemas", "VisitorCounts"),
                "description": "Distinct visitors now, today, this week and this month.",
            },
            "bounceRate": rate(
                "Sessions with exactly one pageview and no custom event, over all sessions; "
                "2 decimals."
            ),
            "avgSessionDuration": count(
                "Mean of (last event - first event) per session, in whole seconds; "
                "engagement events extend the last event, so one-page visits have a duration."
            ),
            "pagesPerSession": {
                "type": "number",
                "minimum": 0,
                "description": "Pageviews over sessions; 1 decimal.",
            },
            "newVisitorRate": rate(
                "Share of the period's visitors who had not visited before it began; "
                "2 decimals. With `returningVisitorRate` it sums to 1 (both 0 without visitors)."
            ),
            "returningVisitorRate": rate(
                "Share of the period's visitors who had a session before it began; 2 decimals."
            ),
            "timestamp": timestamp("When the figures were computed."),
        },
        "Body of `GET /e/stats/{trackingCode}`. Session figures cover sessions that started "
        "in the selected period (a session: one visitor's events with no gap over 30 minutes).",
    ),
    "StatusSnapshot": closed(
        {
            "active": {
                "type": "boolean",
                "description": "The website is enabled and received an event in the last 24 hours.",
            },
            "tracking_code": ref("schemas", "TrackingCode"),
            "domain": {
                "type": "string",
                "minLength": 1,
                "description": "The website's domain.",
            },
            "last_event": {
                "type": ["string", "null"],
                "pattern": TIMESTAMP_PATTERN,
                "description": (
                    "Time of the latest event (UTC, `Z` suffix), or `null` when the website "
                    "has never received one."
                ),
            },
        },
        "Body of `GET /e/{trackingCode}/status`.",
    ),
    "Error": closed(
        {
            "error": {
                "type": "string",
                "enum": list(CODES.values()),
                "description": "Machine-readable code; see the table of errors.",
            },
            "message": {
                "type": "string",
                "minLength": 1,
                "description": "A human sentence.",
            },
        },
        "Every HTTP error under `/e/`: never an HTML page, never a traceback.",
    ),
    "CollectRequest": {
        "type": "object",
        "description": (
            "One event, sent as JSON whatever the Content-Type (`navigator.sendBeacon` sends "
            "`text/plain`); at most 4096 bytes. Unknown fields are ignored."
        ),
        "required": ["code", "url"],
        "properties": {
            "code": ref("schemas", "TrackingCode"),
            "type": {
                "type": "string",
                "enum": ["pageview", "engagement", "event"],
                "default": "pageview",
                "description": "`event` is a custom event and needs `name`.",
            },
            "url": {
                # The pattern sits in a second schema so that the docs' type column stays
                # "string, at most 2048 chars"; the description says it in words.
                "allOf": [
                    {"type": "string", "maxLength": MAX_URL_LENGTH},
                    {"pattern": PAGE_URL_PATTERN},
                ],
                "description": (
                    "The page's URL (`location.href`): `http` or `https`, a host name "
                    "(labels of letters, digits, `-` and `_`, as browsers send it: IDNA for a "
                    "Unicode name) or an IPv4 address, an optional port, then any path, query "
                    "and fragment. Anything else is a 400. The host must be the website's "
                    "domain, one of its subdomains or an extra hostname set in the admin, else "
                    "403 (the one rule of this body a schema cannot state)."
                ),
            },
            "referrer": {
                "type": ["string", "null"],
                "maxLength": MAX_URL_LENGTH,
                "description": "`document.referrer`; empty or null for none.",
            },
            # The three per-type fields are read only with their type and ignored with the
            # others (like unknown fields), so their rules are in `allOf` below.
            "name": {
                "description": (
                    "Custom event name: a string of 1 to 100 characters, not only whitespace. "
                    "Required with `type: event`, ignored with the other types."
                ),
            },
            "props": {
                "description": (
                    "Custom event properties (`type: event` only, ignored otherwise): null or "
                    "an object of at most 30 properties, names of at most 100 characters, "
                    "values strings, booleans, null or numbers from -2^53 to 2^53."
                ),
            },
            "engagedMs": {
                "description": (
                    "Time the page was visible, in ms: a number >= 0 (`type: engagement` only, "
                    "ignored otherwise)."
                ),
            },
        },
        "allOf": [
            {
                "if": {"properties": {"type": {"const": "event"}}, "required": ["type"]},
                "then": {
                    "required": ["name"],
                    "properties": {
                        "name": {
                            "type": "string",
                            "maxLength": 100,
                            "pattern": EVENT_NAME_PATTERN,
                        },
                        "props": {
                            "type": ["object", "null"],
                            "maxProperties": 30,
                            "propertyNames": {"maxLength": 100},
                            "additionalProperties": {
                                "type": ["string", "number", "boolean", "null"],
                                "minimum": -MAX_PROP_NUMBER,
                                "maximum": MAX_PROP_NUMBER,
                            },
                        },
                    },
                },
            },
            {
                "if": {"properties": {"type": {"const": "engagement"}}, "required": ["type"]},
                "then": {"properties": {"engagedMs": {"type": "number", "minimum": 0}}},
            },
        ],
    },
    "CollectAccepted": {
        "type": "object",
        "additionalProperties": False,
        "required": ["ok"],
        "properties": {
            "ok": {"type": "boolean", "const": True},
            "ignored": {
                "type": "string",
                "enum": list(IGNORED_REASONS),
                "description": (
                    "Present when the event was dropped on purpose: a `bot`, a browser "
                    "sending `DNT: 1` (`do_not_track`), or an `excluded_ip`."
                ),
            },
        },
        "description": '`{"ok": true}` when recorded (durably); with `ignored` when dropped.',
    },
}

HEADERS: dict[str, Schema] = {
    "ETag": {
        "description": "Strong validator of the body; send it back in `If-None-Match`.",
        "required": True,
        "schema": {"type": "string", "pattern": '^"[^"]+"$'},
    },
    "Age": {
        "description": (
            "Whole seconds since the body was computed (0 to the TTL): a cache downstream "
            "keeps it for `max-age` minus `Age`, so nothing shows it past the TTL."
        ),
        "required": True,
        "schema": {"type": "string", "pattern": "^[0-9]+$"},
    },
    "RetryAfter": {
        "description": "Whole seconds to wait before retrying (at least 1).",
        "required": True,
        "schema": {"type": "string", "pattern": "^[1-9][0-9]*$"},
    },
    "AccessControlAllowOrigin": {
        "description": "CORS: every response, errors included, is readable from any origin.",
        "required": True,
        "schema": {"type": "string", "const": "*"},
    },
    "Allow": {
        "description": "The methods this endpoint takes.",
        "required": True,
        "schema": {"type": "string"},
    },
}

PARAMETERS: dict[str, Schema] = {
    "TrackingCode": {
        "name": "trackingCode",
        "in": "path",
        "required": True,
        "description": "The website's tracking code. Anything else is answered 404.",
        "schema": ref("schemas", "TrackingCode"),
        "example": EXAMPLE_CODE,
    },
    "WebsiteId": {
        "name": "websiteId",
        "in": "path",
        "required": True,
        "description": "The website's public id. Anything else is answered 404.",
        "schema": ref("schemas", "WebsiteId"),
        "example": EXAMPLE_WEBSITE_ID,
    },
    "Period": {
        "name": "period",
        "in": "query",
        "required": False,
        "description": (
            "Span of the session figures: `today` (from 00:00), `week` (from Monday 00:00) "
            "or `month` (from the 1st), in the website's time zone. Anything else is a 400."
        ),
        "schema": {"type": "string", "enum": ["today", "week", "month"], "default": "today"},
    },
    "IfNoneMatch": {
        "name": "If-None-Match",
        "in": "header",
        "required": False,
        "description": "An `ETag` from an earlier answer; a match gets 304 with no body.",
        "schema": {"type": "string"},
    },
}

_CORS = {"Access-Control-Allow-Origin": ref("headers", "AccessControlAllowOrigin")}


def _error_response(status: int, description: str, **headers: Schema) -> Schema:
    """A JSON error whose `error` field is the code for `status`."""
    code = CODES[status]
    return {
        "description": description,
        "headers": {**_CORS, **headers},
        "content": {
            "application/json": {
                "schema": {
                    "allOf": [
                        ref("schemas", "Error"),
                        {"properties": {"error": {"const": code}}},
                    ]
                },
                "example": {"error": code, "message": ERROR_EXAMPLES[status]},
            }
        },
    }


RESPONSES: dict[str, Schema] = {
    "BadRequest": _error_response(
        400, "Bad input: an invalid collect body, or a `period` other than today, week or month."
    ),
    "Forbidden": _error_response(
        403, "The page's host, or the `Origin` of the page sending it, is not the website's."
    ),
    "NotFound": _error_response(
        404, "Unknown, malformed or disabled id (malformed ids never reach the database)."
    ),
    "MethodNotAllowed": _error_response(
        405, "Another method than the endpoint takes.", Allow=ref("headers", "Allow")
    ),
    "PayloadTooLarge": _error_response(413, "The body is over 4096 bytes."),
    "RateLimited": _error_response(
        429,
        "Over the endpoint's rate limit for this client IP (rolling minute).",
        **{"Retry-After": ref("headers", "RetryAfter")},
    ),
    "Unavailable": _error_response(
        503,
        "The analytics database is unavailable; try again soon.",
        **{"Retry-After": {**HEADERS["RetryAfter"], "required": False}},
    ),
}


# --- Paths


@dataclass(frozen=True, slots=True)
class ReadEndpoint:
    """What the document says of a public read beyond its contract (zenovay.endpoints)."""

    contract: endpoints.PublicEndpoint
    schema: str
    summary: str
    description: str
    example: dict[str, Any]

    @property
    def parameter(self) -> str:
        return "TrackingCode" if self.contract.id_kind == "trackingCode" else "WebsiteId"


READ_ENDPOINTS: tuple[ReadEndpoint, ...] = (
    ReadEndpoint(
        contract=endpoints.endpoint("live"),
        schema="LiveSnapshot",
        summary="Live visitor count",
        description=(
            "Visitors online now: distinct visitors with any event in the last 5 minutes. "
            "Made for live counters on a website."
        ),
        example=LIVE_EXAMPLE,
    ),
    ReadEndpoint(
        contract=endpoints.endpoint("realtime"),
        schema="RealtimeSnapshot",
        summary="Real-time analytics",
        description=(
            "Visitors and pageviews now and today (with the change against yesterday's "
            "same span), top countries and top pages of the current visitors."
        ),
        example=REALTIME_EXAMPLE,
    ),
    ReadEndpoint(
        contract=endpoints.endpoint("stats"),
        schema="StatsSnapshot",
        summary="Visitor statistics",
        description=(
            "Visitors now, today, this week and this month, and session figures (bounce "
            "rate, duration, depth, new vs returning) for the sessions that started in "
            "`period`. Days, weeks and months start at 00:00 in the website's time zone."
        ),
        example=STATS_EXAMPLE,
    ),
    ReadEndpoint(
        contract=endpoints.endpoint("status"),
        schema="StatusSnapshot",
        summary="Tracking status",
        description="Whether tracking is active for a website, and when it last saw an event.",
        example=STATUS_EXAMPLE,
    ),
)


def _read_operation(endpoint: ReadEndpoint) -> Schema:
    cache_control = {
        "description": f"The body may be served from a cache for {endpoint.contract.ttl} seconds.",
        "required": True,
        "schema": {"type": "string", "const": f"public, max-age={endpoint.contract.ttl}"},
    }
    parameters = [ref("parameters", endpoint.parameter)]
    if endpoint.contract.name == "stats":
        parameters.append(ref("parameters", "Period"))
    parameters.append(ref("parameters", "IfNoneMatch"))
    responses: Schema = {
        "200": {
            "description": (
                f"The figures. Within {endpoint.contract.ttl} s every request for the same id gets "
                "this identical body"
                + (" (same `timestamp`)" if "timestamp" in endpoint.example else "")
                + ", across all server processes."
            ),
            "headers": {
                "Cache-Control": cache_control,
                "ETag": ref("headers", "ETag"),
                "Age": ref("headers", "Age"),
                **_CORS,
            },
            "content": {
                "application/json": {
                    "schema": ref("schemas", endpoint.schema),
                    "example": endpoint.example,
                }
            },
        },
        "304": {
            "description": "`If-None-Match` matched the current `ETag`; no body.",
            "headers": {
                "Cache-Control": cache_control,
                "ETag": ref("headers", "ETag"),
                "Age": ref("headers", "Age"),
                **_CORS,
            },
        },
    }
    if endpoint.contract.name == "stats":
        responses["400"] = {
            **ref("responses", "BadRequest"),
            "description": "`period` is not today, week or month.",
        }
    responses |= {
        "404": ref("responses", "NotFound"),
        "405": ref("responses", "MethodNotAllowed"),
        "429": ref("responses", "RateLimited"),
        "503": ref("responses", "Unavailable"),
    }
    return {
        "operationId": f"get{endpoint.contract.name.title()}",
        "tags": ["Read"],
        "summary": endpoint.summary,
        "description": (
            f"{endpoint.description}\n\n"
            f"Cached for {endpoint.contract.ttl} s; at most {endpoint.contract.per_minute} "
            "requests a minute per client IP. Also answers `HEAD` (headers only) and CORS "
            "preflight `OPTIONS`; a trailing slash is the same endpoint."
        ),
        "parameters": parameters,
        "responses": responses,
        "x-cache-ttl-seconds": endpoint.contract.ttl,
        "x-rate-limit-per-minute": endpoint.contract.per_minute,
    }


COLLECT_OPERATION: Schema = {
    "operationId": "collect",
    "tags": ["Ingest"],
    "summary": "Record an event",
    "description": (
        "What the tracker script (`/z.js`) sends: a pageview on load and on every client-side "
        "navigation, an engagement event when the page is hidden or left, and custom events. "
        "The body is read as JSON whatever its Content-Type. A recorded event is durable. "
        "Rate limited per client IP (429 with `Retry-After` over the limit), not cached. "
        "`GET /e/collect` is a 405."
    ),
    "requestBody": {
        "required": True,
        "content": {
            "text/plain": {
                "schema": ref("schemas", "CollectRequest"),
                "examples": COLLECT_EXAMPLES,
            },
            "application/json": {
                "schema": ref("schemas", "CollectRequest"),
                "examples": COLLECT_EXAMPLES,
            },
        },
    },
    "responses": {
        "202": {
            "description": "Accepted: recorded, or dropped on purpose (then `ignored` says why).",
            "headers": dict(_CORS),
            "content": {
                "application/json": {
                    "schema": ref("schemas", "CollectAccepted"),
                    "examples": {
                        "recorded": {"value": {"ok": True}},
                        "ignored": {
                            "summary": "Dropped on purpose",
                            "value": {"ok": True, "ignored": "do_not_track"},
                        },
                    },
                }
            },
        },
        "400": {
            **ref("responses", "BadRequest"),
            "description": (
                "Not a JSON object, no `code`, an unknown `type`, a `url` that is not http(s), "
                "a custom event without `name`, or bad `props`/`engagedMs`."
            ),
        },
        "403": ref("responses", "Forbidden"),
        "404": {
            **ref("responses", "NotFound"),
            "description": "No enabled website has this tracking code.",
        },
        "405": ref("responses", "MethodNotAllowed"),
        "413": ref("responses", "PayloadTooLarge"),
        "429": ref("responses", "RateLimited"),
        "503": ref("responses", "Unavailable"),
    },
    "x-body-limit-bytes": 4096,
}


# --- The document

WEBSOCKETS: tuple[dict[str, str], ...] = (
    {
        "path": "/ws/live/{trackingCode}",
        "sends": "LiveSnapshot",
        "description": (
            'Sends `{"liveCount", "timestamp"}` once on connect and again on every change.'
        ),
    },
    {
        "path": "/ws/realtime/{websiteId}",
        "sends": "RealtimeSnapshot",
        "description": ("Sends the `/e/realtime` body once on connect and again on every change."),
    },
)

DESCRIPTION = """\
Public, unauthenticated JSON endpoints for live visitor counts and real-time analytics,
made to be called straight from browsers (live counters, mini dashboards) or scripts,
and the collect endpoint the tracker script sends events to.

### Identifiers
A website has two public ids: its tracking code (`ZV_` and 11 characters from `A-Z0-9`,
e.g. `ZV_7K2M9Q4XW1B`) and its website id (`ws_` and 6 to 16 characters from `a-z0-9`,
e.g. `ws_abc123`). Anything else, an unknown id or a disabled website is answered 404.

### Caching
Each read endpoint caches its body per id for its TTL: within it, every request gets the
identical body (same `timestamp`). Responses carry `Cache-Control: public, max-age=<TTL>`,
`Age` (seconds since the body was computed, so no cache keeps it past the TTL) and an `ETag`;
a matching `If-None-Match` gets 304.

### Rate limits
Counted per client IP and endpoint over a rolling minute. Every `GET` and `HEAD` counts
(served from the cache, as a 304 or as a 429 too); preflight `OPTIONS` does not. Over the
limit: 429 with a JSON error and `Retry-After` in whole seconds.

### CORS
Every `/e/` response, errors included, and every preflight carries
`Access-Control-Allow-Origin: *`, `Access-Control-Allow-Methods: GET, OPTIONS`,
`Access-Control-Allow-Headers: Content-Type, If-None-Match` and
`Access-Control-Expose-Headers: Retry-After, ETag, Age` (so a page script can read
`Retry-After` on a 429 and use the 304 flow).
Never credentials.

### Errors
Every error under `/e/` is JSON `{"error": "<code>", "message": "<human sentence>"}`:
400 `bad_request`, 403 `forbidden`, 404 `not_found`, 405 `method_not_allowed`,
413 `payload_too_large`, 429 `rate_limited`, 503 `unavailable`.

### Definitions
- A visitor is a pseudonymous identity: a keyed hash of website, IP and user agent under a
  rotating salt. No cookies.
- The current window is the 300 seconds ending at `timestamp`.
- Today, this week (from Monday) and this month (from the 1st) start at 00:00 in the
  website's time zone.
- A session is one visitor's events on one website with no gap over 30 minutes.
- All figures are 0, never missing and never null, for a website without traffic.

### WebSockets
OpenAPI cannot describe them, so here they are. Both push without being asked, through
the server's channel layer; an unknown, malformed or disabled id is refused at the
handshake or closed at once with code 4404.
- `/ws/live/{trackingCode}` sends `{"liveCount", "timestamp"}` (as `/e/live`) once on
  connect and again on every change.
- `/ws/realtime/{websiteId}` sends the `/e/realtime` body once on connect and again on
  every change.
"""


@functools.lru_cache(maxsize=4)
def _build(public_url: str) -> Schema:
    paths: Schema = {
        endpoint.contract.path: {"get": _read_operation(endpoint)} for endpoint in READ_ENDPOINTS
    }
    paths["/e/collect"] = {"post": COLLECT_OPERATION}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Zenovay public API",
            "version": api_version(),
            "summary": "Live visitor counts and real-time analytics, public JSON.",
            "description": DESCRIPTION,
        },
        "servers": [{"url": public_url, "description": "This Zenovay server"}],
        "tags": [
            {"name": "Read", "description": "Public read endpoints: no authentication."},
            {"name": "Ingest", "description": "Where the tracker sends events."},
        ],
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "parameters": PARAMETERS,
            "headers": HEADERS,
            "responses": RESPONSES,
        },
        "x-websockets": list(WEBSOCKETS),
    }


def document() -> Schema:
    """The OpenAPI document for this server's public URL (a fresh copy, safe to change)."""
    return copy.deepcopy(_build(settings.ZENOVAY_PUBLIC_URL))


@functools.lru_cache(maxsize=4)
def _serialized(public_url: str) -> bytes:
    return json.dumps(_build(public_url), indent=2, ensure_ascii=False).encode()


def document_json() -> bytes:
    """The document as UTF-8 JSON, serialized once per public URL."""
    return _serialized(settings.ZENOVAY_PUBLIC_URL)
