"""What the server keeps per client and per id, and for how long (issue 13, items 7, 8, 12):
nothing unbounded, nothing that names an address, and ingest only from the site's pages."""

from __future__ import annotations

import json
import time

import pytest

from tests.factories import DESKTOP_UA, payload
from zenovay.infra import store
from zenovay.models import Event

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_store():
    store.reset()
    yield
    store.reset()


def memory_store() -> store.MemoryStore:
    backend = store.get_store()
    if not isinstance(backend, store.MemoryStore):
        pytest.skip("the in-process store is used without REDIS_URL")
    return backend


def collect(client, website, *, address="203.0.113.7", origin=None, url="https://shop.example/a"):
    headers = {"REMOTE_ADDR": address, "HTTP_USER_AGENT": DESKTOP_UA}
    if origin is not None:
        headers["HTTP_ORIGIN"] = origin
    body = json.dumps(payload(website, url=url))
    return client.post("/e/collect", body, content_type="text/plain", **headers)


# --- 7. Bounded in-process state


@pytest.mark.parametrize(
    "template", ["/e/live/{}", "/e/stats/{}", "/e/{}/status", "/e/realtime/{}", "/e/live/ZV_{}"]
)
def test_malformed_ids_never_enter_the_cache(client, template):
    backend = memory_store()
    for n in range(50):
        response = client.get(template.format("x" * 5000 + str(n)))
        assert response.status_code == 404
        assert response.json()["error"] == "not_found"
    assert backend.usage()["values"] == 0


def test_well_formed_unknown_ids_are_cached_as_not_found(client):
    backend = memory_store()
    assert client.get("/e/live/ZV_AAAAAAAAAAA").status_code == 404
    assert backend.usage()["values"] == 1


async def test_expired_values_are_swept(monkeypatch):
    backend = memory_store()
    monkeypatch.setattr(store, "SWEEP_SECONDS", 0.0)
    for n in range(100):
        await backend.add(f"resp:live:{n}:", b"{}", ttl=0.0)  # expired as soon as stored
    await backend.add("resp:live:kept:", b"{}", ttl=60)
    assert backend.usage()["values"] == 1


async def test_cached_bodies_are_bounded_in_bytes_oldest_first(monkeypatch):
    backend = memory_store()
    monkeypatch.setattr(store, "MAX_VALUE_BYTES", 10_000)
    for n in range(100):
        await backend.add(f"resp:realtime:ws_{n:04d}:", b"x" * 1000, ttl=60)
    assert backend.usage()["bytes"] <= 10_000
    assert await backend.get("resp:realtime:ws_0099:") is not None
    assert await backend.get("resp:realtime:ws_0000:") is None


async def test_rate_limit_logs_of_idle_clients_are_swept():
    backend = memory_store()
    for n in range(500):
        await backend.hit(f"live:client{n}", 100)
    assert backend.usage()["logs"] == 500
    backend.sweep(now=time.monotonic() + 61)
    assert backend.usage()["logs"] == 0


def test_an_ipv6_client_counts_as_its_64(client, website):
    for n in range(100):
        response = client.get(f"/e/{website.tracking_code}/status", REMOTE_ADDR=f"2001:db8::{n:x}")
        assert response.status_code == 200
    refused = client.get(f"/e/{website.tracking_code}/status", REMOTE_ADDR="2001:db8::ffff:1")
    assert refused.status_code == 429
    other = client.get(f"/e/{website.tracking_code}/status", REMOTE_ADDR="2001:db8:0:1::1")
    assert other.status_code == 200


# --- 12. Keys hold keyed hashes, never an address


def test_rate_limit_keys_hold_no_client_address(client, website):
    address = "203.0.113.77"
    assert client.get(f"/e/live/{website.tracking_code}", REMOTE_ADDR=address).status_code == 200
    backend = store.get_store()
    if isinstance(backend, store.MemoryStore):
        keys = list(backend.usage()["log_keys"])
    else:
        import redis

        connection = redis.Redis.from_url(backend.url)
        keys = [key.decode() for key in connection.scan_iter(backend.prefix + "rl:*")]
        connection.close()
    assert keys, "the request was counted somewhere"
    assert not [key for key in keys if address in key]


# --- 8. Ingest: a generous limit per client, and only from the website's own pages


def test_collect_is_limited_per_client(client, website, settings):
    settings.ZENOVAY_COLLECT_PER_MINUTE = 3
    statuses = [collect(client, website).status_code for _ in range(4)]
    assert statuses == [202, 202, 202, 429]
    refused = collect(client, website)
    assert refused.json()["error"] == "rate_limited"
    assert int(refused["Retry-After"]) >= 1
    assert refused["Access-Control-Allow-Origin"] == "*"
    assert collect(client, website, address="198.51.100.1").status_code == 202
    assert Event.objects.count() == 4


def test_collect_without_a_limit_takes_everything(client, website, settings):
    settings.ZENOVAY_COLLECT_PER_MINUTE = 0
    assert all(collect(client, website).status_code == 202 for _ in range(20))


@pytest.mark.parametrize(
    "origin",
    [
        "https://evil.example",
        "https://shop.example.evil.example",
        "http://localhost:8000",
        "https://xshop.example",
        "not a url",
        "ftp://shop.example",
    ],
)
def test_collect_from_a_page_of_another_origin_is_403(client, website, origin):
    response = collect(client, website, origin=origin)
    assert response.status_code == 403
    assert response.json()["error"] == "forbidden"
    assert Event.objects.count() == 0


@pytest.mark.parametrize(
    "origin", [None, "null", "https://shop.example", "http://www.shop.example:8080"]
)
def test_collect_from_the_sites_own_pages_or_without_an_origin_is_recorded(client, website, origin):
    assert collect(client, website, origin=origin).status_code == 202
    assert Event.objects.count() == 1


def test_an_extra_hostname_is_an_allowed_origin(client, website):
    website.extra_hostnames = "shop-preview.example.net"
    website.save()
    origin = "https://shop-preview.example.net"
    url = "https://shop-preview.example.net/a"
    assert collect(client, website, origin=origin, url=url).status_code == 202
