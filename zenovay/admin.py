from __future__ import annotations

from django.contrib import admin

from zenovay.models import Website


@admin.register(Website)
class WebsiteAdmin(admin.ModelAdmin):
    list_display = ["name", "domain", "tracking_code", "website_id", "enabled", "created"]
    list_filter = ["enabled"]
    search_fields = ["name", "domain", "tracking_code", "website_id"]
    readonly_fields = ["tracking_code", "website_id", "created"]
