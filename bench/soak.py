#!/usr/bin/env python3
"""Soak (issue 6): minutes of mixed traffic on one server (PostgreSQL + Redis); flat memory?

    .venv/bin/python bench/soak.py [--seconds 180] [--server daphne|uvicorn]
                                   [--collect-connections 4] [--collect-rate 0]
                                   [--read-connections 8] [--read-rate 0]
                                   [--sockets 1000] [--sample-every 10]

ONE server (bench views on, 127.0.0.1 a trusted proxy) on a PostgreSQL database made
for the run (zenovay_bench_soak, dropped after) and a private redis-server (REDIS_URL:
shared cache, rate limits and channel layer), one website. While --seconds run:

    collect   wrk + bench/ingest.lua: tracker pageviews (POST /e/collect) from a pool
              of visitors over --collect-connections connections, each sending its next
              request as soon as it has the answer (the server is kept busy), or with
              --collect-rate R a pause of connections*1000/R ms before each request
              (wrk's delay(): at most R per second, less by the response time)
    reads     wrk + bench/reads.lua: /e/live, /e/realtime, /e/stats (today, week,
              month) and /e/{code}/status in turn over --read-connections (and
              --read-rate likewise), X-Forwarded-For from a pool of addresses (429s
              are reported apart)
    sockets   --sockets WebSockets held open all along (4 in 5 on /ws/live/{code}, the
              rest on /ws/realtime/{id}), counting the pushes they receive

Every --sample-every seconds: the server's RSS (VmRSS), CPU, threads and open file
descriptors, events stored so far, pushes received, the machine's load average.

Reported: throughput per stream, error rate (anything but 2xx, 304 and 429 counts as an
error, plus socket errors; 429s apart), p50 and p99 latency per HTTP stream, sockets
dropped; RSS over time and the verdict: the mean of the last third of the samples
against the mean of the first third ("flat" when it grew by at most 5% or 10 MiB,
whichever is more), with the least-squares slope in MiB per minute. At the end (once
the server is idle): events stored == 202 answers to wrk, up to --collect-connections
more (requests in flight when wrk stopped still commit). Results go to
var/bench-soak.json. Exit status 1 on errors, drops, growth or missing events.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from common import (
    DOMAIN,
    ROOT,
    Database,
    Site,
    Table,
    WrkResult,
    code_version,
    connect_many,
    ensure_venv,
    epilogue,
    exit_on_sigterm,
    postgres_database,
    prepare,
    process_cpu_seconds,
    process_rss_kib,
    raise_open_files_limit,
    redis_server,
    require,
    running_server,
    server_env,
    uptime,
    wait_idle,
    wrk_command,
    wrk_result,
)

from tests.servers import SERVERS

BENCH_DIR = Path(__file__).resolve().parent
RUN_HOST = f"www.{DOMAIN}"
FLAT_FRACTION = 0.05
FLAT_MIB = 10.0


@dataclass
class Sample:
    t: float  # seconds since the load started
    rss_mib: float
    cpu_s: float  # server CPU seconds since the load started
    threads: int
    fds: int
    events: int
    pushes: int
    load: float


@dataclass
class Sockets:
    live: int = 0
    realtime: int = 0
    failed: int = 0
    dropped: int = 0
    messages: int = 0
    connections: list[Any] = field(default_factory=list)
    readers: list[asyncio.Task] = field(default_factory=list)
    closing: bool = False

    async def read(self, ws: Any) -> None:
        try:
            async for _ in ws:
                self.messages += 1
        except Exception:  # noqa: S110 - counted as dropped below
            pass
        if not self.closing:
            self.dropped += 1

    def opened(self, ws: Any) -> None:
        self.connections.append(ws)
        self.readers.append(asyncio.create_task(self.read(ws)))

    def abort(self) -> None:
        self.closing = True
        for ws in self.connections:
            with contextlib.suppress(Exception):
                ws.transport.abort()
        for task in self.readers:
            task.cancel()


def process_status(pid: int, field_name: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1])
    return 0


def open_fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


async def run_wrk_async(command: list[str]) -> WrkResult:
    proc = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await proc.communicate()
    return WrkResult.parse(wrk_result(out.decode(), err.decode(), proc.returncode or 0))


def delay_ms(rate: float, connections: int) -> int:
    """wrk's per-connection pause before each request for about `rate` requests/s."""
    return 0 if rate <= 0 else max(1, round(connections * 1000 / rate))


def streams(url: str, site: Site, args: argparse.Namespace) -> dict[str, list[str]]:
    reads = [
        f"/e/live/{site.tracking_code}",
        f"/e/realtime/{site.website_id}",
        f"/e/stats/{site.tracking_code}?period=today",
        f"/e/stats/{site.tracking_code}?period=week",
        f"/e/stats/{site.tracking_code}?period=month",
        f"/e/{site.tracking_code}/status",
    ]
    collect_args = ["collect", site.tracking_code, RUN_HOST, "2000",
                    str(delay_ms(args.collect_rate, args.collect_connections))]  # fmt: skip
    read_args = ["5000", "7", str(delay_ms(args.read_rate, args.read_connections)), *reads]
    return {
        "collect": wrk_command(
            url + "/e/collect",
            BENCH_DIR / "ingest.lua",
            collect_args,
            seconds=args.seconds,
            connections=args.collect_connections,
            threads=1,
        ),
        "reads": wrk_command(
            url + reads[0],
            BENCH_DIR / "reads.lua",
            read_args,
            seconds=args.seconds,
            connections=args.read_connections,
            threads=1,
        ),
    }


