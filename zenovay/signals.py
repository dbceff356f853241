"""Keep cached lookups honest: a saved or deleted website is forgotten at once.

That is what makes a regenerated tracking code, or a disabled website, stop
working immediately in every server process sharing the cache.
"""

from __future__ import annotations

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from zenovay import shared_cache, store
from zenovay.ingest import forget_recent, website_cache_key
from zenovay.models import Website


@receiver([post_save, post_delete], sender=Website)
def forget_website(sender: type[Website], instance: Website, **kwargs: object) -> None:
    codes = [instance.tracking_code]
    if old := getattr(instance, "_previous_tracking_code", None):
        codes.append(old)
    cached = [website_cache_key("code", code) for code in codes]
    cached.append(website_cache_key("id", instance.website_id))
    shared_cache.delete_many(cached)
    forget_recent(cached)
    keys: list[str] = []
    for code in codes:
        keys += store.website_response_keys(code, instance.website_id)
    store.get_store().delete(keys)
