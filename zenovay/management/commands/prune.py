"""`manage.py prune [--days N]`: delete raw events older than the retention period."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from zenovay import retention


class Command(BaseCommand):
    help = "Delete events and sessions older than ZENOVAY_RETENTION_DAYS (or --days)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--days", type=int, help="Override ZENOVAY_RETENTION_DAYS.")

    def handle(self, *args, days: int | None, **options) -> None:
        try:
            before = retention.cutoff(days=days)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        events, sessions = retention.prune(before=before)
        self.stdout.write(
            f"Deleted {events} events and {sessions} sessions before {before:%Y-%m-%d %H:%M} UTC."
        )
