"""Websites, their events and sessions, and the salts behind visitor identities."""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import re
import zoneinfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

from zenovay import ids

DOMAIN_RE = re.compile(r"(?=.{1,253}$)(?!-)[a-z0-9-]{1,63}(?<!-)(\.(?!-)[a-z0-9-]{1,63}(?<!-))*")


def normalize_domain(value: str) -> str:
    """Lower-case a bare host name; raise ValidationError for anything else."""
    domain = value.strip().lower().rstrip(".")
    if domain.startswith("www."):
        domain = domain[4:]
    if not DOMAIN_RE.fullmatch(domain):
        raise ValidationError(f"{value!r} is not a domain name (e.g. example.com).")
    return domain


def validate_domain(value: str) -> None:
    normalize_domain(value)


def validate_hostnames(value: str) -> None:
    for host in split_lines(value):
        validate_domain(host)


def validate_timezone(value: str) -> None:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValidationError(f"{value!r} is not a time zone (e.g. Europe/Berlin).") from None


def validate_networks(value: str) -> None:
    for cidr in split_lines(value):
        try:
            ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            raise ValidationError(f"{cidr!r} is not an IP address or CIDR range.") from None


def split_lines(value: str) -> list[str]:
    return [item.strip() for item in re.split(r"[\s,]+", value or "") if item.strip()]


# Collect checks every event against its website's hosts and excluded ranges: parsed
# once per distinct setting, not once per event.
@functools.lru_cache(maxsize=1024)
def _hostnames(value: str) -> frozenset[str]:
    return frozenset(split_lines(value))


@functools.lru_cache(maxsize=1024)
def _networks(value: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(cidr, strict=False) for cidr in split_lines(value))


