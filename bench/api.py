#!/usr/bin/env python3
"""Cached read endpoints against the empty Django view, on one real server, with and without Redis.

    .venv/bin/python bench/api.py [--store memory,redis] [--db sqlite|postgres]
                                  [--server daphne|uvicorn] [--seconds 10] [--warmup 2]
                                  [--connections 32] [--threads 2] [--visitors 20000]
                                  [--redis-url URL] [--env NAME=VALUE ...]

For each store - "memory" (no REDIS_URL: cache and rate limits in the server process)
and "redis" (REDIS_URL set: the shared store; a private redis-server on a free port
unless --redis-url) - it starts ONE server (bench views on; 127.0.0.1 a trusted proxy)
on a database holding one website with a little traffic (`manage.py simulate`, today),
fills each endpoint's cache with one request, then for every run warms up with wrk and
measures with `wrk --latency` (bench/reads.lua), same duration and connections:

    empty     GET /bench/empty              Django's middleware and routing, nothing else
    live      GET /e/live/{code}            cached 5 s,  1000 requests/min per client IP
    realtime  GET /e/realtime/{website id}  cached 10 s,  500/min
    stats     GET /e/stats/{code}           cached 30 s,  500/min
    status    GET /e/{code}/status          cached 60 s,  100/min
    empty     again, last: the baseline is the mean of the two empty runs

Each request carries an X-Forwarded-For from a pool of --visitors addresses per wrk
thread, so no client IP comes near its rate limit (429s are counted and reported).
Per run: requests/s, 2xx/s, p50, p99, 429s, other errors, server CPU per request and
server RSS after the run. Per endpoint: ratio = 2xx/s over the empty view's 2xx/s (goal
>= 0.8), and the same ratio from server CPU per request (empty's over the endpoint's),
which other processes on the machine disturb less. Results go to var/bench-api.json.
Exit status 1 when a ratio is below the goal or a request failed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

from common import (
    BUSY_LOAD,
    ROOT,
    Database,
    Ratio,
    Site,
    Table,
    WrkResult,
    code_version,
    ensure_venv,
    epilogue,
    exit_on_sigterm,
    manage,
    postgres_database,
    prepare,
    process_cpu_seconds,
    process_rss_kib,
    redis_server,
    require,
    run_wrk,
    running_server,
    server_env,
    sqlite_database,
    uptime,
    wait_idle,
)

from tests.servers import SERVERS

LUA_SCRIPT = Path(__file__).resolve().with_name("reads.lua")
GOAL_RATIO = 0.8
ENDPOINTS = ("live", "realtime", "stats", "status")
SEQUENCE = ("empty", *ENDPOINTS, "empty")


def endpoint_path(endpoint: str, site: Site) -> str:
    return {
        "empty": "/bench/empty",
        "live": f"/e/live/{site.tracking_code}",
        "realtime": f"/e/realtime/{site.website_id}",
        "stats": f"/e/stats/{site.tracking_code}",
        "status": f"/e/{site.tracking_code}/status",
    }[endpoint]


@dataclass
class Run:
    store: str
    endpoint: str
    requests: int
    seconds: float
    rps: float
    ok_rps: float
    p50_ms: float
    p99_ms: float
    statuses: dict[str, int]
    rate_limited: int
    errors: int
    server_cpu_us: float  # server CPU time (user + system) per request
    server_rss_mib: float  # after the run
    load_before: float


@dataclass
class StoreResult:
    store: str
    server: str
    rss_start_mib: float
    runs: list[Run]

    def baseline(self) -> tuple[float, float]:
        """Mean 2xx/s and CPU µs per request of the empty runs."""
        empty = [r for r in self.runs if r.endpoint == "empty"]
        return (
            statistics.mean(r.ok_rps for r in empty),
            statistics.mean(r.server_cpu_us for r in empty),
        )

    def ratios(self) -> dict[str, dict[str, float]]:
        rps, cpu = self.baseline()
        return {
            r.endpoint: {
                "ratio_rps": r.ok_rps / rps if rps else 0.0,
                "ratio_cpu": cpu / r.server_cpu_us if r.server_cpu_us else 0.0,
            }
            for r in self.runs
            if r.endpoint != "empty"
        }


def fill_caches(base_url: str, site: Site) -> None:
    """One request per endpoint, so the measured runs are served from the cache."""
    for endpoint in ENDPOINTS:
        request = urllib.request.Request(
            base_url + endpoint_path(endpoint, site), headers={"X-Forwarded-For": "198.51.100.7"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            if response.status != 200:
                raise SystemExit(f"{endpoint}: status {response.status}")


def measure(
    store: str, endpoint: str, base_url: str, path: str, pid: int, args: argparse.Namespace
) -> Run:
    """Warm up, wait until the server is idle, then one measured wrk run."""
    url = base_url + path
    seed = len(path) + 31 * SEQUENCE.index(endpoint)
    wrk_args = [str(args.visitors), str(seed), "0", path]
    if args.warmup:
        run_wrk(
            url,
            LUA_SCRIPT,
            [str(args.visitors), str(seed + 1000), "0", path],
            seconds=args.warmup,
            connections=args.connections,
            threads=args.threads,
        )
    wait_idle(pid)
    load_before = os.getloadavg()[0]
    print(f"  {store}: {endpoint} for {args.seconds}s (load {load_before:.2f})", flush=True)
    cpu_before = process_cpu_seconds(pid)
    data = run_wrk(
        url,
        LUA_SCRIPT,
        wrk_args,
        seconds=args.seconds,
        connections=args.connections,
        threads=args.threads,
    )
    cpu = process_cpu_seconds(pid) - cpu_before
    result = WrkResult.parse(data)
    return Run(
        store=store,
        endpoint=endpoint,
        requests=result.requests,
        seconds=round(result.seconds, 2),
        rps=round(result.rps, 1),
        ok_rps=round(result.ok_rps, 1),
        p50_ms=result.p50_ms,
        p99_ms=result.p99_ms,
        statuses=result.statuses,
        rate_limited=result.rate_limited,
        errors=result.errors,
        server_cpu_us=round(cpu * 1e6 / max(result.requests, 1), 1),
        server_rss_mib=round(process_rss_kib(pid) / 1024, 1),
        load_before=round(load_before, 2),
    )


def bench_store(
    store: str, database: Database, site: Site, redis_url: str, args: argparse.Namespace
) -> StoreResult:
    env = server_env(database, redis_url, args.env)
    with running_server(env, args.server) as server:
        pid = server.proc.pid
        fill_caches(server.url, site)
        result = StoreResult(store, args.server, round(process_rss_kib(pid) / 1024, 1), [])
        for endpoint in SEQUENCE:
            path = endpoint_path(endpoint, site)
            result.runs.append(measure(store, endpoint, server.url, path, pid, args))
    return result


def ratio_lines(result: StoreResult) -> list[Ratio]:
    """Per endpoint: its 2xx/s over the empty view's, and the empty view's CPU per request
    over the endpoint's, each beside the figures it divides."""
    rps, cpu = result.baseline()
    found = []
    for r in result.runs:
        if r.endpoint == "empty":
            continue
        ratio = r.ok_rps / rps if rps else 0.0
        name = f"{result.store}/{r.endpoint}"
        found.append(
            Ratio(
                f"{name} 2xx/s",
                ratio,
                f"{r.ok_rps:,.0f} 2xx/s",
                f"empty {rps:,.0f} 2xx/s",
                f">= {GOAL_RATIO:g}",
                ratio >= GOAL_RATIO,
            )
        )
        cpu_ratio = cpu / r.server_cpu_us if r.server_cpu_us else 0.0
        found.append(
            Ratio(
                f"{name} cpu",
                cpu_ratio,
                f"empty {cpu:,.0f} µs/req",
                f"{r.server_cpu_us:,.0f} µs/req",
            )
        )
    return found


