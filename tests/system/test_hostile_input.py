"""Hostile input (issue 6): no request gets a 5xx or a traceback, or stores something wrongly.

Three layers:

1. Property-based fuzzing of `POST /e/collect` through Django's test client (in process,
   with CSRF checks on as in production): arbitrary JSON, payloads with every field
   mistyped, arbitrary bytes and text. Every answer is a contract answer, and every
   `{"ok": true}` stored exactly one sane event.
2. Fuzzing the four read endpoints with hostile path segments and `period` values.
3. A real Daphne process over raw sockets, so nothing in the test client hides behaviour:
   invalid UTF-8, deep nesting, 10 MB bodies (with a length, chunked, without a length),
   a slow body next to a normal request, huge headers, hostile referrers and user agents,
   wrong methods. After each, the same process is alive and healthy and logged no traceback.
   Each test connects from a client address of its own, so no rate limit carries over.

What Daphne (Twisted) answers before Django sees a request, observed with Daphne 4.2 and
Twisted 26 and pinned by the tests below:
- a header line over 16 KiB (e.g. a 64 KiB User-Agent): the connection is closed with no
  answer at all (Twisted's `LineReceiver.MAX_LENGTH`);
- request line plus headers over 16 KiB in total, more than 500 headers, a NUL byte in a
  header, a malformed or negative Content-Length, or both Content-Length and chunked
  Transfer-Encoding: a bare `HTTP/1.1 400 Bad Request` with an empty body, then the
  connection is closed. Not JSON, but nothing the app can change: it never runs.
- a POST with neither Content-Length nor Transfer-Encoding has an empty body (HTTP/1.1);
  the app answers that empty body 400 `bad_request` and the bytes that follow are not a
  body: with `Connection: close` they are dropped, on a kept-alive connection Twisted
  parses them as the next request and answers its bare 400.
- a request body that stops arriving is dropped by Twisted's idle timeout (60 s); other
  connections are served meanwhile.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import ipaddress
import json
import re
import socket
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from urllib.parse import quote, urlencode, urlsplit

import pytest
from django.db import connection
from django.test import Client
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from api.errors import CODES
from api.openapi import IGNORED_REASONS
from tests.factories import DESKTOP_UA
from zenovay import payload
from zenovay.infra import store
from zenovay.models import Event, Session, Website

CODE = "ZV_H0ST1LEFUZZ"
DOMAIN = "shop.example"
CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, OPTIONS",
    "Access-Control-Allow-Headers": "Content-Type, If-None-Match",
    "Access-Control-Expose-Headers": "Retry-After, ETag, Age",
}
FUZZ = settings(
    max_examples=150,
    deadline=None,
    database=None,  # nothing written into the project; regressions are explicit cases below
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
HOST_RE = re.compile(r"[a-z0-9_-]{1,63}(\.[a-z0-9_-]{1,63})*\.?")


@pytest.fixture
def shop(db) -> Website:
    return Website.objects.create(domain=DOMAIN, name="Shop", tracking_code=CODE)


@pytest.fixture
def browser():
    """Django's test client as production sees requests: CSRF enforced, exceptions raised."""
    return Client(enforce_csrf_checks=True, raise_request_exception=True)


# --- Invariants


def assert_contract_answer(response, allowed: set[int]) -> dict:
    """A status from `allowed`, JSON, CORS headers, and the contract's body for that status."""
    assert response.status_code in allowed, (response.status_code, response.content[:300])
    assert response["Content-Type"] == "application/json"
    for name, value in CORS.items():
        assert response[name] == value, name
    body = json.loads(response.content)
    assert isinstance(body, dict)
    if response.status_code < 400:
        return body
    assert set(body) == {"error", "message"}, body
    assert body["error"] == CODES[response.status_code]
    assert isinstance(body["message"], str) and body["message"]
    return body


def assert_clean_string(value: str, max_length: int | None, what: str) -> None:
    assert "\x00" not in value, what
    value.encode("utf-8")  # raises on a lone surrogate
    if max_length is not None:
        assert len(value) <= max_length, (what, len(value))


def assert_sane_row(row, website: Website) -> None:
    for column in type(row)._meta.concrete_fields:
        value = getattr(row, column.attname)
        if isinstance(value, str):
            assert_clean_string(value, column.max_length, column.name)
    assert row.website_id == website.pk


