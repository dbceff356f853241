"""Client IP behind proxies, country lookup and user-agent facts."""

from __future__ import annotations

import ipaddress

import pytest

from zenovay import clientinfo

PROXIES = (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("2001:db8::/32"))


@pytest.fixture
def proxies(settings):
    settings.ZENOVAY_TRUSTED_PROXIES = PROXIES
    settings.ZENOVAY_COUNTRY_HEADER = "CF-IPCountry"


def ip(value: str):
    return ipaddress.ip_address(value)


def test_without_trusted_proxies_the_peer_is_the_client(settings):
    settings.ZENOVAY_TRUSTED_PROXIES = ()
    assert clientinfo.client_ip("203.0.113.7", "198.51.100.1") == (ip("203.0.113.7"), False)


def test_a_spoofed_forwarded_for_from_an_untrusted_peer_is_ignored(proxies):
    assert clientinfo.client_ip("203.0.113.7", "1.2.3.4") == (ip("203.0.113.7"), False)


def test_behind_a_trusted_proxy_the_rightmost_untrusted_hop_is_the_client(proxies):
    forwarded = "6.6.6.6, 198.51.100.9, 10.1.1.1"  # the client wrote 6.6.6.6 itself
    assert clientinfo.client_ip("10.0.0.2", forwarded) == (ip("198.51.100.9"), True)


def test_a_trusted_peer_without_forwarded_for_is_the_client(proxies):
    assert clientinfo.client_ip("10.0.0.2", None) == (ip("10.0.0.2"), True)


def test_a_garbled_forwarded_for_entry_stops_the_chain(proxies):
    assert clientinfo.client_ip("10.0.0.2", "198.51.100.9, garbage") == (ip("10.0.0.2"), True)


def test_ipv6_and_ipv4_mapped_peers(proxies):
    assert clientinfo.client_ip("2001:db8::1", "2a00:1450::5") == (ip("2a00:1450::5"), True)
    assert clientinfo.client_ip("::ffff:203.0.113.7", None) == (ip("203.0.113.7"), False)


def test_an_unparseable_peer_is_no_ip():
    assert clientinfo.client_ip("not-an-ip", None) == (None, False)


def test_the_country_comes_from_the_offline_lookup():
    assert clientinfo.country_of(ip("81.2.69.160"), None, False) == "GB"
    assert clientinfo.country_of(ip("8.8.8.8"), None, False) == "US"


def test_private_and_missing_addresses_have_no_country():
    assert clientinfo.country_of(ip("10.0.0.1"), None, False) == ""
    assert clientinfo.country_of(None, None, False) == ""


def test_the_country_header_is_used_only_from_a_trusted_proxy(proxies):
    assert clientinfo.country_of(ip("81.2.69.160"), "de", True) == "DE"
    assert clientinfo.country_of(ip("81.2.69.160"), "DE", False) == "GB"


@pytest.mark.parametrize("header", ["XX", "T1", "", "<script>", "USA"])
def test_unknown_or_garbage_country_headers_mean_unknown(proxies, header):
    assert clientinfo.country_of(ip("81.2.69.160"), header, True) == ""


@pytest.mark.parametrize(
    ("ua", "device", "browser", "os"),
    [
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/131.0.0.0 Safari/537.36",
            "desktop",
            "Chrome",
            "Windows",
        ),
        (
            "Mozilla/5.0 (iPad; CPU OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
            "Gecko) Version/17.0 Mobile/15E148 Safari/604.1",
            "tablet",
            "Mobile Safari",
            "iOS",
        ),
        (
            "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/131.0.0.0 Mobile Safari/537.36",
            "mobile",
            "Chrome Mobile",
            "Android",
        ),
        (
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 14.1; rv:132.0) Gecko/20100101 Firefox/132.0",
            "desktop",
            "Firefox",
            "Mac OS X",
        ),
    ],
)
def test_device_class_browser_and_os(ua, device, browser, os):
    agent = clientinfo.parse_agent(ua)
    assert (agent.is_bot, agent.device, agent.browser, agent.os) == (False, device, browser, os)
