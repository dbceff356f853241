"""Contract JSON errors: {"error": "<code>", "message": "<human sentence>"}."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse

CODES = {
    400: "bad_request",
    401: "unauthorized",  # the External API's keys (api.v1.auth); the public API has none
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    429: "rate_limited",
    503: "unavailable",
}


def json_error(status: int, message: str) -> JsonResponse:
    return JsonResponse({"error": CODES[status], "message": message}, status=status)


def is_api_path(request: HttpRequest) -> bool:
    """The public API (/e/) and the External API (/api/): errors there are JSON."""
    return request.path.startswith(("/e/", "/api/"))
