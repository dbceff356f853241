"""`manage.py seal_sketches [--days N]`: build the visitor sketches of past days now."""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand
from django.utils import timezone

from zenovay import sketches
from zenovay.models import Website


class Command(BaseCommand):
    help = (
        "Build the daily visitor sketches (for visitors over several days) of the last --days"
        " days from the raw events, for every website. Server processes seal finished days in"
        " the background (ZENOVAY_SEAL_EVERY) and queries any they need; this does it at once."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--days", type=int, default=None, help="How far back (default: the raw retention)."
        )

    def handle(self, *args, days: int | None, **options) -> None:
        days = days or settings.ZENOVAY_RAW_RETENTION_DAYS
        now = timezone.now()
        for website in Website.objects.order_by("pk"):
            sealed = sketches.seal(website, now, days)
            self.stdout.write(f"{website.domain}: {sealed} days brought up to date")
