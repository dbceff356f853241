"""`POST /e/collect`: the one endpoint every pageview of every site hits.

`answer()` is the whole endpoint apart from HTTP framing: method, per-client limit, body
size, validation, identity, then the group commit (`zenovay.writer`), and the JSON answer
with its CORS headers. Two adapters frame it:

- `CollectFastPath`, an ASGI app in front of Django, for real servers: no request
  object, no middleware chain, no thread hop per request (the body was already read,
  within its limits, by `zenovay.infra.guard`). It applies what Django's middleware
  would: the host check, the CORS preflight, the security headers.
- `api.views.collect`, the Django view at the same URL, for the test client and for
  anything the fast path hands on (an HTTPS redirect).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from django.conf import settings
from django.core.signals import setting_changed
from django.db import DatabaseError
from django.dispatch import receiver
from django.http.request import split_domain_port, validate_host
from django.utils import timezone

from api.decorators import CORS_HEADERS
from api.errors import CODES
from zenovay import clientinfo, ingest, push, salts, sites, writer
from zenovay.infra import db, store
from zenovay.payload import MAX_BODY_BYTES, IngestError, parse_payload

PATHS = ("/e/collect", "/e/collect/")


@dataclass(slots=True)
class Answer:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


def _json(status: int, data: object, **headers: str) -> Answer:
    return Answer(status, json.dumps(data).encode(), {**CORS_HEADERS, **headers})


def _error(status: int, message: str, **headers: str) -> Answer:
    return _json(status, {"error": CODES[status], "message": message}, **headers)


async def answer(
    *, method: str, headers: Mapping[str, str], body: bytes, peer: str | None
) -> Answer:
    """The response to one collect request; `headers` are looked up by lower-case name."""
    if method == "OPTIONS":
        return Answer(204, b"", {**CORS_HEADERS, "Allow": "OPTIONS, POST"})
    if method != "POST":
        return _error(405, "Use POST here.", Allow="POST")
    ip, trusted = clientinfo.client_ip(peer, headers.get("x-forwarded-for"))
    refused = await _over_limit(ip)
    if refused is not None:
        return refused
    if len(body) > MAX_BODY_BYTES:
        return _error(413, f"The body is over {MAX_BODY_BYTES} bytes.")
    country_header = settings.ZENOVAY_COUNTRY_HEADER
    client = ingest.Client(
        ip=ip,
        country=clientinfo.country_of(
            ip, headers.get(country_header.lower()) if country_header else None, trusted
        ),
        user_agent=headers.get("user-agent", "")[:1000],
        do_not_track=headers.get("dnt") == "1",
        origin=headers.get("origin"),
    )
    try:
        ignored = await _record(body, client)
    except IngestError as exc:  # it carries its own code: bad_request, forbidden, ...
        return _json(exc.status, {"error": exc.code, "message": exc.message})
    except DatabaseError:
        return _error(503, "The analytics database is unavailable; try again soon.", **_RETRY)
    if ignored:
        return _json(202, {"ok": True, "ignored": ignored})
    push.ensure_ticker()  # this process pushes the change to viewers anywhere
    return _json(202, {"ok": True})


_RETRY = {"Retry-After": "5"}


async def _over_limit(ip: clientinfo.IPAddress | None) -> Answer | None:
    limit = settings.ZENOVAY_COLLECT_PER_MINUTE
    if limit <= 0:
        return None
    verdict = await store.get_store().hit(f"collect:{clientinfo.client_key(ip)}", limit)
    if verdict.allowed:
        return None
    wait = str(verdict.retry_after)
    return _error(429, f"Over {limit} events a minute; retry in {wait}s.", **{"Retry-After": wait})


async def _record(body: bytes, client: ingest.Client) -> str | None:
    """Validate, identify and write through the group commit; the reason when dropped.
    Only what this process does not know yet (the website, the salt) is fetched on the
    database thread; the rest runs here."""
    payload = parse_payload(body)
    website = sites.recent_by_code(payload.code)
    if website is None:
        website = await db.run(sites.by_code, payload.code)
    website = ingest.check_source(website or None, payload, client)
    now = timezone.now()
    salt = salts.known_salt(now) or await db.run(salts.salt_for, now)
    accepted = ingest.accept(website=website, payload=payload, client=client, now=now, salt=salt)
    if isinstance(accepted, str):
        return accepted
    await writer.submit(accepted)
    return None


# --- The ASGI fast path


class CollectFastPath:
    """ASGI: collect requests answered here, everything else handed to `app` (Django)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if (
            scope["type"] != "http"
            or scope["path"] not in PATHS
            or (settings.SECURE_SSL_REDIRECT and not clientinfo.scope_is_secure(scope))
        ):
            await self.app(scope, receive, send)
            return
        headers = {
            name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]
        }
        if not _host_allowed(headers.get("host", "")):
            reply = _error(400, "The request is malformed.")
        elif scope["method"] == "OPTIONS" and "access-control-request-method" in headers:
            reply = Answer(200, b"", _preflight_headers())
        else:
            body = await _body(receive)
            peer = (scope.get("client") or (None,))[0]
            reply = await answer(method=scope["method"], headers=headers, body=body, peer=peer)
        await _send(
            send, reply, head=scope["method"] == "HEAD", secure=clientinfo.scope_is_secure(scope)
        )


