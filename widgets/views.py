"""Embeddable scripts and widget pages."""

from __future__ import annotations

import functools
import hashlib

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseNotModified
from django.views.decorators.http import require_safe

SCRIPT_MAX_AGE = 86400  # a day: long enough for caches, short enough to ship fixes


@functools.cache
def _script(name: str) -> tuple[bytes, str]:
    body = (settings.BASE_DIR / "static" / name).read_bytes()
    return body, '"' + hashlib.sha256(body).hexdigest()[:16] + '"'


def serve_script(request: HttpRequest, name: str) -> HttpResponse:
    body, etag = _script(name)
    if request.headers.get("If-None-Match") == etag:
        response: HttpResponse = HttpResponseNotModified()
    else:
        response = HttpResponse(body, content_type="text/javascript; charset=utf-8")
    response["ETag"] = etag
    response["Cache-Control"] = f"public, max-age={SCRIPT_MAX_AGE}"
    response["Access-Control-Allow-Origin"] = "*"
    return response


@require_safe
def tracker_script(request: HttpRequest) -> HttpResponse:
    return serve_script(request, "z.js")
