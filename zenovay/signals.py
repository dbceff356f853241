"""Keep the cached website lookups honest: a saved or deleted website is forgotten at once."""

from __future__ import annotations

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from zenovay import shared_cache
from zenovay.ingest import website_cache_key
from zenovay.models import Website


@receiver([post_save, post_delete], sender=Website)
def forget_website(sender: type[Website], instance: Website, **kwargs: object) -> None:
    keys = [
        website_cache_key("code", instance.tracking_code),
        website_cache_key("id", instance.website_id),
    ]
    if old := getattr(instance, "_previous_tracking_code", None):
        keys.append(website_cache_key("code", old))
    shared_cache.delete_many(keys)
