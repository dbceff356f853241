"""OpenAPI 3.1 of the External API (`/api/v1/openapi.json`, readable at `/docs/api/v1`).

A document of its own beside the public one (`/e/openapi.json`): these endpoints need a
key and are not cached or CORS-enabled, so their rules differ from the public ones.
"""

from __future__ import annotations

import copy
import functools
import json
from typing import Any

from django.conf import settings

from api.openapi import api_version
from zenovay import query

Schema = dict[str, Any]

DESCRIPTION = """\
The authenticated API beside the public real-time endpoints: the figures of the websites a
key may read, for any range, broken down, filtered and compared, and exports.

### Authentication
Make a key in the dashboard (**API keys**, in the sidebar): it is shown once. Send it as
`Authorization: Bearer <key>`. A key reads the websites its owner sees in the dashboard
(owned, or shared with them as a member), nothing else; revoking it ends it at once.
Each key may make `ZENOVAY_API_KEY_PER_HOUR` requests an hour (600 by default), counted
across all server processes; every answer says how many are left
(`X-RateLimit-Limit`, `X-RateLimit-Remaining`), and past it `429` with `Retry-After`.

### Examples
```
curl -X POST "$ZENOVAY/api/v1/query" \\
  -H "Authorization: Bearer $ZENOVAY_KEY" -H "Content-Type: application/json" \\
  --data '{"site_id": "ws_abcdef123456", "metrics": ["visitors", "pageviews"],
           "date_range": "30d", "dimensions": ["time:day"], "compare": "previous_period"}'
```
```
import requests
answer = requests.post(
    f"{ZENOVAY}/api/v1/query",
    headers={"Authorization": f"Bearer {KEY}"},
    json={"site_id": SITE, "metrics": ["visitors"], "date_range": "7d",
          "dimensions": ["page"], "filters": [["is", "country", ["DE", "AT"]]]},
    timeout=30,
).json()
for row in answer["results"]:
    print(row["dimensions"][0], row["metrics"][0])
```

### Where answers come from
`meta.source` says it: `aggregates` (constant cost: sums of 15-minute rows, or one row per
distinct value) when nothing is filtered and the figures are kept exactly (totals and time
buckets of every count and rate; visitors per whole hour, day, week or month bucket, or
over a range of one local day, week or month; breakdowns by page, referrer, UTM source,
country, device, browser, OS or event name over one local day, week or month); `events`
(grouped queries over the range's raw events or visits, exact, as costly as the range's
traffic) otherwise: filters, entry and exit pages, UTM medium and campaign, properties,
distinct visitors over several days.
"""

