"""Real processes for the tests that need them and for bench/: ASGI servers, a private
redis-server, a private PostgreSQL cluster, and free ports to put them on.

One launcher for both: the fault tests and the benchmarks start servers the same way, so a
figure measured in bench/ is measured on the server the tests check. Only the standard
library is imported at the top (bench/ imports this module before its virtualenv is set
up); what needs Django (the test database's URL, its settings) imports it when called.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PG_BIN = Path("/usr/lib/postgresql/15/bin")


class Unavailable(RuntimeError):
    """A program this launcher needs is not installed (tests skip, benchmarks exit)."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(check: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout} s")
        time.sleep(0.05)


def test_database_url() -> str:
    """The URL of the database pytest-django created, for other processes to use."""
    from django.db import connection

    db = connection.settings_dict
    if db["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{db['NAME']}"
    user = db.get("USER") or ""
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    host = db.get("HOST") or "127.0.0.1"
    port = db.get("PORT") or 5432
    return f"postgres://{user}{password}@{host}:{port}/{db['NAME']}"


def end_other_sessions(timeout: float = 5.0) -> None:
    """Before the test database is dropped: PostgreSQL ends a stopped server's sessions a
    moment after it exits, and a pooled connection of another thread may still be open;
    either makes DROP DATABASE fail ("being accessed by other users"). Wait for the
    first, then end whatever is left."""
    from django.db import connection

    if connection.vendor != "postgresql":
        return
    others = "FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
    deadline = time.monotonic() + timeout
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute(f"SELECT count(*) {others}")
            if cursor.fetchone()[0] == 0:
                return
            time.sleep(0.05)
        cursor.execute(f"SELECT pg_terminate_backend(pid) {others}")


def server_env(**extra: str) -> dict[str, str]:
    """The environment of a server process on the test database, with the test's settings."""
    from django.conf import settings

    env = dict(os.environ)
    env.update(
        {
            "DATABASE_URL": test_database_url(),
            "DJANGO_ALLOWED_HOSTS": "*",
            "DJANGO_SECRET_KEY": settings.SECRET_KEY,
            # Tests send from one address what many visitors would; the limit's tests set it.
            "ZENOVAY_COLLECT_PER_MINUTE": "0",
            # No sealer writing beside the tests, which empty the tables between them.
            "ZENOVAY_SEAL_EVERY": "0",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra)
    return env


APP = "zenovay.asgi:application"
# uvicorn's options by server name; "uvicorn-plain" is the one the README recommends:
# widget frames are tiny, and a compression context per socket costs more memory than
# it saves bandwidth.
UVICORN_OPTIONS: dict[str, list[str]] = {
    "uvicorn": [],
    "uvicorn-plain": ["--ws-per-message-deflate", "false"],
}
# "serve" is `manage.py serve`: uvicorn under Zenovay's own limits (zenovay.infra.server).
SERVERS = ["serve", "daphne", *UVICORN_OPTIONS]
# Not Zenovay: bench/bare.py on the same uvicorn and parser, the ceiling of bench/ingest.py.
BARE = ["-m", "uvicorn", "bench.bare:app", "--http", "httptools", "--no-access-log",
        "--log-level", "warning", "--lifespan", "off"]  # fmt: skip


class ServerProcess:
    """An ASGI server (see SERVERS) on 127.0.0.1:port, waited for until it answers."""

    def __init__(self, *, port: int, env: dict[str, str], server: str = "daphne") -> None:
        self.port = port
        self.env = env
        self.server = server
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen | None = None
        self.log = ROOT / "var" / f"server-{port}.log"

    def command(self) -> list[str]:
        port = str(self.port)
        if self.server == "serve":
            return [sys.executable, "manage.py", "serve", "--no-setup", f"127.0.0.1:{port}"]
        if self.server == "bare":
            return [sys.executable, *BARE, "--host", "127.0.0.1", "--port", port]
        if self.server == "daphne":
            return [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", port, "-v", "0", APP]
        uvicorn = [sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--port", port]
        return [*uvicorn, "--log-level", "warning", *UVICORN_OPTIONS[self.server], APP]

    def start(self, timeout: float = 20.0) -> None:
        self.log.parent.mkdir(exist_ok=True)
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                self.command(), cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=1):
                    return
            except urllib.error.HTTPError:
                return  # it answers, even if something behind it is down
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"server did not answer within {timeout}s")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@contextlib.contextmanager
def running(process: ServerProcess, timeout: float = 20.0) -> Iterator[ServerProcess]:
    """`process` started, and stopped on the way out."""
    try:
        process.start(timeout)
        yield process
    finally:
        process.stop()


class RedisProcess:
    """A throwaway redis-server on its own port: no persistence, so a restart forgets all."""

    def __init__(self, port: int | None = None, *options: str) -> None:
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.options = options  # e.g. "--maxclients", "20000"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 10.0) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise Unavailable("redis-server is not installed")
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning", *self.options],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_until(self.ping, timeout, "redis-server PING")

    def ping(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"redis-server on port {self.port} exited")  # e.g. port taken
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)  # ends a frozen one too
            self.proc.wait(timeout=10)

    def freeze(self) -> None:
        """Redis hung, not dead (SIGSTOP): its port still accepts connections, but nothing
        is answered; no error, no reset."""
        assert self.proc is not None and self.proc.poll() is None
        self.proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)

    @contextlib.contextmanager
    def frozen(self) -> Iterator[None]:
        """Frozen inside the block, thawed on the way out, also when the test fails (and
        kill() ends it in any case), so that nothing ever hangs on it."""
        self.freeze()
        try:
            yield
        finally:
            self.thaw()


