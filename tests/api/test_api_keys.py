"""Keys of the External API: made in the dashboard and shown once, stored as a hash, revoked
at once, last use noted at most once a minute, and a budget per key counted in the shared
store (Redis in the PostgreSQL + Redis suite).

`key_required` is exercised through a test-only view routed by this module's `urlpatterns`
(`@pytest.mark.urls`), so the product gains no endpoint for it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import time

import pytest
from asgiref.sync import async_to_sync
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.test.utils import CaptureQueriesContext
from django.urls import path
from django.utils import timezone

from api.v1.auth import key_required
from tests.conftest import OWNER_PASSWORD
from zenovay import apikeys
from zenovay import urls as product_urls
from zenovay.infra import store
from zenovay.models import ApiKey

pytestmark = pytest.mark.django_db

PAGE = "/dashboard/account/api-keys/"
ENDPOINT = "/api/v1/whoami"
SECRET = re.compile(r"zv_[A-Za-z0-9_-]{40}")
UNAUTHORIZED = {
    "error": "unauthorized",
    "message": "Send a valid API key as 'Authorization: Bearer <key>' (make one in the dashboard).",
}


@key_required
def whoami(request: HttpRequest) -> HttpResponse:
    """What a view behind `key_required` is handed."""
    return JsonResponse({"user": request.api_user.get_username(), "key": request.api_key.name})


# The product's routes, and this test-only endpoint.
urlpatterns = [path("api/v1/whoami", whoami), *product_urls.urlpatterns]
with_endpoint = pytest.mark.urls(__name__)


@pytest.fixture(autouse=True)
def _fresh_budgets():
    """Key ids restart with each test database: forget the counts of earlier runs' keys."""
    _forget_key_budgets()
    yield
    _forget_key_budgets()


def _forget_key_budgets() -> None:
    backend = store.get_store()
    if isinstance(backend, store.RedisStore):
        import redis

        client = redis.Redis.from_url(backend.url)
        keys = list(client.scan_iter(backend.prefix + "rl:apikey:*"))
        if keys:
            client.delete(*keys)
        client.close()
    store.reset()


@pytest.fixture
def key_and_secret(owner) -> tuple[ApiKey, str]:
    return apikeys.new_key(owner, "Weekly report")


def call(client, secret: str | None = None, header: str | None = None):
    if header is None and secret is not None:
        header = f"Bearer {secret}"
    extra = {} if header is None else {"HTTP_AUTHORIZATION": header}
    return client.get(ENDPOINT, **extra)


def signed_in(client, username: str = "olivia", password: str = OWNER_PASSWORD):
    assert client.login(username=username, password=password)
    return client


# --- Making keys: a hash stored, the secret shown once


def test_only_the_secrets_hash_and_prefix_are_stored(owner, key_and_secret):
    key, secret = key_and_secret
    assert SECRET.fullmatch(secret)
    stored = ApiKey.objects.filter(pk=key.pk).values().get()
    assert stored["key_hash"] == hashlib.sha256(secret.encode()).hexdigest()
    assert stored["prefix"] == secret[3:11]
    assert not [value for value in stored.values() if isinstance(value, str) and secret in value]


def test_two_keys_never_share_a_secret(owner):
    secrets_made = {apikeys.new_key(owner, f"key {n}")[1] for n in range(20)}
    assert len(secrets_made) == 20


def test_a_new_key_is_shown_once_in_the_dashboard(client, owner):
    made = signed_in(client).post(PAGE, {"key-name": "Weekly report"})
    assert made.status_code == 200
    assert "no-store" in made["Cache-Control"]
    secrets_shown = SECRET.findall(made.content.decode())
    assert len(secrets_shown) == 1
    secret = secrets_shown[0]
    assert f'<pre id="zv-new-key">{secret}</pre>' in made.content.decode()
    assert apikeys.authenticate(secret).name == "Weekly report"

    listed = client.get(PAGE).content.decode()
    assert secret not in listed
    assert f"zv_{secret[3:11]}…" in listed
    assert "never" in listed  # not used yet