async def sample_loop(
    pid: int, count_events, sockets: Sockets, every: float, samples: list[Sample]
) -> None:
    started = time.monotonic()
    cpu0 = process_cpu_seconds(pid)
    while True:
        await asyncio.sleep(every - (time.monotonic() - started) % every)
        sample = Sample(
            t=round(time.monotonic() - started, 1),
            rss_mib=round(process_rss_kib(pid) / 1024, 1),
            cpu_s=round(process_cpu_seconds(pid) - cpu0, 2),
            threads=process_status(pid, "Threads"),
            fds=open_fds(pid),
            events=await asyncio.to_thread(count_events, RUN_HOST),
            pushes=sockets.messages,
            load=round(os.getloadavg()[0], 2),
        )
        samples.append(sample)
        print(
            f"    t={sample.t:>5.0f}s  RSS {sample.rss_mib:>6.1f} MiB  cpu {sample.cpu_s:>6.1f}s  "
            f"threads {sample.threads}  fds {sample.fds}  events {sample.events}  "
            f"pushes {sample.pushes}  load {sample.load}",
            flush=True,
        )


async def soak(
    server_url: str, pid: int, site: Site, database: Database, args: argparse.Namespace
) -> dict[str, Any]:
    ws_base = server_url.replace("http://", "ws://")
    live = round(args.sockets * 0.8)
    urls = [f"{ws_base}/ws/live/{site.tracking_code}"] * live
    urls += [f"{ws_base}/ws/realtime/{site.website_id}"] * (args.sockets - live)
    sockets = Sockets(live=live, realtime=args.sockets - live)
    started = time.monotonic()
    sockets.failed = await connect_many(urls, 100, sockets.opened)
    print(f"  {len(sockets.connections)} sockets open in {time.monotonic() - started:.1f} s")
    await asyncio.sleep(2)
    rss_with_sockets = process_rss_kib(pid) / 1024
    samples: list[Sample] = []
    sampler = asyncio.create_task(
        sample_loop(pid, database.count_events, sockets, args.sample_every, samples)
    )
    print(f"  load for {args.seconds} s (machine: {uptime()})", flush=True)
    commands = streams(server_url, site, args)
    pushes_before = sockets.messages
    load_started = time.monotonic()
    results = await asyncio.gather(*(run_wrk_async(c) for c in commands.values()))
    elapsed = time.monotonic() - load_started
    sampler.cancel()
    pushes = sockets.messages - pushes_before
    dropped = sockets.dropped
    sockets.abort()
    return {
        "wrk": dict(zip(commands, results, strict=True)),
        "seconds": elapsed,
        "samples": samples,
        "pushes": pushes,
        "sockets": sockets,
        "dropped": dropped,
        "rss_with_sockets_mib": rss_with_sockets,
    }


# --- Report


