"""`manage.py serve`: the newcomer's one command, and each production process's.

Migrates, makes sure someone can sign in (an `admin` account whose generated
password is printed once), then serves HTTP and WebSockets with uvicorn under the
limits of `zenovay.infra.server` (connections per address, header timeouts, small
inbound frames, access logs without addresses). `--no-setup` only serves: for the
processes of a deployment, after one `manage.py migrate`.
"""

from __future__ import annotations

import os
import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from zenovay.infra import server


def _split(addrport: str) -> tuple[str, int]:
    """ "8000", "0.0.0.0:8000" or "[::1]:8000"."""
    host, _, port = addrport.rpartition(":")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise CommandError(f"{addrport!r} is not ADDRESS:PORT or PORT.")
    return host.strip("[]") or "127.0.0.1", int(port)


class Command(BaseCommand):
    help = "Migrate, create a first admin if there is none, and serve on 127.0.0.1:8000."

    def add_arguments(self, parser) -> None:
        parser.add_argument("addrport", nargs="?", default="127.0.0.1:8000")
        parser.add_argument(
            "--no-setup", action="store_true", help="Serve only: no migrate, no first account."
        )

    def handle(self, *args, addrport: str, no_setup: bool, **options) -> None:
        host, port = _split(addrport)
        if not no_setup:
            call_command("migrate", interactive=False, verbosity=0)
            self._ensure_admin(addrport)
            self._follow_address(host, port)
        self.stdout.write(f"Serving HTTP and WebSockets on http://{addrport}/ (Ctrl-C stops)")
        self.stdout.flush()
        server.run(host, port)

    def _follow_address(self, host: str, port: int) -> None:
        """Unless ZENOVAY_PUBLIC_URL is set, snippets name the address served on (a
        wildcard address as 127.0.0.1), here and in later commands (`addsite`)."""
        if "ZENOVAY_PUBLIC_URL" in os.environ:
            return
        if host in ("0.0.0.0", "::"):  # noqa: S104 - a name for it, not a bind
            host = "127.0.0.1"
        url = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
        settings.ZENOVAY_PUBLIC_URL = url
        settings.SERVED_URL_FILE.parent.mkdir(parents=True, exist_ok=True)
        settings.SERVED_URL_FILE.write_text(url + "\n")
        self.stdout.write(
            f"Snippets load from {url}; set ZENOVAY_PUBLIC_URL to the address your visitors'"
            " browsers reach."
        )

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
