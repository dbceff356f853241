"""The owner dashboard: server-rendered pages and htmx fragments, pushed live over WebSockets.

Users see the websites they own or are members of (`zenovay.access`); any other website
id is a 404 on the page, on every fragment and on the socket, so ids cannot be probed. Each view is
one URL that answers with the page or, for htmx, the fragment its target asks for.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from collections.abc import Callable
from typing import Any

from django.contrib.auth.views import LoginView, redirect_to_login
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django_htmx.http import HttpResponseClientRedirect, reswap, retarget

from dashboard import charts, dashview, reports
from zenovay import access, exports, metrics, snippets
from zenovay.countries import flag
from zenovay.htmx import HtmxHttpRequest
from zenovay.models import Website
from zenovay.signin import ThrottledAuthenticationForm

# --- Who may see what (zenovay.access decides)


def owner_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """`login_required` that sends an htmx request's whole page, not its fragment, to sign-in."""

    @functools.wraps(view)
    def wrapper(request: HtmxHttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.user.is_authenticated:
            return view(request, *args, **kwargs)
        if request.htmx:
            page = request.htmx.current_url_abs_path or reverse("dashboard")
            return HttpResponseClientRedirect(redirect_to_login(page).url)
        return redirect_to_login(request.get_full_path())

    return wrapper


# --- Views


class SignInView(LoginView):
    template_name = "dashboard/login.html"
    authentication_form = ThrottledAuthenticationForm
    redirect_authenticated_user = True


@owner_required
def index(request: HttpRequest) -> HttpResponse:
    return redirect("dashboard")


@owner_required
def sites(request: HttpRequest) -> HttpResponse:
    """Every website of the user with its live figures, kept moving by /ws/dashboard/sites."""
    now = timezone.now()
    websites = list(access.visible_websites(request.user))
    cards = [_card(website, now) for website in websites]
    return render(request, "dashboard/sites.html", {**_nav(websites), "cards": cards})


@owner_required
def site(request: HtmxHttpRequest, website_id: str) -> HttpResponse:
    """A website's dashboard; htmx asks for one of its parts by target id."""
    website = access.visible_website(request.user, website_id)
    if website is None:
        raise Http404("No such website.")
    websites = list(access.visible_websites(request.user))
    page = {
        **_nav(websites, website),
        "role": access.role(request.user, website),
        "page_url": reverse("dashboard-site", args=[website.website_id]),
        "ws_url": f"/ws/dashboard/{website.website_id}",
        "export_base": reverse("dashboard-export", args=[website.website_id]),
    }
    return site_response(request, website, "dashboard/site.html", page)


@owner_required
def export(request: HttpRequest, website_id: str) -> HttpResponse:
    """The Export button: a zip of CSV files for the range the dashboard shows."""
    website = access.visible_website(request.user, website_id)
    if website is None:
        raise Http404("No such website.")
    view = dashview.view_of(request, website, timezone.now())
    return exports.response(website, dashview.export_range(view, website))


def site_response(
    request: HtmxHttpRequest, website: Website, template: str, page: dict[str, Any]
) -> HttpResponse:
    """The page, or the part an htmx request targets; `page` says where its parts come from
    (`page_url`, `ws_url`) and what the page around them needs. Shared links use it too.
    What the lower half shows (period, filters, comparison) is in the URL (`dashview`)."""
    now = timezone.now()
    view = dashview.view_of(request, website, now)
    target = request.htmx.target if request.htmx else None
    urls = {key: page.get(key) for key in ("page_url", "ws_url", "role", "export_base")}
    can_setup = not page.get("shared")
    if target == "zv-period":
        context = {**urls, **_period_context(website, view, now)}
        # A click (not the section's own refresh) may change filters: the charts follow.
        if request.headers.get("HX-Trigger") != "zv-period":
            context |= {"charts_oob": True, **_charts_context(website, now, view)}
        response = render(request, "dashboard/_period.html", context)
    elif target == "zv-charts":
        context = {**urls, **_charts_context(website, now, view)}
        response = render(request, "dashboard/_charts.html", context)
    elif target == "zv-setup-status" and can_setup:
        response = _setup_status(request, website, view, now, urls)
    else:
        context = {**page, **_panel_context(website, view, now, can_setup)}
        response = render(request, template, context)
    patch_vary_headers(response, ("HX-Request", "HX-Target", "HX-Trigger"))
    return response


def _setup_status(
    request: HttpRequest,
    website: Website,
    view: dashview.View,
    now: dt.datetime,
    urls: dict[str, Any],
) -> HttpResponse:
    """While waiting for the first event, the status line; once it came, the whole panel."""
    status = metrics.status(website, now)
    if status["last_event"] is None:
        context = {**urls, "website": website, "now": now}
        return render(request, "dashboard/_setup_status.html", context)
    context = {**urls, **_panel_context(website, view, now, True)}
    panel = render(request, "dashboard/_panel.html", context)
    return reswap(retarget(panel, "#zv-panel"), "outerHTML")


# --- Contexts


def _nav(websites: list[Website], current: Website | None = None) -> dict[str, Any]:
    return {"nav_websites": websites, "current": current}


def _card(website: Website, now: dt.datetime) -> dict[str, Any]:
    return {
        "website": website,
        "data": _with_flags(metrics.realtime(website, now)),
        "status": metrics.status(website, now),
        "spark": charts.sparkline(reports.hourly(website, now)),
    }


def _panel_context(
    website: Website, view: dashview.View, now: dt.datetime, can_setup: bool
) -> dict[str, Any]:
    status = metrics.status(website, now)
    context: dict[str, Any] = {"website": website, "status": status, "zone": website.timezone}
    if status["last_event"] is None and can_setup:
        return {**context, "setup": True, "snippet": snippets.tracker(website), "now": now}
    return {
        **context,
        "data": _with_flags(metrics.realtime(website, now)),
        **_charts_context(website, now, view),
        **_period_context(website, view, now),
    }


def _charts_context(
    website: Website, now: dt.datetime, view: dashview.View | None = None
) -> dict[str, Any]:
    """The last 24 hours and 30 days; filtered and compared as the view asks."""
    context: dict[str, Any] = {"website": website, "view": view}
    if view is not None and not view.plain and (view.filters or view.compare):
        compare = dashview.COMPARE.get(view.compare or "", "")
        return {**context, "compare_label": compare, **dashview.charts_context(website, view, now)}
    return {
        **context,
        "hourly": charts.bar_chart(
            reports.hourly(website, now),
            chart_id="chart-hourly",
            title="Visitors and pageviews per hour, last 24 hours",
            label_every=3,
        ),
        "daily": charts.bar_chart(
            reports.daily(website, now),
            chart_id="chart-daily",
            title="Visitors and pageviews per day, last 30 days",
            label_every=5,
        ),
    }


def _period_context(
    website: Website, view: dashview.View | metrics.Period, now: dt.datetime
) -> dict[str, Any]:
    """The lower half for a view (or a period's name: today, week, month)."""
    if isinstance(view, str):
        since = metrics.period_start(now, website, view)
        view = dashview.View(view, since, now)
    return {
        "website": website,
        "status": metrics.status(website, now),  # the header's badge follows the figures
        "period": view.period,
        **dashview.period_context(website, view),
    }


def _with_flags(realtime: metrics.RealtimeSnapshot) -> dict[str, Any]:
    # A copy: the snapshot may be shared with every other viewer and must not change.
    data = json.loads(json.dumps(realtime))
    for country in data["countries"]:
        country["flag"] = flag(country["code"])
    return data


# --- Fragments pushed over the dashboard sockets, rendered once per snapshot per process


def realtime_fragment(realtime: metrics.RealtimeSnapshot, zone: str) -> str:
    return _render("dashboard/_realtime.html", "", json.dumps(realtime), zone)


def card_fragment(website_id: str, realtime: metrics.RealtimeSnapshot) -> str:
    return _render("dashboard/_card_counts.html", website_id, json.dumps(realtime), "UTC")


@functools.lru_cache(maxsize=256)
def _render(template: str, website_id: str, snapshot_json: str, zone: str) -> str:
    data = _with_flags(json.loads(snapshot_json))
    context = {"data": data, "website_id": website_id, "zone": zone, "oob": True}
    return render_to_string(template, context)
