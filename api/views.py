"""Thin HTTP views of the public API: read HTTP facts, call the core, answer JSON."""

from __future__ import annotations

from collections.abc import Mapping

from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.defaults import bad_request as django_bad_request
from django.views.defaults import page_not_found
from django.views.defaults import server_error as django_server_error

from api import collect as collect_endpoint
from api.decorators import (
    add_cors_headers,
    allow_methods,
    cached,
    cors,
    json_errors,
    rate_limited,
    valid_id,
)
from api.errors import is_api_path, json_error
from zenovay import endpoints, metrics, payload, sites
from zenovay.infra import db, health


@csrf_exempt
async def collect(request: HttpRequest) -> HttpResponse:
    """POST /e/collect through Django (the test client; real servers answer it in
    `api.collect.CollectFastPath`): the same `answer()`, framed as a Django response."""
    length = request.headers.get("Content-Length", "")
    if length.isdigit() and int(length) > payload.MAX_BODY_BYTES:
        body = b"x" * (payload.MAX_BODY_BYTES + 1)  # answered 413 without reading it
    else:
        try:
            body = request.body
        except RequestDataTooBig:
            body = b"x" * (payload.MAX_BODY_BYTES + 1)
    reply = await collect_endpoint.answer(
        method=request.method or "",
        headers={name.lower(): value for name, value in request.headers.items()},
        body=body,
        peer=request.META.get("REMOTE_ADDR"),
    )
    response = HttpResponse(reply.body, status=reply.status, content_type="application/json")
    for name, value in reply.headers.items():
        response[name] = value
    return response


async def healthz(request: HttpRequest) -> HttpResponse:
    report = await health.check()
    ok = all(state in ("ok", "disabled") for state in report.values())
    return JsonResponse(
        {"status": "ok" if ok else "unavailable", **report}, status=200 if ok else 503
    )


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    """What Django refuses before a view runs (e.g. over DATA_UPLOAD_MAX_NUMBER_FIELDS
    query fields, a disallowed Host): JSON under /e/, Django's plain page elsewhere."""
    if is_api_path(request):
        return add_cors_headers(json_error(400, "The request is malformed."))
    return django_bad_request(request, exception)


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """JSON under /e/ and /api/; elsewhere templates/404.html, in the dashboard's look."""
    if is_api_path(request):
        return add_cors_headers(json_error(404, "There is nothing at this address."))
    return page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    if is_api_path(request):
        return add_cors_headers(json_error(503, "Something went wrong on our side; try again."))
    return django_server_error(request)


# --- The four public read endpoints.

NOT_FOUND = "No enabled website has this id."


def _live(code: str) -> metrics.LiveSnapshot | None:
    website = sites.by_code(code)
    return metrics.live(website) if website else None


def _realtime(website_id: str) -> metrics.RealtimeSnapshot | None:
    website = sites.by_id(website_id)
    return metrics.realtime(website) if website else None


def _stats(code: str, period: metrics.Period) -> metrics.StatsSnapshot | None:
    website = sites.by_code(code)
    return metrics.stats(website, period) if website else None


def _status(code: str) -> metrics.StatusSnapshot | None:
    website = sites.by_code(code)
    return metrics.status(website) if website else None


def _answer(snapshot: Mapping[str, object] | None) -> HttpResponse:
    if snapshot is None:
        return json_error(404, NOT_FOUND)
    return JsonResponse(snapshot)


def read_endpoint(name: str, variant=None):
    """The decorator stack every public read endpoint shares, outermost first; its TTL,
    limit and kind of id come from the one table of public endpoints."""
    contract = endpoints.endpoint(name)

    def decorate(view):
        for decorator in reversed(
            [
                # Read-only and cookie-free: without this, Django's CSRF check answers
                # POST/PUT/PATCH/DELETE with its HTML 403 page instead of the JSON 405.
                csrf_exempt,
                cors,
                json_errors,
                allow_methods("GET", "HEAD"),
                rate_limited(name, contract.per_minute),
                valid_id(contract.is_valid_id, NOT_FOUND),
                cached(name, contract.ttl, variant),
            ]
        ):
            view = decorator(view)
        return view

    return decorate


def _period(request: HttpRequest) -> str:
    try:
        return request.GET.get("period", "today")
    except TooManyFieldsSent:  # over DATA_UPLOAD_MAX_NUMBER_FIELDS: a 400, not a logged traceback
        return ""


@read_endpoint("live")
async def live(request: HttpRequest, ident: str) -> HttpResponse:
    return _answer(await db.run(_live, ident))


@read_endpoint("realtime")
async def realtime(request: HttpRequest, ident: str) -> HttpResponse:
    return _answer(await db.run(_realtime, ident))


@read_endpoint("stats", variant=_period)
async def stats(request: HttpRequest, ident: str) -> HttpResponse:
    period = _period(request)
    if not metrics.is_period(period):
        return json_error(400, "'period' must be today, week or month.")
    return _answer(await db.run(_stats, ident, period))


@read_endpoint("status")
async def status(request: HttpRequest, ident: str) -> HttpResponse:
    return _answer(await db.run(_status, ident))
