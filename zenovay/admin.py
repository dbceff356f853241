"""The admin, scoped to owners: staff see and change only their own websites."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, TypedDict

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db.models import Count, Max, OuterRef, QuerySet, Subquery
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from zenovay import metrics, snippets
from zenovay.models import ApiKey, Event, Website
from zenovay.signin import ThrottledAdminAuthenticationForm

if TYPE_CHECKING:
    from django_stubs_ext import WithAnnotations

    class _Activity(TypedDict):
        live_count: int | None
        last_event: dt.datetime | None

    # A website as the admin lists and shows it: with `_with_activity`'s two annotations.
    Listed = WithAnnotations[Website, _Activity]

# The admin's sign-in is throttled like the dashboard's; "View site" opens the dashboard.
admin.site.login_form = ThrottledAdminAuthenticationForm
admin.site.site_url = "/dashboard/"
admin.site.site_header = "Zenovay administration"
admin.site.site_title = "Zenovay admin"


class StatusFilter(admin.SimpleListFilter):
    title = "tracking status"
    parameter_name = "tracking"

    def lookups(self, request, model_admin):
        return [("active", "Active (event in 24 h)"), ("waiting", "No recent events")]

    def queryset(self, request, queryset):
        since = timezone.now() - metrics.ACTIVE_WITHIN
        if self.value() == "active":
            return queryset.filter(enabled=True, last_event__gt=since)
        if self.value() == "waiting":
            return queryset.exclude(enabled=True, last_event__gt=since)
        return queryset


@admin.register(Website)
class WebsiteAdmin(admin.ModelAdmin):
    list_display = ["name", "domain", "live_visitors", "last_event_at", "status", "owner"]
    list_filter = ["enabled", StatusFilter, "timezone"]
    search_fields = ["name", "domain", "tracking_code", "website_id"]
    readonly_fields = ["tracking_code", "website_id", "created", "tracking_status", "snippets"]
    actions = ["regenerate_tracking_code", "enable", "disable"]
    fieldsets = [
        (None, {"fields": ["name", "domain", "owner", "timezone", "enabled"]}),
        ("Tracking", {"fields": ["tracking_code", "website_id", "tracking_status", "snippets"]}),
        ("Filtering", {"fields": ["extra_hostnames", "excluded_ips", "respect_dnt"]}),
        ("History", {"fields": ["created"], "classes": ["collapse"]}),
    ]

    # --- Scope: owners see only their websites, everywhere the admin looks one up.

    def get_queryset(self, request: HttpRequest) -> QuerySet[Website]:
        queryset = super().get_queryset(request)
        if not request.user.is_superuser:
            queryset = queryset.filter(owner=request.user)
        return _with_activity(queryset)

    def get_fieldsets(self, request, obj=None):
        main = (None, {"fields": self._editable_main(request)})
        if obj is None:  # adding: tracking fields do not exist yet
            return [main, self.fieldsets[2]]
        return [main, *self.fieldsets[1:]]

    def _editable_main(self, request: HttpRequest) -> list[str]:
        fields = ["name", "domain", "timezone", "enabled"]
        if request.user.is_superuser:
            fields.insert(2, "owner")
        return fields

    def view_on_site(self, obj: Website) -> str:
        return reverse("dashboard-site", args=[obj.website_id])

    def save_model(self, request, obj: Website, form, change: bool) -> None:
        if not change and not (request.user.is_superuser and obj.owner_id):
            obj.owner = request.user
        super().save_model(request, obj, form, change)

    def has_change_permission(self, request, obj=None) -> bool:
        return super().has_change_permission(request, obj) and self._owns(request, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        return super().has_delete_permission(request, obj) and self._owns(request, obj)

    def has_view_permission(self, request, obj=None) -> bool:
        return super().has_view_permission(request, obj) and self._owns(request, obj)

    @staticmethod
    def _owns(request: HttpRequest, obj: Website | None) -> bool:
        return obj is None or request.user.is_superuser or obj.owner_id == request.user.pk

    # --- Columns

    @admin.display(description="Live visitors", ordering="live_count")
    def live_visitors(self, obj: Listed) -> int:
        return obj.live_count or 0

    @admin.display(description="Last event", ordering="last_event")
    def last_event_at(self, obj: Listed) -> str:
        if obj.last_event is None:
            return "—"
        return timezone.localtime(obj.last_event).strftime("%Y-%m-%d %H:%M")

    @admin.display(description="Status")
    def status(self, obj: Listed) -> str:
        return _status_label(obj)

    @admin.display(description="Tracking status")
    def tracking_status(self, obj: Listed) -> str:
        label = _status_label(obj)
        if obj.last_event is None:
            return f"{label}. Paste the tracker snippet below into your pages, then load one."
        return f"{label}. Last event {timezone.localtime(obj.last_event):%Y-%m-%d %H:%M:%S %Z}."

    @admin.display(description="Snippets")
    def snippets(self, obj: Website) -> str:
        return format_html(
            '<div class="zv-snippets">{}</div>',
            format_html_join(
                "",
                '<div class="zv-snippet"><strong>{}</strong> <small>{}</small>'
                '<pre id="snippet-{}">{}</pre>'
                '<button type="button" class="button zv-copy" data-copy="snippet-{}">Copy</button>'
                "</div>",
                (
                    (s["title"], s["help"], s["key"], snippets.as_html(s["code"]), s["key"])
                    for s in snippets.all_snippets(obj)
                ),
            ),
        )

    class Media:
        js = ["zenovay/admin.js"]
        css = {"all": ["zenovay/admin.css"]}

    # --- Actions

    @admin.action(description="Regenerate tracking code of selected websites")
    def regenerate_tracking_code(self, request: HttpRequest, queryset) -> HttpResponse | None:
        queryset = queryset.filter(pk__in=self._changeable(request, queryset))
        if request.POST.get("confirmed") != "yes":
            return TemplateResponse(
                request,
                "admin/zenovay/website/regenerate_confirmation.html",
                {
                    **self.admin_site.each_context(request),
                    "title": "Regenerate tracking codes?",
                    "websites": queryset,
                    "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
                    "opts": self.model._meta,
                },
            )
        for website in queryset:
            website.regenerate_tracking_code()
        self.message_user(
            request,
            f"New tracking codes for {len(queryset)} website(s). Update the snippet on every page: "
            "the old codes stopped working.",
            messages.WARNING,
        )
        return None

    @admin.action(description="Enable selected websites")
    def enable(self, request: HttpRequest, queryset) -> None:
        self._set_enabled(request, queryset, True)

    @admin.action(description="Disable selected websites")
    def disable(self, request: HttpRequest, queryset) -> None:
        self._set_enabled(request, queryset, False)

    def _set_enabled(self, request: HttpRequest, queryset, enabled: bool) -> None:
        count = 0
        for website in queryset.filter(pk__in=self._changeable(request, queryset)):
            website.enabled = enabled
            website.save(update_fields=["enabled"])  # signals drop cached answers
            count += 1
        self.message_user(request, f"{'Enabled' if enabled else 'Disabled'} {count} website(s).")

    def _changeable(self, request: HttpRequest, queryset) -> list[int]:
        return [w.pk for w in queryset if self.has_change_permission(request, w)]


def _with_activity(queryset: QuerySet[Website]) -> QuerySet[Website]:
    """Live visitors and the last event, in the same query as the list itself."""
    window = Event.objects.filter(
        website=OuterRef("pk"), ts__gt=timezone.now() - dt.timedelta(seconds=300)
    )
    live = window.values("website").annotate(n=Count("visitor", distinct=True)).values("n")
    last = (
        Event.objects.filter(website=OuterRef("pk"))
        .values("website")
        .annotate(t=Max("ts"))
        .values("t")
    )
    return queryset.annotate(live_count=Subquery(live), last_event=Subquery(last))


def _status_label(obj: Listed) -> str:
    if not obj.enabled:
        return "Disabled"
    if obj.last_event is None:
        return "Waiting for the first event"
    if obj.last_event > timezone.now() - metrics.ACTIVE_WITHIN:
        return "Active"
    return "No events in 24 hours"


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Keys of the External API, to list and revoke (delete). They are made in the dashboard,
    which shows the secret once; the stored hash is neither shown nor settable here."""

    list_display = ["name", "user", "key", "created", "last_used"]
    search_fields = ["name", "prefix", "user__username"]
    fields = readonly_fields = ("name", "user", "key", "created", "last_used")

    def get_queryset(self, request: HttpRequest) -> QuerySet[ApiKey]:
        queryset = super().get_queryset(request).select_related("user")
        return queryset if request.user.is_superuser else queryset.filter(user=request.user)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: ApiKey | None = None) -> bool:
        return False

    @admin.display(description="Key", ordering="prefix")
    def key(self, obj: ApiKey) -> str:
        return f"zv_{obj.prefix}…"
