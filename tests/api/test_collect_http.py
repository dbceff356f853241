"""POST /e/collect over HTTP: every answer in the contract, status and exact JSON."""

from __future__ import annotations

import json

import pytest

from tests.factories import DESKTOP_UA, payload
from zenovay.infra import store
from zenovay.models import Event

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def post(async_client):
    async def post(body, content_type="text/plain", **headers):
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers = {"User-Agent": DESKTOP_UA, **headers}
        return await async_client.post(
            "/e/collect", raw, content_type=content_type, headers=headers
        )

    return post


async def test_a_beacon_with_text_plain_is_recorded(post, website):
    response = await post(payload(website), content_type="text/plain;charset=UTF-8")
    assert response.status_code == 202
    assert response.json() == {"ok": True}
    assert await Event.objects.acount() == 1


async def test_json_content_type_and_trailing_slash_work_too(async_client, website):
    response = await async_client.post(
        "/e/collect/",
        payload(website),
        content_type="application/json",
        headers={"User-Agent": DESKTOP_UA},
    )
    assert response.status_code == 202


async def test_a_bot_gets_202_ignored(post, website):
    response = await post(payload(website), **{"User-Agent": "Googlebot/2.1"})
    assert (response.status_code, response.json()) == (202, {"ok": True, "ignored": "bot"})
    assert await Event.objects.acount() == 0


async def test_do_not_track_gets_202_ignored(post, website):
    response = await post(payload(website), DNT="1")
    assert response.json() == {"ok": True, "ignored": "do_not_track"}


async def test_an_excluded_ip_gets_202_ignored(post, website):
    website.excluded_ips = "127.0.0.0/8"
    await website.asave()
    response = await post(payload(website))
    assert response.json() == {"ok": True, "ignored": "excluded_ip"}


def error(response, status, code):
    assert response.status_code == status
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert body["error"] == code
    assert isinstance(body["message"], str) and body["message"]
    assert set(body) == {"error", "message"}


@pytest.mark.parametrize(
    "raw",
    [b"", b"{", b"\xc3\x28", b'"just a string"', b'{"code": "ZV_AAAAAAAAAAA"}', b"[" * 3000],
)
async def test_malformed_bodies_get_400(post, raw):
    error(await post(raw), 400, "bad_request")


async def test_a_wrong_field_type_gets_400(post, website):
    error(await post(payload(website, url=12)), 400, "bad_request")
    error(await post(payload(website, type="event", name=["x"])), 400, "bad_request")


async def test_a_non_http_url_gets_400(post, website):
    error(await post(payload(website, url="javascript:alert(1)//shop.example")), 400, "bad_request")


async def test_a_foreign_host_gets_403(post, website):
    error(await post(payload(website, url="https://evil.example/")), 403, "forbidden")
    assert await Event.objects.acount() == 0


async def test_an_unknown_code_gets_404(post, website):
    error(await post(payload(website, code="ZV_AAAAAAAAAAA")), 404, "not_found")


async def test_a_malformed_code_gets_404(post, website):
    error(await post(payload(website, code="<script>")), 404, "not_found")


async def test_a_disabled_website_gets_404(post, website):
    website.enabled = False
    await website.asave()
    error(await post(payload(website)), 404, "not_found")


async def test_a_body_over_4_kib_gets_413(post, website):
    big = payload(website, url="https://shop.example/?q=" + "a" * 5000)
    error(await post(big), 413, "payload_too_large")
    assert await Event.objects.acount() == 0


async def test_a_huge_body_gets_413(post):
    error(await post(b"x" * 1_000_000), 413, "payload_too_large")


async def test_get_is_405(async_client):
    response = await async_client.get("/e/collect")
    error(response, 405, "method_not_allowed")
    assert response["Allow"] == "POST"


async def test_an_unknown_api_path_is_json_404(async_client):
    response = await async_client.get("/e/nothing/<script>")
    error(response, 404, "not_found")
    assert response["Access-Control-Allow-Origin"] == "*"


async def test_errors_carry_cors_headers(post):
    response = await post(b"nope", Origin="https://shop.example")
    assert response["Access-Control-Allow-Origin"] == "*"


async def test_the_tracker_script_is_javascript_with_a_long_cache(async_client):
    response = await async_client.get("/z.js")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/javascript")
    assert "max-age=86400" in response["Cache-Control"]
    again = await async_client.get("/z.js", headers={"If-None-Match": response["ETag"]})
    assert again.status_code == 304


async def test_healthz_reports_the_database(async_client, settings):
    settings.REDIS_URL = ""
    response = await async_client.get("/healthz")
    assert response.json() == {"status": "ok", "database": "ok", "redis": "disabled"}


async def test_healthz_says_redis_is_down_and_the_app_goes_without_it(async_client, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    store.reset()
    try:
        response = await async_client.get("/healthz")
        assert response.status_code == 503
        assert response.json() == {"status": "unavailable", "database": "ok", "redis": "down"}
        # The store's breaker, shared by every use of Redis, opened: the app skips Redis now.
        assert store.breaker.open
    finally:
        store.reset()


async def test_healthz_asks_no_redis_while_the_breaker_is_open(async_client, settings, monkeypatch):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    store.reset()
    try:
        store.breaker.trip(ConnectionError("down a moment ago"))
        monkeypatch.setattr(store.RedisStore, "_client", lambda self: pytest.fail("asked Redis"))
        response = await async_client.get("/healthz")
        assert response.json()["redis"] == "down"
    finally:
        store.reset()
