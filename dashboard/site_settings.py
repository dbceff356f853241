"""A website's settings in the app: add, edit, regenerate its code, disable, delete; its
members and invitations, shared links and goals. The admin stays for operators.

Every view finds the website among those the user may see (else 404) and then checks the
user's role (`zenovay.access`): admins and the owner manage, only the owner deletes.
Forms post back to small endpoints that redirect to the settings page (post/redirect/get),
except where a secret is shown once (a new invitation link), which is rendered at once.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.mail import send_mail
from django.db.models import Model
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from dashboard.forms import (
    DeleteWebsiteForm,
    GoalForm,
    InviteForm,
    SharedLinkForm,
    WebsiteForm,
    zone_names,
)
from dashboard.views import owner_required
from zenovay import access, snippets
from zenovay.models import Goal, Invitation, Membership, SharedLink, Website


def _website(request: HttpRequest, website_id: str, *, owner_only: bool = False) -> Website:
    """The website if the user manages it (owns it, for `owner_only`); 404 if they cannot
    see it, 403 if they see it but may not change it."""
    website = access.visible_website(request.user, website_id)
    if website is None:
        raise Http404("No such website.")
    role = access.role(request.user, website)
    if role != "owner" and (owner_only or role != "admin"):
        raise PermissionDenied("Only the website's owner and admins change its settings.")
    return website


def _back(website: Website, section: str = "") -> HttpResponse:
    url = reverse("site-settings", args=[website.website_id])
    return redirect(f"{url}#{section}" if section else url)


@owner_required
def new_site(request: HttpRequest) -> HttpResponse:
    """Add a website; the signed-in user owns it. Then its install guide."""
    form = WebsiteForm(request.POST or None, adding=True)
    if request.method == "POST" and form.is_valid():
        website = form.save(commit=False)
        website.owner = request.user
        website.save()
        messages.success(
            request, f"{website.name} is added. Install the tracker to see its visitors."
        )
        return redirect("dashboard-site", website.website_id)
    websites = list(access.visible_websites(request.user))
    context = {"nav_websites": websites, "form": form, "zones": zone_names()}
    return render(request, "dashboard/new_site.html", context, status=400 if form.errors else 200)


@owner_required
def site_settings(request: HttpRequest, website_id: str) -> HttpResponse:
    website = _website(request, website_id)
    form = WebsiteForm(request.POST or None, instance=website)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, "Settings saved.")
        return _back(website)
    return _settings_page(request, website, form=form)


def _settings_page(request: HttpRequest, website: Website, **forms: Any) -> HttpResponse:
    bound = [form for form in forms.values() if hasattr(form, "errors") and form.errors]
    now = timezone.now()
    context = {
        "nav_websites": list(access.visible_websites(request.user)),
        "current": website,
        "website": website,
        "role": access.role(request.user, website),
        "form": forms.get("form") or WebsiteForm(instance=website),
        "invite_form": forms.get("invite_form") or InviteForm(prefix="invite"),
        "link_form": forms.get("link_form") or SharedLinkForm(prefix="link"),
        "goal_form": forms.get("goal_form") or GoalForm(website=website, prefix="goal"),
        "delete_form": forms.get("delete_form")
        or DeleteWebsiteForm(website=website, prefix="delete"),
        "new_invite_url": forms.get("new_invite_url"),
        "snippets": snippets.all_snippets(website),
        "members": website.memberships.select_related("user"),
        "invitations": website.invitations.filter(expires__gt=now),
        "links": [
            {"link": link, "url": _absolute(reverse("shared", args=[link.slug]))}
            for link in website.shared_links.all()
        ],
        "goals": website.goals.all(),
        "zones": zone_names(),
    }
    return render(request, "dashboard/settings.html", context, status=400 if bound else 200)


def _absolute(path: str) -> str:
    return settings.ZENOVAY_PUBLIC_URL + path


# --- The tracking code, disabling, deleting


@owner_required
@require_POST
def regenerate_code(request: HttpRequest, website_id: str) -> HttpResponse:
    website = _website(request, website_id)
    website.regenerate_tracking_code()
    messages.success(
        request, "A new tracking code is in use: the old snippet counts nothing from now on."
    )
    return _back(website, "tracking")


@owner_required
def delete_site(request: HttpRequest, website_id: str) -> HttpResponse:
    website = _website(request, website_id, owner_only=True)
    form = DeleteWebsiteForm(request.POST or None, website=website, prefix="delete")
    if request.method == "POST" and form.is_valid():
        name = website.name
        website.delete()
        messages.success(request, f"{name} and all its data are deleted.")
        return redirect("dashboard")
    if request.method != "POST":
        return _back(website, "danger")
    return _settings_page(request, website, delete_form=form)


# --- Members and invitations


@owner_required
@require_POST
def invite(request: HttpRequest, website_id: str) -> HttpResponse:
    website = _website(request, website_id)
    form = InviteForm(request.POST, prefix="invite")
    if not form.is_valid():
        return _settings_page(request, website, invite_form=form)
    secret = access.new_secret()
    invitation = form.save(commit=False)
    invitation.website = website
    invitation.token_hash = access.digest(secret)
    invitation.invited_by = request.user
    invitation.expires = timezone.now() + dt.timedelta(days=settings.ZENOVAY_INVITATION_DAYS)
    invitation.save()
    url = _absolute(reverse("invitation", args=[secret]))
    if (
        invitation.email
        and settings.EMAIL_BACKEND != "django.core.mail.backends.dummy.EmailBackend"
    ):
        send_mail(
            f"You are invited to {website.name} on Zenovay",
            f"{request.user.get_username()} invites you to see {website.name}'s analytics"
            f" as {invitation.get_role_display().lower()}.\n\nOpen this link to accept"
            f" (valid {settings.ZENOVAY_INVITATION_DAYS} days):\n{url}\n",
            None,
            [invitation.email],
            fail_silently=True,
        )
    return _settings_page(request, website, new_invite_url=url)


def _remove(
    request: HttpRequest, website_id: str, model: type[Model], pk: int, section: str
) -> tuple[Any, HttpResponse]:
    """Delete one of the website's members, invitations, links or goals; back to its section."""
    website = _website(request, website_id)
    found = get_object_or_404(model, website=website, pk=pk)
    found.delete()
    return found, _back(website, section)


