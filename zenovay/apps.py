from __future__ import annotations

from django.apps import AppConfig


class ZenovayConfig(AppConfig):
    name = "zenovay"
    verbose_name = "Zenovay"

    def ready(self) -> None:
        from zenovay import signals  # noqa: F401