def assert_valid_host(host: str) -> None:
    """A DNS name in ASCII or an IP address, as `zenovay.payload.host_name` keeps them."""
    assert len(host) <= 253, host
    if not HOST_RE.fullmatch(host):
        ipaddress.ip_address(host)


def assert_sane_event(row: Event, website: Website) -> None:
    assert_sane_row(row, website)
    assert row.type in dict(Event.TYPES)
    assert row.path.startswith("/"), row.path
    assert_valid_host(row.hostname)
    assert website.allows_host(row.hostname)
    if row.referrer_host:
        assert_valid_host(row.referrer_host)
    assert 0 <= row.engaged_ms <= payload.MAX_ENGAGED_MS
    if row.type == Event.CUSTOM:
        assert row.name and row.name == row.name.strip()
    else:
        assert (row.name, row.props) == ("", None)
    if row.props is not None:
        assert isinstance(row.props, dict) and len(row.props) <= payload.MAX_PROPS
        for key, value in row.props.items():
            assert_clean_string(key, 100, "props key")
            assert value is None or isinstance(value, bool | int | float | str), value
            if isinstance(value, str):
                assert_clean_string(value, 500, "props value")
    session = Session.objects.filter(website=website, visitor=row.visitor).order_by("-pk").first()
    if session is not None:
        assert_sane_row(session, website)


def post_and_check(browser, website: Website, body: bytes, **headers) -> dict:
    """POST the body; check the answer and that exactly `{"ok": true}` stored one event."""
    before = Event.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    headers.setdefault("User-Agent", DESKTOP_UA)
    response = browser.post("/e/collect", body, content_type="text/plain", headers=headers)
    answer = assert_contract_answer(response, {202, 400, 403, 404, 413})
    stored = list(Event.objects.filter(pk__gt=before))
    if response.status_code == 202:
        assert answer == {"ok": True} or (
            set(answer) == {"ok", "ignored"}
            and answer["ok"] is True
            and answer["ignored"] in IGNORED_REASONS
        ), answer
    if answer == {"ok": True}:
        assert len(stored) == 1
        assert_sane_event(stored[0], website)
    else:
        assert stored == []
    return answer


def outcome(answer: dict) -> str:
    """How an example ended, for `--hypothesis-show-statistics`."""
    return answer.get("error") or answer.get("ignored") or "recorded"


# --- Strategies

HOSTILE_TEXT = [
    "",
    " ",
    "\x00",
    "a\x00b",
    "\ud800",
    "\udfff",
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "\r\nSet-Cookie: a=1",
    "../../etc/passwd",
    "%00",
    "%2e%2e%2f",
    "%ff%fe",
    "\u202e\u200b\ufeff",
    "😀" * 10,
    "' OR 1=1 --",
    "{{7*7}}${jndi:ldap://x}",
    "\\",
    "null",
    "NaN",
    "A" * 300,
]
hostile_text = st.sampled_from(HOSTILE_TEXT) | st.text(max_size=40)
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()  # NaN and infinities become the non-JSON tokens NaN and Infinity
    | hostile_text
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(hostile_text, inner, max_size=4),
    max_leaves=12,
)
valid_hosts = st.sampled_from(
    [DOMAIN, DOMAIN, "www.shop.example", "SHOP.Example.", "a.b.shop.example"]
) | st.builds("{}.shop.example".format, st.from_regex(r"[a-z0-9-]{1,63}", fullmatch=True))
hosts = st.one_of(
    valid_hosts,  # listed three times: about half the hosts are the website's
    valid_hosts,
    valid_hosts,
    st.builds("{}.shop.example".format, hostile_text),
    st.builds("{}.shop.example".format, st.text(alphabet="ab.", min_size=230, max_size=300)),
    st.sampled_from(
        [
            "evil.example",
            "shop.example.evil.example",
            "notshop.example",
            "[::1]",
            "[",
            "127.0.0.1",
            "shop.example:99999",
            "shop.example:0",
            "shop.example:8080",
            "user:pw@shop.example",
            "evil.example\\@shop.example",
            "bücher.shop.example",
            "xn--bcher-kva.shop.example",
            "",
        ]
    ),
)
query_pairs = st.lists(
    st.tuples(
        st.sampled_from(["utm_source", "utm_medium", "utm_campaign"]) | st.text(max_size=8),
        hostile_text,
    ),
    max_size=5,
)