class Website(models.Model):
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="websites",
    )
    name = models.CharField(max_length=100, blank=True)
    domain = models.CharField(max_length=253, validators=[validate_domain])
    extra_hostnames = models.TextField(
        blank=True,
        validators=[validate_hostnames],
        help_text="Other host names whose pages may send events, one per line.",
    )
    timezone = models.CharField(max_length=64, default="UTC", validators=[validate_timezone])
    tracking_code = models.CharField(
        max_length=14, unique=True, default=ids.new_tracking_code, editable=False
    )
    website_id = models.CharField(
        max_length=19, unique=True, default=ids.new_website_id, editable=False
    )
    enabled = models.BooleanField(default=True)
    respect_dnt = models.BooleanField(
        "honour Do Not Track", default=True, help_text="Drop events from browsers sending DNT: 1."
    )
    excluded_ips = models.TextField(
        "excluded IP ranges",
        blank=True,
        validators=[validate_networks],
        help_text="Addresses or CIDR ranges whose visits are not counted, one per line.",
    )
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "domain"]

    def __str__(self) -> str:
        return self.name or self.domain

    def save(self, *args, **kwargs) -> None:
        if not self.name:
            self.name = self.domain
        super().save(*args, **kwargs)

    def clean(self) -> None:
        """Normalise what is valid; the fields' own validators report what is not (once)."""
        with contextlib.suppress(ValidationError):
            self.domain = normalize_domain(self.domain) if self.domain else self.domain
        with contextlib.suppress(ValidationError):
            self.extra_hostnames = "\n".join(
                normalize_domain(h) for h in split_lines(self.extra_hostnames)
            )
        self.excluded_ips = "\n".join(split_lines(self.excluded_ips))

    def regenerate_tracking_code(self) -> None:
        """A new code; the old one stops working at once (see signals)."""
        self._previous_tracking_code = self.tracking_code
        self.tracking_code = ids.new_tracking_code()
        self.save(update_fields=["tracking_code"])

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)

    def allows_host(self, host: str) -> bool:
        """The website's domain, any subdomain of it, or an extra hostname."""
        host = host.lower().rstrip(".")
        if host == self.domain or host.endswith("." + self.domain):
            return True
        return host in _hostnames(self.extra_hostnames)

    def excludes_ip(self, ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        return any(
            ip.version == network.version and ip in network
            for network in _networks(self.excluded_ips)
        )


class Event(models.Model):
    PAGEVIEW = "pageview"
    ENGAGEMENT = "engagement"
    CUSTOM = "event"
    TYPES = [(PAGEVIEW, "Pageview"), (ENGAGEMENT, "Engagement"), (CUSTOM, "Custom event")]

    # No index of its own: the indexes below start with the website. One on the website
    # alone cost every insert a b-tree more, and a planner without statistics yet (a new
    # install, a bulk load) took it to find a visitor's session, reading every row of the
    # site: 43 ms a batch after 8,000 sessions.
    # No database constraint either: PostgreSQL checked it for every row at commit, each
    # check locking the website's row again, and concurrent batches shared that lock
    # through a multixact. A batch instead locks its websites once (ingest.store), and a
    # website's deletion locks it first (zenovay.signals), so no event outlives its website.
    website = models.ForeignKey(
        Website, on_delete=models.CASCADE, related_name="+", db_index=False, db_constraint=False
    )
    ts = models.DateTimeField()
    type = models.CharField(max_length=10, choices=TYPES)
    visitor = models.BigIntegerField(help_text="Keyed hash of website, IP and user agent.")
    path = models.CharField(max_length=1024, blank=True)
    hostname = models.CharField(max_length=253, blank=True)
    referrer_host = models.CharField(max_length=253, blank=True)
    utm_source = models.CharField(max_length=100, blank=True)
    utm_medium = models.CharField(max_length=100, blank=True)
    utm_campaign = models.CharField(max_length=100, blank=True)
    country = models.CharField(max_length=2, blank=True)
    device = models.CharField(max_length=10, blank=True)
    browser = models.CharField(max_length=50, blank=True)
    os = models.CharField(max_length=50, blank=True)
    name = models.CharField(max_length=100, blank=True, help_text="Custom event name.")
    props = models.JSONField(null=True, blank=True)
    engaged_ms = models.PositiveIntegerField(default=0)

    class Meta:
        indexes = [
            models.Index(fields=["website", "ts"], name="event_site_ts"),
            models.Index(fields=["website", "type", "ts"], name="event_site_type_ts"),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.path or self.name} at {self.ts:%Y-%m-%d %H:%M:%S}"


class Session(models.Model):
    # No index of its own and no database constraint, as Event's.
    website = models.ForeignKey(
        Website, on_delete=models.CASCADE, related_name="+", db_index=False, db_constraint=False
    )
    visitor = models.BigIntegerField()
    started_at = models.DateTimeField()
    last_event_at = models.DateTimeField()
    pageviews = models.PositiveIntegerField(default=0)
    custom_events = models.PositiveIntegerField(default=0)
    entry_path = models.CharField(max_length=1024, blank=True)
    exit_path = models.CharField(max_length=1024, blank=True)
    referrer_host = models.CharField(max_length=253, blank=True)
    utm_source = models.CharField(max_length=100, blank=True)
    utm_medium = models.CharField(max_length=100, blank=True)
    utm_campaign = models.CharField(max_length=100, blank=True)
    country = models.CharField(max_length=2, blank=True)
    device = models.CharField(max_length=10, blank=True)
    browser = models.CharField(max_length=50, blank=True)
    os = models.CharField(max_length=50, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["website", "started_at"], name="session_site_start"),
            models.Index(fields=["website", "visitor", "last_event_at"], name="session_visitor"),
        ]

    def __str__(self) -> str:
        return f"session of {self.visitor:x} from {self.started_at:%Y-%m-%d %H:%M}"

    @property
    def duration(self) -> int:
        return int((self.last_event_at - self.started_at).total_seconds())


class Salt(models.Model):
    """The secret behind visitor hashes for one rotation period; deleted once retired."""

    period = models.CharField(max_length=16, unique=True)
    secret = models.BinaryField(max_length=32)
    created = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"salt for {self.period}"


# --- Aggregates maintained by ingest (zenovay.aggregates explains the scheme and its costs)
#
# Their website keys have no database constraint and no index of their own: each insert
# would pay a foreign-key check, and every key starts with the website already. Deleting a
# website still deletes them (Django's cascade).


