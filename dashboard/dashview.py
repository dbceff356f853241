"""What a website's dashboard shows below the live panel, from the URL, on the query engine.

The URL holds the whole state, so a view is shareable and the back button works:
`period` (today, week, month, 7d, 30d, or custom with `from` and `to` dates), `compare`
(previous_period or year_over_year), and one filter per dimension (`page`, `referrer`,
`utm_source`, `country`, `device`, `browser`, `os`, `event` for a custom event's name).
Clicking a row adds its filter; a chip removes it. Figures, breakdowns, custom events and
(when filtered or compared) the charts are `zenovay.query` answers: from the aggregates
for a whole today, week or month unfiltered, from raw events otherwise.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlencode

from django.http import HttpRequest

from dashboard import charts, reports
from zenovay import metrics, query
from zenovay.models import Website

PERIODS = {
    "today": "Today",
    "week": "This week",
    "month": "This month",
    "7d": "Last 7 days",
    "30d": "Last 30 days",
    "custom": "Custom",
}
FILTERS = {  # URL parameter -> (query dimension, what the chip says)
    "page": ("page", "Page"),
    "referrer": ("referrer", "Source"),
    "utm_source": ("utm_source", "UTM source"),
    "country": ("country", "Country"),
    "device": ("device", "Device"),
    "browser": ("browser", "Browser"),
    "os": ("os", "OS"),
    "event": ("event:name", "Event"),
}
COMPARE = {"previous_period": "previous period", "year_over_year": "a year before"}


@dataclass(frozen=True)
class View:
    period: str
    since: dt.datetime
    until: dt.datetime
    filters: tuple[tuple[str, str], ...] = ()  # (URL parameter, value)
    compare: str | None = None
    start: str = ""  # custom range, as typed
    end: str = ""
    error: str = ""

    @property
    def plain(self) -> bool:
        """Today, this week or this month, unfiltered, uncompared: the live-pushed default."""
        return self.period in ("today", "week", "month") and not self.filters and not self.compare

    @property
    def event_name(self) -> str:
        return dict(self.filters).get("event", "")

    def params(self, **changes: str | None) -> str:
        """This view's query string, with some parameters changed (None removes one)."""
        values: dict[str, str | None] = {"period": self.period}
        if self.period == "custom":
            values |= {"from": self.start, "to": self.end}
        values |= dict(self.filters)
        if self.compare:
            values["compare"] = self.compare
        values |= changes
        return urlencode({k: v for k, v in values.items() if v})


def view_of(request: HttpRequest, website: Website, now: dt.datetime) -> View:
    get = request.GET
    period = get.get("period", "today")
    if period not in PERIODS:
        period = "today"
    filters = tuple((name, get[name][:1024]) for name in FILTERS if get.get(name))
    compare = get.get("compare") if get.get("compare") in COMPARE else None
    start, end = get.get("from", "")[:10], get.get("to", "")[:10]
    try:
        since, until = _span(period, website, now, start, end)
    except query.QueryError as error:
        since, until = _span("today", website, now, "", "")
        return View("today", since, until, filters, compare, error=f"Dates: {error.message}")
    return View(period, since, until, filters, compare, start, end)


def _span(period: str, website: Website, now: dt.datetime, start: str, end: str):
    if metrics.is_period(period):
        return metrics.period_start(now, website, period), now
    named: object = [start, end] if period == "custom" else period
    since, until, _ = query.date_range(named, website, now)
    return since, until


def export_range(view: View, website: Website) -> str:
    """The range for an export of this view: a named one, or from,to dates."""
    named = {"today": "day", "month": "month", "7d": "7d", "30d": "30d"}
    if view.period in named:
        return named[view.period]
    zone = website.zone
    return f"{view.since.astimezone(zone).date()},{view.until.astimezone(zone).date()}"


def _ask(view: View, website: Website, metrics_: tuple[str, ...], **fields: Any) -> dict:
    asked = query.Query(
        website=website,
        metrics=metrics_,
        since=view.since,
        until=view.until,
        filters=tuple(
            query.Filter("is", FILTERS[name][0], (value,)) for name, value in view.filters
        ),
        compare=view.compare,
        **fields,
    )
    if "order_by" not in fields:
        asked = replace(asked, order_by=((metrics_[0], "desc"),))
    return query.run(asked)


def _figure_metrics(view: View) -> tuple[str, ...]:
    names = dict(view.filters)
    if "event" in names:
        return ("visitors", "events")
    if "page" in names:
        return ("visitors", "pageviews")
    return ("visitors", "pageviews", "views_per_visit", "bounce_rate", "visit_duration",
            "returning_rate")  # fmt: skip


BREAKDOWNS: list[tuple[reports.Field, str, str]] = [
    ("page", "Top pages", "Page"),
    ("referrer", "Referrers", "Source"),
    ("utm_source", "UTM sources", "utm_source"),
    ("country", "Countries", "Country"),
    ("device", "Devices", "Device"),
    ("browser", "Browsers", "Browser"),
    ("os", "Operating systems", "System"),
]