HTTP_SCHEMES = st.sampled_from(["https", "http", "HTTPS"])


@st.composite
def urls(draw, schemes=HTTP_SCHEMES) -> str:
    scheme = draw(schemes)
    path = draw(
        st.sampled_from(["", "/", "/pricing", "//double", "/./../.."])
        | st.builds("/{}".format, hostile_text)
        | st.builds(lambda text: "/" + quote(text, safe="/", errors="surrogatepass"), hostile_text)
    )
    pairs = draw(query_pairs)
    if draw(st.booleans()):  # percent-encoded; lone surrogates as the bytes Python writes
        query = urlencode(pairs, errors="surrogatepass")
    else:
        query = "&".join(f"{k}={v}" for k, v in pairs)
    query = "&" * draw(st.integers(min_value=0, max_value=80)) + query  # many empty fields
    fragment = draw(st.sampled_from(["", "#top", "#<script>"]))
    return f"{scheme}://{draw(hosts)}{path}{'?' + query if query else ''}{fragment}"


finite_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**60), max_value=2**60)
    | st.floats(allow_nan=False, allow_infinity=False)
    | hostile_text
)
# What a tracker might plausibly send, hostile strings included; `payloads` then spoils it.
FIELDS = {
    "code": st.just(CODE),
    "type": st.sampled_from(["pageview", "engagement", "event"]),
    "url": urls(),
    "referrer": urls() | st.sampled_from(["", None]),
    "name": hostile_text,
    "props": st.dictionaries(hostile_text, finite_scalars, max_size=6),
    "engagedMs": st.integers(min_value=0, max_value=2**70) | st.floats(min_value=0),
}
SPOILED = {
    "code": st.sampled_from(["ZV_AAAAAAAAAAA", "zv_h0st1lefuzz", CODE + "\x00", " " + CODE]),
    "url": urls(schemes=st.sampled_from(["ftp", "", "x", "javascript", "data", "HTTPS "])),
    "props": st.dictionaries(hostile_text, json_values, min_size=1, max_size=40),
    "engagedMs": st.integers(max_value=-1) | st.floats(),
}


@st.composite
def payloads(draw) -> dict:
    """Every field plausible (so that events get through), then up to three of them dropped
    or replaced by any JSON value at all: wrong types in every field."""
    payload = {key: draw(plausible) for key, plausible in FIELDS.items()}
    for key in draw(st.sets(st.sampled_from(sorted(FIELDS)), max_size=3)):
        if draw(st.booleans()):
            del payload[key]
        else:
            payload[key] = draw(SPOILED.get(key, json_values) | json_values)
    return payload


agents = st.sampled_from(
    [
        DESKTOP_UA,
        DESKTOP_UA,
        DESKTOP_UA + " <script>alert(1)</script>",
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        "",
        "x",
    ]
)


def encode(text: str, as_ascii: bool) -> bytes:
    """JSON escapes for lone surrogates, or the bytes Python would write for them (CESU)."""
    return text.encode("ascii" if as_ascii else "utf-8", "surrogatepass")


# --- 1. POST /e/collect, in process


@FUZZ
@given(value=json_values, as_ascii=st.booleans())
def test_any_json_value_as_a_collect_body_gets_a_contract_answer(browser, shop, value, as_ascii):
    answer = post_and_check(
        browser, shop, encode(json.dumps(value, ensure_ascii=as_ascii), as_ascii)
    )
    event(outcome(answer))


@FUZZ
@given(payload=payloads(), as_ascii=st.booleans(), agent=agents, dnt=st.booleans())
def test_payloads_with_any_type_in_any_field_are_answered_and_stored_sanely(
    browser, shop, payload, as_ascii, agent, dnt
):
    body = encode(json.dumps(payload, ensure_ascii=as_ascii), as_ascii)
    headers = {"User-Agent": agent, **({"DNT": "1"} if dnt else {})}
    event(outcome(post_and_check(browser, shop, body, **headers)))


@FUZZ
@given(raw=st.binary(max_size=5000))
def test_arbitrary_bytes_as_a_collect_body_are_answered(browser, shop, raw):
    event(outcome(post_and_check(browser, shop, raw)))


