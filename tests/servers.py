"""Start and stop real ASGI server processes on the test database."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_database_url() -> str:
    """The URL of the database pytest-django created, for other processes to use."""
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
    env = dict(os.environ)
    env.update(
        {
            "DATABASE_URL": test_database_url(),
            "DJANGO_ALLOWED_HOSTS": "*",
            "DJANGO_SECRET_KEY": settings.SECRET_KEY,
            # Tests send from one address what many visitors would; the limit's tests set it.
            "ZENOVAY_COLLECT_PER_MINUTE": "0",
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
