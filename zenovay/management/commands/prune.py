"""`manage.py prune [--days N] [--raw-days N]`: delete data older than its retention period."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from zenovay import retention


class Command(BaseCommand):
    help = (
        "Delete raw events older than ZENOVAY_RAW_RETENTION_DAYS (or --raw-days), sessions"
        " and aggregates older than ZENOVAY_RETENTION_DAYS (or --days)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--days", type=int, help="Override ZENOVAY_RETENTION_DAYS.")
        parser.add_argument("--raw-days", type=int, help="Override ZENOVAY_RAW_RETENTION_DAYS.")

    def handle(self, *args, days: int | None, raw_days: int | None, **options) -> None:
        try:
            before = retention.cutoff(days=days)
            raw_before = retention.raw_cutoff(days=raw_days)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        raw_before = max(raw_before, before)  # raw events never outlive the figures' span
        now = timezone.now()
        events, sessions = retention.prune(before=before, raw_before=raw_before, now=now)
        self.stdout.write(
            f"Deleted {events} events and {sessions} sessions before"
            f" {raw_before:%Y-%m-%d %H:%M} and {before:%Y-%m-%d %H:%M} UTC;"
            " aggregates kept from the latter."
        )
