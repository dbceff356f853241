#!/usr/bin/env python3
"""Ingest throughput: POST /e/collect against an empty Django view, on one real server.

    bench/ingest.py [--db sqlite|postgres|both] [--seconds 10] [--connections 32]
                    [--server daphne|uvicorn] [--redis-url URL] [--json var/bench-ingest.json]

(`bench/ingest.py` re-runs itself with the project's .venv python; so does
`.venv/bin/python bench/ingest.py`.)

For each database (a SQLite file in a temporary directory, the embedded default; and
a fresh PostgreSQL database, `zenovay_bench`, created and dropped again) it migrates,
adds the website bench.example, starts ONE server with the bench views switched on
(ZENOVAY_BENCH_VIEWS=1) and 127.0.0.1 as trusted proxy, warms up, then runs
`wrk --latency` with the same duration and connections against

    empty    GET  /bench/empty   - Django's middleware and routing, nothing else
    json     POST /bench/json    - collect's decorators, body read, no ingest (--endpoints)
    collect  POST /e/collect     - a real pageview, XFF and pages varying (bench/ingest.lua)

and prints requests/s, p50, p99, non-2xx responses, server CPU per request and the
ratio collect/empty (goal >= 0.5). Afterwards the events stored during the collect
run are counted and set beside wrk's 2xx count. Exits 1 when any response was not
2xx, a socket error occurred or the event count does not match.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
VENV_PYTHON = ROOT / ".venv" / "bin" / "python"
LUA_SCRIPT = Path(__file__).resolve().with_name("ingest.lua")
DOMAIN = "bench.example"
GOAL_RATIO = 0.5
ENDPOINT_PATHS = {"empty": "/bench/empty", "json": "/bench/json", "collect": "/e/collect"}


def ensure_venv() -> None:
    """Re-run under the project's virtualenv unless already there."""
    if VENV_PYTHON.exists() and Path(sys.prefix).resolve() != VENV_PYTHON.parent.parent.resolve():
        argv = [str(VENV_PYTHON), str(Path(__file__).resolve()), *sys.argv[1:]]
        os.execv(VENV_PYTHON, argv)  # noqa: S606 - our own interpreter, fixed arguments


@dataclass
class Run:
    database: str
    endpoint: str
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    statuses: dict[str, int]
    socket_errors: int
    server_cpu_us: float  # server process CPU time per completed request
    events_stored: int | None = None

    @property
    def ok_count(self) -> int:
        return sum(n for status, n in self.statuses.items() if status.startswith("2"))

    @property
    def non_2xx(self) -> int:
        return self.requests - self.ok_count


@dataclass
class DatabaseResult:
    database: str
    server: str
    runs: list[Run] = field(default_factory=list)

    def rps(self, endpoint: str) -> float | None:
        return next((r.rps for r in self.runs if r.endpoint == endpoint), None)

    @property
    def ratio(self) -> float | None:
        collect, empty = self.rps("collect"), self.rps("empty")
        return collect / empty if collect and empty else None


# --- Databases: each yields the environment a server process needs to use it.


def base_env(db_env: dict[str, str], redis_url: str, extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "zenovay.settings",
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
            "DJANGO_ALLOWED_HOSTS": "*",
            "DJANGO_DEBUG": "0",
            "ZENOVAY_BENCH_VIEWS": "1",
            "ZENOVAY_TRUSTED_PROXIES": "127.0.0.1/32",
            "PYTHONUNBUFFERED": "1",
        }
    )
    if redis_url:
        env["REDIS_URL"] = redis_url
    env.update(db_env)
    env.update(extra)
    return env


@contextmanager
def sqlite_database(keep: bool) -> Iterator[dict[str, str]]:
    """The embedded default: no DATABASE_URL, zenovay.sqlite3 in ZENOVAY_VAR_DIR."""
    directory = Path(tempfile.mkdtemp(prefix="zenovay-bench-"))
    try:
        yield {"ZENOVAY_VAR_DIR": str(directory)}
    finally:
        if keep:
            print(f"  kept {directory}")
        else:
            shutil.rmtree(directory, ignore_errors=True)