class Tally(models.Model):
    """One website's figures for one 15-minute UTC quarter (`quarter` = epoch seconds // 900).

    Session columns belong to the quarter the session started in; `*_visitors` and
    `*_returning` count the visitors whose first-seen row of that kind (see FirstSeen) is in
    this quarter. Bounces and durations are kept as sums updated by deltas."""

    website = models.ForeignKey(
        Website, on_delete=models.CASCADE, related_name="+", db_index=False, db_constraint=False
    )
    quarter = models.BigIntegerField()
    pageviews = models.BigIntegerField(default=0)
    custom_events = models.BigIntegerField(default=0)
    sessions = models.BigIntegerField(default=0)
    bounces = models.BigIntegerField(default=0)
    session_pageviews = models.BigIntegerField(default=0)
    duration_us = models.BigIntegerField(default=0)
    hour_visitors = models.BigIntegerField(default=0)
    day_visitors = models.BigIntegerField(default=0)
    week_visitors = models.BigIntegerField(default=0)
    month_visitors = models.BigIntegerField(default=0)
    day_session_visitors = models.BigIntegerField(default=0)
    week_session_visitors = models.BigIntegerField(default=0)
    month_session_visitors = models.BigIntegerField(default=0)
    day_returning = models.BigIntegerField(default=0)
    week_returning = models.BigIntegerField(default=0)
    month_returning = models.BigIntegerField(default=0)
    last_us = models.BigIntegerField(default=0, help_text="Latest event, epoch microseconds.")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["website", "quarter"], name="tally_key")]

    def __str__(self) -> str:
        return f"quarter {self.quarter} of website {self.website_id}"


class FirstSeen(models.Model):
    """What a visitor did in a local day, as bits (zenovay.aggregates: the hours with a
    pageview, a session started): a bit newly set adds one to a counter. Weeks and months
    are read from a visitor's day rows (kind is always DAY since migration 0012)."""

    website = models.ForeignKey(
        Website, on_delete=models.CASCADE, related_name="+", db_index=False, db_constraint=False
    )
    visitor = models.BigIntegerField()
    kind = models.PositiveSmallIntegerField()
    period = models.BigIntegerField(help_text="The period's local start, epoch seconds.")
    first_us = models.BigIntegerField(null=True, help_text="The first pageview, if any.")
    bits = models.BigIntegerField(default=0)
    prev = models.BigIntegerField(default=0, help_text="The bits before the last change.")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["website", "kind", "visitor", "period"], name="first_seen_visitor"
            )
        ]
        indexes = [
            models.Index(fields=["website", "kind", "period", "first_us"], name="first_seen_time")
        ]

    def __str__(self) -> str:
        return f"visitor {self.visitor:x} in period {self.kind}/{self.period}: {self.bits:#x}"


class Sketch(models.Model):
    """Per website, local day or month (or a month's first days so far), and dimension value
    (or none): the events counted and a HyperLogLog sketch of their distinct visitors
    (zenovay.sketches), so that visitors over any run of days are a union of a few
    sketches, not a scan."""

    website = models.ForeignKey(
        Website, on_delete=models.CASCADE, related_name="+", db_index=False, db_constraint=False
    )
    kind = models.PositiveSmallIntegerField()
    period = models.BigIntegerField(help_text="The period's local start, epoch seconds.")
    scope = models.CharField(
        max_length=32, blank=True, help_text="A filtered query's digest; empty: no filter."
    )
    dim = models.CharField(max_length=1, blank=True)
    value = models.CharField(max_length=1024, blank=True)
    count = models.BigIntegerField(default=0)
    registers = models.BinaryField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["website", "kind", "period", "scope", "dim", "value"], name="sketch_key"
            )
        ]

    def __str__(self) -> str:
        return f"sketch {self.dim}={self.value} of period {self.kind}/{self.period}"


class VisitTally(models.Model):
    """Per website, local day and session dimension value (entry or exit page, source,
    place, device...): the visits that began that day, once all of them have ended
    (zenovay.visits), with their bounces, pageviews and total duration."""

    website = models.ForeignKey(
        Website, on_delete=models.CASCADE, related_name="+", db_index=False, db_constraint=False
    )
    period = models.BigIntegerField(help_text="The local day's start, epoch seconds.")
    dim = models.CharField(max_length=1)
    value = models.CharField(max_length=1024)
    visits = models.BigIntegerField(default=0)
    bounces = models.BigIntegerField(default=0)
    pageviews = models.BigIntegerField(default=0)
    duration_us = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["website", "period", "dim", "value"], name="visit_tally_key"
            )
        ]

    def __str__(self) -> str:
        return f"visits {self.dim}={self.value} of day {self.period}"


