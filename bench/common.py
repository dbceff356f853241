"""Helpers shared by the benchmarks in bench/: venv, databases, servers, Redis, wrk, /proc.

Importing this module puts the project root first on sys.path instead of bench/ (where
the script being run lives), so that bench/api.py does not shadow the `api` app and
`tests.servers` can be imported: the servers and the private redis-server are started by
the same launchers as the tests' (tests/servers.py).
"""

from __future__ import annotations

import json
import math
import os
import resource
import secrets
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
VENV_PYTHON = ROOT / ".venv" / "bin" / "python"
VAR = ROOT / "var"
DOMAIN = "bench.example"
DEFAULT_PG_ADMIN = "postgres://postgres@127.0.0.1:5432/postgres"
IDLE_CPU_SECONDS = 0.02  # server CPU per half second below which it is idle
BUSY_LOAD = 0.5  # a 1-minute load average above this means something else is running

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH_DIR]
sys.path.insert(0, str(ROOT))

from tests.servers import (  # noqa: E402  (the standard library only: fine before ensure_venv)
    ServerProcess,
    Unavailable,
    free_port,
    private_redis,
    running,
)


def ensure_venv() -> None:
    """Re-run the current script under the project's virtualenv unless already there."""
    if VENV_PYTHON.exists() and Path(sys.prefix).resolve() != VENV_PYTHON.parent.parent.resolve():
        script = str(Path(sys.argv[0]).resolve())
        os.execv(VENV_PYTHON, [str(VENV_PYTHON), script, *sys.argv[1:]])  # noqa: S606