def report(results: list[StoreResult], args: argparse.Namespace) -> int:
    header = ["store", "endpoint", "req/s", "2xx/s", "p50 ms", "p99 ms", "429", "errors",
              "cpu µs/req", "RSS MiB", "load"]  # fmt: skip
    rows = [
        [r.store, r.endpoint, r.rps, r.ok_rps, r.p50_ms, r.p99_ms, r.rate_limited, r.errors,
         r.server_cpu_us, r.server_rss_mib, r.load_before]
        for result in results
        for r in result.runs
    ]  # fmt: skip
    ratios = [line for result in results for line in ratio_lines(result)]
    problems = [
        f"{line.name}: ratio {line.value:.2f} < {GOAL_RATIO}" for line in ratios if line.ok is False
    ]
    problems += [
        f"{result.store}/{r.endpoint}: {r.errors} errors, {r.rate_limited} 429s {r.statuses}"
        for result in results
        for r in result.runs
        if r.errors or r.rate_limited
    ]
    notes = [
        f"{result.store}: server RSS {result.rss_start_mib} MiB after start, "
        f"{result.runs[-1].server_rss_mib} MiB at the end "
        f"({result.runs[-1].server_rss_mib - result.rss_start_mib:+.1f} MiB)"
        for result in results
    ]
    if busy := [r for result in results for r in result.runs if r.load_before > BUSY_LOAD]:
        notes.append(
            f"load average was above {BUSY_LOAD} before {len(busy)} of the runs: other "
            "processes competed for the CPUs; the cpu ratio is the steadier figure"
        )
    settings = {
        "server": args.server,
        "db": args.db,
        "seconds": args.seconds,
        "connections": args.connections,
        "wrk_threads": args.threads,
        "visitors_per_thread": args.visitors,
    }
    data = {
        "results": [
            {
                "store": r.store,
                "rss_start_mib": r.rss_start_mib,
                "baseline_ok_rps": r.baseline()[0],
                "ratios": r.ratios(),
                "runs": [asdict(run) for run in r.runs],
            }
            for r in results
        ]
    }
    return epilogue(
        "bench/api.py",
        settings=settings,
        tables=[Table("runs", header, rows)],
        ratios=ratios,
        notes=notes,
        problems=problems,
        data=data,
        json_path=args.json,
    )


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Cached read endpoints vs the empty view.")
    parser.add_argument("--store", default="memory,redis", help="memory,redis (default both)")
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--server", choices=SERVERS, default="daphne")
    parser.add_argument("--seconds", type=int, default=10, help="per measured run (default 10)")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of wrk before each run")
    parser.add_argument("--connections", type=int, default=32, help="wrk -c (default 32)")
    parser.add_argument("--threads", type=int, default=2, help="wrk -t (default 2)")
    parser.add_argument(
        "--visitors", type=int, default=20_000, help="X-Forwarded-For addresses per wrk thread"
    )
    parser.add_argument("--simulate-visitors", type=int, default=150, help="today's traffic")
    parser.add_argument("--redis-url", default="", help="use this Redis (flushed) instead")
    parser.add_argument("--pg-url", default="postgres://postgres@127.0.0.1:5432/zenovay_bench_api")
    parser.add_argument("--json", type=Path, default=ROOT / "var" / "bench-api.json")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE")
    args = parser.parse_args(argv)
    args.store = [s.strip() for s in args.store.split(",") if s.strip()]
    if set(args.store) - {"memory", "redis"}:
        parser.error("--store takes memory and/or redis")
    if any("=" not in item for item in args.env):
        parser.error("--env takes NAME=VALUE")
    args.env = dict(item.split("=", 1) for item in args.env)
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    exit_on_sigterm()
    require("wrk")
    print(f"code {code_version()}; machine: {uptime()}")
    context = sqlite_database() if args.db == "sqlite" else postgres_database(args.pg_url)
    results = []
    with context as database:
        env = server_env(database)
        site = prepare(env)
        manage(env, "simulate", site.tracking_code, "--visitors", str(args.simulate_visitors),
               "--seed", "1")  # fmt: skip
        for store in args.store:
            if store == "redis":
                with redis_server(args.redis_url) as url:
                    results.append(bench_store(store, database, site, url, args))
            else:
                results.append(bench_store(store, database, site, "", args))
    return report(results, args)


if __name__ == "__main__":
    ensure_venv()
    sys.exit(main(sys.argv[1:]))
