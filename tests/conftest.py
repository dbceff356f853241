"""Shared fixtures: websites, a clock, and real server processes for end-to-end tests."""

from __future__ import annotations

import asyncio
import asyncio.runners
import datetime as dt
import os
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from django.core.cache import cache

from tests.factories import DESKTOP_UA
from tests.servers import ServerProcess, end_other_sessions, free_port, server_env
from zenovay import push, salts, sites
from zenovay.models import Website

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page


def _cancel_all_tasks_within_bounds(loop: asyncio.AbstractEventLoop) -> None:
    """asyncio.Runner's closing step, bounded: a task that ignores its cancellation made
    closing a test's event loop wait for ever (seen twice in the PostgreSQL + Redis suite,
    once from the push ticker's wait_for, fixed). Such a task is named on stderr, so the
    bug shows, and the suite goes on instead of hanging until CI's time runs out."""
    tasks = [task for task in asyncio.all_tasks(loop) if not task.done()]
    if not tasks:
        return
    for task in tasks:
        task.cancel()
    _, stuck = loop.run_until_complete(asyncio.wait(tasks, timeout=10))
    for task in stuck:
        sys.stderr.write(f"\nA task ignored its cancellation when its loop closed: {task!r}\n")


asyncio.runners._cancel_all_tasks = _cancel_all_tasks_within_bounds


@pytest.fixture(autouse=True)
def _clean_process_state(settings):
    """Each test starts with an empty cache, salt memo and dirty set.

    In this process the ORM runs where the test's own transaction can be seen; server
    processes started by tests use the long-lived database thread (zenovay.infra.db).
    """
    settings.ZENOVAY_DB_THREAD = False
    # Tests send from one address what many visitors would; the limit's own tests set it.
    settings.ZENOVAY_COLLECT_PER_MINUTE = 0
    # No sealer starts with a ticker: a test that wants one sets it (tests/core/test_sealer.py).
    settings.ZENOVAY_SEAL_EVERY = 0
    cache.clear()
    sites.forget_recent()
    salts.forget_cached_salt()
    push.take_changed()
    yield
    cache.clear()


OWNER_PASSWORD = "pw-olivia-123"
BROWSER_TIMEOUT_MS = 15_000  # what a page gets to show something, on a busy machine


@pytest.fixture
def owner(db):
    """Olivia, a site owner."""
    from zenovay.owners import create_owner

    return create_owner("olivia", OWNER_PASSWORD)


@pytest.fixture
def teammate(db):
    """A site owner too, but of no website here: must never see Olivia's."""
    from zenovay.owners import create_owner

    return create_owner("tom", "pw-tom-123")


@pytest.fixture
def outsider(db):
    """Signed up, but not staff and owning nothing."""
    from django.contrib.auth import get_user_model

    return get_user_model().objects.create_user("eve", password="pw-eve-123")


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
    with django_db_blocker.unblock():
        end_other_sessions()


@pytest.fixture
def live_url(server, transactional_db) -> str:
    """The base URL of the running server; data the test writes is committed and visible."""
    return server.url


@pytest.fixture
def launch(transactional_db):
    """Start servers of this test's own: `launch("serve", ZENOVAY_X="1")` takes a kind of
    tests.servers.SERVERS and extra environment; all are stopped at teardown."""
    started: list[ServerProcess] = []

    def start(kind: str = "daphne", **env: str) -> ServerProcess:
        process = ServerProcess(port=free_port(), env=server_env(**env), server=kind)
        started.append(process)
        process.start()
        return process

    yield start
    for process in started:
        process.stop()


@pytest.fixture
def dashboard_server(transactional_db) -> Iterator[ServerProcess]:
    """A server of each test's own: a server process caches content type ids (the admin's
    change form does), and the flush after a transactional test recreates those rows with
    new ids, so a server shared by the module could log an admin action under a stale one."""
    port = free_port()
    process = ServerProcess(
        port=port, env=server_env(ZENOVAY_PUBLIC_URL=f"http://127.0.0.1:{port}")
    )
    process.start()
    yield process
    process.stop()


@pytest.fixture
def base(dashboard_server, transactional_db) -> str:
    """The server's URL; what the test writes is committed, so the server sees it."""
    return dashboard_server.url


@pytest.fixture
def context(browser: Browser, base: str) -> Iterator[BrowserContext]:
    context = browser.new_context(
        user_agent=DESKTOP_UA, viewport={"width": 1280, "height": 900}, color_scheme="light"
    )
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
    context.set_default_timeout(BROWSER_TIMEOUT_MS)
    yield context
    context.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()


@pytest.fixture
def own_server_url(launch):
    """A server of this test's own, for a test that spends a rate-limit budget: the shared
    server's budget for 127.0.0.1 belongs to every test that ran in the last minute."""
    return launch().url


def pytest_collection_modifyitems(config, items):
    if os.environ.get("ZENOVAY_SKIP_BROWSER"):
        skip = pytest.mark.skip(reason="ZENOVAY_SKIP_BROWSER is set")
        for item in items:
            if "browser" in item.keywords:
                item.add_marker(skip)


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    # Customer pages on "public" hosts (shop.example) call the server on 127.0.0.1; a real
    # Zenovay server is public, so Chromium's Local Network Access check is a test artefact.
    "--disable-features=LocalNetworkAccessChecks",
]


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium for one test module (Playwright's loop must not outlive it)."""
    from playwright.sync_api import sync_playwright

    # While Playwright's sync API runs, this thread has an asyncio loop marked as running,
    # which Django takes for async code; the ORM calls of browser tests are synchronous.
    with pytest.MonkeyPatch.context() as patch, sync_playwright() as playwright:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()