ERROR = {
    "type": "object",
    "required": ["error", "message"],
    "properties": {
        "error": {"type": "string", "description": "A code: bad_request, unauthorized, ..."},
        "message": {"type": "string"},
        "field": {"type": "string", "description": "The query field at fault (400 only)."},
    },
}
NUMBER = {"type": ["integer", "number"]}
ROW = {
    "type": "object",
    "required": ["dimensions", "metrics"],
    "properties": {
        "dimensions": {"type": "array", "items": {"type": "string"}},
        "metrics": {"type": "array", "items": NUMBER},
        "comparison": {
            "type": "object",
            "properties": {
                "dimensions": {"type": ["array", "null"], "items": {"type": "string"}},
                "metrics": {"type": "array", "items": NUMBER},
                "change": {"type": "array", "items": {"type": ["number", "null"]}},
            },
        },
    },
}
DIMENSION = {
    "type": "string",
    "description": "time:hour, time:day, time:week, time:month, "
    + ", ".join(query.COLUMNS)
    + ", or event:props:<key>",
}
FILTER = {
    "type": "array",
    "prefixItems": [
        {"enum": list(query.OPERATORS)},
        DIMENSION,
        {"type": "array", "items": {"type": "string", "maxLength": 1024}, "minItems": 1},
    ],
    "minItems": 3,
    "maxItems": 3,
}
QUERY_REQUEST = {
    "type": "object",
    "required": ["site_id", "metrics"],
    "additionalProperties": False,
    "properties": {
        "site_id": {"type": "string", "description": "From /api/v1/sites."},
        "metrics": {
            "type": "array",
            "items": {"enum": list(query.METRICS)},
            "minItems": 1,
            "uniqueItems": True,
        },
        "date_range": {
            "description": "A named range in the website's zone (7d and 30d end today and include"
            " it; 6mo and 12mo start on the 1st), or [from, to] as dates (whole local days) or"
            " ISO 8601 date-times. Default: none, it is required.",
            "oneOf": [
                {"enum": list(query.RANGES)},
                {"type": "array", "items": {"type": "string"}, "minItems": 2, "maxItems": 2},
            ],
        },
        "dimensions": {"type": "array", "items": DIMENSION, "maxItems": 3},
        "filters": {"type": "array", "items": FILTER},
        "order_by": {
            "type": "array",
            "items": {
                "type": "array",
                "prefixItems": [{"type": "string"}, {"enum": ["asc", "desc"]}],
                "minItems": 2,
                "maxItems": 2,
            },
        },
        "limit": {"type": "integer", "minimum": 1, "maximum": query.MAX_LIMIT, "default": 100},
        "offset": {"type": "integer", "minimum": 0, "default": 0},
        "compare": {"enum": ["previous_period", "year_over_year", None]},
    },
}
QUERY_RESPONSE = {
    "type": "object",
    "required": ["results", "totals", "meta", "query"],
    "properties": {
        "results": {"type": "array", "items": ROW},
        "totals": {"type": "array", "items": NUMBER},
        "comparison_totals": {
            "type": "object",
            "properties": {
                "metrics": {"type": "array", "items": NUMBER},
                "change": {"type": "array", "items": {"type": ["number", "null"]}},
            },
        },
        "meta": {
            "type": "object",
            "required": ["source", "time_zone", "date_range", "rows"],
            "properties": {
                "source": {
                    "enum": ["aggregates", "days", "events"],
                    "description": "aggregates: kept figures; days: a filter's figures kept"
                    " per finished day, plus today's events; events: the range's raw events.",
                },
                "time_zone": {"type": "string"},
                "date_range": {"type": "array", "items": {"type": "string"}},
                "comparison_range": {"type": "array", "items": {"type": "string"}},
                "rows": {"type": "integer", "description": "Rows before limit and offset."},
            },
        },
        "query": {"type": "object", "description": "The query as sent."},
    },
}
SITES = {
    "type": "object",
    "required": ["sites"],
    "properties": {
        "sites": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["site_id", "domain", "name", "timezone", "enabled", "role"],
                "properties": {
                    "site_id": {"type": "string"},
                    "domain": {"type": "string"},
                    "name": {"type": "string"},
                    "timezone": {"type": "string"},
                    "enabled": {"type": "boolean"},
                    "role": {"enum": ["owner", "admin", "viewer"]},
                },
            },
        }
    },
}
LIMIT_HEADERS = {
    "X-RateLimit-Limit": {"schema": {"type": "integer"}, "description": "Requests an hour."},
    "X-RateLimit-Remaining": {"schema": {"type": "integer"}, "description": "Left this hour."},
}


def _json(schema: Schema, description: str, example: object | None = None) -> Schema:
    media: Schema = {"schema": schema}
    if example is not None:
        media["example"] = example
    return {
        "description": description,
        "headers": LIMIT_HEADERS,
        "content": {"application/json": media},
    }


def _error(description: str, code: str, message: str) -> Schema:
    return _json(ERROR, description, {"error": code, "message": message})


ERRORS = {
    "401": _error(
        "No key, or not a key of this server.", "unauthorized", "Send Authorization: Bearer <key>."
    ),
    "404": _error(
        "No website with this id that the key may read.",
        "not_found",
        "No website with this id that this key may read.",
    ),
    "405": _error("Another method.", "method_not_allowed", "Use POST here."),
    "429": {
        **_error(
            "Over the key's requests for this hour.",
            "rate_limited",
            "Over 600 requests an hour; retry in 12s.",
        ),
        "headers": {**LIMIT_HEADERS, "Retry-After": {"schema": {"type": "integer"}}},
    },
}
EXAMPLE_QUERY = {
    "site_id": "ws_abcdef123456",
    "metrics": ["visitors", "pageviews"],
    "date_range": "7d",
    "dimensions": ["time:day"],
}
EXAMPLE_ANSWER = {
    "results": [{"dimensions": ["2026-11-29"], "metrics": [120, 310]}],
    "totals": [480, 1204],
    "meta": {
        "source": "aggregates",
        "time_zone": "Europe/Berlin",
        "date_range": ["2026-11-28T23:00:00Z", "2026-12-05T10:20:00Z"],
        "rows": 7,
    },
    "query": EXAMPLE_QUERY,
}
SECURITY: list[dict[str, list[str]]] = [{"bearer": []}]