@FUZZ
@given(
    text=st.text(max_size=300)
    # raw text spliced into a JSON string: quotes, backslashes, control characters
    | st.builds(lambda raw: f'{{"code": "{CODE}", "url": "https://shop.example/{raw}"}}', st.text())
)
def test_arbitrary_text_as_a_collect_body_is_answered(browser, shop, text):
    event(outcome(post_and_check(browser, shop, text.encode("utf-8", "surrogatepass"))))


def pageview(**fields) -> dict:
    return {"code": CODE, "type": "pageview", "url": f"https://{DOMAIN}/", **fields}


@pytest.mark.parametrize(
    ("url", "status"),
    [
        ("https://a\x00b.shop.example/", 400),  # NUL in the host: PostgreSQL rejects it
        ("https://\udc80.shop.example/", 400),  # a lone surrogate in the host
        ("https://" + "a" * 300 + ".shop.example/", 400),  # host over 253 characters
        ("https://<script>.shop.example/", 400),
        ("https://sub domain.shop.example/", 400),
        ("https://[::1]/", 403),  # a valid host, but not the website's
        ("https://bücher.shop.example/", 202),  # stored as the browser sends it: IDNA
        ("https://shop.example/?" + "&" * 60 + "utm_source=news", 202),  # many query fields
        ("https://shop.example/?" + "a=1&" * 200 + "utm_source=news", 202),
    ],
)
def test_hostile_page_urls_are_rejected_or_stored_sanely(browser, shop, url, status):
    response = browser.post(
        "/e/collect",
        json.dumps(pageview(url=url)).encode(),
        content_type="text/plain",
        headers={"User-Agent": DESKTOP_UA},
    )
    assert_contract_answer(response, {status})
    if status == 202:
        assert_sane_event(Event.objects.get(), shop)


def test_the_utm_source_survives_a_url_with_many_query_fields(browser, shop):
    post_and_check(
        browser,
        shop,
        json.dumps(pageview(url="https://shop.example/?" + "&" * 60 + "utm_source=news")).encode(),
    )
    assert Event.objects.get().utm_source == "news"


def test_a_unicode_page_host_is_stored_in_its_ascii_form(browser, shop):
    post_and_check(browser, shop, json.dumps(pageview(url="https://bücher.shop.example/")).encode())
    assert Event.objects.get().hostname == "xn--bcher-kva.shop.example"


@pytest.mark.parametrize(
    "referrer",
    [
        "https://<script>.evil.example/",
        "https://ev\x00il.example/",
        "https://\ud800.example/",
        "https://" + "a" * 300 + ".example/",
        "<script>alert(1)</script>",
        "javascript:alert(1)",
        "https://evil.example/\r\nSet-Cookie: a=1",
        "https://[/",
    ],
)
def test_a_hostile_referrer_never_stores_something_that_is_not_a_host(browser, shop, referrer):
    answer = post_and_check(browser, shop, json.dumps(pageview(referrer=referrer)).encode())
    assert answer == {"ok": True}
    stored = Event.objects.get().referrer_host
    assert stored in ("", "evil.example")


@pytest.mark.parametrize("name", ["\x00", "\x00 \x00", " \t "])
def test_a_custom_event_name_that_is_empty_once_cleaned_is_400(browser, shop, name):
    body = json.dumps(pageview(type="event", name=name)).encode()
    assert post_and_check(browser, shop, body)["error"] == "bad_request"


# --- 2. The read endpoints, in process

