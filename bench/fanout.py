#!/usr/bin/env python3
"""WebSocket fan-out: N idle sockets on /ws/live/{code}, one event, how fast it reaches them.

    .venv/bin/python bench/fanout.py [--sockets 1000,5000] [--server daphne,uvicorn-plain]
                                     [--layer memory,redis] [--events 3] [--db sqlite]
                                     [--deliver-timeout 10] [--connect-concurrency 100]
                                     [--open-budget 300] [--idle-window 11]
                                     [--compression deflate|none] [--redis-url URL]

For every server (daphne, uvicorn, uvicorn-plain: see tests/servers.py), channel layer
("memory": no REDIS_URL, the in-process layer; "redis": REDIS_URL set, channels_redis on a
private redis-server) and socket count N, it starts a FRESH server process (so that its
memory is measured from the same state) and adds a new website, then:

1. opens and closes 20 sockets and collects one event for another website (the server
   imports and warms up what sockets and collect use), waits until the server is idle
   and reads its RSS (VmRSS in /proc/PID/status);
2. opens N WebSockets to /ws/live/{code}, --connect-concurrency at a time, like browsers
   (Origin header, permessage-deflate offered unless --compression none, no client
   pings), and waits for every socket's first snapshot (sockets not open within
   --open-budget seconds count as failed);
3. reads the server's RSS again: (RSS with N sockets - RSS before) / (N / 1000) is the
   memory per 1,000 idle sockets (goal <= 60 MiB);
4. for --idle-window seconds with no event, measures the server's CPU, this process's
   CPU and the pushes the sockets receive (the ticker refreshes sites with viewers every
   5 s): server CPU per push message received is the cost of the fan-out per socket;
5. sends --events events, one at a time, 1 to 2 s apart (so they land at different
   phases of the push ticker): POST /e/collect, a pageview of a new visitor, so liveCount
   goes up by one. Times taken with time.monotonic(): when the POST was sent and when the
   202's status line arrived. Every socket notes when it first receives a liveCount that
   counts the new visitor. Latency per socket = that moment - the 202's (negative when
   the push arrived before the 202 did). Reported: p50, p95 and max over all sockets and
   events, the share delivered within --deliver-timeout of the 202 (goal 100%), the
   push delay (the first socket's latency) and the fan-out spread (p95 - first), the
   collect's round trip, and p95 counted from the POST. Goals: p95 <= 250 ms at 1,000
   sockets, <= 1 s at 5,000.

All sockets live in this one asyncio process, which records receive times with
time.monotonic() (the same clock as the 202's); its own CPU is reported with the idle
cost, so it can be told apart from the server's. RLIMIT_NOFILE is raised to the hard
limit (the servers inherit it). Results go to var/bench-fanout.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from common import (
    BROWSER_AGENT,
    ROOT,
    Database,
    Ratio,
    Site,
    Table,
    add_site,
    code_version,
    connect_many,
    ensure_venv,
    epilogue,
    exit_on_sigterm,
    percentile,
    postgres_database,
    prepare,
    process_cpu_seconds,
    process_rss_kib,
    raise_open_files_limit,
    redis_server,
    running_server,
    server_env,
    sqlite_database,
    uptime,
)

from tests.servers import SERVERS

GOAL_P95_MS = {1000: 250.0, 5000: 1000.0}
GOAL_MIB_PER_1000 = 60.0


def goal_p95_ms(sockets: int) -> float:
    """250 ms up to 1,000 sockets, 1 s up to 5,000 (linear in between), 1 s beyond."""
    if sockets <= 1000:
        return GOAL_P95_MS[1000]
    if sockets >= 5000:
        return GOAL_P95_MS[5000]
    return 250.0 + (sockets - 1000) * 750.0 / 4000


# --- The clients


@dataclass
class Fleet:
    """N sockets and what they received: per socket, when it first saw `target`."""

    target: int = 1 << 30
    connections: list[Any] = field(default_factory=list)
    readers: list[asyncio.Task] = field(default_factory=list)
    initial: int = 0  # sockets that received their first snapshot
    arrivals: list[float | None] = field(default_factory=list)
    messages: int = 0
    failed: int = 0  # could not connect
    dropped: int = 0  # closed by the server while the benchmark ran
    closing: bool = False
    all_initial: asyncio.Event = field(default_factory=asyncio.Event)
    expected: int = 0

    def aim(self, target: int) -> None:
        self.arrivals = [None] * len(self.connections)
        self.target = target

    async def read(self, index: int, ws: Any) -> None:
        first = True
        try:
            async for message in ws:
                now = time.monotonic()
                self.messages += 1
                count = json.loads(message)["liveCount"]
                if first:
                    first = False
                    self.initial += 1
                    if self.initial >= self.expected:
                        self.all_initial.set()
                if count >= self.target and self.arrivals[index] is None:
                    self.arrivals[index] = now
        except Exception:  # noqa: S110 - a dropped socket is counted below
            pass
        if not self.closing:
            self.dropped += 1

    def delivered(self) -> int:
        return sum(a is not None for a in self.arrivals)

    def abort(self) -> None:
        self.closing = True
        for ws in self.connections:
            with contextlib.suppress(Exception):
                ws.transport.abort()
        for task in self.readers:
            task.cancel()


async def open_fleet(
    url: str, count: int, concurrency: int, compression: str | None, budget: float = 600.0
) -> Fleet:
    """`count` sockets, `concurrency` handshakes at a time, each with a reader task; those
    not open after `budget` seconds are given up (counted as failed)."""
    fleet = Fleet(expected=count)

    def opened(ws: Any) -> None:
        index = len(fleet.connections)
        fleet.connections.append(ws)
        fleet.arrivals.append(None)
        fleet.readers.append(asyncio.create_task(fleet.read(index, ws)))

    try:
        opening = connect_many([url] * count, concurrency, opened, compression)
        await asyncio.wait_for(opening, budget)
    except TimeoutError:
        print(f"    gave up opening sockets after {budget:.0f} s")
    fleet.failed = count - len(fleet.connections)
    fleet.expected = len(fleet.connections)
    if fleet.initial >= fleet.expected:
        fleet.all_initial.set()
    return fleet


async def post_collect(
    host: str, port: int, site: Site, body: bytes, client_ip: str
) -> tuple[float, float]:
    """POST /e/collect from a page of `site` (its Origin) on a new connection: monotonic
    times it was sent and its 202 came."""
    reader, writer = await asyncio.open_connection(host, port)
    head = (
        f"POST /e/collect HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Content-Type: text/plain;charset=UTF-8\r\nContent-Length: {len(body)}\r\n"
        f"User-Agent: {BROWSER_AGENT}\r\nOrigin: https://{site.domain}\r\n"
        f"X-Forwarded-For: {client_ip}\r\n"
        "Connection: close\r\n\r\n"
    )
    sent = time.monotonic()
    writer.write(head.encode() + body)
    await writer.drain()
    status_line = await reader.readline()
    acked = time.monotonic()
    head_bytes = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head_bytes.decode("latin-1").split("\r\n"):
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    rest = await reader.readexactly(length)
    writer.close()
    status = int(status_line.split()[1])
    if status != 202 or b'"ignored"' in rest:
        raise SystemExit(f"collect answered {status_line!r} {rest[-300:]!r}")
    return sent, acked


async def idle(pid: int, quiet: float = 0.02, timeout: float = 60.0) -> None:
    """Until the server uses less than `quiet` CPU seconds per half second."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        before = process_cpu_seconds(pid)
        await asyncio.sleep(0.5)
        if process_cpu_seconds(pid) - before < quiet:
            return


