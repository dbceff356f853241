"""`manage.py rebuild_aggregates [--website WEBSITE_ID] [--since YYYY-MM-DD]`.

Recomputes the aggregates every figure is read from (zenovay.aggregates) from the raw
events and sessions: after upgrading an install that has events, after changing a
website's time zone, or to repair. Idempotent: what it rebuilds is reset first. Each
website is rebuilt in one transaction, so its figures never show a half-built state;
events recorded for that website meanwhile wait for it (run it at a quiet time).
"""

from __future__ import annotations

import datetime as dt
import sys
import time

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from zenovay import aggregates, ids
from zenovay.models import Website

BAR = 30


class Command(BaseCommand):
    help = "Rebuild the aggregates of every website (or one) from raw events, idempotently."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--website", help="A website id (ws_...); default: every website.")
        parser.add_argument(
            "--since",
            type=dt.date.fromisoformat,
            help="Rebuild from this date (UTC) on, widened to the whole weeks and month it"
            " touches; default: each website's oldest event.",
        )

    def handle(self, *args, website: str | None, since: dt.date | None, **options) -> None:
        websites = Website.objects.order_by("pk")
        if website is not None:
            if not ids.is_website_id(website) or not websites.filter(website_id=website).exists():
                raise CommandError(f"No website has the id {website!r}.")
            websites = websites.filter(website_id=website)
        start = dt.datetime.combine(since, dt.time(), tzinfo=dt.UTC) if since else None
        for site in websites:
            bar = _Bar(self.stderr, site.website_id)
            with transaction.atomic():
                floor, events = aggregates.rebuild(site.pk, start, progress=bar)
            bar.done()
            self.stdout.write(
                f"{site.website_id}: rebuilt from {floor:%Y-%m-%d %H:%M} UTC, {events} events."
            )


class _Bar:
    """A one-line progress bar on stderr, redrawn at most ten times a second."""

    def __init__(self, out, label: str) -> None:
        self.out, self.label, self.drawn = out, label, 0.0

    def __call__(self, done: int, total: int) -> None:
        if time.monotonic() - self.drawn < 0.1 and done < total:
            return
        self.drawn = time.monotonic()
        filled = BAR * done // max(total, 1)
        self.out.write(
            f"\r{self.label} [{'#' * filled}{'.' * (BAR - filled)}] {done}/{total} events",
            ending="",
        )
        if hasattr(sys.stderr, "flush"):
            self.out.flush()

    def done(self) -> None:
        if self.drawn:
            self.out.write("")