def period_context(website: Website, view: View) -> dict[str, Any]:
    chosen = _figure_metrics(view)
    totals = _ask(view, website, chosen)
    figures = dict(zip(chosen, totals["totals"], strict=True))
    changes = dict(zip(chosen, totals.get("comparison_totals", {}).get("change", []), strict=False))
    count = "events" if view.event_name else "pageviews"
    tables = []
    for key, title, column in BREAKDOWNS:
        param: str = key  # its rows' filter chips: the URL parameter of the same name
        found = _ask(
            view,
            website,
            ("visitors", count),
            dimensions=(key,),
            order_by=(("visitors", "desc"), (key, "asc")),
            limit=10,
        )
        rows = [
            {
                **reports._row(key, r["dimensions"][0], *r["metrics"]),
                "filter": view.params(**{param: r["dimensions"][0]}),
            }
            for r in found["results"]
        ]
        tables.append({"key": key, "title": title, "column": column, "rows": _with_share(rows)})
    events = _ask(
        view,
        website,
        ("visitors", "events"),
        dimensions=("event:name",),
        order_by=(("events", "desc"), ("event:name", "asc")),
        limit=10,
    )
    properties, sampled = (
        reports.event_properties(website, view.event_name, view.since, view.until)
        if view.event_name
        else ([], False)
    )
    zone = website.zone
    return {
        "view": view,
        "view_label": PERIODS[view.period],
        "since_iso": metrics.iso(view.since),
        "until_iso": metrics.iso(view.until),
        "range_from": view.start or str(view.since.astimezone(zone).date()),
        "range_to": view.end or str(view.until.astimezone(zone).date()),
        "figures": figures,
        "changes": changes,
        "count_label": "Events" if view.event_name else "Pageviews",
        "tables": tables,
        "events": [
            {
                "name": r["dimensions"][0],
                "visitors": r["metrics"][0],
                "count": r["metrics"][1],
                "filter": view.params(event=r["dimensions"][0]),
            }
            for r in events["results"]
        ],
        "goals": reports.goals(website, view.since, view.until, figures["visitors"])
        if not view.filters
        else [],
        "properties": properties,
        "properties_sampled": sampled,
        "recent_events": reports.recent_events(website, view.since, view.until),
        "source": totals["meta"]["source"],
        "chips": [
            {"label": FILTERS[name][1], "value": value, "remove": view.params(**{name: None})}
            for name, value in view.filters
        ],
        "periods": [
            (key, label, view.params(period=key, **{"from": None, "to": None}))
            for key, label in PERIODS.items()
            if key != "custom"
        ],
        "compare_on": view.params(compare="previous_period"),
        "compare_off": view.params(compare=None),
        "compare_label": COMPARE.get(view.compare or "", ""),
    }


def _with_share(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    top = rows[0]["visitors"] if rows else 1
    return [{**row, "share": round(100 * row["visitors"] / top) if top else 0} for row in rows]


def charts_context(website: Website, view: View, now: dt.datetime) -> dict[str, Any]:
    """The 24-hour and 30-day charts, filtered as the view is, with the period before as a
    line when compared. (Unfiltered and uncompared, the dashboard draws them from
    `reports.hourly` and `reports.daily`.)"""
    count = "events" if view.event_name else "pageviews"
    hour = now.astimezone(website.zone).replace(minute=0, second=0, microsecond=0)
    today = metrics.day_start(now, website)
    found = {}
    for name, dim, since, label_every, title in (
        ("hourly", "time:hour", hour - dt.timedelta(hours=23), 3, "per hour, last 24 hours"),
        ("daily", "time:day", _days_back(today, website, 29), 5, "per day, last 30 days"),
    ):
        span = replace(view, since=since.astimezone(dt.UTC), until=now, compare=view.compare)
        answer = _ask(
            span,
            website,
            ("visitors", count),
            dimensions=(dim,),
            order_by=((dim, "asc"),),
            limit=query.MAX_LIMIT,
        )
        buckets = [_bucket(r["dimensions"][0], r["metrics"], dim) for r in answer["results"]]
        compared = (
            [
                _bucket(r["dimensions"][0], r["comparison"]["metrics"], dim)
                for r in answer["results"]
            ]
            if view.compare
            else None
        )
        found[name] = charts.bar_chart(
            buckets,
            chart_id=f"chart-{name}",
            title=f"Visitors and {count} {title}",
            label_every=label_every,
            compared=compared,
        )
    return found


def _days_back(start: dt.datetime, website: Website, days: int) -> dt.datetime:
    day = start.astimezone(website.zone).date() - dt.timedelta(days=days)
    return dt.datetime.combine(day, dt.time(), tzinfo=website.zone)


def _bucket(label: str, values: list[int], dim: str) -> reports.Bucket:
    if dim == "time:hour":
        moment = dt.datetime.fromisoformat(label)
        shown = f"{moment:%H}:00"
    else:
        day = dt.date.fromisoformat(label)
        moment = dt.datetime.combine(day, dt.time())
        shown = f"{day:%b} {day.day}"
    return {"start": label, "label": shown, "visitors": values[0], "pageviews": values[1]}
