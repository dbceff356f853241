"""Sign-in throttling against an attacker: bursts, spellings of a name, the database pool,
who can lock whom out, and what the cache holds and the log says.

Concurrent attempts are real: each is posted from a thread and a Client of its own, and
the password checks the test wants in flight wait inside the check until it lets them go.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator

import pytest
from django.contrib.auth import SESSION_KEY
from django.core.cache.backends.locmem import LocMemCache
from django.db import connections
from django.http import HttpResponse
from django.test import Client, override_settings

from tests.conftest import OWNER_PASSWORD
from zenovay.infra import shared_cache, store
from zenovay.owners import create_owner
from zenovay.signin import ThrottledLoginMixin

PASSWORD = OWNER_PASSWORD
LOCKED = "Too many failed sign-in attempts"
# "victim2" as others write it; Django signs both in as "victim2" (NFKC).
FULLWIDTH_VICTIM2 = "\uff56\uff49\uff43\uff54\uff49\uff4d\uff12"
BOLD_VICTIM2 = "\U0001d42f\U0001d422\U0001d41c\U0001d42d\U0001d422\U0001d426" + "2"
TIMEOUT = 60  # seconds any wait may take before the test fails: the machine may be busy


@pytest.fixture(autouse=True)
def _fast_hashing(settings):
    """Fast hashes for the many attempts (users are created after this fixture, with it)."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def post_login(client: Client, password: str, username: str = "olivia", ip: str = "10.0.0.1"):
    return client.post("/login/", {"username": username, "password": password}, REMOTE_ADDR=ip)


def signed_in(client: Client) -> bool:
    return SESSION_KEY in client.session


class HeldChecks:
    """Password checks of one password wait inside the check until `release()`.

    Each notes whether its thread held a database connection while it was hashing.
    """

    def __init__(self, password: str, changed: threading.Condition) -> None:
        self.password = password
        self.changed = changed
        self.arrived = 0
        self.holding_a_connection = 0
        self._released = threading.Event()

    def wrap(self, check: Callable[..., bool]) -> Callable[..., bool]:
        def held(raw_password, encoded, setter=None):
            if raw_password == self.password:
                open_connections = [
                    c for c in connections.all(initialized_only=True) if c.connection is not None
                ]
                with self.changed:
                    self.arrived += 1
                    self.holding_a_connection += bool(open_connections)
                    self.changed.notify_all()
                assert self._released.wait(TIMEOUT)
            return check(raw_password, encoded, setter)

        return held

    def release(self) -> None:
        self._released.set()


class Burst:
    """Sign-in attempts posted at once, each from a thread and a Client of its own."""

    def __init__(self, changed: threading.Condition) -> None:
        self.changed = changed
        self.results: list[HttpResponse | BaseException] = []
        self._threads: list[threading.Thread] = []

    def post(self, password: str, username: str = "olivia", ip: str = "10.0.0.1") -> None:
        thread = threading.Thread(target=self._attempt, args=(password, username, ip))
        self._threads.append(thread)
        thread.start()

    def _attempt(self, password: str, username: str, ip: str) -> None:
        try:
            result: HttpResponse | BaseException = post_login(Client(), password, username, ip)
        except BaseException as exc:  # reported by the test, not lost in a thread
            result = exc
        finally:
            connections.close_all()  # back to the pool: the test client never closes them
        with self.changed:
            self.results.append(result)
            self.changed.notify_all()

    def wait_until(self, condition: Callable[[], bool]) -> None:
        with self.changed:
            assert self.changed.wait_for(condition, TIMEOUT)

    def join(self) -> None:
        for thread in self._threads:
            thread.join(TIMEOUT)
            assert not thread.is_alive()

    def pages(self) -> list[str]:
        """The pages answered so far (an exception fails the test here)."""
        assert not [r for r in self.results if isinstance(r, BaseException)]
        return [r.content.decode() for r in self.results]  # type: ignore[union-attr]

    def signed_in(self) -> int:
        return sum(r.status_code == 302 for r in self.results)  # type: ignore[union-attr]


@pytest.fixture
def changed() -> threading.Condition:
    return threading.Condition()


@pytest.fixture
def burst(changed) -> Iterator[Burst]:
    attempts = Burst(changed)
    yield attempts
    attempts.join()


@pytest.fixture
def hold(changed, monkeypatch, burst) -> Iterator[Callable[[str], HeldChecks]]:
    """Makes the checks of a password wait; all let go at the end, even if the test failed."""
    from django.contrib.auth import base_user

    made: list[HeldChecks] = []

    def holding(password: str) -> HeldChecks:
        checks = HeldChecks(password, changed)
        monkeypatch.setattr(base_user, "check_password", checks.wrap(base_user.check_password))
        made.append(checks)
        return checks

    yield holding
    for checks in made:
        checks.release()
    burst.join()


