"""Thin HTTP views of the public API: read HTTP facts, call the core, answer JSON."""

from __future__ import annotations

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.defaults import page_not_found
from django.views.defaults import server_error as django_server_error

from api.decorators import add_cors_headers, allow_methods, cors, json_errors
from api.errors import is_api_path, json_error
from zenovay import clientinfo, health, ingest


def client_of(request: HttpRequest) -> ingest.Client:
    ip, trusted = clientinfo.client_ip(
        request.META.get("REMOTE_ADDR"), request.headers.get("X-Forwarded-For")
    )
    header = settings.ZENOVAY_COUNTRY_HEADER
    return ingest.Client(
        ip=ip,
        country=clientinfo.country_of(ip, request.headers.get(header) if header else None, trusted),
        user_agent=request.headers.get("User-Agent", "")[:1000],
        do_not_track=request.headers.get("DNT") == "1",
    )


@csrf_exempt
@cors
@json_errors
@allow_methods("POST")
async def collect(request: HttpRequest) -> HttpResponse:
    length = request.headers.get("Content-Length", "")
    if length.isdigit() and int(length) > ingest.MAX_BODY_BYTES:
        return json_error(413, f"The body is over {ingest.MAX_BODY_BYTES} bytes.")
    try:
        body = request.body
    except RequestDataTooBig:
        return json_error(413, f"The body is over {ingest.MAX_BODY_BYTES} bytes.")
    try:
        ignored = await sync_to_async(ingest.collect)(body=body, client=client_of(request))
    except ingest.IngestError as exc:
        return json_error(exc.status, exc.message)
    answer: dict[str, object] = {"ok": True}
    if ignored:
        answer["ignored"] = ignored
    return JsonResponse(answer, status=202)


async def healthz(request: HttpRequest) -> HttpResponse:
    report = await health.check()
    ok = all(state in ("ok", "disabled") for state in report.values())
    return JsonResponse({"status": "ok" if ok else "unavailable", **report}, status=200 if ok else 503)


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """JSON under /e/, Django's plain page elsewhere."""
    if is_api_path(request):
        return add_cors_headers(json_error(404, "There is nothing at this address."))
    return page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    if is_api_path(request):
        return add_cors_headers(json_error(503, "Something went wrong on our side; try again."))
    return django_server_error(request)
