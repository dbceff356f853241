"""Exports: a website's figures over a range as a zip of CSV files (`GET /api/v1/export`,
and the dashboard's Export button), one file per breakdown, each from the query engine."""

from __future__ import annotations

import csv
import io
import re
import zipfile
from collections.abc import Callable

from django.http import HttpResponse
from django.utils import timezone

from zenovay import query
from zenovay.countries import country_name
from zenovay.models import Website

EXPORTS: list[tuple[str, list[str], list[str], Callable[[str], list[str]] | None]] = [
    # file, dimensions, metrics, extra columns for a dimension value
    (
        "visitors.csv",
        ["time:day"],
        ["visitors", "pageviews", "visits", "bounce_rate", "visit_duration"],
        None,
    ),
    ("pages.csv", ["page"], ["visitors", "pageviews"], None),
    ("entry_pages.csv", ["entry_page"], ["visits", "bounce_rate", "visit_duration"], None),
    ("sources.csv", ["referrer"], ["visitors", "pageviews"], None),
    ("utm_sources.csv", ["utm_source"], ["visitors", "pageviews"], None),
    ("locations.csv", ["country"], ["visitors", "pageviews"], lambda code: [country_name(code)]),
    ("devices.csv", ["device"], ["visitors", "pageviews"], None),
    ("browsers.csv", ["browser"], ["visitors", "pageviews"], None),
    ("operating_systems.csv", ["os"], ["visitors", "pageviews"], None),
    ("custom_events.csv", ["event:name"], ["visitors", "events"], None),
]


def response(website: Website, date_range: str) -> HttpResponse:
    """Raises `query.QueryError` for a bad `date_range`."""
    """The zip for a website and a range (`30d`, or `2026-11-01,2026-11-30`); also the
    dashboard's Export button."""
    span: object = date_range.split(",") if "," in date_range else date_range
    since, until, _ = query.date_range(span, website, timezone.now())
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, dims, chosen, extra in EXPORTS:
            asked = query.Query(
                website=website,
                metrics=tuple(chosen),
                since=since,
                until=until,
                dimensions=tuple(dims),
                limit=query.MAX_LIMIT,
                order_by=((dims[0], "asc"),)
                if dims[0] in query.TIME
                else ((chosen[0], "desc"), (dims[0], "asc")),
            )
            archive.writestr(name, _csv(asked, dims, chosen, extra))
    first, last = (moment.astimezone(website.zone) for moment in (since, until))
    filename = f"zenovay-{_safe(website.domain)}-{first:%Y%m%d}-{last:%Y%m%d}.zip"
    response = HttpResponse(buffer.getvalue(), content_type="application/zip")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def _csv(asked: query.Query, dims: list[str], chosen: list[str], extra) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    head = [dims[0].split(":")[-1]] + (["name"] if extra else []) + chosen
    writer.writerow(head)
    for row in query.run(asked)["results"]:
        value = row["dimensions"][0]
        writer.writerow([_cell(value), *(extra(value) if extra else []), *row["metrics"]])
    return out.getvalue()


def _cell(value: str) -> str:
    """A visitor-sent value that a spreadsheet would run as a formula gets a leading '."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def _safe(text: str) -> str:
    return re.sub(r"[^a-z0-9.-]", "-", text.lower())