def test_a_key_needs_a_name(client, owner):
    refused = signed_in(client).post(PAGE, {"key-name": "  "})
    assert refused.status_code == 400
    assert not ApiKey.objects.exists()
    assert not SECRET.search(refused.content.decode())


def test_the_page_lists_only_my_keys(client, owner, teammate):
    apikeys.new_key(owner, "Mine")
    apikeys.new_key(teammate, "Toms")
    page = signed_in(client).get(PAGE).content.decode()
    assert "Mine" in page
    assert "Toms" not in page


def test_the_page_needs_a_signed_in_user(client):
    response = client.get(PAGE)
    assert response.status_code == 302
    assert response["Location"] == f"/login/?next={PAGE}"


def test_the_sidebar_links_the_page(client, owner):
    assert f'<a href="{PAGE}">API keys</a>' in signed_in(client).get("/dashboard/").content.decode()


# --- key_required: who may call


@with_endpoint
def test_a_valid_key_runs_the_view_as_its_user(client, key_and_secret):
    response = call(client, key_and_secret[1])
    assert response.status_code == 200
    assert response.json() == {"user": "olivia", "key": "Weekly report"}
    assert response["X-RateLimit-Limit"] == "600"
    assert response["X-RateLimit-Remaining"] == "599"


@with_endpoint
@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        "Basic b2xpdmlhOnB3",
        "Token zv_" + "a" * 40,
        "Bearer zv_" + "a" * 40,  # the right shape, no such key
        "Bearer zv_short",
        "Bearer " + "x" * 10_000,
    ],
)
def test_no_key_a_malformed_header_or_an_unknown_key_is_401(client, key_and_secret, header):
    response = call(client, header=header)
    assert response.status_code == 401
    assert response.json() == UNAUTHORIZED
    assert response["WWW-Authenticate"] == 'Bearer realm="zenovay"'
    assert "X-RateLimit-Limit" not in response


@with_endpoint
def test_the_scheme_is_case_insensitive(client, key_and_secret):
    assert call(client, header=f"bearer {key_and_secret[1]}").status_code == 200


@with_endpoint
def test_a_revoked_key_is_401_at_once(client, owner, key_and_secret):
    key, secret = key_and_secret
    assert call(client, secret).status_code == 200
    revoked = signed_in(client).post(f"{PAGE}{key.pk}/revoke/")
    assert revoked.status_code == 302
    assert revoked["Location"] == PAGE
    client.logout()
    assert call(client, secret).status_code == 401
    assert not ApiKey.objects.filter(pk=key.pk).exists()


@with_endpoint
def test_an_inactive_users_key_is_401(client, owner, key_and_secret):
    owner.is_active = False
    owner.save(update_fields=["is_active"])
    assert call(client, key_and_secret[1]).status_code == 401
    assert apikeys.authenticate(key_and_secret[1]) is None


@with_endpoint
def test_a_session_is_not_a_key(client, owner):
    assert signed_in(client).get(ENDPOINT).status_code == 401


@with_endpoint
def test_a_post_needs_no_csrf_token(key_and_secret):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    response = strict.post(ENDPOINT, HTTP_AUTHORIZATION=f"Bearer {key_and_secret[1]}")
    assert response.status_code == 200


def test_another_user_cannot_revoke_my_key(client, owner, teammate, key_and_secret):
    key, _ = key_and_secret
    response = signed_in(client, "tom", "pw-tom-123").post(f"{PAGE}{key.pk}/revoke/")
    assert response.status_code == 404
    assert ApiKey.objects.filter(pk=key.pk).exists()


def test_revoking_is_a_post(client, owner, key_and_secret):
    key, _ = key_and_secret
    assert signed_in(client).get(f"{PAGE}{key.pk}/revoke/").status_code == 405
    assert ApiKey.objects.filter(pk=key.pk).exists()


