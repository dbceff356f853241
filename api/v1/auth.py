"""Who calls the External API: `Authorization: Bearer <key>`, and how often each key may.

Every /api/v1/ view is a sync function view wrapped in `key_required`. It answers 401 for a
missing, malformed, unknown or revoked key (or one whose user is inactive), 429 past the key's
hourly budget, and otherwise runs the view with `request.api_key` and `request.api_user` set.
No session is involved: views read `request.api_user`, never `request.user`, and CSRF does not
apply (a cross-site page cannot attach the header).

The budget is counted in the shared store (Redis when `REDIS_URL` is set), so it is one
budget across server processes; the store's key is the key's database id, never its secret.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from asgiref.sync import async_to_sync
from django.conf import settings
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from api.errors import json_error
from zenovay import apikeys
from zenovay.infra import store
from zenovay.models import ApiKey

SyncView = Callable[..., HttpResponse]


class KeyRequest(HttpRequest):
    """A request `key_required` let through: who called, by which key."""

    api_key: ApiKey
    api_user: User


WINDOW_SECONDS = 3600


def key_required(view: SyncView) -> SyncView:
    """401 without a valid key, 429 past its hourly limit; the limit headers on every
    answer the key's budget was counted for."""

    @csrf_exempt
    @functools.wraps(view)
    def wrapper(request: KeyRequest, *args: object, **kwargs: object) -> HttpResponse:
        key = apikeys.authenticate(_bearer(request))
        if key is None:
            return unauthorized()
        limit = settings.ZENOVAY_API_KEY_PER_HOUR
        verdict = async_to_sync(store.get_store().hit)(f"apikey:{key.pk}", limit, WINDOW_SECONDS)
        if verdict.allowed:
            request.api_key = key
            request.api_user = key.user
            apikeys.touch(key)
            response = view(request, *args, **kwargs)
        else:
            response = json_error(
                429,
                f"Over {limit} requests an hour with this key; retry in {verdict.retry_after}s.",
            )
            response["Retry-After"] = str(verdict.retry_after)
        response["X-RateLimit-Limit"] = str(limit)
        response["X-RateLimit-Remaining"] = str(max(0, limit - verdict.count))
        return response

    return wrapper


def _bearer(request: HttpRequest) -> str:
    """The credentials of `Authorization: Bearer <key>` ("" when absent or another scheme)."""
    scheme, _, credentials = request.headers.get("Authorization", "").strip().partition(" ")
    return credentials.strip() if scheme.lower() == "bearer" else ""


def unauthorized() -> HttpResponse:
    response = json_error(
        401, "Send a valid API key as 'Authorization: Bearer <key>' (make one in the dashboard)."
    )
    response["WWW-Authenticate"] = 'Bearer realm="zenovay"'
    return response
