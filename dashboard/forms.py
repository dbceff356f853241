"""The forms of a website's settings in the app: the website, members, shared links, goals."""

from __future__ import annotations

import zoneinfo
from typing import Any

from django import forms
from django.contrib.auth.hashers import make_password

from zenovay import pagepaths, payload
from zenovay.models import ApiKey, Goal, Invitation, Membership, SharedLink, Website


def zone_names() -> list[str]:
    return sorted(zoneinfo.available_timezones() - {"Factory", "localtime"})


class Unsuffixed:
    """Labels without Django's trailing colon, as the rest of the dashboard writes them."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)


class WebsiteForm(Unsuffixed, forms.ModelForm):
    """Add or edit a website. The time zone is typed with suggestions (a datalist)."""

    class Meta:
        model = Website
        fields = [
            "name",
            "domain",
            "timezone",
            "extra_hostnames",
            "excluded_ips",
            "respect_dnt",
            "enabled",
        ]
        labels = {"timezone": "Time zone", "extra_hostnames": "Other host names"}
        help_texts = {
            "name": "Shown in the dashboard; the domain when left empty.",
            "domain": "Pages on it and on its subdomains are counted (e.g. example.com).",
            "timezone": "Days, weeks and months start at midnight in this zone.",
            "enabled": "A disabled website refuses new events; its figures stay.",
        }
        widgets = {
            "timezone": forms.TextInput(
                attrs={"list": "zv-zones", "autocomplete": "off", "spellcheck": "false"}
            ),
            "extra_hostnames": forms.Textarea(attrs={"rows": 2}),
            "excluded_ips": forms.Textarea(attrs={"rows": 2}),
            "domain": forms.TextInput(attrs={"placeholder": "example.com", "spellcheck": "false"}),
        }

    def __init__(self, *args, adding: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if adding:
            del self.fields["enabled"]
        if adding and not self.is_bound:  # a new website's zone starts as the browser's
            self.fields["timezone"].widget.attrs["data-browser-zone"] = "1"


class InviteForm(Unsuffixed, forms.ModelForm):
    class Meta:
        model = Invitation
        fields = ["role", "email"]
        labels = {"email": "E-mail (optional)"}
        help_texts = {"email": "The link is also sent there when this server can send e-mail."}
        widgets = {"role": forms.RadioSelect}


class SharedLinkForm(Unsuffixed, forms.ModelForm):
    password = forms.CharField(
        required=False,
        strip=False,
        max_length=128,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text="Optional: whoever opens the link must type it.",
    )

    class Meta:
        model = SharedLink
        fields = ["name", "password"]
        help_texts = {"name": "For you: who the link is for."}

    def clean_password(self) -> str:
        password = self.cleaned_data["password"]
        return make_password(password) if password else ""


class GoalForm(Unsuffixed, forms.ModelForm):
    def __init__(self, *args, website: Website, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.website = website
        kind = self.fields["kind"]
        assert isinstance(kind, forms.ChoiceField)  # the model field has choices
        kind.choices = Goal.KINDS  # no empty choice among the radios
        kind.initial = Goal.EVENT

    class Meta:
        model = Goal
        fields = ["kind", "value"]
        labels = {"kind": "Goal", "value": "Event name or page path"}
        help_texts = {
            "value": "An event name (signup), or a path where * matches anything (/blog/*)."
        }
        widgets = {"kind": forms.RadioSelect}

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        kind, value = cleaned.get("kind"), (cleaned.get("value") or "").strip()
        if kind == Goal.PAGE:
            if not value.startswith("/"):
                self.add_error("value", "A page path starts with / (e.g. /thanks or /blog/*).")
                return cleaned
            value = pagepaths.as_browser_sends(value)  # as pageviews are stored
        elif kind == Goal.EVENT:
            value = payload.clean_text(value, 100).strip()
            if not value:
                self.add_error("value", "Give the custom event's name (e.g. signup).")
                return cleaned
        cleaned["value"] = value
        self.instance.website = self.website
        if Goal.objects.filter(website=self.website, kind=kind, value=value).exists():
            self.add_error("value", "This website has this goal already.")
        return cleaned


class DeleteWebsiteForm(Unsuffixed, forms.Form):
    confirm = forms.CharField(label="Type the domain to confirm", max_length=253)

    def __init__(self, *args, website: Website, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.website = website

    def clean_confirm(self) -> str:
        typed = self.cleaned_data["confirm"].strip().lower()
        if typed != self.website.domain:
            raise forms.ValidationError(f"Type {self.website.domain} to delete this website.")
        return typed


ROLE_LABELS = dict(Membership.ROLES)


class ApiKeyForm(Unsuffixed, forms.ModelForm):
    """Name a new key of the External API; its secret is made by `apikeys.new_key`."""

    class Meta:
        model = ApiKey
        fields = ["name"]
        help_texts = {"name": "For you: what uses the key (e.g. the weekly report script)."}
