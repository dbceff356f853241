"""`manage.py createowner USERNAME [--email E]`: a staff account that manages its own websites."""

from __future__ import annotations

import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from zenovay.owners import create_owner


class Command(BaseCommand):
    help = "Create a site owner (staff, website permissions only) and print a generated password."

    def add_arguments(self, parser) -> None:
        parser.add_argument("username")
        parser.add_argument("--email", default="")

    def handle(self, *args, username: str, email: str, **options) -> None:
        if get_user_model().objects.filter(username=username).exists():
            raise CommandError(f"There is already a user named {username!r}.")
        password = secrets.token_urlsafe(12)
        create_owner(username, password, email)
        self.stdout.write(f"Created site owner {username!r}. Password (shown once): {password}")