def exit_on_sigterm() -> None:
    """SIGTERM exits through SystemExit, so servers, Redis and databases are cleaned up."""

    def handler(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


def raise_open_files_limit() -> int:
    """Soft RLIMIT_NOFILE up to the hard limit (inherited by servers started later)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else 1 << 20
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def uptime() -> str:
    """`uptime`'s line: how busy the machine is while a benchmark runs."""
    done = subprocess.run(["uptime"], capture_output=True, text=True, check=False)
    return done.stdout.strip() or f"load average {os.getloadavg()}"


def code_version() -> str:
    """The commit the app code is at (and "+changes" when zenovay/, api/ or widgets/
    differ from it): the code under test can change between two runs of a benchmark."""
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--", "zenovay", "api", "widgets"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    ).stdout.strip()
    return (head or "unknown") + ("+changes" if dirty else "")


# --- /proc


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_rss_kib(pid: int) -> int:
    """VmRSS of a process in KiB, from /proc/PID/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def wait_idle(pid: int, timeout: float = 30.0) -> None:
    """Until the process stops using CPU (requests a load generator abandoned still run)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        before = process_cpu_seconds(pid)
        time.sleep(0.5)
        if process_cpu_seconds(pid) - before < IDLE_CPU_SECONDS:
            return


# --- Databases: the server's environment, and a way to count stored events.


@dataclass(frozen=True)
class Database:
    name: str
    env: dict[str, str]
    count_events: Callable[[str], int]  # events whose page was on this host
    url: str = ""  # PostgreSQL only


COUNT_SQL = "SELECT count(*) FROM zenovay_event WHERE hostname = {}"


def _sqlite_count(path: Path, host: str) -> int:
    with closing(sqlite3.connect(path, timeout=30)) as conn:
        return conn.execute(COUNT_SQL.format("?"), (host,)).fetchone()[0]


@contextmanager
def sqlite_database(keep: bool = False) -> Iterator[Database]:
    """The embedded default: no DATABASE_URL, zenovay.sqlite3 in ZENOVAY_VAR_DIR."""
    directory = Path(tempfile.mkdtemp(prefix="zenovay-bench-"))
    try:
        yield Database(
            name="sqlite",
            env={"ZENOVAY_VAR_DIR": str(directory)},
            count_events=lambda host: _sqlite_count(directory / "zenovay.sqlite3", host),
        )
    finally:
        if keep:
            print(f"  kept {directory}")
        else:
            shutil.rmtree(directory, ignore_errors=True)


def pg_execute(url: str, statement: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(statement)


def pg_count(url: str, host: str) -> int:
    import psycopg

    with psycopg.connect(url) as conn:
        row = conn.execute(COUNT_SQL.format("%s"), (host,)).fetchone()
        return row[0] if row else 0


def pg_url(name: str, admin_url: str = DEFAULT_PG_ADMIN) -> str:
    return urlunsplit(urlsplit(admin_url)._replace(path=f"/{name}"))


@contextmanager
def postgres_database(url: str, keep: bool = False) -> Iterator[Database]:
    """A database made for this run only (its name must contain "bench"), then dropped."""
    name = urlsplit(url).path.lstrip("/")
    if "bench" not in name or not name.replace("_", "").isalnum():
        raise SystemExit(f"refusing to recreate database {name!r}: use a name with 'bench'")
    admin = urlunsplit(urlsplit(url)._replace(path="/postgres"))
    pg_execute(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    pg_execute(admin, f'CREATE DATABASE "{name}"')
    try:
        yield Database(
            name="postgres",
            env={"DATABASE_URL": url},
            count_events=lambda host: pg_count(url, host),
            url=url,
        )
    finally:
        if keep:
            print(f"  kept database {name}")
        else:
            pg_execute(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- Redis: a private, non-persistent redis-server, or one given by URL.


@contextmanager
def redis_server(url: str = "") -> Iterator[str]:
    """`url` as is when given (flushed first); else a private redis-server on a free port."""
    if url:
        subprocess.run(["redis-cli", "-u", url, "FLUSHDB"], capture_output=True, check=False)
        yield url
        return
    try:
        with private_redis("--maxclients", "20000") as process:
            yield process.url
    except Unavailable as missing:
        raise SystemExit(f"{missing} (or pass --redis-url)") from None


# --- The server's environment, Django management commands and server processes.


def server_env(
    database: Database, redis_url: str = "", extra: dict[str, str] | None = None
) -> dict[str, str]:
    """Production-like settings (DEBUG off), bench views on, 127.0.0.1 a trusted proxy."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "zenovay.settings",
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
            "DJANGO_ALLOWED_HOSTS": "*",
            "DJANGO_DEBUG": "0",
            "ZENOVAY_BENCH_VIEWS": "1",
            "ZENOVAY_TRUSTED_PROXIES": "127.0.0.1/32",
            # One load generator stands for many clients: no per-client caps.
            "ZENOVAY_COLLECT_PER_MINUTE": "0",
            "ZENOVAY_CONNECTIONS_PER_IP": "1000000",
            "PYTHONUNBUFFERED": "1",
        }
    )
    if redis_url:
        env["REDIS_URL"] = redis_url
    env.update(database.env)
    env.update(extra or {})
    return env


def manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"manage.py {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return done.stdout


@dataclass(frozen=True)
class Site:
    domain: str
    tracking_code: str
    website_id: str


def add_site(env: dict[str, str], domain: str = DOMAIN) -> Site:
    data = json.loads(manage(env, "addsite", domain).strip().splitlines()[-1])
    return Site(data["domain"], data["tracking_code"], data["website_id"])


def prepare(env: dict[str, str], domain: str = DOMAIN) -> Site:
    """Migrate and add the website."""
    manage(env, "migrate", "--no-input", "-v", "0")
    return add_site(env, domain)


@contextmanager
def running_server(env: dict[str, str], server: str = "daphne") -> Iterator[ServerProcess]:
    """A server (see SERVERS) on a free port, stopped afterwards."""
    with running(ServerProcess(port=free_port(), env=env, server=server), timeout=60) as process:
        yield process


# --- WebSocket clients

BROWSER_AGENT = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
)
WIDGET_ORIGIN = "https://www.customer.example"


async def connect_many(
    urls: Sequence[str],
    concurrency: int,
    on_open: Callable[[Any], None],
    compression: str | None = "deflate",
) -> int:
    """Open a WebSocket to each URL, `concurrency` handshakes at a time, like a browser
    widget (Origin, User-Agent, permessage-deflate offered, no client pings); `on_open`
    gets each connection as soon as it is open. Three tries each; the number that failed."""
    import asyncio

    from websockets.asyncio.client import connect

    gate = asyncio.Semaphore(concurrency)
    failed = 0

    async def one(url: str) -> None:
        nonlocal failed
        async with gate:
            for attempt in range(3):
                try:
                    ws = await connect(
                        url,
                        compression=compression,
                        ping_interval=None,
                        open_timeout=60,
                        close_timeout=1,
                        max_queue=64,
                        origin=WIDGET_ORIGIN,  # type: ignore[arg-type]
                        user_agent_header=BROWSER_AGENT,
                    )
                except Exception:  # refused, reset or timed out: retried, then counted
                    if attempt == 2:
                        failed += 1
                        return
                    await asyncio.sleep(0.5)
                    continue
                on_open(ws)
                return

    await asyncio.gather(*(one(url) for url in urls))
    return failed


# --- wrk


@dataclass(frozen=True)
class WrkResult:
    """The summary a bench/*.lua script prints as `BENCH_RESULT {json}`."""

    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    statuses: dict[str, int]
    socket_errors: int

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def count(self, predicate: Callable[[str], bool]) -> int:
        return sum(n for status, n in self.statuses.items() if predicate(status))

    @property
    def ok(self) -> int:
        return self.count(lambda s: s.startswith("2"))

    @property
    def ok_rps(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    @property
    def rate_limited(self) -> int:
        return self.statuses.get("429", 0)

    @property
    def errors(self) -> int:
        """Non-2xx answers other than 304 and 429, plus socket errors."""
        bad = self.count(lambda s: not s.startswith("2") and s not in ("304", "429"))
        return bad + self.socket_errors

    @classmethod
    def parse(cls, data: dict[str, Any]) -> WrkResult:
        errors = data["errors"]
        return cls(
            requests=data["requests"],
            seconds=data["duration_us"] / 1e6,
            p50_ms=data["p50_us"] / 1000,
            p99_ms=data["p99_us"] / 1000,
            max_ms=data["max_us"] / 1000,
            statuses=data["statuses"],
            socket_errors=sum(errors[k] for k in ("connect", "read", "write", "timeout")),
        )


def wrk_command(
    url: str, script: Path, args: Sequence[str], *, seconds: int, connections: int, threads: int
) -> list[str]:
    threads = max(1, min(threads, connections))
    return ["wrk", "--latency", "--timeout", "10s", "-t", str(threads), "-c", str(connections),
            "-d", f"{seconds}s", "-s", str(script), url, "--", *args]  # fmt: skip


def wrk_result(stdout: str, stderr: str = "", returncode: int = 0) -> dict[str, Any]:
    for line in stdout.splitlines():
        if line.startswith("BENCH_RESULT "):
            return json.loads(line.removeprefix("BENCH_RESULT "))
    raise SystemExit(f"wrk gave no result (exit {returncode}):\n{stdout}{stderr}")


def run_wrk(
    url: str, script: Path, args: Sequence[str], *, seconds: int, connections: int, threads: int
) -> dict[str, Any]:
    """One wrk run to completion; the script's BENCH_RESULT summary."""
    command = wrk_command(
        url, script, args, seconds=seconds, connections=connections, threads=threads
    )
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    return wrk_result(done.stdout, done.stderr, done.returncode)


def require(*programs: str) -> None:
    for program in programs:
        if shutil.which(program) is None:
            raise SystemExit(f"{program} is not installed")


# --- Statistics and output


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of unsorted values; 0.0 when empty."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def format_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Left-aligned first column, right-aligned others; floats with one decimal."""

    def cell(value: object) -> str:
        if isinstance(value, float):
            return f"{value:.2f}" if abs(value) < 10 else f"{value:.1f}"
        return "" if value is None else str(value)

    cells = [[cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(header)]

    def line(values: Sequence[str]) -> str:
        parts = [values[0].ljust(widths[0])]
        parts += [v.rjust(w) for v, w in zip(values[1:], widths[1:], strict=True)]
        return "  ".join(parts)

    out = [line(list(header)), "-" * (sum(widths) + 2 * (len(widths) - 1))]
    out += [line(r) for r in cells]
    return "\n".join(out)


# --- The epilogue every benchmark ends with


@dataclass(frozen=True)
class Table:
    title: str
    header: Sequence[str]
    rows: Sequence[Sequence[object]]


@dataclass(frozen=True)
class Ratio:
    """A ratio with the absolute figures it is made of beside it, and its goal when it has one."""

    name: str
    value: float | None
    over: str  # the figure divided, with its unit ("1,234 req/s")
    under: str  # the figure it is divided by
    goal: str = ""  # e.g. ">= 0.8"
    ok: bool | None = None


def machine_facts() -> dict[str, Any]:
    """What a figure depends on besides the code: CPUs, load, Python."""
    return {
        "code": code_version(),
        "cpus": os.cpu_count(),
        "load": [round(x, 2) for x in os.getloadavg()],
        "python": sys.version.split()[0],
        "uptime": uptime(),
    }


def epilogue(
    bench: str,
    *,
    settings: dict[str, object],
    tables: Sequence[Table] = (),
    ratios: Sequence[Ratio] = (),
    notes: Sequence[str] = (),
    problems: Sequence[str] = (),
    data: dict[str, Any] | None = None,
    json_path: Path | None = None,
) -> int:
    """Print a benchmark's results the one way: a header with the machine's facts and the
    run's settings, the tables, the ratios with their absolute figures, notes, then one
    PROBLEM line per missed goal; write them all (and `data`) to `json_path` if given.
    The exit status: 1 when a goal was missed."""
    machine = machine_facts()
    print(f"\n== {bench}: code {machine['code']}, {machine['cpus']} CPUs, Python "
          f"{machine['python']}; {machine['uptime']}")  # fmt: skip
    print("   " + " ".join(f"{k}={v}" for k, v in settings.items()))
    for table in tables:
        print(f"\n{table.title}\n" + format_table(table.header, table.rows))
    if ratios:
        rows = [[r.name, "inf" if r.value is None else r.value, r.over, r.under, r.goal,
                 "" if r.ok is None else ("ok" if r.ok else "MISSED")] for r in ratios]  # fmt: skip
        print("\nratios\n" + format_table(["ratio", "value", "of", "over", "goal", ""], rows))
    for note in notes:
        print(f"NOTE {note}")
    for line in problems:
        print(f"PROBLEM {line}")
    if json_path:
        write_json(json_path, {
            "bench": bench, "machine": machine, "settings": settings,
            "tables": [asdict(t) for t in tables], "ratios": [asdict(r) for r in ratios],
            "problems": list(problems), **(data or {}),
        })  # fmt: skip
    return 1 if problems else 0


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")
    print(f"wrote {path}")
