"""The OpenAPI document: valid 3.1, strict, and true of the real responses of every endpoint."""

from __future__ import annotations

import datetime as dt
import functools
import json
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.db import DatabaseError
from django.utils import timezone
from hypothesis import given
from hypothesis import settings as examples
from hypothesis.strategies import deferred, from_regex
from jsonschema import Draft202012Validator, ValidationError, validators
from openapi_spec_validator import validate as validate_spec
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from api import openapi
from tests.factories import DESKTOP_UA, record, sender
from zenovay import payload
from zenovay.infra import store
from zenovay.models import Website

pytestmark = pytest.mark.django_db(transaction=True)

DOC_URI = "urn:zenovay:openapi"
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
READ_PATHS = {
    "live": "/e/live/{trackingCode}",
    "realtime": "/e/realtime/{websiteId}",
    "stats": "/e/stats/{trackingCode}",
    "status": "/e/{trackingCode}/status",
}
COLLECT = "/e/collect"


@pytest.fixture(autouse=True)
def _fresh_store():
    store.reset()
    yield
    store.reset()


@pytest.fixture
def doc() -> dict[str, Any]:
    return openapi.document()


@pytest.fixture
def site(db) -> Website:
    """A website whose day does not start at 00:00 UTC."""
    return Website.objects.create(domain="shop.example", name="Shop", timezone="Asia/Kathmandu")


def url_of(name: str, website: Website) -> str:
    return (
        READ_PATHS[name]
        .replace("{trackingCode}", website.tracking_code)
        .replace("{websiteId}", website.website_id)
    )


# --- Validating against the document


def _strict_integers(checker: Any, instance: object) -> bool:
    """JSON Schema lets 3.0 pass as an integer; the API must send 3."""
    return isinstance(instance, int) and not isinstance(instance, bool)


StrictValidator = validators.extend(
    Draft202012Validator,
    type_checker=Draft202012Validator.TYPE_CHECKER.redefine("integer", _strict_integers),
)


def _absolute(node: Any) -> Any:
    """Point the document's local `#/...` references at the registered document."""
    if isinstance(node, dict):
        return {
            key: DOC_URI + value
            if key == "$ref" and isinstance(value, str) and value.startswith("#")
            else _absolute(value)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_absolute(item) for item in node]
    return node


def validator_for(doc: dict[str, Any], schema: dict[str, Any]) -> Draft202012Validator:
    registry = Registry().with_resource(
        DOC_URI, Resource.from_contents(doc, default_specification=DRAFT202012)
    )
    return StrictValidator(_absolute(schema), registry=registry)