# --- One configuration: server, layer, socket count


@dataclass
class EventResult:
    delivered: int
    ack_ms: float  # the collect's round trip: POST sent to 202 received
    first_ms: float | None  # latencies from the 202 (negative: pushed before the 202 came)
    p50_ms: float | None
    p95_ms: float | None
    max_ms: float | None
    p95_from_post_ms: float | None  # the same from the moment the POST was sent


@dataclass
class Config:
    server: str
    layer: str
    sockets: int
    code: str = ""  # commit of the app code when the server started
    connected: int = 0
    failed: int = 0
    dropped: int = 0
    open_seconds: float = 0.0
    rss_before_mib: float = 0.0
    rss_after_mib: float = 0.0
    mib_per_1000: float = 0.0
    events: list[EventResult] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)  # from the 202, all events
    from_post_ms: list[float] = field(default_factory=list)  # from the POST, all events
    expected_deliveries: int = 0
    load_before: float = 0.0
    # With the N sockets open and no event: the ticker's periodic pushes.
    idle_seconds: float = 0.0
    idle_server_cpu_percent: float = 0.0
    idle_client_cpu_percent: float = 0.0
    idle_messages_per_s: float = 0.0
    server_cpu_us_per_message: float = 0.0

    @property
    def delivered_fraction(self) -> float:
        if not self.expected_deliveries:
            return 0.0
        return len(self.latencies_ms) / self.expected_deliveries

    def stat(self, q: float, values: list[float] | None = None) -> float | None:
        values = self.latencies_ms if values is None else values
        return percentile(values, q) if values else None


