"""Server-rendered SVG charts: geometry computed here, markup in templates/dashboard/_chart.html.

Only numbers and labels we produce (hours, dates) go into the SVG, so charts need no
escaping beyond the template's and no JavaScript at all.
"""

from __future__ import annotations

import math
from typing import TypedDict

from dashboard.reports import Bucket

WIDTH, HEIGHT = 960, 200
LEFT, RIGHT, TOP, BOTTOM = 40, 24, 12, 26  # room for the y labels and the x labels
TICKS = 4


class Tick(TypedDict):
    y: float
    label: str


class XLabel(TypedDict):
    x: float
    label: str


class Bar(TypedDict):
    x: float
    width: float
    slot_x: float
    slot_width: float
    views_y: float
    views_height: float
    visitors_y: float
    visitors_height: float
    title: str


class Chart(TypedDict):
    id: str
    title: str
    summary: str
    width: int
    height: int
    left: int
    right: int
    top: int
    bottom: int
    plot_height: int
    bars: list[Bar]
    ticks: list[Tick]
    x_labels: list[XLabel]
    visitors: int
    pageviews: int
    compare_line: str  # the compared period's visitors, one point per bar; "" without
    compare_visitors: int


def bar_chart(
    buckets: list[Bucket],
    *,
    chart_id: str,
    title: str,
    label_every: int,
    compared: list[Bucket] | None = None,
) -> Chart:
    """Pageviews as pale bars with the visitors among them drawn darker on top; with
    `compared` (as many buckets, of the period before), its visitors as a dashed line."""
    peaks = [b["pageviews"] for b in buckets] + [b["visitors"] for b in compared or []]
    top = axis_top(max(peaks, default=0))
    slot = (WIDTH - LEFT - RIGHT) / max(len(buckets), 1)
    bars = [_bar(i, b, slot, top) for i, b in enumerate(buckets)]
    x_labels: list[XLabel] = [
        {"x": round(LEFT + slot * (i + 0.5), 1), "label": b["label"]}
        for i, b in enumerate(buckets)
        if (len(buckets) - 1 - i) % label_every == 0  # always label the latest bucket
    ]
    return {
        "id": chart_id,
        "title": title,
        "summary": _summary(buckets),
        "width": WIDTH,
        "height": HEIGHT,
        "left": LEFT,
        "right": WIDTH - RIGHT,
        "top": TOP,
        "bottom": HEIGHT - BOTTOM,
        "plot_height": HEIGHT - TOP - BOTTOM,
        "bars": bars,
        "ticks": [_tick(top * k / TICKS, top) for k in range(TICKS + 1)],
        "x_labels": x_labels,
        "visitors": sum(b["visitors"] for b in buckets),
        "pageviews": sum(b["pageviews"] for b in buckets),
        "compare_line": _line(compared, slot, top) if compared else "",
        "compare_visitors": sum(b["visitors"] for b in compared or []),
    }


def _line(buckets: list[Bucket], slot: float, top: int) -> str:
    plot = HEIGHT - TOP - BOTTOM
    points = []
    for i, bucket in enumerate(buckets):
        x = round(LEFT + slot * (i + 0.5), 1)
        y = round(HEIGHT - BOTTOM - plot * bucket["visitors"] / top, 1)
        points.append(f"{x},{y}")
    return " ".join(points)


def axis_top(peak: int) -> int:
    """The smallest 'nice' axis maximum (1, 2 or 5 times a power of ten, per tick) >= peak."""
    if peak <= TICKS:
        return TICKS
    raw = peak / TICKS
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    return int(step * TICKS)


def _bar(i: int, bucket: Bucket, slot: float, top: int) -> Bar:
    plot = HEIGHT - TOP - BOTTOM
    views = plot * bucket["pageviews"] / top
    visitors = plot * bucket["visitors"] / top
    gap = max(slot * 0.18, 1)
    base = HEIGHT - BOTTOM
    return {
        "x": round(LEFT + slot * i + gap / 2, 1),
        "width": round(slot - gap, 1),
        "slot_x": round(LEFT + slot * i, 1),
        "slot_width": round(slot, 1),
        "views_y": round(base - views, 1),
        "views_height": round(views, 1),
        "visitors_y": round(base - visitors, 1),
        "visitors_height": round(visitors, 1),
        "title": f"{bucket['label']}: {_count(bucket['visitors'], 'visitor')}, "
        f"{_count(bucket['pageviews'], 'pageview')}",
    }


def _tick(value: float, top: int) -> Tick:
    plot = HEIGHT - TOP - BOTTOM
    return {"y": round(HEIGHT - BOTTOM - plot * value / top, 1), "label": compact(value)}


def _summary(buckets: list[Bucket]) -> str:
    """What a screen reader announces instead of the bars."""
    views = sum(b["pageviews"] for b in buckets)
    span = f"from {buckets[0]['label']} to {buckets[-1]['label']}"
    if not views:
        return f"No pageviews {span}."
    peak = max(buckets, key=lambda b: b["pageviews"])
    return (
        f"{_count(views, 'pageview')} {span}; the busiest was {peak['label']} with "
        f"{_count(peak['pageviews'], 'pageview')} by {_count(peak['visitors'], 'visitor')}."
    )


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def compact(value: float) -> str:
    """1500 -> "1.5k", 2000000 -> "2M": axis labels stay short."""
    for size, suffix in ((1_000_000, "M"), (1_000, "k")):
        if value >= size:
            return f"{value / size:.1f}".rstrip("0").rstrip(".") + suffix
    return f"{value:.0f}" if value == int(value) else f"{value:.1f}"


class Spark(TypedDict):
    line: str
    area: str
    width: int
    height: int
    title: str


def sparkline(buckets: list[Bucket], width: int = 120, height: int = 32) -> Spark:
    """A small line of pageviews for a website card; points are numbers we computed."""
    top = max((b["pageviews"] for b in buckets), default=0) or 1
    step = width / max(len(buckets) - 1, 1)
    points = [
        (round(i * step, 1), round(height - 2 - (height - 4) * b["pageviews"] / top, 1))
        for i, b in enumerate(buckets)
    ]
    line = " ".join(f"{x},{y}" for x, y in points)
    return {
        "line": line,
        "area": f"0,{height} {line} {width},{height}",
        "width": width,
        "height": height,
        "title": f"{_count(sum(b['pageviews'] for b in buckets), 'pageview')} in the last 24 hours",
    }
