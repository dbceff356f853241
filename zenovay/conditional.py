"""Conditional GETs: does a request's `If-None-Match` name the body it would get?

One reading of the header for every answer with an ETag (the public reads, the OpenAPI
document, the tracker and widget scripts): Django's `parse_etags`, and the weak
comparison RFC 9110 asks of If-None-Match, so `W/"x"` matches `"x"`."""

from __future__ import annotations

from django.http import HttpRequest
from django.utils.http import parse_etags


def etag_matches(request: HttpRequest, etag: str) -> bool:
    """True when the client already holds the body tagged `etag` (answer it 304)."""
    held = parse_etags(request.headers.get("If-None-Match", ""))
    return etag in {tag.removeprefix("W/") for tag in held}