def pageview(site: Site, path: str) -> bytes:
    return json.dumps(
        {"code": site.tracking_code, "type": "pageview",
         "url": f"https://www.{site.domain}{path}", "referrer": None}
    ).encode()  # fmt: skip


async def run_events(
    fleet: Fleet, host: str, port: int, site: Site, args: argparse.Namespace, config: Config
) -> None:
    """One event at a time; each socket's latency to the first liveCount counting it."""
    for number in range(args.events):
        await asyncio.sleep(random.uniform(1.0, 2.0))  # another phase of the push ticker
        fleet.aim(number + 1)  # each event is a new visitor: liveCount = events so far
        body = pageview(site, f"/fanout/{number}")
        sent, acked = await post_collect(host, port, site, body, f"203.0.113.{10 + number}")
        deadline = acked + args.deliver_timeout
        while fleet.delivered() < len(fleet.connections) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        arrived = [a for a in fleet.arrivals if a is not None and a <= deadline]
        latencies = [(a - acked) * 1000 for a in arrived]
        from_post = [(a - sent) * 1000 for a in arrived]
        config.latencies_ms += latencies
        config.from_post_ms += from_post
        config.expected_deliveries += len(fleet.connections)
        config.events.append(
            EventResult(
                delivered=len(latencies),
                ack_ms=(acked - sent) * 1000,
                first_ms=min(latencies) if latencies else None,
                p50_ms=percentile(latencies, 50) if latencies else None,
                p95_ms=percentile(latencies, 95) if latencies else None,
                max_ms=max(latencies) if latencies else None,
                p95_from_post_ms=percentile(from_post, 95) if from_post else None,
            )
        )
        last = config.events[-1]
        print(
            f"    event {number + 1}: {last.delivered}/{len(fleet.connections)} delivered; "
            f"202 after {last.ack_ms:.0f} ms; from the 202: first {last.first_ms or 0:.0f} ms, "
            f"p95 {last.p95_ms or 0:.0f} ms, max {last.max_ms or 0:.0f} ms",
            flush=True,
        )


async def idle_cost(fleet: Fleet, pid: int, seconds: float, config: Config) -> None:
    """Server and client CPU, and pushes received, with the sockets open and no event."""
    cpu, own, messages = process_cpu_seconds(pid), time.process_time(), fleet.messages
    started = time.monotonic()
    await asyncio.sleep(seconds)
    elapsed = time.monotonic() - started
    server_cpu = process_cpu_seconds(pid) - cpu
    received = fleet.messages - messages
    config.idle_seconds = elapsed
    config.idle_server_cpu_percent = 100 * server_cpu / elapsed
    config.idle_client_cpu_percent = 100 * (time.process_time() - own) / elapsed
    config.idle_messages_per_s = received / elapsed
    config.server_cpu_us_per_message = 1e6 * server_cpu / received if received else 0.0
    print(
        f"    idle {elapsed:.0f} s: server CPU {config.idle_server_cpu_percent:.0f}%, "
        f"client CPU {config.idle_client_cpu_percent:.0f}%, {received} pushes received "
        f"({config.server_cpu_us_per_message:.0f} µs of server CPU each)",
        flush=True,
    )


async def measure(
    server_url: str, pid: int, site: Site, warmup: Site, args: argparse.Namespace, config: Config
) -> None:
    """Warm up, RSS before, open the sockets, RSS after, idle cost, then the events."""
    host, port = "127.0.0.1", int(server_url.rsplit(":", 1)[1])
    url = f"ws://{host}:{port}/ws/live/{site.tracking_code}"
    compression = None if args.compression == "none" else "deflate"
    warm = await open_fleet(url, 20, 20, compression)
    await asyncio.wait_for(warm.all_initial.wait(), 30)
    warm.abort()
    # The first collect of a process loads the user-agent and country data: not fan-out.
    await post_collect(host, port, warmup, pageview(warmup, "/warm-up"), "203.0.113.250")
    await asyncio.sleep(1.0)
    await idle(pid)
    config.rss_before_mib = process_rss_kib(pid) / 1024
    config.load_before = os.getloadavg()[0]
    started = time.monotonic()
    fleet = await open_fleet(
        url, config.sockets, args.connect_concurrency, compression, args.open_budget
    )
    config.connected, config.failed = len(fleet.connections), fleet.failed
    try:
        await asyncio.wait_for(fleet.all_initial.wait(), 120)
    except TimeoutError:
        print(f"    only {fleet.initial}/{fleet.expected} sockets got a first snapshot")
    config.open_seconds = time.monotonic() - started
    print(
        f"    {config.connected} sockets open in {config.open_seconds:.1f} s "
        f"({config.failed} failed)",
        flush=True,
    )
    await asyncio.sleep(2.0)
    await idle(pid, timeout=10)  # the ticker's pushes keep it from ever being quite idle
    config.rss_after_mib = process_rss_kib(pid) / 1024
    if config.connected:
        per_1000 = (config.rss_after_mib - config.rss_before_mib) * 1000 / config.connected
        config.mib_per_1000 = per_1000
    try:
        await idle_cost(fleet, pid, args.idle_window, config)
        await run_events(fleet, host, port, site, args, config)
    finally:
        config.dropped = fleet.dropped
        fleet.abort()