def _admin_url(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/postgres"))


def _pg_execute(admin_url: str, statement: str) -> None:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(statement)


@contextmanager
def postgres_database(url: str, keep: bool) -> Iterator[dict[str, str]]:
    """A database made for this run only (its name must contain "bench"), then dropped."""
    name = urlsplit(url).path.lstrip("/")
    if "bench" not in name or not name.replace("_", "").isalnum():
        raise SystemExit(f"refusing to recreate database {name!r}: use a name with 'bench'")
    admin = _admin_url(url)
    _pg_execute(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    _pg_execute(admin, f'CREATE DATABASE "{name}"')
    try:
        yield {"DATABASE_URL": url}
    finally:
        if keep:
            print(f"  kept database {name}")
        else:
            _pg_execute(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- Django management, in subprocesses so each database gets a clean process.


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


def prepare(env: dict[str, str]) -> str:
    """Migrate and add the website; its tracking code."""
    manage(env, "migrate", "--no-input", "-v", "0")
    return json.loads(manage(env, "addsite", DOMAIN).strip().splitlines()[-1])["tracking_code"]


def count_events(env: dict[str, str]) -> int:
    code = "from zenovay.models import Event; print(Event.objects.count())"
    return int(manage(env, "shell", "-c", code).strip().splitlines()[-1])


# --- Load generation.


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk(url: str, lua_args: list[str], *, seconds: int, connections: int, threads: int) -> dict:
    command = [
        "wrk",
        "--latency",
        "--timeout",
        "10s",
        "-t",
        str(threads),
        "-c",
        str(connections),
        "-d",
        f"{seconds}s",
        "-s",
        str(LUA_SCRIPT),
        url,
        "--",
        *lua_args,
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    for line in done.stdout.splitlines():
        if line.startswith("BENCH_RESULT "):
            return json.loads(line.removeprefix("BENCH_RESULT "))
    raise SystemExit(f"wrk gave no result (exit {done.returncode}):\n{done.stdout}{done.stderr}")


@dataclass(frozen=True)
class Load:
    seconds: int
    warmup: int
    connections: int
    threads: int
    visitors: int


def lua_args(endpoint: str, code: str, load: Load) -> list[str]:
    return [endpoint, code, DOMAIN, str(load.visitors)]


def warm_up(endpoint: str, base_url: str, code: str, load: Load) -> None:
    if load.warmup:
        wrk(
            base_url + ENDPOINT_PATHS[endpoint],
            lua_args(endpoint, code, load),
            seconds=load.warmup,
            connections=load.connections,
            threads=load.threads,
        )


def measure(database: str, endpoint: str, base_url: str, code: str, load: Load, pid: int) -> Run:
    url = base_url + ENDPOINT_PATHS[endpoint]
    cpu_before = process_cpu_seconds(pid)
    result = wrk(
        url,
        lua_args(endpoint, code, load),
        seconds=load.seconds,
        connections=load.connections,
        threads=load.threads,
    )
    cpu = process_cpu_seconds(pid) - cpu_before
    requests = result["requests"]
    seconds = result["duration_us"] / 1e6
    errors = result["errors"]
    return Run(
        database=database,
        endpoint=endpoint,
        requests=requests,
        seconds=round(seconds, 2),
        rps=round(requests / seconds, 1),
        p50_ms=result["p50_us"] / 1000,
        p99_ms=result["p99_us"] / 1000,
        statuses=result["statuses"],
        socket_errors=sum(errors[k] for k in ("connect", "read", "write", "timeout")),
        server_cpu_us=round(cpu * 1e6 / max(requests, 1), 1),
    )


def bench_database(
    database: str, db_env: dict[str, str], args: argparse.Namespace, load: Load
) -> DatabaseResult:
    from tests.servers import ServerProcess, free_port  # needs ROOT on sys.path, see main

    env = base_env(db_env, args.redis_url, args.env)
    code = prepare(env)
    server = ServerProcess(port=free_port(), env=env, server=args.server)
    server.start()
    result = DatabaseResult(database=database, server=args.server)
    try:
        assert server.proc is not None
        for endpoint in args.endpoints:
            print(f"  {database}: {endpoint} for {load.seconds}s ...", flush=True)
            warm_up(endpoint, server.url, code, load)
            time.sleep(0.5)  # let requests in flight when wrk stopped finish
            before = count_events(env) if endpoint == "collect" else 0
            run = measure(database, endpoint, server.url, code, load, server.proc.pid)
            if endpoint == "collect":
                time.sleep(0.5)
                run.events_stored = count_events(env) - before
            result.runs.append(run)
    finally:
        server.stop()
    return result


# --- Report.


def table(results: list[DatabaseResult]) -> str:
    header = (
        f"{'database':<9} {'endpoint':<8} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'requests':>9} {'non-2xx':>8} {'sock err':>8} {'cpu µs/req':>10} {'events':>8}"
    )
    lines = [header, "-" * len(header)]
    for result in results:
        for r in result.runs:
            events = "" if r.events_stored is None else str(r.events_stored)
            lines.append(
                f"{r.database:<9} {r.endpoint:<8} {r.rps:>9.1f} {r.p50_ms:>8.2f} "
                f"{r.p99_ms:>8.2f} {r.requests:>9} {r.non_2xx:>8} {r.socket_errors:>8} "
                f"{r.server_cpu_us:>10.0f} {events:>8}"
            )
    return "\n".join(lines)


def problems(results: list[DatabaseResult], connections: int) -> list[str]:
    found = []
    for result in results:
        for r in result.runs:
            if r.non_2xx:
                found.append(f"{r.database}/{r.endpoint}: {r.non_2xx} non-2xx {r.statuses}")
            if r.socket_errors:
                found.append(f"{r.database}/{r.endpoint}: {r.socket_errors} socket errors")
            if r.events_stored is not None and not (
                r.ok_count <= r.events_stored <= r.ok_count + connections
            ):
                found.append(
                    f"{r.database}/collect: {r.events_stored} events stored "
                    f"for {r.ok_count} 2xx responses"
                )
    return found


def report(results: list[DatabaseResult], args: argparse.Namespace) -> list[str]:
    print()
    print(
        f"server={args.server} seconds={args.seconds} connections={args.connections} "
        f"threads={args.threads} redis={'yes' if args.redis_url else 'no (locmem cache)'}"
    )
    print(table(results))
    print()
    for result in results:
        ratio = result.ratio
        if ratio is None:
            continue
        verdict = "ok" if ratio >= GOAL_RATIO else f"BELOW GOAL {GOAL_RATIO}"
        print(f"{result.database}: collect/empty = {ratio:.2f} ({verdict})")
        for r in result.runs:
            if r.events_stored is not None:
                print(
                    f"{result.database}: wrk counted {r.requests} requests, {r.ok_count} 2xx; "
                    f"{r.events_stored} events stored during the run"
                )
    found = problems(results, args.connections)
    for line in found:
        print(f"PROBLEM {line}")
    return found


def write_json(path: Path, results: list[DatabaseResult], args: argparse.Namespace) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {
        "server": args.server,
        "seconds": args.seconds,
        "connections": args.connections,
        "threads": args.threads,
        "redis": bool(args.redis_url),
        "results": [
            {"database": r.database, "ratio": r.ratio, "runs": [asdict(run) for run in r.runs]}
            for r in results
        ],
    }
    path.write_text(json.dumps(data, indent=2) + "\n")
    print(f"wrote {path}")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--seconds", type=int, default=10, help="per measured run (default 10)")
    parser.add_argument("--connections", type=int, default=32, help="wrk -c (default 32)")
    parser.add_argument("--threads", type=int, default=2, help="wrk -t (default 2)")
    parser.add_argument("--warmup", type=int, default=2, help="seconds before each run")
    parser.add_argument("--server", choices=["daphne", "uvicorn"], default="daphne")
    parser.add_argument(
        "--visitors",
        type=int,
        default=2000,
        help="distinct X-Forwarded-For addresses per wrk thread (default 2000)",
    )
    parser.add_argument(
        "--endpoints",
        default="empty,collect",
        help="comma-separated, of empty,json,collect (default empty,collect)",
    )
    parser.add_argument(
        "--redis-url",
        default="",
        help="use Redis as shared cache (default: none, locmem as embedded)",
    )
    parser.add_argument("--pg-url", default="postgres://postgres@127.0.0.1:5432/zenovay_bench")
    parser.add_argument("--json", type=Path, default=ROOT / "var" / "bench-ingest.json")
    parser.add_argument("--keep", action="store_true", help="keep the databases afterwards")
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment for the server, repeatable (e.g. to try other settings)",
    )
    args = parser.parse_args(argv)
    args.endpoints = [e.strip() for e in args.endpoints.split(",") if e.strip()]
    unknown = set(args.endpoints) - set(ENDPOINT_PATHS)
    if unknown:
        parser.error(f"unknown endpoints: {', '.join(sorted(unknown))}")
    args.threads = max(1, min(args.threads, args.connections))
    if any("=" not in item for item in args.env):
        parser.error("--env takes NAME=VALUE")
    args.env = dict(item.split("=", 1) for item in args.env)
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    sys.path.insert(0, str(ROOT))
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed")
    load = Load(args.seconds, args.warmup, args.connections, args.threads, args.visitors)
    databases = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    results = []
    for database in databases:
        print(f"{database}: preparing", flush=True)
        if database == "sqlite":
            context = sqlite_database(args.keep)
        else:
            context = postgres_database(args.pg_url, args.keep)
        with context as db_env:
            results.append(bench_database(database, db_env, args, load))
    found = report(results, args)
    if args.json:
        write_json(args.json, results, args)
    return 1 if found else 0


if __name__ == "__main__":
    ensure_venv()
    sys.exit(main(sys.argv[1:]))