ENDPOINTS = {
    "/e/live/{}": "live",
    "/e/realtime/{}": "realtime",
    "/e/stats/{}": "stats",
    "/e/{}/status": "status",
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
segments = st.one_of(
    st.sampled_from(["..", ".", "%00", "%2e%2e", "%2F", "%ff%fe", "%", "%zz", CODE, "ws_abc123"]),
    st.builds(
        lambda text, safe: quote(text, safe=safe, errors="surrogatepass"),
        st.text(min_size=1),
        st.sampled_from(["", "/", "%", ".:@!$&'()*+,;="]),
    ),
    st.builds(lambda raw: quote(raw, safe=""), st.binary(min_size=1, max_size=30)),
    st.builds(lambda n: "a" * n, st.integers(min_value=1, max_value=5000)),
    st.builds(lambda text: quote(text, safe="", errors="surrogatepass") + "%00", hostile_text),
)
periods = st.none() | st.sampled_from(["today", "week", "month", "", "TODAY"]) | hostile_text


@FUZZ
@given(
    template=st.sampled_from(sorted(ENDPOINTS)),
    segment=segments,
    period=periods,
    slash=st.booleans(),
    ip=st.ip_addresses(),
)
def test_hostile_path_segments_on_read_endpoints_get_json_and_cors_never_5xx(
    browser, shop, template, segment, period, slash, ip
):
    store.reset()  # fresh in-process limits, so examples are not all 429s
    path = template.format(segment) + ("/" if slash else "")
    if period is not None:
        path += "?" + urlencode({"period": period.encode("utf-8", "surrogatepass")})
    response = browser.get(path, REMOTE_ADDR=str(ip))
    event(str(response.status_code))
    body = assert_contract_answer(response, {200, 400, 404, 405, 429})
    if response.status_code == 200:
        assert set(body) == KEYS[ENDPOINTS[template]]


def test_over_a_thousand_query_fields_get_a_json_400_with_cors(browser, shop):
    """Django's QueryDict refuses them (TooManyFieldsSent); the answer is still JSON."""
    response = browser.get(f"/e/stats/{CODE}?" + "&" * 1500 + "period=week")
    assert_contract_answer(response, {400})


@pytest.mark.parametrize("path", ["/e/live/" + CODE, "/e/collect", "/e/nothing"])
def test_a_disallowed_host_header_gets_a_json_400_under_e(browser, shop, settings, path):
    """Django refuses it before any view runs (DisallowedHost); handler400 answers JSON."""
    settings.ALLOWED_HOSTS = ["testserver"]
    response = browser.get(path, headers={"Host": "evil.example"})
    assert_contract_answer(response, {400})


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
@pytest.mark.parametrize("template", ENDPOINTS)
def test_unsafe_methods_on_read_endpoints_are_json_405_not_a_csrf_page(
    browser, shop, method, template
):
    response = getattr(browser, method)(template.format(CODE))
    assert_contract_answer(response, {405})
    assert response["Allow"] == "GET, HEAD"


def test_posting_to_the_openapi_document_is_json_405(browser):
    assert_contract_answer(browser.post("/e/openapi.json"), {405})


# --- 3. A real Daphne process over raw sockets


@dataclass
class Reply:
    """What came back on one connection; `status` None when it closed without an answer."""

    status: int | None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    def json(self):
        return json.loads(self.body)


class _Recorded:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def makefile(self, mode: str):
        return io.BytesIO(self.data)


def parse_reply(raw: bytes) -> Reply:
    if not raw:
        return Reply(None)
    response = http.client.HTTPResponse(_Recorded(raw))  # type: ignore[arg-type]
    response.begin()
    return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())


def read_all(sock: socket.socket) -> bytes:
    chunks = []
    try:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except ConnectionResetError:
        pass
    return b"".join(chunks)


# The server limits requests per client IP, and it is shared with other tests: each test
# here connects from a loopback address of its own (Linux routes all of 127/8 to lo), so
# its budget is its own whatever ran before it, in whatever order.
_client_addresses = ipaddress.ip_network("127.1.0.0/16").hosts()
_client = {"address": "127.0.0.1"}


@pytest.fixture(autouse=True)
def _own_client_address():
    _client["address"] = str(next(_client_addresses))


def exchange(base: str, data: bytes, timeout: float = 20) -> Reply:
    """Send raw bytes on a fresh connection, from this test's own client address, and read
    until the server closes it."""
    address = urlsplit(base)
    with socket.create_connection(
        (address.hostname, address.port), timeout=timeout, source_address=(_client["address"], 0)
    ) as sock:
        # The server may give up on us mid-send; whatever it answered is still readable.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(data)
        return parse_reply(read_all(sock))


def request(
    method: str,
    path: str,
    body: bytes = b"",
    headers: list[tuple[bytes, bytes]] | None = None,
    *,
    length: bool = True,
) -> bytes:
    head = [f"{method} {path} HTTP/1.1".encode(), b"Host: 127.0.0.1", b"Connection: close"]
    if length:
        head.append(b"Content-Length: " + str(len(body)).encode())
    head += [name + b": " + value for name, value in headers or [(b"User-Agent", UA)]]
    return b"\r\n".join(head) + b"\r\n\r\n" + body