def bench_config(
    database: Database,
    redis_url: str,
    server: str,
    layer: str,
    sockets: int,
    args: argparse.Namespace,
) -> Config:
    """A fresh server and website for one (server, layer, sockets) configuration."""
    env = server_env(database, redis_url, args.env)
    name = f"fanout-{server}-{layer}-{sockets}-{random.randrange(10**6)}"
    site, warmup = add_site(env, f"{name}.example"), add_site(env, f"{name}-warm-up.example")
    config = Config(server=server, layer=layer, sockets=sockets, code=code_version())
    print(
        f"  {server} / {layer} / {sockets} sockets (load {os.getloadavg()[0]:.2f}, "
        f"code {config.code})",
        flush=True,
    )
    with running_server(env, server) as process:
        asyncio.run(measure(process.url, process.proc.pid, site, warmup, args, config))
    return config


# --- Report


def verdicts(config: Config) -> list[str]:
    found = []
    p95 = config.stat(95)
    goal = goal_p95_ms(config.sockets)
    if p95 is None or p95 > goal:
        found.append(f"p95 {p95 or 0:.0f} ms > {goal:.0f} ms")
    if config.delivered_fraction < 1.0 or config.failed or config.dropped:
        found.append(
            f"delivered {100 * config.delivered_fraction:.1f}% "
            f"({config.failed} failed to connect, {config.dropped} dropped)"
        )
    if config.mib_per_1000 > GOAL_MIB_PER_1000:
        found.append(f"{config.mib_per_1000:.1f} MiB per 1,000 sockets > {GOAL_MIB_PER_1000:g}")
    return found