# --- Last use: noted, but not on every request


@with_endpoint
def test_last_used_is_noted_on_use(client, key_and_secret):
    key, secret = key_and_secret
    assert key.last_used is None
    before = timezone.now()
    call(client, secret)
    key.refresh_from_db()
    assert key.last_used is not None
    assert before <= key.last_used <= timezone.now()


@with_endpoint
def test_last_used_is_not_written_again_within_a_minute(client, key_and_secret):
    key, secret = key_and_secret
    call(client, secret)
    key.refresh_from_db()
    first = key.last_used
    with CaptureQueriesContext(connection) as queries:
        call(client, secret)
    key.refresh_from_db()
    assert key.last_used == first
    assert not [q for q in queries.captured_queries if q["sql"].startswith("UPDATE")]


@with_endpoint
def test_last_used_is_written_again_after_a_minute(client, key_and_secret):
    key, secret = key_and_secret
    old = timezone.now() - dt.timedelta(seconds=61)
    ApiKey.objects.filter(pk=key.pk).update(last_used=old)
    call(client, secret)
    key.refresh_from_db()
    assert key.last_used > old + dt.timedelta(seconds=60)


def test_touch_skips_a_key_another_process_just_touched(key_and_secret):
    """The UPDATE is conditional: a copy loaded before another process's write does not
    write again."""
    key, _ = key_and_secret
    just_now = timezone.now() - dt.timedelta(seconds=5)
    ApiKey.objects.filter(pk=key.pk).update(last_used=just_now)
    apikeys.touch(key)  # this copy still has last_used=None
    key.refresh_from_db()
    assert key.last_used == just_now


# --- The budget per key


@with_endpoint
def test_past_the_hourly_limit_it_is_429_with_retry_after(client, settings, key_and_secret):
    settings.ZENOVAY_API_KEY_PER_HOUR = 3
    remaining = []
    for _ in range(3):
        response = call(client, key_and_secret[1])
        assert response.status_code == 200
        assert response["X-RateLimit-Limit"] == "3"
        remaining.append(response["X-RateLimit-Remaining"])
    assert remaining == ["2", "1", "0"]

    refused = call(client, key_and_secret[1])
    assert refused.status_code == 429
    assert refused["X-RateLimit-Limit"] == "3"
    assert refused["X-RateLimit-Remaining"] == "0"
    assert 3590 <= int(refused["Retry-After"]) <= 3600
    assert refused.json() == {
        "error": "rate_limited",
        "message": (f"Over 3 requests an hour with this key; retry in {refused['Retry-After']}s."),
    }


@with_endpoint
def test_each_key_has_its_own_budget(client, settings, owner, key_and_secret):
    settings.ZENOVAY_API_KEY_PER_HOUR = 1
    _, other = apikeys.new_key(owner, "Other")
    assert call(client, key_and_secret[1]).status_code == 200
    assert call(client, key_and_secret[1]).status_code == 429
    assert call(client, other).status_code == 200


@with_endpoint
def test_a_refused_request_runs_no_view_and_notes_no_use(client, settings, key_and_secret):
    settings.ZENOVAY_API_KEY_PER_HOUR = 1
    key, secret = key_and_secret
    call(client, secret)
    ApiKey.objects.filter(pk=key.pk).update(last_used=None)
    assert call(client, secret).status_code == 429
    key.refresh_from_db()
    assert key.last_used is None


@with_endpoint
def test_the_budget_is_shared_through_the_store(client, settings, key_and_secret):
    """What another process counted (through its own store object: another Redis client in
    the Redis suite) is spent for this one too."""
    settings.ZENOVAY_API_KEY_PER_HOUR = 3
    key, secret = key_and_secret
    backend = store.get_store()
    elsewhere = store.RedisStore(backend.url) if isinstance(backend, store.RedisStore) else backend
    for _ in range(2):
        async_to_sync(elsewhere.hit)(f"apikey:{key.pk}", 3, 3600)
    last = call(client, secret)
    assert (last.status_code, last["X-RateLimit-Remaining"]) == (200, "0")
    assert call(client, secret).status_code == 429


