"""`manage.py serve`: the newcomer's one command on the embedded default.

Migrates, makes sure someone can sign in (an `admin` account whose generated
password is printed once), then serves HTTP and WebSockets with Daphne.
"""

from __future__ import annotations

import secrets

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Migrate, create a first admin if there is none, and serve on 127.0.0.1:8000."

    def add_arguments(self, parser) -> None:
        parser.add_argument("addrport", nargs="?", default="127.0.0.1:8000")

    def handle(self, *args, addrport: str, **options) -> None:
        call_command("migrate", interactive=False, verbosity=0)
        self._ensure_admin(addrport)
        # Daphne's runserver, serving static files itself since there is no front proxy here.
        call_command("runserver", addrport, use_reloader=False, insecure_serving=True)

    def _ensure_admin(self, addrport: str) -> None:
        users = get_user_model().objects
        if users.filter(is_superuser=True).exists():
            self.stdout.write(
                f"Sign in at http://{addrport}/login/ (dashboard) or /admin/ with your account."
            )
            return
        password = secrets.token_urlsafe(12)
        users.create_superuser("admin", email="", password=password)
        self.stdout.write(
            self.style.SUCCESS(
                f"Created the first account. Sign in at http://{addrport}/login/ (dashboard)"
                f" or http://{addrport}/admin/ (websites and tracking codes)\n"
                f"  username: admin\n  password: {password}\n"
                "This password is shown once; change it with `manage.py changepassword admin`."
            )
        )