@functools.lru_cache(maxsize=4)
def _build(public_url: str) -> Schema:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Zenovay External API",
            "version": api_version(),
            "summary": "Your websites' figures for any range, with a key.",
            "description": DESCRIPTION,
        },
        "servers": [{"url": public_url, "description": "This Zenovay server"}],
        "security": SECURITY,
        "paths": {
            "/api/v1/sites": {
                "get": {
                    "operationId": "sites",
                    "summary": "The websites this key may read",
                    "security": SECURITY,
                    "responses": {
                        "200": _json(
                            SITES,
                            "The key's websites.",
                            {
                                "sites": [
                                    {
                                        "site_id": "ws_abcdef123456",
                                        "domain": "shop.example",
                                        "name": "Shop",
                                        "timezone": "Europe/Berlin",
                                        "enabled": True,
                                        "role": "owner",
                                    }
                                ]
                            },
                        ),
                        **{k: v for k, v in ERRORS.items() if k != "404"},
                    },
                }
            },
            "/api/v1/query": {
                "post": {
                    "operationId": "query",
                    "summary": "Figures of one website: any metrics, range, dimensions, filters",
                    "security": SECURITY,
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {"schema": QUERY_REQUEST, "example": EXAMPLE_QUERY}
                        },
                    },
                    "responses": {
                        "200": _json(
                            QUERY_RESPONSE, "Rows, totals and where they came from.", EXAMPLE_ANSWER
                        ),
                        "400": _error(
                            "An invalid query; `field` names what is wrong.",
                            "bad_request",
                            "'sales' is not one of visitors, ...",
                        ),
                        "413": _error(
                            "A body over 64 KiB.",
                            "payload_too_large",
                            "A query is at most 64 KiB of JSON.",
                        ),
                        **ERRORS,
                    },
                }
            },
            "/api/v1/export": {
                "get": {
                    "operationId": "export",
                    "summary": "A zip of CSV files: visitors by day, pages, sources, places",
                    "security": SECURITY,
                    "parameters": [
                        {
                            "name": "site_id",
                            "in": "query",
                            "required": True,
                            "schema": {"type": "string"},
                            "example": "ws_abcdef123456",
                        },
                        {
                            "name": "date_range",
                            "in": "query",
                            "required": False,
                            "schema": {"type": "string", "default": "30d"},
                            "example": "2026-11-01,2026-11-30",
                            "description": "A named range, or from,to dates.",
                        },
                    ],
                    "responses": {
                        "200": {
                            "description": "The zip.",
                            "headers": LIMIT_HEADERS,
                            "content": {
                                "application/zip": {
                                    "schema": {
                                        "type": "string",
                                        "contentMediaType": "application/zip",
                                    }
                                }
                            },
                        },
                        "400": _error(
                            "A bad date_range.", "bad_request", "Use one of realtime, day, ..."
                        ),
                        **ERRORS,
                    },
                }
            },
        },
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A key made in the dashboard.",
                }
            },
            "responses": {
                "BadRequest": _error(
                    "An invalid query or range; `field` names what is wrong.",
                    "bad_request",
                    "'sales' is not one of visitors, visits, ...",
                ),
                "Unauthorized": ERRORS["401"],
                "NotFound": ERRORS["404"],
                "MethodNotAllowed": ERRORS["405"],
                "PayloadTooLarge": _error(
                    "A body over 64 KiB.", "payload_too_large", "At most 64 KiB of JSON."
                ),
                "RateLimited": ERRORS["429"],
            },
            "schemas": {
                "Error": ERROR,
                "QueryRequest": QUERY_REQUEST,
                "QueryResponse": QUERY_RESPONSE,
                "Sites": SITES,
            },
        },
    }


def document() -> Schema:
    return copy.deepcopy(_build(settings.ZENOVAY_PUBLIC_URL))


def document_json() -> bytes:
    return json.dumps(_build(settings.ZENOVAY_PUBLIC_URL), indent=2).encode()