@contextlib.contextmanager
def private_redis(*options: str) -> Iterator[RedisProcess]:
    """A RedisProcess on a free port, killed on the way out."""
    process = RedisProcess(None, *options)
    try:
        process.start()
        yield process
    finally:
        process.kill()


class PostgresCluster:
    """A private PostgreSQL 15 cluster in a temporary directory, on its own port."""

    def __init__(self) -> None:
        if not (PG_BIN / "postgres").exists():
            raise Unavailable(f"PostgreSQL binaries not found in {PG_BIN}")
        self.root = Path(tempfile.mkdtemp(prefix="zenovay-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.running = False
        if os.geteuid() == 0:  # postgres refuses to run as root
            shutil.chown(self.root, "postgres", "postgres")
            self._prefix = ["runuser", "-u", "postgres", "--"]
        else:
            self._prefix = []

    def url(self, database: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str, timeout: float = 60.0) -> None:
        result = subprocess.run(
            [*self._prefix, *args], capture_output=True, text=True, timeout=timeout, check=False
        )
        assert result.returncode == 0, f"{args[0]} failed: {result.stdout}{result.stderr}"

    def init(self) -> None:
        self._run(str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres",
                  "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync")  # fmt: skip

    def start(self) -> None:
        # fsync=off: this cluster is thrown away; what is tested is the app, not the disk.
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c max_connections=50"
        )
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "log"),
                  "-w", "-t", "30", "-o", options, "start")  # fmt: skip
        self.running = True

    def stop(self, mode: str = "fast") -> None:
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", "30",
                  "stop")  # fmt: skip
        self.running = False

    def query(self, database: str, sql: str, *params: object) -> list[tuple]:
        import psycopg

        with psycopg.connect(self.url(database), connect_timeout=3, autocommit=True) as conn:
            cursor = conn.execute(sql, params)
            return cursor.fetchall() if cursor.description else []

    def cleanup(self) -> None:
        try:
            # Also after a start that timed out: the postmaster may be up all the same.
            if self.running or (self.data / "postmaster.pid").exists():
                self.stop("immediate")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
