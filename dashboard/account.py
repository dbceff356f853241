"""The signed-in user's own things, beside their websites: their keys of the External API.

A key is made with a name and its secret is shown in that one answer (not cached, never
stored in the clear, not in a flash message); the list shows each key's name, the start of
its secret, and when it was made and last used. Revoking deletes it: it stops at once.
"""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_POST

from dashboard.forms import ApiKeyForm
from dashboard.views import owner_required
from zenovay import access, apikeys
from zenovay.models import ApiKey


@owner_required
def api_keys(request: HttpRequest) -> HttpResponse:
    """The user's keys; a POST makes one and shows its secret, once."""
    form = ApiKeyForm(request.POST or None, prefix="key")
    if request.method == "POST" and form.is_valid():
        key, secret = apikeys.new_key(request.user, form.cleaned_data["name"])
        response = _page(request, ApiKeyForm(prefix="key"), new_key=key, secret=secret)
        add_never_cache_headers(response)  # the secret is in this answer only
        return response
    return _page(request, form)


def _page(
    request: HttpRequest, form: ApiKeyForm, *, new_key: ApiKey | None = None, secret: str = ""
) -> HttpResponse:
    context = {
        "nav_websites": list(access.visible_websites(request.user)),
        # login_required: the user is signed in, not AnonymousUser (no api_keys there)
        "keys": request.user.api_keys.all(),  # type: ignore[union-attr]
        "form": form,
        "new_key": new_key,
        "secret": secret,
    }
    return render(request, "dashboard/api_keys.html", context, status=400 if form.errors else 200)


@owner_required
@require_POST
def revoke_api_key(request: HttpRequest, pk: int) -> HttpResponse:
    """Delete one of the user's keys (another user's is a 404, as if it did not exist)."""
    key = get_object_or_404(ApiKey, pk=pk, user=request.user)
    key.delete()
    messages.success(request, f"The key {key.name} is revoked: it no longer works.")
    return redirect("api-keys")