def resolve(doc: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = doc
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def documented_response(doc, path: str, method: str, status: int) -> dict[str, Any]:
    responses = doc["paths"][path][method]["responses"]
    assert str(status) in responses, f"{method.upper()} {path} answered an undocumented {status}"
    return resolve(doc, responses[str(status)])


def assert_matches(doc, path: str, method: str, response) -> Any:
    """The response's status, headers and body are what the document says; the body back."""
    spec = documented_response(doc, path, method, response.status_code)
    for name, header in spec.get("headers", {}).items():
        header = resolve(doc, header)
        if name not in response.headers:
            assert not header.get("required"), f"{response.status_code} lacks header {name}"
            continue
        validator_for(doc, header["schema"]).validate(response[name])
    content = spec.get("content")
    if content is None:
        assert response.content == b""
        return None
    assert response["Content-Type"] in content
    body = json.loads(response.content)
    validator_for(doc, content[response["Content-Type"]]["schema"]).validate(body)
    return body


# --- Traffic: several visitors, countries and pages, today and on earlier days

VISITORS = [
    ("81.2.69.160", "GB", ["/", "/pricing?plan=pro#top"]),
    ("203.0.113.5", "US", ["/", "/features"]),
    ("203.0.113.6", "US", ["/pricing"]),
    ("198.51.100.7", "DE", ["/docs/start"]),
    ("192.0.2.44", "", ["/"]),  # unknown country: left out of `countries`
]


@sync_to_async
def make_traffic(website: Website) -> None:
    now = timezone.now()
    # Earlier visits: yesterday (for `change`) and days ago (a returning visitor).
    record(website, now - dt.timedelta(days=3), sender("203.0.113.5", country="US"))
    record(website, now - dt.timedelta(days=1), sender("192.0.2.99", country="FR"))
    for ip, country, paths in VISITORS:
        who = sender(ip, country=country)
        for path in paths:
            record(website, None, who, path, referrer="https://www.google.com/")
    gb = sender("81.2.69.160", country="GB")
    record(website, None, gb, "/pricing", kind="engagement", engagedMs=12500)
    signup = {"name": "signup", "props": {"plan": "pro", "seats": 3}}
    record(website, None, sender("203.0.113.5", country="US"), "/features", kind="event", **signup)


# --- (a) The document itself


def test_the_document_is_valid_openapi_3_1(doc):
    validate_spec(doc)
    assert doc["openapi"] == "3.1.0"
    assert doc["info"]["title"] == "Zenovay public API"
    assert set(doc["paths"]) == {*READ_PATHS.values(), COLLECT}
    for path in READ_PATHS.values():
        assert set(doc["paths"][path]) == {"get"}
    assert set(doc["paths"][COLLECT]) == {"post"}
    for socket in ("/ws/live/{trackingCode}", "/ws/realtime/{websiteId}"):
        assert socket in doc["info"]["description"]


def test_the_server_is_the_public_url(settings):
    settings.ZENOVAY_PUBLIC_URL = "https://stats.example.org"
    assert openapi.document()["servers"][0]["url"] == "https://stats.example.org"


def test_identifiers_and_periods_are_pinned(doc):
    schemas = doc["components"]["schemas"]
    assert schemas["TrackingCode"]["pattern"] == r"^ZV_[A-Z0-9]{11}$"
    assert schemas["WebsiteId"]["pattern"] == r"^ws_[a-z0-9]{6,16}$"
    period = doc["components"]["parameters"]["Period"]["schema"]
    assert (period["enum"], period["default"]) == (["today", "week", "month"], "today")


def test_every_response_body_schema_is_closed(doc):
    for name, schema in doc["components"]["schemas"].items():
        if schema.get("type") != "object" or name.startswith("Collect"):
            continue
        assert schema["additionalProperties"] is False, name
        assert schema["required"] == list(schema["properties"]), name


def test_read_endpoints_document_ttl_limit_and_every_answer(doc):
    ttl = {"live": 5, "realtime": 10, "stats": 30, "status": 60}
    limit = {"live": 1000, "realtime": 500, "stats": 500, "status": 100}
    for name, path in READ_PATHS.items():
        operation = doc["paths"][path]["get"]
        assert operation["x-cache-ttl-seconds"] == ttl[name]
        assert operation["x-rate-limit-per-minute"] == limit[name]
        expected = {"200", "304", "404", "405", "429", "503"} | (
            {"400"} if name == "stats" else set()
        )
        assert set(operation["responses"]) == expected
        ok = operation["responses"]["200"]["headers"]
        assert ok["Cache-Control"]["schema"]["const"] == f"public, max-age={ttl[name]}"
        assert "ETag" in ok
        assert "Retry-After" in resolve(doc, operation["responses"]["429"])["headers"]


def test_every_example_matches_its_schema(doc):
    checked = 0
    for item in doc["paths"].values():
        for operation in item.values():
            media_types = [
                *operation.get("requestBody", {}).get("content", {}).values(),
                *(
                    media
                    for response in operation["responses"].values()
                    for media in resolve(doc, response).get("content", {}).values()
                ),
            ]
            for media in media_types:
                examples = [media["example"]] if "example" in media else []
                examples += [example["value"] for example in media.get("examples", {}).values()]
                for example in examples:
                    validator_for(doc, media["schema"]).validate(example)
                    checked += 1
    assert checked >= 10


# --- (b) Real responses of every endpoint


async def test_openapi_json_is_served_cacheable_and_cross_origin(async_client, doc):
    response = await async_client.get("/e/openapi.json")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response.json() == doc
    assert response["Cache-Control"] == "public, max-age=3600"
    assert response["Access-Control-Allow-Origin"] == "*"
    again = await async_client.get("/e/openapi.json", headers={"If-None-Match": response["ETag"]})
    assert again.status_code == 304
    assert (await async_client.post("/e/openapi.json")).status_code == 405


async def test_the_four_reads_match_the_document(async_client, doc, site):
    await make_traffic(site)
    bodies = {}
    for name, path in READ_PATHS.items():
        response = await async_client.get(url_of(name, site))
        assert response.status_code == 200, name
        bodies[name] = assert_matches(doc, path, "get", response)
    realtime = bodies["realtime"]
    assert {c["code"] for c in realtime["countries"]} == {"GB", "US", "DE"}
    assert len(realtime["topPages"]) >= 3
    assert realtime["visitors"]["current"] == bodies["live"]["liveCount"] == len(VISITORS)
    assert bodies["status"]["last_event"] is not None


@pytest.mark.parametrize("period", ["today", "week", "month"])
async def test_every_stats_period_matches(async_client, doc, site, period):
    await make_traffic(site)
    response = await async_client.get(url_of("stats", site) + f"?period={period}")
    body = assert_matches(doc, READ_PATHS["stats"], "get", response)
    assert body["visitors"]["month"] >= body["visitors"]["today"] > 0


async def test_a_website_without_traffic_matches(async_client, doc, site):
    for name, path in READ_PATHS.items():
        assert_matches(doc, path, "get", await async_client.get(url_of(name, site)))
    status = (await async_client.get(url_of("status", site))).json()
    assert status["last_event"] is None


async def test_304_matches(async_client, doc, site):
    for name, path in READ_PATHS.items():
        first = await async_client.get(url_of(name, site))
        again = await async_client.get(url_of(name, site), headers={"If-None-Match": first["ETag"]})
        assert again.status_code == 304
        assert_matches(doc, path, "get", again)


async def test_collect_202_recorded_and_ignored_match(async_client, doc, site):
    request_schema = doc["paths"][COLLECT]["post"]["requestBody"]["content"]["text/plain"]
    sent = {
        "code": site.tracking_code,
        "type": "pageview",
        "url": "https://shop.example/pricing",
        "referrer": None,
    }
    validator_for(doc, request_schema["schema"]).validate(sent)
    answers = []
    for headers in (
        {"User-Agent": DESKTOP_UA},
        {"User-Agent": GOOGLEBOT},
        {"User-Agent": DESKTOP_UA, "DNT": "1"},
    ):
        response = await async_client.post(
            COLLECT, json.dumps(sent), content_type="text/plain", headers=headers
        )
        assert response.status_code == 202
        answers.append(assert_matches(doc, COLLECT, "post", response))
    assert answers == [
        {"ok": True},
        {"ok": True, "ignored": "bot"},
        {"ok": True, "ignored": "do_not_track"},
    ]


async def test_collect_errors_match(async_client, doc, site):
    def post(data: object):
        return async_client.post(COLLECT, json.dumps(data), content_type="text/plain")

    code = site.tracking_code
    cases = {
        400: post({"code": code, "url": "ftp://shop.example/"}),
        403: post({"code": code, "url": "https://elsewhere.example/"}),
        404: post({"code": "ZV_AAAAAAAAAAA", "url": "https://shop.example/"}),
        413: post({"code": code, "url": "https://shop.example/", "pad": "x" * 5000}),
        405: async_client.get(COLLECT),
    }
    for status, pending in cases.items():
        response = await pending
        assert response.status_code == status
        assert assert_matches(doc, COLLECT, "post", response)["error"]


@pytest.mark.parametrize("name", READ_PATHS)
async def test_404_and_405_match(async_client, doc, site, name):
    unknown = Website(tracking_code="ZV_AAAAAAAAAAA", website_id="ws_nothere123")
    malformed = Website(tracking_code="zv_%3Cx%3E", website_id="WS_ABC")
    for url in (url_of(name, unknown), url_of(name, malformed)):
        response = await async_client.get(url)
        assert response.status_code == 404
        assert assert_matches(doc, READ_PATHS[name], "get", response)["error"] == "not_found"
    response = await async_client.post(url_of(name, site))
    assert response.status_code == 405
    assert assert_matches(doc, READ_PATHS[name], "get", response)["error"] == "method_not_allowed"


async def test_a_bad_period_400_matches(async_client, doc, site):
    response = await async_client.get(url_of("stats", site) + "?period=year")
    assert response.status_code == 400
    assert assert_matches(doc, READ_PATHS["stats"], "get", response)["error"] == "bad_request"


async def test_429_matches(async_client, doc, site):
    url = url_of("status", site)
    limit = doc["paths"][READ_PATHS["status"]]["get"]["x-rate-limit-per-minute"]
    for _ in range(limit):
        assert (await async_client.get(url)).status_code == 200
    response = await async_client.get(url)
    assert response.status_code == 429
    assert assert_matches(doc, READ_PATHS["status"], "get", response)["error"] == "rate_limited"


async def test_503_matches(async_client, doc, site, monkeypatch):
    def down(code: str) -> None:
        raise DatabaseError("connection refused")

    monkeypatch.setattr("api.views._live", down)
    response = await async_client.get(url_of("live", site))
    assert response.status_code == 503
    assert assert_matches(doc, READ_PATHS["live"], "get", response)["error"] == "unavailable"


# --- (c) The schemas are strict


def _schema(doc, name: str) -> Draft202012Validator:
    return validator_for(doc, openapi.ref("schemas", name))


async def test_the_schemas_reject_what_the_contract_forbids(async_client, doc, site):
    await make_traffic(site)
    stats = (await async_client.get(url_of("stats", site))).json()
    realtime = (await async_client.get(url_of("realtime", site))).json()
    validator = _schema(doc, "StatsSnapshot")
    validator.validate(stats)

    def mutated(body: dict, change) -> dict:
        copy = json.loads(json.dumps(body))
        change(copy)
        return copy

    bad_stats = [
        mutated(stats, lambda b: b.update(extra=1)),
        mutated(stats, lambda b: b["visitors"].update(extra=1)),
        mutated(stats, lambda b: b["visitors"].update(today=1.5)),
        mutated(stats, lambda b: b.update(avgSessionDuration=185.5)),
        mutated(stats, lambda b: b.pop("bounceRate")),
        mutated(stats, lambda b: b.update(bounceRate="0.4")),
        mutated(stats, lambda b: b.update(bounceRate=1.5)),
        mutated(stats, lambda b: b.update(timestamp="2025-01-20T14:30:00.123Z")),
        mutated(stats, lambda b: b.update(timestamp=None)),
    ]
    for body in bad_stats:
        with pytest.raises(ValidationError):
            validator.validate(body)
    bad_realtime = [
        mutated(realtime, lambda b: b["countries"][0].update(code="gb")),
        mutated(realtime, lambda b: b["countries"][0].update(flag="x")),
        mutated(realtime, lambda b: b["topPages"][0].update(visitors=2.5)),
        mutated(realtime, lambda b: b["visitors"].update(current=None)),
    ]
    for body in bad_realtime:
        with pytest.raises(ValidationError):
            _schema(doc, "RealtimeSnapshot").validate(body)
    # 3.0 is an integer to plain JSON Schema; the API must send 3.
    with pytest.raises(ValidationError):
        _schema(doc, "LiveSnapshot").validate({"liveCount": 3.0, "timestamp": stats["timestamp"]})
    status = {"active": True, "tracking_code": site.tracking_code, "domain": "a.example"}
    _schema(doc, "StatusSnapshot").validate({**status, "last_event": None})
    for last_event in (0, "yesterday", "2025-01-20 14:30:00"):
        with pytest.raises(ValidationError):
            _schema(doc, "StatusSnapshot").validate({**status, "last_event": last_event})
    with pytest.raises(ValidationError):
        _schema(doc, "Error").validate({"error": "teapot", "message": "No."})


# --- (c') The collect body schema is exactly as strict as the server


@functools.cache
def _collect_body_validator() -> Draft202012Validator:
    doc = openapi.document()
    body = doc["paths"][COLLECT]["post"]["requestBody"]["content"]["text/plain"]["schema"]
    return validator_for(doc, body)


def _collect_verdicts(raw: str) -> tuple[bool, bool]:
    """(the schema accepts it, the server's parser accepts it) for one raw JSON body."""
    by_schema = _collect_body_validator().is_valid(json.loads(raw))
    try:
        payload.parse_payload(raw.encode())
    except (payload.BadRequest, payload.NotFound):
        return by_schema, False
    return by_schema, True


def _url_body(url: str) -> str:
    return json.dumps({"code": openapi.EXAMPLE_CODE, "url": url})


def _short(url: str) -> str:
    return url if len(url) <= 60 else f"{url[:40]}...({len(url)} characters)"


REJECTED_URLS = [
    "ftp://example.com/",
    "http://",
    "https:///pricing",
    "https:example.com",
    "javascript:alert(1)",
    "//example.com/",
    "https://exa mple.com/",
    "https://example..com/",
    "https://.example.com/",
    "https://example.com:99999/",
    "https://example.com:8o/",
    "https://<script>/",
    "https://%65xample.com/",
    "https://" + "a" * 64 + ".com/",
    "https://" + ".".join(["a" * 63] * 4) + "/",  # 255 characters
    "https://[::1/",
    "https://example.com/" + "a" * 2029,  # 2049 characters
    "",
]
ACCEPTED_URLS = [
    "https://example.com/a",
    "http://example.com",
    "HTTPS://Shop.Example.COM:443/pricing?utm_source=x#top",
    "https://example.com.:0/",
    "https://www.example.com:08080/a b/<i>?q=%zz&&#",
    "https://user:pa%20ss@example.com/",
    "https://_dmarc.my-site.example/",
    "http://192.0.2.1:65535/",
    "https://example.com?",
    "https://" + ".".join(["a" * 63] * 3 + ["a" * 61]) + "/",  # 253 characters
    "https://example.com/" + "a" * 2028,  # 2048 characters
]


@pytest.mark.parametrize("url", REJECTED_URLS, ids=_short)
def test_the_schema_rejects_every_url_the_server_rejects(url):
    assert _collect_verdicts(_url_body(url)) == (False, False)


@pytest.mark.parametrize("url", ACCEPTED_URLS, ids=_short)
def test_the_schema_accepts_these_urls_as_the_server_does(url):
    assert _collect_verdicts(_url_body(url)) == (True, True)


def _url_pattern() -> str:
    url = openapi.document()["components"]["schemas"]["CollectRequest"]["properties"]["url"]
    patterns = [part["pattern"] for part in url.get("allOf", []) if "pattern" in part]
    assert len(patterns) == 1, url
    return patterns[0]


@examples(max_examples=200, derandomize=True, deadline=None)
@given(url=deferred(lambda: from_regex(_url_pattern()).filter(lambda url: len(url) <= 2048)))
def test_every_url_the_schema_accepts_the_server_accepts(url):
    assert _collect_verdicts(_url_body(url)) == (True, True)


EVENT = {"type": "event", "name": "signup"}
BAD_FIELDS: dict[str, dict[str, Any]] = {
    "an unknown type": {"type": "click"},
    "a null type": {"type": None},
    "a referrer past 2048 characters": {"referrer": "https://a.example/" + "r" * 2031},
    "a number as referrer": {"referrer": 5},
    "an event without a name": {"type": "event"},
    "a blank name": {**EVENT, "name": " \t\u3000\x85"},
    "a name of NUL and a separator": {**EVENT, "name": "\x00\x1f"},
    "a name past 100 characters": {**EVENT, "name": "n" * 101},
    "a number as name": {**EVENT, "name": 5},
    "31 props": {**EVENT, "props": {f"k{i}": i for i in range(31)}},
    "a prop name past 100 characters": {**EVENT, "props": {"k" * 101: 1}},
    "an object as prop value": {**EVENT, "props": {"a": {}}},
    "an integer past 2^53": {**EVENT, "props": {"a": 2**53 + 1}},
    "the same kind of number with an exponent": {**EVENT, "props": {"a": 1e20}},
    "a list as props": {**EVENT, "props": []},
    "negative engagedMs": {"type": "engagement", "engagedMs": -1},
    "engagedMs as a string": {"type": "engagement", "engagedMs": "5"},
    "engagedMs true": {"type": "engagement", "engagedMs": True},
}
GOOD_FIELDS: dict[str, dict[str, Any]] = {
    "a null referrer": {"referrer": None},
    "an empty referrer": {"referrer": ""},
    "a referrer that is no URL": {"referrer": "android-app://x"},
    "a name with a lone surrogate": {**EVENT, "name": "\ud800"},
    "a name of 100 characters": {**EVENT, "name": "n" * 100},
    "null props": {**EVENT, "props": None},
    "30 props at -2^53": {**EVENT, "props": {f"k{i}": -(2**53) for i in range(30)}},
    "props of every kind": {**EVENT, "props": {"a": "x", "b": 2.5, "c": False, "d": None}},
    "large engagedMs": {"type": "engagement", "engagedMs": 1e300},
    # The per-type fields are read only with their type, otherwise ignored like unknown ones.
    "engagedMs on a pageview": {"type": "pageview", "engagedMs": -1},
    "a blank name and bad props on an engagement": {"type": "engagement", "name": " ", "props": 5},
    "engagedMs on an event": {**EVENT, "engagedMs": "x"},
}


@pytest.mark.parametrize(
    ("fields", "accepted"),
    [*((f, False) for f in BAD_FIELDS.values()), *((f, True) for f in GOOD_FIELDS.values())],
    ids=[*BAD_FIELDS, *GOOD_FIELDS],
)
def test_the_schema_and_the_server_agree_on_every_field(fields, accepted):
    raw = json.dumps({"code": openapi.EXAMPLE_CODE, "url": "https://example.com/", **fields})
    assert _collect_verdicts(raw) == (accepted, accepted)


# --- (d) The docs page


async def test_the_docs_page_mentions_every_endpoint(async_client, doc):
    response = await async_client.get("/docs/api")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    html = response.content.decode()
    for path in [*doc["paths"], "/ws/live/{trackingCode}", "/ws/realtime/{websiteId}"]:
        assert path in html, path
    for text in ("1000/min", "500/min", "100/min", "5 s", "60 s", "/e/openapi.json"):
        assert text in html, text
    assert "<script" not in html
    assert (await async_client.get("/docs/api/")).status_code == 200