class SketchMark(models.Model):
    """How far a period's sealed figures go: every event (for visit tallies, every visit
    that began) before `until_us` is in them."""

    website = models.ForeignKey(
        Website, on_delete=models.CASCADE, related_name="+", db_index=False, db_constraint=False
    )
    kind = models.PositiveSmallIntegerField()
    period = models.BigIntegerField()
    scope = models.CharField(max_length=32, blank=True)
    until_us = models.BigIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["website", "kind", "period", "scope"], name="sketch_mark_key"
            )
        ]

    def __str__(self) -> str:
        return f"sketches of period {self.kind}/{self.period} up to {self.until_us}"


# --- Sharing a website: members, invitations, shared links; and its goals


class Membership(models.Model):
    """Another user's access to a website: a viewer reads, an admin also manages it.

    The website's `owner` is not a member; only they (and superusers) may delete it."""

    VIEWER = "viewer"
    ADMIN = "admin"
    ROLES = [(VIEWER, "Viewer"), (ADMIN, "Admin")]

    website = models.ForeignKey(Website, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=10, choices=ROLES, default=VIEWER)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["website", "user"], name="membership_unique")
        ]
        ordering = ["created"]

    def __str__(self) -> str:
        return f"{self.user} ({self.role}) on {self.website}"


class Invitation(models.Model):
    """A link that makes whoever opens it (signed in, or signing up there) a member.

    Only a hash of the link's secret is kept; the link is shown once, when it is made."""

    website = models.ForeignKey(Website, on_delete=models.CASCADE, related_name="invitations")
    role = models.CharField(max_length=10, choices=Membership.ROLES, default=Membership.VIEWER)
    email = models.EmailField(blank=True)
    token_hash = models.CharField(max_length=64, unique=True)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created = models.DateTimeField(auto_now_add=True)
    expires = models.DateTimeField()

    class Meta:
        ordering = ["created"]

    def __str__(self) -> str:
        return f"invitation to {self.website} as {self.role}"


class SharedLink(models.Model):
    """A public, read-only view of one website's dashboard; revoked by deleting it."""

    website = models.ForeignKey(Website, on_delete=models.CASCADE, related_name="shared_links")
    name = models.CharField(max_length=100, blank=True)
    slug = models.CharField(max_length=32, unique=True)
    password = models.CharField(max_length=128, blank=True, help_text="A password hash, or empty.")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created"]

    def __str__(self) -> str:
        return self.name or f"shared link of {self.website}"


class Goal(models.Model):
    """A conversion: a custom event by name, or a pageview whose path matches a pattern
    (`*` stands for any run of characters: `/blog/*`, `/thanks`)."""

    EVENT = "event"
    PAGE = "page"
    KINDS = [(EVENT, "Custom event"), (PAGE, "Page visit")]

    website = models.ForeignKey(Website, on_delete=models.CASCADE, related_name="goals")
    kind = models.CharField(max_length=5, choices=KINDS)
    value = models.CharField(max_length=1024)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["website", "kind", "value"], name="goal_unique")
        ]
        ordering = ["created", "pk"]

    def __str__(self) -> str:
        return f"Visit {self.value}" if self.kind == self.PAGE else self.value


class ApiKey(models.Model):
    """A key of the External API (`/api/v1/`), sent as `Authorization: Bearer zv_…`.

    Only the SHA-256 of the secret is kept (the secret is random, so a plain hash is as good
    as a slow one); the secret is shown once, when the key is made. Revoked by deleting it."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys"
    )
    name = models.CharField(max_length=100)
    prefix = models.CharField(
        max_length=8, help_text="The secret's first characters after zv_, to tell keys apart."
    )
    key_hash = models.CharField(max_length=64, unique=True)
    created = models.DateTimeField(auto_now_add=True)
    last_used = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created", "pk"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} (zv_{self.prefix}…)"