async def _body(receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


@functools.lru_cache(maxsize=1024)
def _host_allowed(host: str) -> bool:
    """Django's own check of the Host header against ALLOWED_HOSTS (a 400 when it fails)."""
    domain, _ = split_domain_port(host)
    allowed = settings.ALLOWED_HOSTS or (
        ["localhost", "127.0.0.1", "[::1]"] if settings.DEBUG else []
    )
    return bool(domain) and validate_host(domain, allowed)


def _preflight_headers() -> dict[str, str]:
    """What django-cors-headers answers a preflight with, from the same settings."""
    return {
        "Access-Control-Allow-Origin": "*",
        "Access-Control-Allow-Methods": ", ".join(settings.CORS_ALLOW_METHODS),
        "Access-Control-Allow-Headers": ", ".join(settings.CORS_ALLOW_HEADERS),
        "Access-Control-Expose-Headers": ", ".join(settings.CORS_EXPOSE_HEADERS),
        "Access-Control-Max-Age": str(settings.CORS_PREFLIGHT_MAX_AGE),
        "Vary": "origin",
    }


@functools.cache
def _fixed_headers(secure: bool) -> list[tuple[bytes, bytes]]:
    """The headers every fast-path answer carries, encoded once: CORS, and what Django's
    security and clickjacking middleware add, from the same settings."""
    headers = {**CORS_HEADERS, "X-Frame-Options": settings.X_FRAME_OPTIONS}
    if settings.SECURE_CONTENT_TYPE_NOSNIFF:
        headers["X-Content-Type-Options"] = "nosniff"
    if settings.SECURE_REFERRER_POLICY:
        headers["Referrer-Policy"] = settings.SECURE_REFERRER_POLICY
    if settings.SECURE_CROSS_ORIGIN_OPENER_POLICY:
        headers["Cross-Origin-Opener-Policy"] = settings.SECURE_CROSS_ORIGIN_OPENER_POLICY
    if secure and settings.SECURE_HSTS_SECONDS:
        value = f"max-age={settings.SECURE_HSTS_SECONDS}"
        if settings.SECURE_HSTS_INCLUDE_SUBDOMAINS:
            value += "; includeSubDomains"
        if settings.SECURE_HSTS_PRELOAD:
            value += "; preload"
        headers["Strict-Transport-Security"] = value
    return _encoded(headers)


def _encoded(headers: Mapping[str, str]) -> list[tuple[bytes, bytes]]:
    return [(name.lower().encode(), value.encode("latin-1")) for name, value in headers.items()]


@receiver(setting_changed)
def _settings_changed(**kwargs: object) -> None:
    _fixed_headers.cache_clear()
    _host_allowed.cache_clear()


async def _send(send, reply: Answer, *, head: bool, secure: bool) -> None:
    own = {k: v for k, v in reply.headers.items() if k not in CORS_HEADERS}
    if reply.body or reply.status != 204:
        own["Content-Type"] = "application/json"
    own["Content-Length"] = str(len(reply.body))
    headers = _fixed_headers(secure) + _encoded(own)
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head else reply.body})
