#!/usr/bin/env python3
"""The External API's query engine against a site's traffic (issue 15).

    .venv/bin/python bench/query.py [--db sqlite|postgres|both] [--sizes 10000,10000000]
                                    [--rounds 7] [--keep]

The website of bench/traffic.py (Europe/Berlin; 10^4 and 10^7 events this month, loaded
with its aggregates straight into the tables, `now` = 28 March 2026 15:07:30 UTC); the
month's visitor sketches and visit tallies built from its raw events (timed: a one-time
cost, paid day by day in production); then in-process `query.run` of each query below,
`--rounds` times in turn after a first call (timed apart: it builds what a filter keeps
per day): p95 and median per query, and the largest/smallest ratio. Then
the month's export (`exports.response`, a zip of CSV files). Goals at 10^7: unfiltered
queries from aggregates <= 100 ms p95, a 12-month daily series <= 100 ms, filtered 30-day
queries <= 1.5 s p95, export of a month <= 5 s. Results go to var/bench-query.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import traffic
from common import VAR, Ratio, Table, ensure_venv, epilogue

QUERIES: dict[str, dict[str, Any]] = {
    # Unfiltered: answered from aggregates.
    "month totals": {
        "metrics": ["visitors", "pageviews", "visits", "bounce_rate", "visit_duration"],
        "date_range": "month",
    },
    "7d by day": {
        "metrics": ["visitors", "pageviews", "visits"],
        "date_range": "7d",
        "dimensions": ["time:day"],
    },
    "12mo by day": {
        "metrics": ["visitors", "pageviews"],
        "date_range": "12mo",
        "dimensions": ["time:day"],
    },
    "today by hour": {
        "metrics": ["visitors", "pageviews"],
        "date_range": "day",
        "dimensions": ["time:hour"],
    },
    "month pages": {
        "metrics": ["visitors", "pageviews"],
        "date_range": "month",
        "dimensions": ["page"],
    },
    "month countries": {
        "metrics": ["visitors", "pageviews"],
        "date_range": "month",
        "dimensions": ["country"],
    },
    "month events": {
        "metrics": ["visitors", "events"],
        "date_range": "month",
        "dimensions": ["event:name"],
    },
    "month vs before": {
        "metrics": ["pageviews", "visits"],
        "date_range": "month",
        "dimensions": ["time:day"],
        "compare": "previous_period",
    },
    "30d pages": {
        "metrics": ["visitors", "pageviews"],
        "date_range": "30d",
        "dimensions": ["page"],
    },
    "12mo sources": {
        "metrics": ["visitors", "pageviews"],
        "date_range": "12mo",
        "dimensions": ["referrer"],
    },
    "30d visitors": {"metrics": ["visitors"], "date_range": "30d"},
    "30d entry pages": {
        "metrics": ["visits", "bounce_rate"],
        "date_range": "30d",
        "dimensions": ["entry_page"],
    },
    # Filtered: raw events of the range.
    "30d DE pages": {
        "metrics": ["visitors", "pageviews"],
        "date_range": "30d",
        "dimensions": ["page"],
        "filters": [["is", "country", ["DE"]]],
    },
    "30d blog by day": {
        "metrics": ["visitors", "pageviews"],
        "date_range": "30d",
        "dimensions": ["time:day"],
        "filters": [["contains", "page", ["/blog"]]],
    },
}
UNFILTERED = [name for name, body in QUERIES.items() if "filters" not in body]


def worker(size: int, rounds: int) -> dict[str, Any]:
    traffic.setup_django()
    from zenovay import exports, query, sketches, visits

    website = traffic.new_website()
    traffic.load(website, size)
    samples: dict[str, list[float]] = {name: [] for name in [*QUERIES, "export month"]}
    sources = {}
    with traffic.frozen(traffic.NOW):
        began = time.perf_counter()
        sealed = sketches.seal(website, traffic.NOW, days=40)  # once a day's events are in
        month = query.date_range("30d", website, traffic.NOW)
        visits.sums(website, month[0], month[1], "entry_page", traffic.NOW)  # its visits ended
        seal_s = time.perf_counter() - began
        calls = {
            name: (lambda body=body: query.run(query.parse({"site_id": "-", **body}, website)))
            for name, body in QUERIES.items()
        }
        calls["export month"] = lambda: exports.response(website, "month")
        first: dict[str, float] = {}
        for name, call in calls.items():  # the first call: it may keep a filter's days
            began = time.perf_counter()
            answer = call()
            first[name] = time.perf_counter() - began
            if name in QUERIES:
                sources[name] = answer["meta"]["source"]
        for _ in range(rounds):
            for name, call in calls.items():
                began = time.perf_counter()
                call()
                samples[name].append(time.perf_counter() - began)
    return {
        "size": size,
        "seal_s": round(seal_s, 2),
        "sealed_days": sealed,
        "sources": sources,
        "first_ms": {name: round(seconds * 1000, 1) for name, seconds in first.items()},
        "p95_ms": {name: round(_p95(values) * 1000, 1) for name, values in samples.items()},
        "median_ms": {
            name: round(statistics.median(values) * 1000, 1) for name, values in samples.items()
        },
    }


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


GOAL_MS = 100  # p95 of an unfiltered query at the largest size


@dataclass
class Measured:
    results: list[dict[str, Any]]
    table: Table
    ratio: Ratio
    notes: list[str]


def bench_database(kind: str, sizes: list[int], args: argparse.Namespace) -> Measured:
    results = []
    for size in sizes:
        print(f"{kind}: {size:,} events ...", flush=True)
        with traffic.fresh_database(kind, args.keep) as database:
            results.append(
                traffic.run_worker(
                    database, ["--size", str(size), "--rounds", str(args.rounds)], script=__file__
                )
            )
    small, large = results[0], results[-1]
    rows = []
    for name in [*QUERIES, "export month"]:
        ratio = large["p95_ms"][name] / small["p95_ms"][name] if small["p95_ms"][name] else 0
        rows.append(
            [
                name,
                large["sources"].get(name, "-"),
                *(f"{r['p95_ms'][name]:.1f}" for r in results),
                f"{large['median_ms'][name]:.1f}",
                f"{large['first_ms'][name]:.1f}",
                f"{ratio:.2f}",
            ]
        )
    header = [
        "query (p95 ms)",
        "source",
        *(f"{r['size']:.0e}".replace("+0", "") for r in results),
        "median at largest",
        "first call at largest",
        "ratio",
    ]
    worst = max(large["p95_ms"][name] for name in UNFILTERED)
    at_largest = f"{worst:.1f} ms at {large['size']:,}"
    ratio = Ratio(f"{kind} slowest unfiltered p95 / goal", worst / GOAL_MS, at_largest,
                  f"{GOAL_MS} ms", "<= 1", worst <= GOAL_MS)  # fmt: skip
    notes = [
        f"{kind}: visitor sketches of {r['sealed_days']} days and visit tallies of 30 built from"
        f" {r['size']:,} raw events in {r['seal_s']:.1f} s (once, as the days pass)"
        for r in results
    ]
    return Measured(results, Table(kind, header, rows), ratio, notes)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--sizes", default="10000,10000000")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--json", type=Path, default=VAR / "bench-query.json")
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.size:
        print(json.dumps(worker(args.size, args.rounds)))
        return 0
    sizes = sorted(int(s) for s in args.sizes.split(","))
    kinds = ("sqlite", "postgres") if args.db == "both" else (args.db,)
    measured = {kind: bench_database(kind, sizes, args) for kind in kinds}
    return epilogue(
        "bench/query.py",
        settings={"now": traffic.NOW.isoformat(), "sizes": sizes, "rounds": args.rounds},
        tables=[m.table for m in measured.values()],
        ratios=[m.ratio for m in measured.values()],
        notes=[note for m in measured.values() for note in m.notes],
        data={kind: m.results for kind, m in measured.items()},
        json_path=args.json,
    )


if __name__ == "__main__":
    ensure_venv()
    raise SystemExit(main())