def chunked(payload: bytes, size: int = 65536) -> bytes:
    pieces = [payload[i : i + size] for i in range(0, len(payload), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces) + b"0\r\n\r\n"


UA = DESKTOP_UA.encode()
TEN_MB = 10 * 1024 * 1024


@pytest.fixture
def base_url(server, survives) -> str:
    """The real server, for cases that need no website (and so no database flush after)."""
    return server.url


@pytest.fixture
def live_shop(live_url, survives) -> Website:
    """A website on the real server; its tracking code is fresh, so no process has it cached."""
    return Website.objects.create(domain=DOMAIN, name="Shop")


ANY_CODE = "ZV_AAAAAAAAAAA"  # well-formed, unknown: refused before any lookup matters


def good_body(website: Website, **fields) -> bytes:
    return json.dumps(
        {"code": website.tracking_code, "url": f"https://{DOMAIN}/", **fields}
    ).encode()


def assert_json_error(reply: Reply, status: int) -> None:
    assert reply.status == status, (reply.status, reply.body[:200])
    assert reply.headers["content-type"] == "application/json"
    assert reply.headers["access-control-allow-origin"] == "*"
    assert reply.json()["error"] == CODES[status]


def assert_alive(server) -> None:
    assert server.proc.poll() is None, "the server process died"
    with urllib.request.urlopen(server.url + "/healthz", timeout=10) as response:
        assert response.status == 200
        assert json.load(response)["status"] == "ok"


@pytest.fixture
def server_log(server):
    """The server's log from the start of this test on."""
    start = server.log.stat().st_size if server.log.exists() else 0
    return lambda: server.log.read_bytes()[start:].decode("utf-8", "replace")


@pytest.fixture
def survives(server, server_log):
    """After the test, the server is alive and healthy and logged no traceback meanwhile."""
    yield
    assert_alive(server)
    log = server_log()
    assert "Traceback" not in log, log[-3000:]
    assert "Internal Server Error" not in log


def test_a_normal_event_over_a_raw_socket_is_202(live_shop, live_url):
    reply = exchange(live_url, request("POST", "/e/collect", good_body(live_shop)))
    assert (reply.status, reply.json()) == (202, {"ok": True})
    assert Event.objects.count() == 1


def test_an_invalid_utf8_body_is_400_json(base_url):
    body = b'{"code": "' + ANY_CODE.encode() + b'", "url": "https://shop.example/\xff\xfe"}'
    assert_json_error(exchange(base_url, request("POST", "/e/collect", body)), 400)


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"[" * 100_000, 413),
        (b'{"a":' * 50_000, 413),
        (b"[" * 4000, 400),  # within 4 KiB: parsed, too deep for the parser, refused
        (b'{"a":' * 800, 400),
    ],
    ids=["brackets-100k", "objects-50k", "brackets-4k", "objects-800"],
)
def test_deeply_nested_json_is_refused_without_a_crash(base_url, server, body, status):
    assert_json_error(exchange(base_url, request("POST", "/e/collect", body)), status)
    assert_alive(server)


def test_a_10_mb_body_with_content_length_is_413_json(base_url, server):
    assert_json_error(exchange(base_url, request("POST", "/e/collect", b"x" * TEN_MB)), 413)
    assert_alive(server)


def test_a_10_mb_chunked_body_is_413_json(base_url, server):
    head = request("POST", "/e/collect", headers=[(b"User-Agent", UA)], length=False)
    head = head.replace(b"\r\n\r\n", b"\r\nTransfer-Encoding: chunked\r\n\r\n", 1)
    assert_json_error(exchange(base_url, head + chunked(b"x" * TEN_MB)), 413)
    assert_alive(server)


def test_a_small_chunked_event_is_recorded(live_shop, live_url):
    head = request("POST", "/e/collect", headers=[(b"User-Agent", UA)], length=False)
    head = head.replace(b"\r\n\r\n", b"\r\nTransfer-Encoding: chunked\r\n\r\n", 1)
    reply = exchange(live_url, head + chunked(good_body(live_shop), size=7))
    assert (reply.status, reply.json()) == (202, {"ok": True})


def test_a_10_mb_body_without_a_length_is_an_empty_body_and_the_rest_is_dropped(
    live_shop, live_url, server
):
    """HTTP/1.1: no Content-Length and no chunking means no body. The app answers the empty
    body 400 JSON; Daphne drops the 10 MB that follow (Connection: close)."""
    data = request("POST", "/e/collect", b"x" * TEN_MB, length=False)
    assert_json_error(exchange(live_url, data), 400)
    data = request("POST", "/e/collect", good_body(live_shop), length=False)
    assert_json_error(exchange(live_url, data), 400)
    assert Event.objects.count() == 0
    assert_alive(server)


