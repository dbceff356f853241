"""The External API: a key's websites, queries, and exports (`/api/v1/`).

Every request carries `Authorization: Bearer <key>` (`api.v1.auth.key_required`); a key
reads what its owner may see in the dashboard (`zenovay.access`), nothing else, and any
other website id is a 404 as if it did not exist.
"""

from __future__ import annotations

import json

from django.http import HttpRequest, HttpResponse, JsonResponse

from api.errors import json_error
from api.v1.auth import KeyRequest, key_required
from zenovay import access, exports, query
from zenovay.models import Website

MAX_QUERY_BYTES = 64 * 1024


def _method(request: HttpRequest, allowed: str) -> HttpResponse | None:
    if request.method == allowed:
        return None
    response = json_error(405, f"Use {allowed} here.")
    response["Allow"] = allowed
    return response


def _website(request: KeyRequest, site_id: object) -> Website | None:
    if not isinstance(site_id, str):
        return None
    return access.visible_website(request.api_user, site_id)


def _invalid(error: query.QueryError) -> JsonResponse:
    """400, naming the field at fault (the answer to any invalid query)."""
    body = {"error": "bad_request", "message": error.message, "field": error.field}
    return JsonResponse(body, status=400)


@key_required
def sites(request: KeyRequest) -> HttpResponse:
    """GET /api/v1/sites: the websites the key may read."""
    if refused := _method(request, "GET"):
        return refused
    user = request.api_user
    found = [
        {
            "site_id": website.website_id,
            "domain": website.domain,
            "name": website.name,
            "timezone": website.timezone,
            "enabled": website.enabled,
            "role": access.role(user, website),
        }
        for website in access.visible_websites(user).order_by("name", "domain")
    ]
    return JsonResponse({"sites": found})


@key_required
def query_view(request: KeyRequest) -> HttpResponse:
    """POST /api/v1/query: JSON in (see `zenovay.query`), JSON out."""
    if refused := _method(request, "POST"):
        return refused
    length = request.headers.get("Content-Length", "")
    if length.isdigit() and int(length) > MAX_QUERY_BYTES:
        return json_error(413, f"A query is at most {MAX_QUERY_BYTES // 1024} KiB of JSON.")
    try:
        body = json.loads(request.body)
    except (ValueError, UnicodeDecodeError):
        return _invalid(query.QueryError("body", "The body is not JSON."))
    if not isinstance(body, dict):
        return _invalid(query.QueryError("body", "The body must be a JSON object."))
    website = _website(request, body.get("site_id"))
    if website is None:
        if "site_id" not in body:
            return _invalid(
                query.QueryError("site_id", "Give the website's id (see /api/v1/sites).")
            )
        return json_error(404, "No website with this id that this key may read.")
    try:
        asked = query.parse(body, website)
    except query.QueryError as error:
        return _invalid(error)
    answer = query.run(asked)
    answer["query"] = {key: body[key] for key in body}
    return JsonResponse(answer)


@key_required
def export(request: KeyRequest) -> HttpResponse:
    """GET /api/v1/export?site_id=&date_range=30d (or from,to): a zip of CSV files."""
    if refused := _method(request, "GET"):
        return refused
    website = _website(request, request.GET.get("site_id"))
    if website is None:
        if "site_id" not in request.GET:
            return _invalid(
                query.QueryError("site_id", "Give the website's id (see /api/v1/sites).")
            )
        return json_error(404, "No website with this id that this key may read.")
    try:
        return exports.response(website, request.GET.get("date_range", "30d"))
    except query.QueryError as error:
        return _invalid(error)
