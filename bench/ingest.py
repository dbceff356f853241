#!/usr/bin/env python3
"""Ingest throughput: POST /e/collect against an empty Django view, on one real server.

    bench/ingest.py [--db sqlite|postgres|both] [--seconds 10] [--connections 32]
                    [--server daphne|uvicorn] [--endpoints empty,json,collect]
                    [--redis-url redis://127.0.0.1:6379/14] [--env NAME=VALUE ...]

`bench/ingest.py` re-runs itself with the project's .venv python, so it is the same
as `.venv/bin/python bench/ingest.py`. Needs wrk, and PostgreSQL for --db postgres.

For each database - a SQLite file in a temporary directory (the embedded default:
no DATABASE_URL) and a PostgreSQL database created for the run and dropped after it
(--pg-url, default zenovay_bench on 127.0.0.1, user postgres) - it migrates, adds
the website bench.example, starts ONE server (bench views on: ZENOVAY_BENCH_VIEWS=1;
127.0.0.1 a trusted proxy so X-Forwarded-For gives each request its visitor), and
for every endpoint warms up, then runs `wrk --latency` with the same duration and
connections (bench/ingest.lua):

    empty    GET  /bench/empty   Django's middleware and routing, nothing else
    json     POST /bench/json    collect's decorators and body read, no ingest
    collect  POST /e/collect     a tracker pageview: text/plain JSON, desktop Chrome
                                 user agents, rotating pages, referrers and XFF

It prints requests/s, 2xx/s, p50, p99, non-2xx responses, socket errors, server CPU
time per request and the ratio collect/empty of 2xx/s per database (goal >= 0.5).
The measured collect run sends pages of www.bench.example (the warm-up those of
warmup.bench.example); once the server has stopped, the events stored for that host
are set beside wrk's 2xx count. Results also go to var/bench-ingest.json (--json).
Exit status 1 when a response was not 2xx, a socket error occurred or the stored
events do not match the 2xx count (up to --connections more are fine: requests in
flight when wrk stops still commit).

Other processes on the machine skew requests/s (wrk and the server share the CPUs);
server CPU per request is steadier. The load average is printed before each run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from common import (
    BUSY_LOAD,
    DOMAIN,
    ROOT,
    SERVERS,
    Database,
    ensure_venv,
    exit_on_sigterm,
    postgres_database,
    prepare,
    process_cpu_seconds,
    run_wrk,
    server_env,
    sqlite_database,
    wait_idle,
)

LUA_SCRIPT = Path(__file__).resolve().with_name("ingest.lua")
# Pages of the warm-up and of the measured run are on different hosts of the site, so
# the events of the measured run can be counted alone once the server has stopped.
WARMUP_HOST = f"warmup.{DOMAIN}"
RUN_HOST = f"www.{DOMAIN}"
GOAL_RATIO = 0.5
ENDPOINT_PATHS = {"empty": "/bench/empty", "json": "/bench/json", "collect": "/e/collect"}


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
    server_cpu_us: float  # server process CPU time (user + system) per completed request
    load_before: float
    events_stored: int | None = None

    @property
    def ok_count(self) -> int:
        return sum(n for status, n in self.statuses.items() if status.startswith("2"))

    @property
    def non_2xx(self) -> int:
        return self.requests - self.ok_count

    @property
    def ok_rps(self) -> float:
        return self.ok_count / self.seconds if self.seconds else 0.0


@dataclass
class DatabaseResult:
    database: str
    server: str
    runs: list[Run] = field(default_factory=list)

    def ok_rps(self, endpoint: str) -> float | None:
        return next((r.ok_rps for r in self.runs if r.endpoint == endpoint), None)

    @property
    def ratio(self) -> float | None:
        """2xx/s of collect over 2xx/s of empty: failed requests count for nothing."""
        collect, empty = self.ok_rps("collect"), self.ok_rps("empty")
        return collect / empty if collect is not None and empty else None


# --- Load generation.


@dataclass(frozen=True)
class Load:
    seconds: int
    warmup: int
    connections: int
    threads: int
    visitors: int


def wrk(url: str, endpoint: str, code: str, load: Load, seconds: int, host: str) -> dict:
    """One wrk run; the summary bench/ingest.lua prints as `BENCH_RESULT {json}`."""
    args = [endpoint, code, host, str(load.visitors)]
    return run_wrk(
        url, LUA_SCRIPT, args, seconds=seconds, connections=load.connections, threads=load.threads
    )


def measure(database: str, endpoint: str, url: str, code: str, load: Load, pid: int) -> Run:
    load_before = os.getloadavg()[0]
    cpu_before = process_cpu_seconds(pid)
    result = wrk(url, endpoint, code, load, load.seconds, RUN_HOST)
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
        load_before=round(load_before, 2),
    )


def bench_database(database: Database, args: argparse.Namespace, load: Load) -> DatabaseResult:
    from tests.servers import ServerProcess, free_port  # ROOT is on sys.path (bench/common)

    env = server_env(database, args.redis_url, args.env)
    code = prepare(env).tracking_code
    server = ServerProcess(port=free_port(), env=env, server=args.server)
    server.start()
    result = DatabaseResult(database=database.name, server=args.server)
    try:
        assert server.proc is not None
        for endpoint in args.endpoints:
            url = server.url + ENDPOINT_PATHS[endpoint]
            if load.warmup:
                wrk(url, endpoint, code, load, load.warmup, WARMUP_HOST)
            wait_idle(server.proc.pid)  # requests wrk abandoned are still running
            print(
                f"  {database.name}: {endpoint} for {load.seconds}s "
                f"(load average {os.getloadavg()[0]:.2f})",
                flush=True,
            )
            result.runs.append(measure(database.name, endpoint, url, code, load, server.proc.pid))
        wait_idle(server.proc.pid)
    finally:
        server.stop()
    for run in result.runs:
        if run.endpoint == "collect":
            run.events_stored = database.count_events(RUN_HOST)
    return result


# --- Report.


def table(results: list[DatabaseResult]) -> str:
    header = (
        f"{'database':<9} {'endpoint':<8} {'req/s':>8} {'2xx/s':>8} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'requests':>8} {'non-2xx':>7} {'sockerr':>7} {'cpu µs/req':>10} {'events':>7}"
    )
    lines = [header, "-" * len(header)]
    for result in results:
        for r in result.runs:
            events = "" if r.events_stored is None else str(r.events_stored)
            lines.append(
                f"{r.database:<9} {r.endpoint:<8} {r.rps:>8.1f} {r.ok_rps:>8.1f} {r.p50_ms:>8.1f} "
                f"{r.p99_ms:>8.1f} {r.requests:>8} {r.non_2xx:>7} {r.socket_errors:>7} "
                f"{r.server_cpu_us:>10.0f} {events:>7}"
            )
    return "\n".join(lines)


def problems(results: list[DatabaseResult], connections: int) -> list[str]:
    """Non-2xx answers, socket errors, and stored events that do not match the 2xx count.

    wrk stops with up to `connections` requests in flight; those still commit, so the
    stored events may exceed the 2xx count by that much, never fall short of it.
    """
    found = []
    for result in results:
        for r in result.runs:
            if r.non_2xx:
                found.append(f"{r.database}/{r.endpoint}: {r.non_2xx} non-2xx {r.statuses}")
            if r.socket_errors:
                found.append(f"{r.database}/{r.endpoint}: {r.socket_errors} socket errors")
            stored = r.events_stored
            if stored is not None and not r.ok_count <= stored <= r.ok_count + connections:
                found.append(
                    f"{r.database}/{r.endpoint}: {stored} events stored "
                    f"for {r.ok_count} 2xx responses"
                )
    return found


def report(results: list[DatabaseResult], args: argparse.Namespace) -> list[str]:
    redis = args.redis_url or "no (in-process cache)"
    print(
        f"\nserver={args.server} seconds={args.seconds} connections={args.connections} "
        f"wrk threads={args.threads} redis={redis} cpus={os.cpu_count()}"
    )
    if args.env:
        print("extra server env: " + " ".join(f"{k}={v}" for k, v in args.env.items()))
    print(table(results))
    print()
    for result in results:
        if (ratio := result.ratio) is not None:
            verdict = "ok" if ratio >= GOAL_RATIO else f"BELOW GOAL {GOAL_RATIO}"
            print(f"{result.database}: collect/empty (2xx/s) = {ratio:.2f} ({verdict})")
        for r in result.runs:
            if r.events_stored is not None:
                print(
                    f"{result.database}: wrk completed {r.requests} requests, {r.ok_count} 2xx; "
                    f"{r.events_stored} events stored"
                )
    busy = [r for result in results for r in result.runs if r.load_before > BUSY_LOAD]
    if busy:
        print(
            f"NOTE load average was above {BUSY_LOAD} before {len(busy)} run(s): other "
            "processes competed for the CPUs; compare cpu µs/req rather than req/s"
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
        "wrk_threads": args.threads,
        "redis": bool(args.redis_url),
        "extra_env": args.env,
        "cpus": os.cpu_count(),
        "results": [
            {
                "database": r.database,
                "ratio": r.ratio,
                "runs": [asdict(run) | {"ok_rps": round(run.ok_rps, 1)} for run in r.runs],
            }
            for r in results
        ],
    }
    path.write_text(json.dumps(data, indent=2) + "\n")
    print(f"wrote {path}")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark POST /e/collect against an empty Django view (see the module doc)."
    )
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--seconds", type=int, default=10, help="per measured run (default 10)")
    parser.add_argument("--connections", type=int, default=32, help="wrk -c (default 32)")
    parser.add_argument("--threads", type=int, default=2, help="wrk -t (default 2)")
    parser.add_argument("--warmup", type=int, default=2, help="seconds before each run")
    parser.add_argument("--server", choices=SERVERS, default="daphne")
    parser.add_argument(
        "--endpoints",
        default="empty,collect",
        help="comma-separated, of empty,json,collect (default empty,collect)",
    )
    parser.add_argument(
        "--visitors",
        type=int,
        default=2000,
        help="distinct X-Forwarded-For addresses per wrk thread (default 2000)",
    )
    parser.add_argument(
        "--redis-url", default="", help="Redis as shared cache (default none: in-process)"
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
    if unknown := set(args.endpoints) - set(ENDPOINT_PATHS):
        parser.error(f"unknown endpoints: {', '.join(sorted(unknown))}")
    if any("=" not in item for item in args.env):
        parser.error("--env takes NAME=VALUE")
    args.env = dict(item.split("=", 1) for item in args.env)
    args.threads = max(1, min(args.threads, args.connections))
    return args


def database_context(name: str, args: argparse.Namespace) -> AbstractContextManager[Database]:
    if name == "sqlite":
        return sqlite_database(args.keep)
    return postgres_database(args.pg_url, args.keep)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    exit_on_sigterm()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed")
    load = Load(args.seconds, args.warmup, args.connections, args.threads, args.visitors)
    names = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    results = []
    for name in names:
        print(f"{name}: preparing", flush=True)
        with database_context(name, args) as database:
            results.append(bench_database(database, args, load))
    found = report(results, args)
    if args.json:
        write_json(args.json, results, args)
    return 1 if found else 0


if __name__ == "__main__":
    ensure_venv()
    sys.exit(main(sys.argv[1:]))