@pytest.mark.parametrize(
    "header",
    [
        b"Content-Length: abc",
        b"Content-Length: -1",
        b"Content-Length: 5\r\nTransfer-Encoding: chunked",
    ],
)
def test_a_malformed_framing_gets_daphnes_bare_400(base_url, server, header):
    data = (
        b"POST /e/collect HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        + header
        + b"\r\n\r\n0\r\n\r\n"
    )
    reply = exchange(base_url, data)
    assert (reply.status, reply.body) == (400, b"")
    assert_alive(server)


def test_a_slow_body_is_answered_and_other_requests_are_served_meanwhile(live_shop, live_url):
    address = urlsplit(live_url)
    body = good_body(live_shop, url="https://shop.example/slow").ljust(200)  # JSON allows spaces
    slow: dict[str, Reply] = {}
    headers_sent = threading.Event()

    def dribble() -> None:
        with socket.create_connection((address.hostname, address.port), timeout=30) as sock:
            sock.sendall(request("POST", "/e/collect", b"").replace(b"Length: 0", b"Length: 200"))
            headers_sent.set()
            for i in range(0, 200, 10):  # 20 pieces, ~3 s in all: a deliberately slow client
                sock.sendall(body[i : i + 10])
                time.sleep(0.15)
            slow["reply"] = parse_reply(read_all(sock))

    sender = threading.Thread(target=dribble)
    sender.start()
    assert headers_sent.wait(10)
    started = time.monotonic()
    fast = exchange(live_url, request("POST", "/e/collect", good_body(live_shop)), timeout=5)
    elapsed = time.monotonic() - started
    still_dribbling = sender.is_alive()
    sender.join(30)
    assert (fast.status, fast.json()) == (202, {"ok": True})
    assert elapsed < 2, elapsed
    assert still_dribbling, "the slow body finished before the normal request: no proof"
    assert (slow["reply"].status, slow["reply"].json()) == (202, {"ok": True})
    assert sorted(Event.objects.values_list("path", flat=True)) == ["/", "/slow"]


def test_a_body_abandoned_halfway_leaves_the_server_serving(live_shop, live_url, server):
    address = urlsplit(live_url)
    with socket.create_connection((address.hostname, address.port), timeout=10) as sock:
        sock.sendall(request("POST", "/e/collect", b"").replace(b"Length: 0", b"Length: 200"))
        sock.sendall(good_body(live_shop)[:20])
    reply = exchange(live_url, request("POST", "/e/collect", good_body(live_shop)))
    assert reply.status == 202
    assert Event.objects.count() == 1
    assert_alive(server)


def test_a_64_kib_user_agent_is_refused_by_daphne_without_a_5xx(live_shop, live_url, server):
    """Over Twisted's 16 KiB line limit the connection is closed with no answer at all."""
    reply = exchange(
        live_url,
        request("POST", "/e/collect", good_body(live_shop), [(b"User-Agent", b"A" * 65536)]),
    )
    assert reply.status is None or 400 <= reply.status < 500, reply.status
    assert Event.objects.count() == 0
    assert_alive(server)


def test_headers_over_16_kib_in_total_are_a_bare_400(live_shop, live_url, server):
    headers = [(b"User-Agent", UA)] + [(b"X-Pad-%d" % i, b"v" * 100) for i in range(200)]
    reply = exchange(live_url, request("POST", "/e/collect", good_body(live_shop), headers))
    assert reply.status == 400
    assert Event.objects.count() == 0
    assert_alive(server)


def test_two_hundred_small_headers_are_fine(live_shop, live_url, server):
    headers = [(b"User-Agent", UA)] + [(b"X-H%d" % i, b"v") for i in range(200)]
    reply = exchange(live_url, request("POST", "/e/collect", good_body(live_shop), headers))
    assert (reply.status, reply.json()) == (202, {"ok": True})
    assert_alive(server)


