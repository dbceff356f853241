"""Keep cached lookups honest: a saved or deleted website is forgotten at once (`sites`);
and a website being deleted is locked first, so that no batch of events outlives it."""

from __future__ import annotations

from django.db.models.signals import post_delete, post_save, pre_delete
from django.dispatch import receiver

from zenovay import sites
from zenovay.models import Website


@receiver([post_save, post_delete], sender=Website)
def forget_website(sender: type[Website], instance: Website, **kwargs: object) -> None:
    sites.forget(instance)


@receiver(pre_delete, sender=Website)
def hold_website(sender: type[Website], instance: Website, **kwargs: object) -> None:
    """Lock the website's row before its events and sessions are deleted (Django sends this
    inside the deletion's transaction, before it deletes any row).

    They have no foreign-key constraint: a batch of events holds its websites instead
    (`aggregates.website_zones`). So the deletion waits here for the batches writing to
    the website, then deletes what they wrote; batches that come later wait for the
    deletion and find the website gone. A no-op on SQLite (one writer at a time)."""
    list(Website.objects.select_for_update().filter(pk=instance.pk).values_list("pk"))