@owner_required
@require_POST
def revoke_invitation(request: HttpRequest, website_id: str, pk: int) -> HttpResponse:
    _, back = _remove(request, website_id, Invitation, pk, "members")
    messages.success(request, "The invitation is withdrawn: its link no longer works.")
    return back


@owner_required
@require_POST
def remove_member(request: HttpRequest, website_id: str, pk: int) -> HttpResponse:
    member, back = _remove(request, website_id, Membership, pk, "members")
    messages.success(request, f"{member.user.get_username()} no longer has access.")
    return back


# --- Shared links


@owner_required
@require_POST
def add_link(request: HttpRequest, website_id: str) -> HttpResponse:
    website = _website(request, website_id)
    form = SharedLinkForm(request.POST, prefix="link")
    if not form.is_valid():
        return _settings_page(request, website, link_form=form)
    link = form.save(commit=False)
    link.website = website
    link.slug = access.new_secret()
    link.save()
    messages.success(request, "Shared link made: anyone with it sees this dashboard.")
    return _back(website, "links")


@owner_required
@require_POST
def revoke_link(request: HttpRequest, website_id: str, pk: int) -> HttpResponse:
    _, back = _remove(request, website_id, SharedLink, pk, "links")
    messages.success(request, "The shared link is revoked: it shows nothing any more.")
    return back


# --- Goals


@owner_required
@require_POST
def add_goal(request: HttpRequest, website_id: str) -> HttpResponse:
    website = _website(request, website_id)
    form = GoalForm(request.POST, website=website, prefix="goal")
    if not form.is_valid():
        return _settings_page(request, website, goal_form=form)
    form.save()
    messages.success(request, "Goal added: the dashboard shows its conversions.")
    return _back(website, "goals")


@owner_required
@require_POST
def delete_goal(request: HttpRequest, website_id: str, pk: int) -> HttpResponse:
    _, back = _remove(request, website_id, Goal, pk, "goals")
    messages.success(request, "Goal removed.")
    return back
