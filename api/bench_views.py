"""Baseline views for `bench/ingest.py`, routed only when ZENOVAY_BENCH_VIEWS is on.

`empty` is the floor: Django's middleware and routing, no work. `accepted_json` goes
through the same decorators as `collect` and reads the body but stores nothing, so
what `collect` costs beyond it is the ingest core itself.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from api.decorators import allow_methods, cors, json_errors


async def empty(request: HttpRequest) -> HttpResponse:
    return HttpResponse(b"")


@csrf_exempt
@cors
@json_errors
@allow_methods("POST")
async def accepted_json(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"ok": True, "bytes": len(request.body)}, status=202)
