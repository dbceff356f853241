"""Opening what an owner shared: an invitation link, and a shared dashboard link.

An invitation makes whoever opens it a member (signed in, or with an account made on the
spot), once, before it expires. A shared link shows one website's dashboard, live,
read-only and without signing in; a password-protected one asks for its password once
per browser (a signed cookie, voided by a new password; tries are throttled as sign-ins
are). Neither grants anything else: no other website, no settings, no session.
"""

from __future__ import annotations

from django.contrib.auth import login
from django.contrib.auth.forms import UserCreationForm
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.http import require_http_methods

from dashboard.views import site_response
from zenovay import access
from zenovay.htmx import HtmxHttpRequest
from zenovay.models import Invitation, Membership, SharedLink
from zenovay.signin import LoginThrottle

BACKEND = "zenovay.signin.SignInBackend"


def _invitation(token: str) -> Invitation | None:
    if not (0 < len(token) <= 64):
        return None
    return (
        Invitation.objects.select_related("website", "invited_by")
        .filter(token_hash=access.digest(token), expires__gt=timezone.now())
        .first()
    )


@require_http_methods(["GET", "POST"])
def invitation(request: HttpRequest, token: str) -> HttpResponse:
    """Accept an invitation: signed in, with one click; else by making an account here
    (or signing in first, which comes back here)."""
    found = _invitation(token)
    if found is None:
        return render(request, "dashboard/invitation.html", {"gone": True}, status=404)
    signup: UserCreationForm[User] = UserCreationForm(
        request.POST if "signup" in request.POST else None, label_suffix=""
    )
    if request.method == "POST":
        if request.user.is_authenticated and "accept" in request.POST:
            return _accept(request, found, request.user)
        if not request.user.is_authenticated and signup.is_valid():
            user = signup.save()
            login(request, user, backend=BACKEND)
            return _accept(request, found, user)
    context = {
        "invitation": found,
        "signup": signup,
        "login_url": f"{reverse('login')}?next={request.path}",
    }
    return render(
        request, "dashboard/invitation.html", context, status=400 if signup.errors else 200
    )


def _accept(request: HttpRequest, found: Invitation, user) -> HttpResponse:
    website = found.website
    with transaction.atomic():
        # One use: whoever deletes it first accepts it.
        if not Invitation.objects.filter(pk=found.pk).delete()[0]:
            raise Http404("This invitation was just used.")
        if website.owner_id != user.pk:
            try:
                with transaction.atomic():
                    Membership.objects.create(website=website, user=user, role=found.role)
            except IntegrityError:  # a member already: the invitation's role now applies
                Membership.objects.filter(website=website, user=user).update(role=found.role)
    return redirect("dashboard-site", website.website_id)


@csrf_protect
@require_http_methods(["GET", "POST"])
def shared(request: HtmxHttpRequest, slug: str) -> HttpResponse:
    """A shared dashboard: the password form while locked, else the website's page."""
    link = access.shared_link(slug)
    if link is None:
        raise Http404("This shared link does not exist or was revoked.")
    if not access.share_unlocked(link, request.COOKIES):
        return _password(request, link)
    page = {
        "shared": True,
        "link": link,
        "page_url": reverse("shared", args=[link.slug]),
        "ws_url": f"/ws/share/{link.slug}",
    }
    return site_response(request, link.website, "dashboard/shared.html", page)


def _password(request: HttpRequest, link: SharedLink) -> HttpResponse:
    error = ""
    if request.method == "POST":
        throttle = LoginThrottle(request, f"shared link {link.slug}")
        wait = throttle.begin()
        if wait:
            error = f"Too many wrong passwords. Try again in {(wait + 59) // 60} minute(s)."
        elif access.share_password_matches(link, request.POST.get("password", "")):
            if not throttle.succeeded():
                response = redirect(request.path)
                response.set_cookie(
                    access.share_cookie_name(link),
                    access.share_cookie_value(link),
                    max_age=access.SHARE_COOKIE_AGE,
                    path="/",
                    httponly=True,
                    samesite="Lax",
                    secure=request.is_secure(),
                )
                return response
            error = "Too many wrong passwords. Try again later."
        else:
            throttle.failed()
            error = "That is not the password of this link."
    context = {"link": link, "error": error}
    return render(request, "dashboard/shared_password.html", context, status=403)