@pytest.fixture
def held(hold) -> HeldChecks:
    """The checks of the password "wrong" wait."""
    return hold("wrong")


@pytest.fixture
def olivia(transactional_db):
    """The owner, committed, so that the attempts' threads see her."""
    return create_owner("olivia", PASSWORD)


# --- 1. A concurrent burst gets no more checks than the limit


def test_a_burst_of_wrong_passwords_leaves_the_right_one_refused(olivia, held, burst, settings):
    settings.ZENOVAY_SIGNIN_CONCURRENCY = 100  # the throttle under test, not the busy refusal
    for _ in range(40):
        burst.post("wrong")
    burst.wait_until(lambda: held.arrived + len(burst.results) == 40)

    client = Client()
    response = post_login(client, PASSWORD)

    assert response.status_code == 200 and not signed_in(client)
    assert LOCKED in response.content.decode()
    assert held.arrived == settings.ZENOVAY_SIGNIN_FAILURES  # checked; the rest refused unchecked
    assert all(LOCKED in page for page in burst.pages())


def test_a_right_password_checked_while_a_burst_locks_the_name_is_refused(
    olivia, hold, burst, settings
):
    settings.ZENOVAY_SIGNIN_CONCURRENCY = 100
    right = hold(PASSWORD)
    burst.post(PASSWORD)
    burst.wait_until(lambda: right.arrived == 1)
    for _ in range(40):
        burst.post("wrong")
    burst.wait_until(lambda: len(burst.results) == 40)

    right.release()
    burst.join()

    assert burst.signed_in() == 0
    assert LOCKED in burst.pages()[-1]  # the right one answered last


# --- 2. Every spelling Django signs in shares the name's lock


@pytest.mark.parametrize("spelling", [FULLWIDTH_VICTIM2, BOLD_VICTIM2])
def test_a_spelling_that_signs_in_as_a_locked_name_is_locked_too(client, db, settings, spelling):
    create_owner("victim2", PASSWORD)
    settings.ZENOVAY_SIGNIN_USERNAME_FAILURES = 10
    for n in range(10):
        post_login(client, "wrong", username="victim2", ip=f"10.5.0.{n}")

    response = post_login(client, PASSWORD, username=spelling, ip="10.6.0.1")

    assert LOCKED in response.content.decode() and not signed_in(client)


def test_the_spelling_unlocked_signs_in_as_the_name(client, db):
    create_owner("victim2", PASSWORD)
    assert post_login(client, PASSWORD, username=FULLWIDTH_VICTIM2).status_code == 302
    assert signed_in(client)


def test_a_spelling_of_a_name_locked_for_one_address_is_locked_there(client, db):
    create_owner("victim2", PASSWORD)
    for _ in range(5):
        post_login(client, "wrong", username="victim2")
    response = post_login(client, PASSWORD, username=BOLD_VICTIM2)
    assert LOCKED in response.content.decode() and not signed_in(client)


# --- 3. Sign-ins cannot take the database from everyone else


def test_a_password_is_checked_without_holding_a_database_connection(olivia, held, burst):
    for n in range(3):
        burst.post("wrong", ip=f"10.1.0.{n}")
    burst.wait_until(lambda: held.arrived == 3)
    assert held.holding_a_connection == 0


def test_sign_ins_past_the_checks_in_flight_are_refused_at_once(olivia, held, burst, settings):
    for n in range(30):
        burst.post("wrong", ip=f"10.2.0.{n}")
    burst.wait_until(lambda: held.arrived + len(burst.results) == 30)

    assert held.arrived == settings.ZENOVAY_SIGNIN_CONCURRENCY
    assert all(ThrottledLoginMixin.busy_message in page for page in burst.pages())


def test_the_dashboard_and_the_admin_answer_during_a_flood_of_sign_ins(olivia, held, burst):
    owner = Client()
    owner.force_login(olivia)
    for n in range(30):
        burst.post("wrong", ip=f"10.3.0.{n}")
    burst.wait_until(lambda: held.arrived + len(burst.results) == 30)

    statuses: list[int | BaseException] = []

    def browse() -> None:  # a thread of its own: a connection from the pool, as a request
        try:
            statuses.extend(owner.get(path).status_code for path in ["/dashboard/", "/admin/"])
        except BaseException as exc:
            statuses.append(exc)
        finally:
            connections.close_all()

    thread = threading.Thread(target=browse)
    thread.start()
    thread.join(TIMEOUT)
    assert statuses == [200, 200]


