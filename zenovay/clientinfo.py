"""What a request says about its sender: client IP, country, device, browser, bot-ness."""

from __future__ import annotations

import functools
import hashlib
import hmac
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import iptocc
import ua_parser
from crawlerdetect import CrawlerDetect
from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
UNKNOWN_COUNTRIES = {"", "XX", "T1", "ZZ"}


@functools.lru_cache(maxsize=4096)  # every request asks it of its peer and forwarded hops
def is_trusted(ip: IPAddress) -> bool:
    return any(ip.version == net.version and ip in net for net in settings.ZENOVAY_TRUSTED_PROXIES)


@receiver(setting_changed)
def _proxies_changed(*, setting: str, **kwargs: object) -> None:
    if setting == "ZENOVAY_TRUSTED_PROXIES":
        is_trusted.cache_clear()


@functools.lru_cache(maxsize=4096)  # every request parses its peer and forwarded addresses
def parse_ip(value: str | None) -> IPAddress | None:
    if not value:
        return None
    value = value.strip()
    if value.startswith("[") and "]" in value:  # "[2001:db8::1]:443"
        value = value[1 : value.index("]")]
    elif value.count(":") == 1:  # "203.0.113.7:443"
        value = value.split(":", 1)[0]
    try:
        ip = ipaddress.ip_address(value)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        return ip.ipv4_mapped
    return ip


def client_ip(peer: str | None, forwarded_for: str | None) -> tuple[IPAddress | None, bool]:
    """The client address and whether the TCP peer is a trusted proxy.

    Behind trusted proxies the right-most X-Forwarded-For entry that is not itself
    trusted is the client; entries left of it were written by the client and can lie.
    """
    peer_ip = parse_ip(peer)
    if peer_ip is None or not is_trusted(peer_ip):
        return peer_ip, False
    hops = [parse_ip(part) for part in (forwarded_for or "").split(",")]
    for hop in reversed(hops):
        if hop is None:
            break  # a garbled entry: stop trusting the chain here
        if not is_trusted(hop):
            return hop, True
    return peer_ip, True


def of_request(request) -> tuple[IPAddress | None, bool]:
    """The client address of a Django request, and whether its peer is a trusted proxy."""
    return client_ip(request.META.get("REMOTE_ADDR"), request.headers.get("X-Forwarded-For"))


def of_scope(scope: Mapping[str, Any]) -> IPAddress | None:
    """The client address of an ASGI connection (HTTP or WebSocket), read the same way."""
    peer = scope.get("client") or (None,)
    forwarded = None
    for name, value in scope.get("headers", ()):
        if name == b"x-forwarded-for":
            forwarded = value.decode("latin-1")
    return client_ip(peer[0], forwarded)[0]


def scope_is_secure(scope: Mapping[str, Any]) -> bool:
    """Whether the browser reached us over TLS: https/wss, or a trusted proxy says so
    (SECURE_PROXY_SSL_HEADER, read as Django's request.is_secure() reads it)."""
    if scope.get("scheme") in ("https", "wss"):
        return True
    if not settings.SECURE_PROXY_SSL_HEADER:
        return False
    meta_name, secure_value = settings.SECURE_PROXY_SSL_HEADER
    name = meta_name.removeprefix("HTTP_").lower().replace("_", "-").encode()
    sent = dict(scope.get("headers", ())).get(name, b"").decode("latin-1")
    return sent.split(",")[0].strip() == secure_value


def subscriber(ip: IPAddress) -> str:
    """What one client holds: an IPv4 address, or an IPv6 /64 (a subscriber gets one whole)."""
    if ip.version == 6:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def keyed_hash(kind: str, value: str) -> str:
    """Short and safe in a key whatever the value, and not reversible without the secret:
    what keys of rate limits and locks hold instead of addresses and names."""
    message = f"zenovay:{kind}:{value}".encode("utf-8", "surrogatepass")
    return hmac.new(settings.SECRET_KEY.encode(), message, hashlib.sha256).hexdigest()[:32]


def client_key(ip: IPAddress | None) -> str:
    """One client's key in rate-limit and connection counts: its keyed-hashed subscriber."""
    return keyed_hash("client", subscriber(ip)) if ip is not None else "unknown"


def country_of(ip: IPAddress | None, header_value: str | None, peer_trusted: bool) -> str:
    """ISO alpha-2 code, or "" when unknown."""
    if peer_trusted and settings.ZENOVAY_COUNTRY_HEADER and header_value is not None:
        code = header_value.strip().upper()
        return code if re.fullmatch(r"[A-Z]{2}", code) and code not in UNKNOWN_COUNTRIES else ""
    if ip is None:
        return ""
    try:
        code = iptocc.country_code(str(ip)) or ""
    except (ValueError, TypeError):
        return ""
    return "" if code.upper() in UNKNOWN_COUNTRIES else code.upper()


@dataclass(frozen=True, slots=True)
class Agent:
    is_bot: bool
    device: str  # "desktop", "mobile", "tablet" or ""
    browser: str
    os: str


_crawlers = CrawlerDetect()
_TABLET_RE = re.compile(r"iPad|Tablet|PlayBook|Silk|Kindle|(Android(?!.*Mobile))", re.I)
_MOBILE_RE = re.compile(r"Mobi|iPhone|iPod|Windows Phone|BlackBerry|Opera Mini", re.I)
_HEADLESS_RE = re.compile(r"Headless|PhantomJS|Electron|Puppeteer|Playwright|Lighthouse", re.I)


@functools.lru_cache(maxsize=4096)
def parse_agent(user_agent: str) -> Agent:
    """Bot check, device class, browser and OS family; cached since agents repeat a lot."""
    if len(user_agent) < 10 or _HEADLESS_RE.search(user_agent) or _crawlers.isCrawler(user_agent):
        return Agent(is_bot=True, device="", browser="", os="")
    result = ua_parser.parse(user_agent).with_defaults()
    if _TABLET_RE.search(user_agent):
        device = "tablet"
    elif _MOBILE_RE.search(user_agent):
        device = "mobile"
    else:
        device = "desktop"
    browser = result.user_agent.family if result.user_agent.family != "Other" else ""
    os_family = result.os.family if result.os.family != "Other" else ""
    return Agent(is_bot=False, device=device, browser=browser[:50], os=os_family[:50])
