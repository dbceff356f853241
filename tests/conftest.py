"""Shared fixtures: websites, a clock, and real server processes for end-to-end tests."""

from __future__ import annotations

import datetime as dt
import os

import pytest
from django.core.cache import cache

from tests.servers import ServerProcess, free_port, server_env
from zenovay import live, salts
from zenovay.models import Website

DESKTOP_UA = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)


@pytest.fixture(autouse=True)
def _clean_process_state():
    """Each test starts with an empty cache, salt memo and dirty set."""
    cache.clear()
    salts.forget_cached_salt()
    live.take_changed()
    yield
    cache.clear()


@pytest.fixture
def website(db) -> Website:
    return Website.objects.create(domain="shop.example", name="Shop")


@pytest.fixture
def other_website(db) -> Website:
    return Website.objects.create(domain="blog.example", name="Blog")


@pytest.fixture
def now() -> dt.datetime:
    return dt.datetime(2026, 3, 10, 12, 0, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="session")
def server(django_db_setup, django_db_blocker):
    """A real Daphne process serving the test database, for browser and socket tests."""
    process = ServerProcess(port=free_port(), env=server_env())
    process.start()
    yield process
    process.stop()


@pytest.fixture
def live_url(server, transactional_db) -> str:
    """The base URL of the running server; data the test writes is committed and visible."""
    return server.url


def pytest_collection_modifyitems(config, items):
    if os.environ.get("ZENOVAY_SKIP_BROWSER"):
        skip = pytest.mark.skip(reason="ZENOVAY_SKIP_BROWSER is set")
        for item in items:
            if "browser" in item.keywords:
                item.add_marker(skip)
