"""The four public read endpoints over HTTP: bodies, headers, caching, limits, errors."""

from __future__ import annotations

import ipaddress
import time

import pytest
from asgiref.sync import sync_to_async

from tests.factories import avisit
from zenovay.infra import store
from zenovay.models import Event, Website

pytestmark = pytest.mark.django_db(transaction=True)

CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, OPTIONS",
    "Access-Control-Allow-Headers": "Content-Type, If-None-Match",
    "Access-Control-Expose-Headers": "Retry-After, ETag, Age",
}


@pytest.fixture(autouse=True)
def _fresh_store():
    store.reset()
    yield
    store.reset()


def urls(website: Website) -> dict[str, str]:
    return {
        "live": f"/e/live/{website.tracking_code}",
        "realtime": f"/e/realtime/{website.website_id}",
        "stats": f"/e/stats/{website.tracking_code}",
        "status": f"/e/{website.tracking_code}/status",
    }


KEYS = {
    "live": {"liveCount", "timestamp"},
    "realtime": {"visitors", "pageViews", "countries", "topPages", "timestamp"},
    "stats": {
        "visitors",
        "bounceRate",
        "avgSessionDuration",
        "pagesPerSession",
        "newVisitorRate",
        "returningVisitorRate",
        "timestamp",
    },
    "status": {"active", "tracking_code", "domain", "last_event"},
}
TTL = {"live": 5, "realtime": 10, "stats": 30, "status": 60}
LIMIT = {"live": 1000, "realtime": 500, "stats": 500, "status": 100}


def assert_cors(response):
    for name, value in CORS.items():
        assert response[name] == value, name
    assert "Access-Control-Allow-Credentials" not in response


@pytest.mark.parametrize("name", KEYS)
async def test_each_endpoint_answers_its_exact_shape(async_client, website, name):
    response = await async_client.get(urls(website)[name])
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert set(response.json()) == KEYS[name]
    assert response["Cache-Control"] == f"public, max-age={TTL[name]}"
    assert response["ETag"]
    assert_cors(response)


@pytest.mark.parametrize("name", KEYS)
async def test_a_trailing_slash_is_the_same_endpoint(async_client, website, name):
    response = await async_client.get(urls(website)[name] + "/")
    assert response.status_code == 200


async def test_live_counts_a_visitor_who_just_arrived(async_client, website):
    await avisit(website)
    response = await async_client.get(urls(website)["live"])
    assert response.json()["liveCount"] == 1


async def test_status_reports_the_last_event(async_client, website):
    await avisit(website)
    data = (await async_client.get(urls(website)["status"])).json()
    assert data["active"] is True
    assert (data["tracking_code"], data["domain"]) == (website.tracking_code, "shop.example")
    assert data["last_event"].endswith("Z")


async def test_within_the_ttl_every_request_gets_the_identical_body(async_client, website):
    first = await async_client.get(urls(website)["live"])
    await avisit(website)
    second = await async_client.get(urls(website)["live"])
    assert second.content == first.content
    assert second.json()["liveCount"] == 0  # still the cached answer


async def test_a_matching_etag_gets_304(async_client, website):
    first = await async_client.get(urls(website)["stats"])
    again = await async_client.get(urls(website)["stats"], headers={"If-None-Match": first["ETag"]})
    assert again.status_code == 304
    assert again.content == b""
    assert again["ETag"] == first["ETag"]
    assert_cors(again)


async def test_head_has_headers_and_no_body(async_client, website):
    response = await async_client.head(urls(website)["realtime"])
    assert response.status_code == 200
    assert response.content == b""
    assert response["Cache-Control"] == "public, max-age=10"


@pytest.mark.parametrize("period", ["today", "week", "month"])
async def test_stats_takes_a_period(async_client, website, period):
    response = await async_client.get(urls(website)["stats"] + f"?period={period}")
    assert response.status_code == 200


async def test_a_bad_period_is_400(async_client, website):
    response = await async_client.get(urls(website)["stats"] + "?period=year")
    assert (response.status_code, response.json()["error"]) == (400, "bad_request")
    assert_cors(response)


@pytest.mark.parametrize(
    "path",
    [
        "/e/live/ZV_AAAAAAAAAAA",
        "/e/live/zv_short",
        "/e/live/%3Cscript%3E",
        "/e/realtime/ws_nothere123",
        "/e/realtime/WS_ABC",
        "/e/stats/..%2F..%2Fetc%2Fpasswd",
        "/e/ZV_AAAAAAAAAAA/status",
        "/e/' OR 1=1 --/status",
    ],
)
async def test_unknown_or_malformed_ids_are_json_404(async_client, db, path):
    response = await async_client.get(path)
    assert response.status_code == 404
    assert response.json() == {"error": "not_found", "message": response.json()["message"]}
    assert_cors(response)


@pytest.mark.parametrize("name", KEYS)
async def test_a_disabled_website_is_404(async_client, website, name):
    website.enabled = False
    await website.asave()
    response = await async_client.get(urls(website)[name])
    assert response.status_code == 404


