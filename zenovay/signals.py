"""Keep cached lookups honest: a saved or deleted website is forgotten at once (`sites`)."""

from __future__ import annotations

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from zenovay import sites
from zenovay.models import Website


@receiver([post_save, post_delete], sender=Website)
def forget_website(sender: type[Website], instance: Website, **kwargs: object) -> None:
    sites.forget(instance)