def memory_verdict(samples: list[Sample]) -> dict[str, Any]:
    if len(samples) < 3:
        return {"verdict": "too few samples", "flat": False}
    third = max(1, len(samples) // 3)
    first = statistics.mean(s.rss_mib for s in samples[:third])
    last = statistics.mean(s.rss_mib for s in samples[-third:])
    times = [s.t / 60 for s in samples]
    slope = statistics.linear_regression(times, [s.rss_mib for s in samples]).slope
    growth = last - first
    flat = growth <= max(FLAT_MIB, FLAT_FRACTION * first)
    return {
        "first_third_mib": round(first, 1),
        "last_third_mib": round(last, 1),
        "growth_mib": round(growth, 1),
        "growth_percent": round(100 * growth / first, 1),
        "slope_mib_per_min": round(slope, 2),
        "flat": flat,
        "verdict": "FLAT" if flat else "GROWING",
    }


def report(
    outcome: dict[str, Any], stored: int, args: argparse.Namespace
) -> tuple[list[Table], list[str], list[str]]:
    problems: list[str] = []
    notes: list[str] = []
    rows = []
    for name, r in outcome["wrk"].items():
        errors = r.errors
        rows.append(
            [name, r.requests, r.rps, r.ok_rps, r.p50_ms, r.p99_ms, r.rate_limited, errors,
             f"{100 * errors / max(r.requests, 1):.3f}%", json.dumps(r.statuses)]
        )  # fmt: skip
        if errors:
            problems.append(f"{name}: {errors} errors {r.statuses} ({r.socket_errors} socket)")
    sockets: Sockets = outcome["sockets"]
    connected = len(sockets.connections)
    rows.append(
        ["sockets", connected, outcome["pushes"] / outcome["seconds"], "", "", "", "",
         sockets.failed + outcome["dropped"], f"{sockets.failed} failed, "
         f"{outcome['dropped']} dropped", f"{sockets.live} live + {sockets.realtime} realtime"]
    )  # fmt: skip
    if sockets.failed or outcome["dropped"]:
        problems.append(f"sockets: {sockets.failed} failed, {outcome['dropped']} dropped")
    tables = [
        Table("streams (sockets: requests = sockets held, req/s = pushes received per second)",
              ["stream", "requests", "req/s", "2xx/s", "p50 ms", "p99 ms", "429", "errors",
               "error rate", "statuses"], rows),
        Table("memory over time",
              ["t s", "RSS MiB", "cpu s", "threads", "fds", "events", "pushes", "load"],
              [[s.t, s.rss_mib, s.cpu_s, s.threads, s.fds, s.events, s.pushes, s.load]
               for s in outcome["samples"]]),
    ]  # fmt: skip
    memory = memory_verdict(outcome["samples"])
    outcome["memory"] = memory
    notes.append(
        f"RSS with {connected} sockets before the load: "
        f"{outcome['rss_with_sockets_mib']:.1f} MiB; "
        f"first third {memory.get('first_third_mib')} MiB, last third "
        f"{memory.get('last_third_mib')} MiB ({memory.get('growth_mib'):+} MiB, "
        f"{memory.get('growth_percent')}%), slope {memory.get('slope_mib_per_min')} MiB/min: "
        f"{memory['verdict']}"
    )
    if not memory["flat"]:
        problems.append(f"memory {memory['verdict']}: {memory}")
    acked = outcome["wrk"]["collect"].statuses.get("202", 0)
    in_flight = args.collect_connections
    ok = acked <= stored <= acked + in_flight
    notes.append(
        f"events: {acked} answered 202, {stored} stored "
        f"({'ok' if ok else 'MISMATCH'}; up to {in_flight} more may be in flight)"
    )
    if not ok:
        problems.append(f"{stored} events stored for {acked} 202s")
    return tables, notes, problems


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Mixed-traffic soak; see the module doc.")
    parser.add_argument("--seconds", type=int, default=180)
    parser.add_argument("--server", choices=SERVERS, default="daphne")
    parser.add_argument(
        "--collect-rate", type=float, default=0, help="cap on events/s (default 0: none)"
    )
    parser.add_argument("--collect-connections", type=int, default=4)
    parser.add_argument("--read-rate", type=float, default=0, help="cap on reads/s (0: none)")
    parser.add_argument("--read-connections", type=int, default=8)
    parser.add_argument("--sockets", type=int, default=1000)
    parser.add_argument("--sample-every", type=float, default=10.0)
    parser.add_argument("--redis-url", default="", help="use this Redis (flushed) instead")
    parser.add_argument("--pg-url", default="postgres://postgres@127.0.0.1:5432/zenovay_bench_soak")
    parser.add_argument("--json", type=Path, default=ROOT / "var" / "bench-soak.json")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE")
    args = parser.parse_args(argv)
    args.env = dict(item.split("=", 1) for item in args.env)
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    exit_on_sigterm()
    require("wrk")
    limit = raise_open_files_limit()
    print(f"code {code_version()}; machine: {uptime()}  (open files limit {limit})")
    with postgres_database(args.pg_url) as database, redis_server(args.redis_url) as redis_url:
        env = server_env(database, redis_url, args.env)
        site = prepare(env)
        with running_server(env, args.server) as server:
            outcome = asyncio.run(soak(server.url, server.proc.pid, site, database, args))
            wait_idle(server.proc.pid)
            stored = database.count_events(RUN_HOST)
    tables, notes, problems = report(outcome, stored, args)
    settings = {"server": args.server, "seconds": args.seconds,
                "collect": f"≤{args.collect_rate}/s x{args.collect_connections}",
                "reads": f"≤{args.read_rate}/s x{args.read_connections}",
                "sockets": args.sockets}  # fmt: skip
    data = {
        "seconds": outcome["seconds"],
        "streams": {
            name: asdict(r) | {"rps": r.rps, "ok_rps": r.ok_rps, "errors": r.errors}
            for name, r in outcome["wrk"].items()
        },
        "sockets": {
            "held": len(outcome["sockets"].connections),
            "failed": outcome["sockets"].failed,
            "dropped": outcome["dropped"],
            "pushes": outcome["pushes"],
            "pushes_per_second": outcome["pushes"] / outcome["seconds"],
        },
        "rss_with_sockets_mib": outcome["rss_with_sockets_mib"],
        "samples": [asdict(s) for s in outcome["samples"]],
        "memory": outcome["memory"],
        "events": {
            "acked_202": outcome["wrk"]["collect"].statuses.get("202", 0),
            "stored": stored,
        },
    }
    data["args"] = {k: v for k, v in vars(args).items() if k != "json"}
    return epilogue("bench/soak.py", settings=settings, tables=tables, notes=notes,
                    problems=problems, data=data, json_path=args.json)  # fmt: skip


if __name__ == "__main__":
    ensure_venv()
    sys.exit(main(sys.argv[1:]))