async def test_disabling_a_website_drops_its_cached_answers(async_client, website):
    assert (await async_client.get(urls(website)["live"])).status_code == 200
    website.enabled = False
    await website.asave()
    assert (await async_client.get(urls(website)["live"])).status_code == 404


async def test_a_regenerated_code_stops_answering_at_once(async_client, website):
    old = urls(website)["status"]
    assert (await async_client.get(old)).status_code == 200
    await sync_to_async(website.regenerate_tracking_code)()
    assert (await async_client.get(old)).status_code == 404
    assert (await async_client.get(urls(website)["status"])).status_code == 200


@pytest.mark.parametrize("method", ["post", "put", "delete", "patch"])
async def test_other_methods_are_405(async_client, website, method):
    response = await getattr(async_client, method)(urls(website)["live"])
    assert response.status_code == 405
    assert response.json()["error"] == "method_not_allowed"
    assert_cors(response)


async def preflight(async_client, url: str, request_headers: str):
    """What a browser sends before a cross-origin GET with those request headers."""
    return await async_client.options(
        url,
        headers={
            "Origin": "https://customer.example",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": request_headers,
        },
    )


async def test_a_preflight_is_answered_with_cors_and_not_counted(async_client, website, settings):
    response = await preflight(async_client, urls(website)["status"], "content-type")
    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == "*"
    assert "GET" in response["Access-Control-Allow-Methods"]
    verdict = await store.get_store().hit("status:127.0.0.1", 100)
    assert verdict.allowed  # only this hit counted so far


async def test_a_preflight_allows_if_none_match_so_pages_can_use_the_304_flow(
    async_client, website
):
    response = await preflight(async_client, urls(website)["live"], "if-none-match")
    assert response.status_code == 200
    allowed = {h.strip().lower() for h in response["Access-Control-Allow-Headers"].split(",")}
    assert {"content-type", "if-none-match"} <= allowed
    exposed = {h.strip().lower() for h in response["Access-Control-Expose-Headers"].split(",")}
    assert {"retry-after", "etag", "age"} <= exposed


async def test_a_fresh_body_has_age_0(async_client, website):
    response = await async_client.get(urls(website)["stats"])
    assert response["Age"] == "0"


@pytest.mark.parametrize("name", KEYS)
async def test_a_cached_body_says_how_old_it_is(async_client, website, name, monkeypatch):
    from api import decorators

    first = await async_client.get(urls(website)[name])
    computed = time.time()
    monkeypatch.setattr(decorators.time, "time", lambda: computed + TTL[name] - 1.5)
    again = await async_client.get(urls(website)[name])
    assert again.content == first.content
    # max-age stays the TTL and Age grows, so no cache keeps it past the TTL.
    assert again["Cache-Control"] == f"public, max-age={TTL[name]}"
    assert int(again["Age"]) in (TTL[name] - 2, TTL[name] - 1)
    not_modified = await async_client.get(
        urls(website)[name], headers={"If-None-Match": first["ETag"]}
    )
    assert not_modified.status_code == 304
    assert not_modified["Age"] == again["Age"]


async def test_over_the_limit_is_429_with_retry_after(async_client, website):
    url = urls(website)["status"]
    for _ in range(LIMIT["status"]):
        assert (await async_client.get(url)).status_code == 200
    response = await async_client.get(url)
    assert response.status_code == 429
    assert response.json()["error"] == "rate_limited"
    assert 1 <= int(response["Retry-After"]) <= 60
    assert_cors(response)


async def test_limits_are_per_endpoint_and_per_client(async_client, website, settings):
    settings.ZENOVAY_TRUSTED_PROXIES = (ipaddress.ip_network("127.0.0.1/32"),)
    for _ in range(LIMIT["status"] + 1):
        await async_client.get(urls(website)["status"])
    assert (await async_client.get(urls(website)["live"])).status_code == 200
    other = await async_client.get(
        urls(website)["status"], headers={"X-Forwarded-For": "198.51.100.7"}
    )
    assert other.status_code == 200


async def test_304_and_429_answers_count_towards_the_limit(async_client, website):
    url = urls(website)["status"]
    etag = (await async_client.get(url))["ETag"]
    for _ in range(LIMIT["status"] - 1):
        response = await async_client.get(url, headers={"If-None-Match": etag})
        assert response.status_code == 304
    assert (await async_client.get(url)).status_code == 429


async def test_a_plain_options_request_lists_the_methods(async_client, website):
    response = await async_client.options(urls(website)["live"])
    assert response.status_code == 204
    assert response["Allow"] == "GET, HEAD, OPTIONS"
    assert_cors(response)


async def test_realtime_returns_a_forged_path_percent_encoded_never_as_markup(
    async_client, website
):
    """The seed's updateDashboard writes topPages with innerHTML: a path must never be markup."""
    forged = 'https://shop.example/<img src=x onerror="alert(1)">'
    await avisit(website, url=forged)
    stored = await Event.objects.filter(website=website).values_list("path", flat=True).aget()
    assert stored == "/%3Cimg%20src=x%20onerror=%22alert(1)%22%3E"
    response = await async_client.get(urls(website)["realtime"])
    assert response.json()["topPages"] == [{"path": stored, "visitors": 1}]
    assert b"<img" not in response.content
