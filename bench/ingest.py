#!/usr/bin/env python3
"""Ingest throughput: POST /e/collect against a bare ASGI app, on real servers (issue 12).

    bench/ingest.py [--db sqlite|postgres|both] [--seconds 8] [--connections 32,256]
                    [--processes 1,2] [--rounds 3] [--server serve] [--endpoints bare,collect]
                    [--redis-url redis://127.0.0.1:6379/14] [--env NAME=VALUE ...]

`bench/ingest.py` re-runs itself with the project's .venv python, so it is the same
as `.venv/bin/python bench/ingest.py`. Needs wrk, and PostgreSQL for --db postgres.

For each database - a SQLite file in a temporary directory (the embedded default:
no DATABASE_URL) and a PostgreSQL database created for the run and dropped after it
(--pg-url, default zenovay_bench on 127.0.0.1, user postgres) - it migrates, adds
the website bench.example, and for each number of connections (--connections) runs
wrk --latency (bench/ingest.lua) against:

    bare     bench/bare.py on plain uvicorn (httptools): reads the body, parses its JSON,
             answers 202. The ceiling: what any collect endpoint costs on this server.
    collect  POST /e/collect on --processes server processes (default `manage.py serve`;
             two processes only on PostgreSQL: SQLite has one writer), each with its
             share of the connections and its own wrk process and visitors: tracker
             pageviews, text/plain JSON, desktop Chrome user agents, rotating pages,
             referrers and X-Forwarded-For. --rounds rounds per number of connections,
             each one process then two on the same servers (the second idles meanwhile)
    empty    GET /bench/empty, Django's middleware and routing (with --endpoints)
    json     POST /bench/json, collect's old decorators and body read (with --endpoints)

It prints requests/s, 2xx/s, p50, p99, non-2xx responses, socket errors, server CPU
time per request, and per database and number of connections collect/bare of 2xx/s
(the median one-process run) and two processes over one (the median of the rounds' own
ratios: the machine's other load drifts from minute to minute). Goals: collect >= 3,000/s
on one process, p99 <= 100 ms at 256 connections (the worst run), two processes on
PostgreSQL >= 1.7x one at the largest number of connections (with fewer, a closed loop of
requests is bound by latency, not capacity), and every 202 stored: each
measured collect run sends pages of its own host of the site (warm-ups those of
warmup.bench.example), and once the servers have stopped the events stored for that
host are set beside wrk's 2xx count. Results also go to var/bench-ingest.json (--json).
Exit status 1 when a response was not 2xx, a socket error occurred or the stored
events do not match the 2xx count (up to --connections more are fine: requests in
flight when wrk stops still commit).

Other processes on the machine skew requests/s (wrk and the servers share the CPUs);
server CPU per request is steadier. The load average is printed before each run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from common import (
    BUSY_LOAD,
    DOMAIN,
    ROOT,
    Database,
    Ratio,
    Table,
    ensure_venv,
    epilogue,
    exit_on_sigterm,
    postgres_database,
    prepare,
    process_cpu_seconds,
    server_env,
    sqlite_database,
    wait_idle,
    wrk_command,
    wrk_result,
)

from tests.servers import SERVERS, ServerProcess, free_port, running

LUA_SCRIPT = Path(__file__).resolve().with_name("ingest.lua")
# Pages of the warm-ups and of each measured run are on different hosts of the site, so
# the events of each measured run can be counted alone once the servers have stopped.
WARMUP_HOST = f"warmup.{DOMAIN}"
GOAL_RPS = 3000
GOAL_P99_MS = 100
GOAL_SCALING = 1.7
ENDPOINT_PATHS = {
    "bare": "/e/collect",
    "empty": "/bench/empty",
    "json": "/bench/json",
    "collect": "/e/collect",
}


@dataclass
class Run:
    database: str
    endpoint: str
    processes: int
    connections: int
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    statuses: dict[str, int]
    socket_errors: int
    server_cpu_us: float  # server processes' CPU time (user + system) per completed request
    load_before: float
    host: str = ""
    events_stored: int | None = None
    round: int = 1

    @property
    def ok_count(self) -> int:
        return sum(n for status, n in self.statuses.items() if status.startswith("2"))

    @property
    def non_2xx(self) -> int:
        return self.requests - self.ok_count

    @property
    def ok_rps(self) -> float:
        return self.ok_count / self.seconds if self.seconds else 0.0


@dataclass(frozen=True)
class Load:
    seconds: int
    warmup: int
    threads: int
    visitors: int


def wrk_process(url: str, endpoint: str, code: str, args: list, seconds: int, c: int, t: int):
    """A wrk run in the background (bench/ingest.lua prints `BENCH_RESULT {json}`)."""
    mode = "collect" if endpoint == "bare" else endpoint
    command = wrk_command(
        url, LUA_SCRIPT, [mode, code, *args], seconds=seconds, connections=c, threads=t
    )
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def load_servers(urls, endpoint, code, load: Load, seconds, connections, host) -> list[dict]:
    """wrk against every server at once, the connections shared out; their summaries."""
    share = max(1, connections // len(urls))
    threads = max(1, load.threads // len(urls))
    running = [  # each its own stream of visitors (bench/ingest.lua)
        wrk_process(
            url,
            endpoint,
            code,
            [host, str(load.visitors), "0", str(stream)],
            seconds,
            share,
            threads,
        )
        for stream, url in enumerate(urls)
    ]
    results = []
    for process in running:
        out, err = process.communicate()
        results.append(wrk_result(out, err, process.returncode))
    return results


def measure(database, endpoint, servers, code, load: Load, connections, host) -> Run:
    urls = [server.url + ENDPOINT_PATHS[endpoint] for server in servers]
    pids = [server.proc.pid for server in servers]
    if load.warmup:
        load_servers(urls, endpoint, code, load, load.warmup, connections, WARMUP_HOST)
    for pid in pids:
        wait_idle(pid)  # requests wrk abandoned are still running
    print(
        f"  {database}: {endpoint} x{len(servers)} with {connections} connections for "
        f"{load.seconds}s (load average {os.getloadavg()[0]:.2f})",
        flush=True,
    )
    load_before = os.getloadavg()[0]
    cpu_before = sum(process_cpu_seconds(pid) for pid in pids)
    results = load_servers(urls, endpoint, code, load, load.seconds, connections, host)
    cpu = sum(process_cpu_seconds(pid) for pid in pids) - cpu_before
    requests = sum(r["requests"] for r in results)
    seconds = max(r["duration_us"] for r in results) / 1e6
    statuses: dict[str, int] = {}
    for result in results:
        for status, count in result["statuses"].items():
            statuses[status] = statuses.get(status, 0) + count
    return Run(
        database=database,
        endpoint=endpoint,
        processes=len(servers),
        connections=connections,
        requests=requests,
        seconds=round(seconds, 2),
        rps=round(requests / seconds, 1),
        p50_ms=max(r["p50_us"] for r in results) / 1000,
        p99_ms=max(r["p99_us"] for r in results) / 1000,
        statuses=statuses,
        socket_errors=sum(
            r["errors"][k] for r in results for k in ("connect", "read", "write", "timeout")
        ),
        server_cpu_us=round(cpu * 1e6 / max(requests, 1), 1),
        load_before=round(load_before, 2),
        host=host if endpoint == "collect" else "",
    )


@contextmanager
def servers_of(env: dict[str, str], kind: str, count: int):
    started = [ServerProcess(port=free_port(), env=env, server=kind) for _ in range(count)]
    try:
        for server in started:
            server.start(timeout=60)
        yield started
    finally:
        for server in started:
            server.stop()


def bench_database(database: Database, args: argparse.Namespace, load: Load) -> list[Run]:
    """The bare runs, then per number of connections `--rounds` rounds, each measuring
    one process and then two: the same started servers (the second idles while the first
    runs alone), so each round's two-over-one compares runs made a minute apart at most,
    on a machine whose other load drifts."""
    env = server_env(database, args.redis_url, args.env)
    code = prepare(env).tracking_code
    runs: list[Run] = []
    if "bare" in args.endpoints:
        with running(ServerProcess(port=free_port(), env=dict(os.environ), server="bare")) as bare:
            for connections in args.connections:
                runs.append(measure(database.name, "bare", [bare], code, load, connections, ""))
    counts = [n for n in args.processes if n == 1 or database.name == "postgres"]
    endpoints = [e for e in args.endpoints if e != "bare"]
    if not counts or not endpoints:
        return runs
    with servers_of(env, args.server, max(counts)) as started:
        for connections in args.connections:
            for round_ in range(1, args.rounds + 1):
                for processes in counts:
                    for endpoint in endpoints:
                        host = f"c{connections}-p{processes}-r{round_}.{DOMAIN}"
                        run = measure(
                            database.name, endpoint, started[:processes], code, load,
                            connections, host,
                        )  # fmt: skip
                        run.round = round_
                        runs.append(run)
        for server in started:
            wait_idle(server.proc.pid)
    for run in runs:
        if run.host:
            run.events_stored = database.count_events(run.host)
    return runs


# --- Report.


def table(runs: list[Run]) -> Table:
    header = [
        "database", "endpoint", "round", "procs", "conns", "req/s", "2xx/s", "p50 ms",
        "p99 ms", "requests", "non-2xx", "sockerr", "cpu µs/req", "events",
    ]  # fmt: skip
    rows = [
        [r.database, r.endpoint, r.round, r.processes, r.connections, r.rps, r.ok_rps,
         r.p50_ms, r.p99_ms, r.requests, r.non_2xx, r.socket_errors,
         round(r.server_cpu_us), r.events_stored]
        for r in runs
    ]  # fmt: skip
    return Table("runs", header, rows)


def select(runs: list[Run], database: str, endpoint: str, processes: int, connections: int):
    """The runs of one kind, in round order."""
    return [
        r
        for r in runs
        if (r.database, r.endpoint, r.processes, r.connections)
        == (database, endpoint, processes, connections)
    ]


def ratios(runs: list[Run]) -> list[dict]:
    """Per database and connections: collect/bare and two processes/one.

    collect/bare divides the median of the one-process runs by the bare run. Two over one
    is taken per round (the two runs of a round are made one after the other on the same
    servers) and the median of the rounds is the figure; p99 is the worst one-process run's.
    """
    found = []
    for database in dict.fromkeys(r.database for r in runs):
        for connections in dict.fromkeys(r.connections for r in runs):
            ones = select(runs, database, "collect", 1, connections)
            bares = select(runs, database, "bare", 1, connections)
            twos = {r.round: r for r in select(runs, database, "collect", 2, connections)}
            one = statistics.median(r.ok_rps for r in ones) if ones else None
            bare = bares[0].ok_rps if bares else None
            scaling = [
                twos[r.round].ok_rps / r.ok_rps for r in ones if r.round in twos and r.ok_rps
            ]
            found.append(
                {
                    "database": database,
                    "connections": connections,
                    "collect_rps": round(one, 1) if one is not None else None,
                    "bare_rps": round(bare, 1) if bare is not None else None,
                    "collect_over_bare": round(one / bare, 3) if one and bare else None,
                    "two_over_one": round(statistics.median(scaling), 2) if scaling else None,
                    "two_over_one_by_round": [round(x, 2) for x in scaling],
                    "p99_ms": max(r.p99_ms for r in ones) if ones else None,
                }
            )
    return found


def problems(runs: list[Run]) -> list[str]:
    """Non-2xx answers, socket errors, and stored events that do not match the 2xx count.

    wrk stops with up to `connections` requests in flight; those still commit, so the
    stored events may exceed the 2xx count by that much, never fall short of it.
    """
    found = []
    for r in runs:
        name = f"{r.database}/{r.endpoint} x{r.processes} c{r.connections}"
        if r.non_2xx:
            found.append(f"{name}: {r.non_2xx} non-2xx {r.statuses}")
        if r.socket_errors:
            found.append(f"{name}: {r.socket_errors} socket errors")
        stored = r.events_stored
        if stored is not None and not r.ok_count <= stored <= r.ok_count + r.connections:
            found.append(f"{name}: {stored} events stored for {r.ok_count} 2xx responses")
    return found


def ratio_lines(runs: list[Run]) -> list[Ratio]:
    """collect/bare and two processes/one, each with its absolute figures and goal."""
    found = []
    lines = ratios(runs)
    for line in lines:
        name = f"{line['database']} c{line['connections']}"
        one, bare = line["collect_rps"], line["bare_rps"]
        if one is not None and bare is not None:
            found.append(
                Ratio(
                    f"{name} collect/bare",
                    line["collect_over_bare"],
                    f"{one:,} 2xx/s",
                    f"{bare:,} 2xx/s",
                    f">= collect {GOAL_RPS}/s",
                    one >= GOAL_RPS,
                )
            )
        if line["two_over_one"] is not None:
            two = round(line["two_over_one"] * one) if one else 0
            saturating = line["connections"] == max(r["connections"] for r in lines)
            found.append(
                Ratio(
                    f"{name} two processes/one (median of {len(line['two_over_one_by_round'])})",
                    line["two_over_one"],
                    f"~{two:,} 2xx/s",
                    f"{one:,} 2xx/s",
                    f">= {GOAL_SCALING}" if saturating else "",
                    line["two_over_one"] >= GOAL_SCALING if saturating else None,
                )
            )
        if line["connections"] >= 256 and line["p99_ms"] is not None:
            fine = line["p99_ms"] <= GOAL_P99_MS
            found.append(
                Ratio(
                    f"{name} collect p99 / goal",
                    line["p99_ms"] / GOAL_P99_MS,
                    f"{line['p99_ms']} ms",
                    f"{GOAL_P99_MS} ms",
                    "<= 1",
                    fine,
                )
            )
    return found


def report(runs: list[Run], args: argparse.Namespace) -> int:
    notes = [
        f"{r.database} x{r.processes} c{r.connections} round {r.round}: wrk completed "
        f"{r.requests} requests, {r.ok_count} 2xx; {r.events_stored} events stored"
        for r in runs
        if r.events_stored is not None
    ]
    lines = ratios(runs)
    notes += [
        f"{line['database']} c{line['connections']}: two processes/one by round "
        f"{line['two_over_one_by_round']}"
        for line in lines
        if line["two_over_one_by_round"]
    ]
    if any(line["two_over_one"] is not None for line in lines) and len(args.connections) > 1:
        notes.append(
            f"two processes/one has its goal at {max(args.connections)} connections only: "
            "each connection sends its next request when answered, so with fewer the "
            "throughput is connections / latency, which a second process can raise only by "
            "cutting the latency, not by adding capacity"
        )
    if busy := [r for r in runs if r.load_before > BUSY_LOAD]:
        notes.append(
            f"load average was above {BUSY_LOAD} before {len(busy)} run(s): other "
            "processes competed for the CPUs; compare cpu µs/req rather than req/s"
        )
    settings = {
        "server": args.server,
        "seconds": args.seconds,
        "rounds": args.rounds,
        "wrk_threads": args.threads,
        "redis": args.redis_url or "no (in-process cache)",
        **args.env,
    }
    return epilogue(
        "bench/ingest.py",
        settings=settings,
        tables=[table(runs)],
        ratios=ratio_lines(runs),
        notes=notes,
        problems=problems(runs),
        data={
            "ratios_by_run": ratios(runs),
            "runs": [asdict(run) | {"ok_rps": round(run.ok_rps, 1)} for run in runs],
        },
        json_path=args.json,
    )


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark POST /e/collect against an empty Django view (see the module doc)."
    )
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--seconds", type=int, default=8, help="per measured run (default 8)")
    parser.add_argument(
        "--connections", default="32,256", help="wrk -c, comma-separated (default 32,256)"
    )
    parser.add_argument(
        "--processes", default="1,2", help="server processes, comma-separated (default 1,2)"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="rounds of one process then two, per number of connections (default 3)",
    )
    parser.add_argument("--threads", type=int, default=2, help="wrk -t (default 2)")
    parser.add_argument("--warmup", type=int, default=2, help="seconds before each run")
    parser.add_argument("--server", choices=SERVERS, default="serve")
    parser.add_argument(
        "--endpoints",
        default="bare,collect",
        help="comma-separated, of bare,empty,json,collect (default bare,collect)",
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
    parser.add_argument(
        "--json",
        type=Path,
        default=ROOT / "var" / "bench-ingest.json",
        help="write the results here too (default var/bench-ingest.json)",
    )
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
    args.connections = [int(n) for n in args.connections.split(",") if n.strip()]
    args.processes = [int(n) for n in args.processes.split(",") if n.strip()]
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
    load = Load(args.seconds, args.warmup, args.threads, args.visitors)
    names = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    runs: list[Run] = []
    for name in names:
        print(f"{name}: preparing", flush=True)
        with database_context(name, args) as database:
            runs += bench_database(database, args, load)
    return report(runs, args)


if __name__ == "__main__":
    ensure_venv()
    sys.exit(main(sys.argv[1:]))