def _median(values: list[float]) -> float | None:
    return sorted(values)[len(values) // 2] if values else None


def ratio_lines(configs: list[Config]) -> list[Ratio]:
    """Per configuration: p95 over its goal and MiB per 1,000 sockets over its goal."""
    found = []
    for c in configs:
        name, p95, goal = f"{c.server}/{c.layer}/{c.sockets}", c.stat(95), goal_p95_ms(c.sockets)
        found.append(
            Ratio(f"{name} p95/goal", None if p95 is None else p95 / goal,
                  f"{p95 or 0:.1f} ms", f"{goal:.0f} ms", "<= 1", p95 is not None and p95 <= goal)
        )  # fmt: skip
        mib = c.mib_per_1000
        found.append(
            Ratio(f"{name} memory/goal", mib / GOAL_MIB_PER_1000, f"{mib:.1f} MiB/1000 sockets",
                  f"{GOAL_MIB_PER_1000:g} MiB", "<= 1", mib <= GOAL_MIB_PER_1000)
        )  # fmt: skip
    return found


def report(configs: list[Config]) -> tuple[Table, str, list[str]]:
    header = ["server", "layer", "sockets", "open s", "delivered", "p50 ms", "p95 ms",
              "max ms", "first ms", "spread ms", "202 ms", "p95 POST", "idle cpu",
              "µs/push", "RSS MiB", "MiB/1000", "verdict"]  # fmt: skip
    rows, problems = [], []
    for c in configs:
        first = _median([e.first_ms for e in c.events if e.first_ms is not None])
        p95 = c.stat(95)
        spread = p95 - first if p95 is not None and first is not None else None
        found = verdicts(c)
        problems += [f"{c.server}/{c.layer}/{c.sockets}: {f}" for f in found]
        rows.append(
            [c.server, c.layer, c.connected, c.open_seconds,
             f"{100 * c.delivered_fraction:.1f}%", c.stat(50), p95, c.stat(100), first, spread,
             _median([e.ack_ms for e in c.events]), c.stat(95, c.from_post_ms),
             f"{c.idle_server_cpu_percent:.0f}%", c.server_cpu_us_per_message,
             f"{c.rss_before_mib:.0f}->{c.rss_after_mib:.0f}", c.mib_per_1000,
             "ok" if not found else "FAIL"]
        )  # fmt: skip
    return (
        Table("configurations", header, rows),
        "p50/p95/max: from the 202 to each socket's first liveCount counting the event, all "
        "events pooled\nfirst ms: median over the events of the first socket's latency (the "
        "push delay: ticker wait + snapshot + layer); spread ms: p95 - first (the fan-out)\n"
        "202 ms: median round trip of the collect POST; p95 POST: p95 counted from the POST "
        "instead of the 202\nidle cpu: server CPU with the sockets open and no event (the "
        "ticker pushes every 5 s); µs/push: server CPU per push message a socket received",
        problems,
    )


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="WebSocket fan-out latency and memory.")
    parser.add_argument("--sockets", default="1000,5000", help="socket counts (default 1000,5000)")
    parser.add_argument("--server", default="daphne,uvicorn-plain", help="of " + ",".join(SERVERS))
    parser.add_argument("--layer", default="memory,redis", help="memory,redis")
    parser.add_argument("--events", type=int, default=3, help="events per configuration")
    parser.add_argument("--deliver-timeout", type=float, default=10.0, help="seconds")
    parser.add_argument("--connect-concurrency", type=int, default=100)
    parser.add_argument(
        "--open-budget", type=float, default=300.0, help="seconds to open the sockets"
    )
    parser.add_argument(
        "--idle-window", type=float, default=11.0, help="seconds of idle cost measurement"
    )
    parser.add_argument("--compression", choices=["deflate", "none"], default="deflate")
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--redis-url", default="", help="use this Redis (flushed) instead")
    parser.add_argument(
        "--pg-url", default="postgres://postgres@127.0.0.1:5432/zenovay_bench_fanout"
    )
    parser.add_argument("--json", type=Path, default=ROOT / "var" / "bench-fanout.json")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE")
    args = parser.parse_args(argv)
    args.sockets = [int(n) for n in args.sockets.split(",") if n.strip()]
    args.server = [s.strip() for s in args.server.split(",") if s.strip()]
    args.layer = [s.strip() for s in args.layer.split(",") if s.strip()]
    if set(args.server) - set(SERVERS) or set(args.layer) - {"memory", "redis"}:
        parser.error("--server takes " + ",".join(SERVERS) + " and --layer memory,redis")
    args.env = dict(item.split("=", 1) for item in args.env)
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    exit_on_sigterm()
    limit = raise_open_files_limit()
    if limit < max(args.sockets) * 2 + 100:
        print(f"WARNING open files limit {limit} is low for {max(args.sockets)} sockets")
    print(f"machine: {uptime()}  (open files limit {limit})")
    context = sqlite_database() if args.db == "sqlite" else postgres_database(args.pg_url)
    configs: list[Config] = []
    with context as database:
        prepare(server_env(database))
        for layer in args.layer:
            with contextlib.ExitStack() as stack:
                url = stack.enter_context(redis_server(args.redis_url)) if layer == "redis" else ""
                for server in args.server:
                    for sockets in args.sockets:
                        configs.append(bench_config(database, url, server, layer, sockets, args))
    table, legend, problems = report(configs)
    settings = {"events": args.events, "deliver_timeout_s": args.deliver_timeout,
                "compression": args.compression, "db": args.db}  # fmt: skip
    data = {
        "goals": {"p95_ms": GOAL_P95_MS, "mib_per_1000": GOAL_MIB_PER_1000},
        "configs": [
            {k: v for k, v in asdict(c).items() if k != "latencies_ms"}
            | {
                "delivered_fraction": c.delivered_fraction,
                "p50_ms": c.stat(50),
                "p95_ms": c.stat(95),
                "max_ms": c.stat(100),
                "problems": verdicts(c),
            }
            for c in configs
        ],
    }
    return epilogue("bench/fanout.py", settings=settings, tables=[table],
                    ratios=ratio_lines(configs), notes=[legend], problems=problems, data=data,
                    json_path=args.json)  # fmt: skip


if __name__ == "__main__":
    ensure_venv()
    sys.exit(main(sys.argv[1:]))