@with_endpoint
def test_the_store_counts_by_key_id_never_by_secret(client, key_and_secret):
    key, secret = key_and_secret
    call(client, secret)
    backend = store.get_store()
    if isinstance(backend, store.MemoryStore):
        assert backend.usage()["log_keys"] == [f"apikey:{key.pk}"]
        return
    import redis

    with redis.Redis.from_url(backend.url) as shared:
        assert shared.zcard(f"{backend.prefix}rl:apikey:{key.pk}") == 1
        assert not list(shared.scan_iter(f"*{secret[3:]}*"))
        assert not list(shared.scan_iter(f"*{key.key_hash}*"))


async def test_an_hourly_budget_outlives_the_minute_sweep():
    """The in-process store sweeps idle logs by their own window, not the minute of the
    public API's limits: an hour's count is not forgotten after a quiet minute."""
    backend = store.MemoryStore()
    for _ in range(3):
        await backend.hit("apikey:1", 3, 3600)
    await backend.hit("minute:1", 3, 60)
    backend.sweep(now=time.monotonic() + 61)
    assert backend.usage()["log_keys"] == ["apikey:1"]
    assert (await backend.hit("apikey:1", 3, 3600)).allowed is False
    backend.sweep(now=time.monotonic() + 3601)
    assert backend.usage()["logs"] == 0


async def test_a_limit_reports_its_count():
    backend = store.MemoryStore()
    counts = [(await backend.hit("k", 2, 60)).count for _ in range(3)]
    assert counts == [1, 2, 3]


# --- JSON errors under /api/


def test_an_unknown_api_path_is_a_json_404(client):
    response = client.get("/api/v1/no-such-thing")
    assert response.status_code == 404
    assert response.json() == {"error": "not_found", "message": "There is nothing at this address."}


# --- The admin: listed and revoked, the hash never shown


def test_the_admin_lists_an_owners_own_keys_without_their_hash(client, owner, teammate):
    mine, _ = apikeys.new_key(owner, "Mine")
    apikeys.new_key(teammate, "Toms")
    listing = signed_in(client).get("/admin/zenovay/apikey/")
    assert listing.status_code == 200
    page = listing.content.decode()
    assert f"zv_{mine.prefix}…" in page
    assert "Toms" not in page
    detail = client.get(f"/admin/zenovay/apikey/{mine.pk}/change/").content.decode()
    assert "Mine" in detail
    assert mine.key_hash not in detail
    assert "key_hash" not in detail


def test_the_admin_makes_no_keys_and_changes_none(client, owner):
    key, _ = apikeys.new_key(owner, "Mine")
    signed_in(client)
    assert client.get("/admin/zenovay/apikey/add/").status_code == 403
    client.post(f"/admin/zenovay/apikey/{key.pk}/change/", {"name": "Renamed"})
    key.refresh_from_db()
    assert key.name == "Mine"


def test_the_admin_revokes_an_owners_key(client, owner):
    key, _ = apikeys.new_key(owner, "Mine")
    response = signed_in(client).post(f"/admin/zenovay/apikey/{key.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not ApiKey.objects.filter(pk=key.pk).exists()


def test_the_admin_hides_another_owners_key(client, owner, teammate):
    theirs, _ = apikeys.new_key(teammate, "Toms")
    signed_in(client)
    assert client.post(
        f"/admin/zenovay/apikey/{theirs.pk}/delete/", {"post": "yes"}
    ).status_code in (
        302,
        404,
    )
    assert ApiKey.objects.filter(pk=theirs.pk).exists()