MARKER = "ZenovayHostileMarker"
HOSTILE_AGENTS = [
    DESKTOP_UA + f" <script>alert('{MARKER}')</script>",
    DESKTOP_UA + " " + MARKER + "A" * 8192,
    f"Mozilla/5.0 (X11; Linux x86_64; {MARKER}) \xff\xfe\xe9 Chrome/131.0.0.0",  # latin-1 bytes
    f"Mozilla/5.0 {MARKER}\r\nX-Injected: 1",  # CRLF: the rest becomes another header
    f"Mozilla/5.0 {MARKER}\r\nContent-Length: 0\r\n\r\nGET /healthz HTTP/1.1",  # smuggling try
    f"Mozilla/5.0 {MARKER}\x00Chrome",  # NUL: Daphne's bare 400
    f"() {{ :; }}; echo {MARKER}",
]
HOSTILE_REFERRERS = [
    f"https://evil.example/<script>{MARKER}</script>",
    f"https://<script>{MARKER}.evil.example/",
    f"https://evil.example/\r\nSet-Cookie: {MARKER}=1",
    f"https://ev\x00il{MARKER}.example/",
    f"https://{MARKER}\udc80.example/",
    "https://" + MARKER + "a" * 8000 + ".example/",
    f"javascript:alert('{MARKER}')",
]


def every_stored_string() -> list[str]:
    """Every value in every table of the database, as text."""
    values = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")  # noqa: S608
            values += [str(value) for row in cursor.fetchall() for value in row]
    return values


def test_hostile_user_agents_are_answered_and_never_stored(live_shop, live_url, server):
    recorded = 0
    for case, agent in enumerate(HOSTILE_AGENTS):
        headers = [(b"User-Agent", agent.encode("latin-1"))]
        reply = exchange(live_url, request("POST", "/e/collect", good_body(live_shop), headers))
        if reply.status == 202:
            assert reply.json() in ({"ok": True}, {"ok": True, "ignored": "bot"}), case
            recorded += reply.json() == {"ok": True}
        else:  # refused by Daphne before the app: a bare 400
            assert (reply.status, reply.body) == (400, b""), (case, reply.status)
        assert_alive(server)
    assert Event.objects.count() == recorded
    for row in Event.objects.all():
        assert_sane_event(row, live_shop)
        assert len(row.browser) <= 50 and len(row.os) <= 50
    stored = every_stored_string()
    assert not [value for value in stored if MARKER in value]
    assert not [value for value in stored if "<script>" in value]


def test_hostile_referrers_are_answered_and_stored_only_as_valid_hosts(live_shop, live_url, server):
    recorded = 0
    for case, referrer in enumerate(HOSTILE_REFERRERS):
        body = good_body(live_shop, referrer=referrer)
        reply = exchange(live_url, request("POST", "/e/collect", body))
        assert reply.status in (202, 400, 413), (case, reply.status)
        if reply.status == 202:
            assert reply.json() == {"ok": True}, case
            recorded += 1
        else:
            assert_json_error(reply, reply.status)
        assert_alive(server)
    assert Event.objects.count() == recorded
    for row in Event.objects.all():
        assert_sane_event(row, live_shop)
        assert row.referrer_host in ("", "evil.example"), row.referrer_host
    assert not [value for value in every_stored_string() if MARKER in value]


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
def test_wrong_methods_on_collect_are_405_json(base_url, method):
    body = json.dumps({"code": ANY_CODE, "url": "https://shop.example/"}).encode()
    reply = exchange(base_url, request(method, "/e/collect", body))
    assert_json_error(reply, 405)
    assert reply.headers["allow"] == "POST"


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_unsafe_methods_on_read_endpoints_are_405_json_on_the_real_server(base_url, method):
    reply = exchange(base_url, request(method, f"/e/live/{ANY_CODE}", b"{}"))
    assert_json_error(reply, 405)
    assert reply.headers["allow"] == "GET, HEAD"


@pytest.mark.parametrize(
    "path",
    [
        "/e/live/%00",
        "/e/live/..",
        "/e/live/%2e%2e/%2e%2e/etc/passwd",
        "/e/realtime/%ff%fe",
        "/e/stats/%3Cscript%3E?period=%00",
        "/e/%F0%9F%98%80/status",
        "/e/live/" + "a" * 8000,
        "/e/stats/ZV_AAAAAAAAAAA?" + "&" * 1500,
    ],
)
def test_hostile_read_paths_on_the_real_server_are_json_errors(base_url, path):
    reply = exchange(base_url, request("GET", path, headers=[(b"User-Agent", UA)], length=False))
    assert reply.status in (400, 404), reply.status
    assert_json_error(reply, reply.status)
