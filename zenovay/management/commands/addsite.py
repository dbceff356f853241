"""`manage.py addsite DOMAIN [--owner USERNAME] [--timezone TZ]`: one JSON line out."""

from __future__ import annotations

import json

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from zenovay import snippets
from zenovay.models import Website, normalize_domain, validate_timezone


class Command(BaseCommand):
    help = "Add a website and print its tracking code, website id and tracker snippet as JSON."

    def add_arguments(self, parser) -> None:
        parser.add_argument("domain")
        parser.add_argument("--owner", help="Username of the owner (default: none).")
        parser.add_argument("--timezone", default="UTC", help="IANA time zone (default: UTC).")

    def handle(self, *args, domain: str, owner: str | None, timezone: str, **options) -> None:
        try:
            domain = normalize_domain(domain)
            validate_timezone(timezone)
        except ValidationError as exc:
            raise CommandError(exc.messages[0]) from None
        user = None
        if owner is not None:
            user = get_user_model().objects.filter(username=owner).first()
            if user is None:
                raise CommandError(f"There is no user named {owner!r}.")
        website = Website.objects.create(domain=domain, owner=user, timezone=timezone)
        self.stdout.write(
            json.dumps(
                {
                    "domain": website.domain,
                    "tracking_code": website.tracking_code,
                    "website_id": website.website_id,
                    "snippet": snippets.tracker(website),
                }
            )
        )