# --- 4. Who can lock whom out


def test_failures_from_one_address_do_not_lock_the_name_elsewhere(client, olivia):
    for _ in range(5):
        post_login(client, "wrong", ip="10.7.0.1")
    assert LOCKED in post_login(client, PASSWORD, ip="10.7.0.1").content.decode()

    response = post_login(client, PASSWORD, ip="10.7.0.2")

    assert response.status_code == 302 and signed_in(client)


def test_an_address_hammering_a_locked_name_does_not_lock_it_for_everyone(client, olivia):
    for _ in range(150):
        post_login(client, "wrong", ip="10.8.0.1")
    response = post_login(client, PASSWORD, ip="10.8.0.2")
    assert response.status_code == 302 and signed_in(client)


def test_a_burst_from_one_address_does_not_lock_the_name_for_everyone(olivia, burst, settings):
    settings.ZENOVAY_SIGNIN_CONCURRENCY = 200
    for _ in range(150):
        burst.post("wrong", ip="10.8.1.1")
    burst.join()
    assert burst.signed_in() == 0
    assert post_login(Client(), PASSWORD, ip="10.8.1.2").status_code == 302


def test_an_address_is_locked_whatever_usernames_it_tries(client, olivia, settings):
    for n in range(settings.ZENOVAY_SIGNIN_IP_FAILURES):
        post_login(client, "guess", username=f"user{n}")

    assert LOCKED in post_login(client, PASSWORD).content.decode() and not signed_in(client)
    post_login(client, PASSWORD, ip="10.0.0.2")  # the owner elsewhere is not locked out
    assert signed_in(client)


def test_an_address_that_failed_on_a_few_names_can_still_sign_in_to_another(client, olivia):
    for n in range(4):
        for _ in range(4):
            post_login(client, "guess", username=f"user{n}")
    assert post_login(client, PASSWORD).status_code == 302


def test_a_name_is_locked_for_everyone_past_its_own_threshold(client, olivia, settings):
    for n in range(settings.ZENOVAY_SIGNIN_USERNAME_FAILURES):
        post_login(client, "wrong", ip=f"10.9.{n // 200}.{n % 200}")

    response = post_login(client, PASSWORD, ip="10.10.0.1")

    assert LOCKED in response.content.decode() and not signed_in(client)


def test_an_ipv6_client_is_counted_as_its_64(client, olivia):
    for n in range(5):
        post_login(client, "wrong", ip=f"2001:db8:1:2::{n + 1}")
    response = post_login(client, PASSWORD, ip="2001:db8:1:2:ffff::1")
    assert LOCKED in response.content.decode() and not signed_in(client)


# --- What the cache holds and what the log says


def signin_keys() -> list[str]:
    backend = shared_cache.backend()
    if isinstance(backend, LocMemCache):
        return [key for key in backend._cache if "signin" in key]
    client = backend._cache.get_client()  # type: ignore[attr-defined]
    return [key.decode() for key in client.scan_iter(match="*signin*")]


def test_the_cache_holds_no_client_address_nor_username(client, olivia):
    post_login(client, "wrong", ip="203.0.113.77")
    post_login(client, "wrong", ip="2001:db8:77::1")

    keys = signin_keys()

    assert keys
    assert not [key for key in keys if "203.0.113" in key or "2001:db8" in key or "olivia" in key]


@pytest.fixture
def zenovay_log(caplog) -> Iterator[pytest.LogCaptureFixture]:
    """Records of the "zenovay" loggers (they do not propagate to the root)."""
    logger = logging.getLogger("zenovay")
    logger.addHandler(caplog.handler)
    yield caplog
    logger.removeHandler(caplog.handler)


REDIS_DOWN = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": "redis://127.0.0.1:1/0",  # nothing listens there: refused at once
        "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
    }
}


def test_with_the_cache_down_sign_in_works_and_the_log_has_one_warning(
    client, olivia, zenovay_log, monkeypatch
):
    monkeypatch.setattr(store.breaker, "until", 0.0)
    monkeypatch.setattr(store, "BREAK_SECONDS", 3600.0)  # one outage for the whole test
    with override_settings(CACHES=REDIS_DOWN):
        for _ in range(6):
            post_login(client, "wrong")
        response = post_login(client, PASSWORD)

    assert response.status_code == 302 and signed_in(client)
    records = [r for r in zenovay_log.records if r.name.startswith("zenovay")]
    assert [(r.levelno, r.exc_info) for r in records] == [(logging.WARNING, None)]
