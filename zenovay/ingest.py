"""The write path: validate -> identify -> store -> notify.

A collect body is parsed by `zenovay.payload` first; here its website is checked
(`check_source`), the event identified and classified (`accept`) and stored with its
session and aggregates (`store`, a batch at a time: the group commit, `zenovay.writer`,
calls it for collect requests; `record_event` for one event, as `manage.py simulate` does).
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.db import connection, transaction
from django.utils import timezone

from zenovay import aggregates, clientinfo, push, salts
from zenovay.infra import pg
from zenovay.models import Event, Website
from zenovay.payload import UNKNOWN_CODE, Forbidden, NotFound, Payload

SESSION_GAP = dt.timedelta(minutes=30)


@dataclass(frozen=True, slots=True)
class Client:
    """HTTP facts about the sender, read by the view."""

    ip: clientinfo.IPAddress | None
    country: str
    user_agent: str
    do_not_track: bool = False
    origin: str | None = None  # the browser's Origin header, as sent


def check_source(website: Website | None, payload: Payload, client: Client) -> Website:
    """The website, if the event may come from where it says: its page and the browser's
    Origin must be the website's hosts."""
    if website is None:
        raise NotFound(UNKNOWN_CODE)
    if not website.allows_host(payload.hostname):
        raise Forbidden(f"The page's host is not {website.domain} or one of its hostnames.")
    if not _origin_allowed(website, client.origin):
        raise Forbidden(f"The sending page's origin is not {website.domain} or one of its hosts.")
    return website


def _origin_allowed(website: Website, origin: str | None) -> bool:
    """A browser names the page that sends the event in `Origin`, and pages cannot forge it:
    one on another site is refused even though the tracking code is public. No Origin (not
    a browser) and `null` (a page whose referrer policy is no-referrer sends that with a
    beacon) are let through; the page URL's host is checked either way."""
    if origin is None or origin == "null":
        return True
    try:
        url = urlsplit(origin)
        host = url.hostname
    except ValueError:
        return False
    return url.scheme in ("http", "https") and host is not None and website.allows_host(host)


@dataclass(frozen=True, slots=True)
class Pending:
    """An accepted event, identified and classified, ready to be written."""

    website_pk: int
    visitor: int
    ts: dt.datetime
    payload: Payload
    country: str
    device: str
    browser: str
    os: str


def record_event(
    *, website: Website, payload: Payload, client: Client, now: dt.datetime | None = None
) -> str | None:
    """Store one event and update its session, committed; the reason when dropped on purpose.

    The synchronous way in (`manage.py simulate`, tests); collect requests go through the
    group commit (`zenovay.writer`), which calls `store` with many events at once."""
    accepted = accept(website=website, payload=payload, client=client, now=now)
    if isinstance(accepted, str):
        return accepted
    if not store([accepted]):
        raise NotFound(UNKNOWN_CODE)
    return None


def accept(
    *,
    website: Website,
    payload: Payload,
    client: Client,
    now: dt.datetime | None = None,
    salt: bytes | None = None,
) -> Pending | str:
    """Identify and classify an event (CPU only, given the salt); the reason when dropped."""
    agent = clientinfo.parse_agent(client.user_agent)
    if agent.is_bot:
        return "bot"
    if client.do_not_track and website.respect_dnt:
        return "do_not_track"
    if client.ip is not None and website.excludes_ip(client.ip):
        return "excluded_ip"
    now = now or timezone.now()
    visitor = salts.visitor_id(
        salt=salt if salt is not None else salts.salt_for(now),
        website_pk=website.pk,
        ip=str(client.ip or ""),
        user_agent=client.user_agent,
    )
    if payload.referrer_host and website.allows_host(payload.referrer_host):
        payload.referrer_host = ""  # internal navigation is not a referral
    return Pending(
        website_pk=website.pk,
        visitor=visitor,
        ts=now,
        payload=payload,
        country=client.country,
        device=agent.device,
        browser=agent.browser,
        os=agent.os,
    )


# --- Storing a batch: one transaction, a few statements whatever its size.
#
# The write path runs for every event, so it is precomposed SQL rather than ORM calls
# (which cost more CPU than the database work itself). Column names are the models' own;
# tests/core/test_ingest.py checks what lands in them.


@dataclass(slots=True)
class _Session:
    """A visitor's session as the batch sees it: loaded (with its id) or begun here."""

    id: int | None
    started_at: dt.datetime
    last_event_at: dt.datetime
    pageviews: int
    custom_events: int
    entry_path: str
    exit_path: str
    facts: tuple[str, ...]  # referrer host, utm source/medium/campaign, country, device, ...
    dirty: bool = False


_SESSION_FACTS = "referrer_host, utm_source, utm_medium, utm_campaign, country, device, browser, os"
_SESSION_COLUMNS = (
    "started_at, last_event_at, pageviews, custom_events, entry_path, exit_path, " + _SESSION_FACTS
)
_EVENT_COLUMNS = (
    "website_id, ts, type, visitor, path, hostname, referrer_host, utm_source, utm_medium,"
    " utm_campaign, name, props, engaged_ms, country, device, browser, os"
)


def _insert(table: str, columns: str) -> str:
    placeholders = ", ".join(["%s"] * (columns.count(",") + 1))
    return f"INSERT INTO {table} ({columns}) VALUES ({placeholders})"  # noqa: S608


_INSERT_EVENT = _insert("zenovay_event", _EVENT_COLUMNS)
_COPY_EVENTS = f"COPY zenovay_event ({_EVENT_COLUMNS}) FROM STDIN"
_INSERT_SESSION = _insert("zenovay_session", "website_id, visitor, " + _SESSION_COLUMNS)
_UPDATE_SESSION = (
    "UPDATE zenovay_session SET last_event_at = %s, pageviews = %s, custom_events = %s,"
    " exit_path = %s WHERE id = %s"
)
# PostgreSQL: one statement per batch, each prepared once per connection (zenovay.infra.pg).
_LOCK_VISITORS_PG = (
    "SELECT count(pg_advisory_xact_lock(k)) FROM"  # noqa: S608 - fixed texts
    f" (SELECT k FROM {pg.rows('g', k='bigint')} ORDER BY k) AS keys"
)
# The latest session of each (website, visitor): one index range each, whatever the
# planner's statistics say (with IN lists it could scan every recent session of a site).
_OPEN_SESSIONS_PG = (
    f"SELECT s.id, g.w, g.v, {_SESSION_COLUMNS}"  # noqa: S608 - fixed texts
    f" FROM {pg.rows('g', w='bigint', v='bigint')} CROSS JOIN LATERAL"
    f" (SELECT id, {_SESSION_COLUMNS} FROM zenovay_session"
    " WHERE website_id = g.w AND visitor = g.v AND last_event_at >= %s"
    " ORDER BY last_event_at DESC LIMIT 1) AS s"
)
_UPDATE_SESSIONS_PG = (
    "UPDATE zenovay_session AS s SET last_event_at = u.last_event_at,"  # noqa: S608
    " pageviews = u.pageviews, custom_events = u.custom_events, exit_path = u.exit_path"
    " FROM "
    + pg.rows(
        "u",
        last_event_at="timestamptz",
        pageviews="integer",
        custom_events="integer",
        exit_path="text",
        id="bigint",
    )
    + " WHERE s.id = u.id"
)
_INSERT_SESSIONS_PG = (
    f"INSERT INTO zenovay_session (website_id, visitor, {_SESSION_COLUMNS}) SELECT * FROM "  # noqa: S608
    + pg.rows(
        "u",
        website_id="bigint",
        visitor="bigint",
        started_at="timestamptz",
        last_event_at="timestamptz",
        pageviews="integer",
        custom_events="integer",
        **dict.fromkeys(["entry_path", "exit_path", *_SESSION_FACTS.split(", ")], "text"),
    )
)


def store(batch: Sequence[Pending]) -> list[tuple[Pending, _Session | None, _Session | None]]:
    """Write a batch of events and their sessions in one transaction, in order.

    Events of a website deleted since they were accepted are left out. Returns, per
    stored event, its session before and after it (None before: the event began
    the session, or there is none; None after: an engagement event with no open
    session, which begins none). On PostgreSQL the batch first takes a transaction-level
    advisory lock per visitor, in a fixed order (so batches never deadlock): two
    processes writing a new visitor's first events at the same moment take turns, and
    the second one sees the first one's session, so a visitor never has two open
    sessions. SQLite has one writer at a time (IMMEDIATE transactions) already.
    """
    changes: list[tuple[Pending, _Session | None, _Session | None]] = []
    with transaction.atomic(), connection.cursor() as cursor:
        zones = aggregates.website_zones({pending.website_pk for pending in batch})
        batch = [pending for pending in batch if pending.website_pk in zones]
        if not batch:
            return changes
        _lock_visitors(cursor, batch)
        sessions = _open_sessions(cursor, batch)
        # the latest session of each visitor with one in the aggregates' history
        known = {
            key: aggregates.Latest(
                aggregates.micros(s.started_at), aggregates.micros(s.last_event_at), s.pageviews
            )
            for key, s in sessions.items()
        }
        ended: list[tuple[tuple[int, int], _Session]] = []  # changed, then ended here
        for pending in batch:
            key = (pending.website_pk, pending.visitor)
            before = latest = sessions.get(key)
            if before is not None and before.last_event_at < pending.ts - SESSION_GAP:
                before = None  # that session has ended
            after = _advance(before, pending)
            if after is not None:
                if latest is not None and latest.dirty and before is None:
                    ended.append((key, latest))
                sessions[key] = after
            changes.append((pending, before, after))
        _write_sessions(cursor, [*ended, *sessions.items()])
        _write_events(cursor, batch)
        aggregates.apply([_recorded(*change) for change in changes], zones, known)
        for website_pk in {pending.website_pk for pending in batch}:
            transaction.on_commit(functools.partial(push.site_changed, website_pk), robust=True)
    return changes


def _recorded(
    pending: Pending, before: _Session | None, after: _Session | None
) -> aggregates.Recorded:
    payload = pending.payload
    return aggregates.Recorded(
        website_pk=pending.website_pk,
        ts=pending.ts,
        visitor=pending.visitor,
        type=payload.type,
        path=payload.path,
        hostname=payload.hostname,
        referrer_host=payload.referrer_host,
        utm_source=payload.utm_source,
        utm_medium=payload.utm_medium,
        utm_campaign=payload.utm_campaign,
        name=payload.name,
        props=payload.props,
        engaged_ms=payload.engaged_ms,
        country=pending.country,
        device=pending.device,
        browser=pending.browser,
        os=pending.os,
        session_before=_state(before),
        session_after=_state(after),
    )


def _state(session: _Session | None) -> aggregates.SessionState | None:
    if session is None:
        return None
    return aggregates.SessionState(
        session.started_at,
        session.last_event_at,
        session.pageviews,
        session.custom_events,
        session.entry_path,
        session.exit_path,
        *session.facts,
    )


def _lock_visitors(cursor, batch: Sequence[Pending]) -> None:
    if connection.vendor != "postgresql":
        return
    keys = sorted({_lock_key(pending.website_pk, pending.visitor) for pending in batch})
    pg.run(cursor, _LOCK_VISITORS_PG, [pg.as_json([[key] for key in keys])])


def _lock_key(website_pk: int, visitor: int) -> int:
    """One signed 64-bit advisory lock key per (website, visitor); a collision only waits."""
    mixed = (visitor ^ (website_pk * 0x9E3779B97F4A7C15)) & 0xFFFFFFFFFFFFFFFF
    return mixed - (1 << 64) if mixed >= 1 << 63 else mixed


def _open_sessions(cursor, batch: Sequence[Pending]) -> dict[tuple[int, int], _Session]:
    """The latest session of each visitor of the batch that may still be open: one that
    had an event in the last `SESSION_GAP`, the caller checks.

    The read reaches as far back as the aggregates' check of returning visitors looks
    (`aggregates.HISTORY`), for the same index range per visitor: a visitor it does not
    find has no earlier session or day that the aggregates could ask about, and for most
    others the latest session answers them (`known`; most visitors of a busy site are
    new). On SQLite the range holds every session of the visitor since then, of which
    the query keeps the latest."""
    since = min(pending.ts for pending in batch) - aggregates.HISTORY
    if connection.vendor == "postgresql":
        pairs = sorted({(pending.website_pk, pending.visitor) for pending in batch})
        rows = pg.run(cursor, _OPEN_SESSIONS_PG, [pg.as_json(pairs), since])
    else:  # SQLite takes a bare column's values from the row of the group's max()
        websites = sorted({pending.website_pk for pending in batch})
        visitors = sorted({pending.visitor for pending in batch})
        cursor.execute(
            f"SELECT id, website_id, visitor, {_SESSION_COLUMNS}, max(last_event_at)"  # noqa: S608
            f" FROM zenovay_session WHERE website_id IN ({', '.join(['%s'] * len(websites))})"
            f" AND visitor IN ({', '.join(['%s'] * len(visitors))})"
            " AND last_event_at >= %s GROUP BY website_id, visitor",
            [*websites, *visitors, connection.ops.adapt_datetimefield_value(since)],
        )
        rows = [row[:-1] for row in cursor.fetchall()]
    found: dict[tuple[int, int], _Session] = {}
    for row in rows:
        pk, website_pk, visitor, started, last, pageviews, custom, entry, exit_path, *facts = row
        found[(website_pk, visitor)] = _Session(
            id=pk,
            started_at=_aware(started),
            last_event_at=_aware(last),
            pageviews=pageviews,
            custom_events=custom,
            entry_path=entry,
            exit_path=exit_path,
            facts=tuple(facts),
        )
    return found


def _aware(value: dt.datetime | str) -> dt.datetime:
    """A datetime column as read by a raw cursor: SQLite gives naive UTC (or text)."""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _advance(session: _Session | None, pending: Pending) -> _Session | None:
    """The session after this event: extended, begun, or none (engagement alone begins none)."""
    payload = pending.payload
    is_pageview = payload.type == Event.PAGEVIEW
    is_custom = payload.type == Event.CUSTOM
    if session is None:
        if payload.type == Event.ENGAGEMENT:
            return None
        return _Session(
            id=None,
            started_at=pending.ts,
            last_event_at=pending.ts,
            pageviews=int(is_pageview),
            custom_events=int(is_custom),
            entry_path=payload.path,
            exit_path=payload.path if is_pageview else "",
            facts=(
                payload.referrer_host,
                payload.utm_source,
                payload.utm_medium,
                payload.utm_campaign,
                pending.country,
                pending.device,
                pending.browser,
                pending.os,
            ),
            dirty=True,
        )
    return _Session(
        id=session.id,
        started_at=session.started_at,
        last_event_at=max(session.last_event_at, pending.ts),
        pageviews=session.pageviews + int(is_pageview),
        custom_events=session.custom_events + int(is_custom),
        entry_path=session.entry_path,
        exit_path=payload.path if is_pageview else session.exit_path,
        facts=session.facts,
        dirty=True,
    )


def _write_sessions(cursor, sessions: list[tuple[tuple[int, int], _Session]]) -> None:
    adapt = connection.ops.adapt_datetimefield_value
    updates, inserts = [], []
    for (website_pk, visitor), session in sessions:
        if not session.dirty:
            continue
        if session.id is not None:
            updates.append(
                [
                    adapt(session.last_event_at),
                    session.pageviews,
                    session.custom_events,
                    session.exit_path,
                    session.id,
                ]
            )
        else:
            inserts.append(
                [
                    website_pk,
                    visitor,
                    adapt(session.started_at),
                    adapt(session.last_event_at),
                    session.pageviews,
                    session.custom_events,
                    session.entry_path,
                    session.exit_path,
                    *session.facts,
                ]
            )
    if connection.vendor == "postgresql":  # one statement each, whatever the batch
        if updates:
            pg.run(cursor, _UPDATE_SESSIONS_PG, [pg.as_json(updates)], returns=False)
        if inserts:
            pg.run(cursor, _INSERT_SESSIONS_PG, [pg.as_json(inserts)], returns=False)
        return
    if updates:
        cursor.executemany(_UPDATE_SESSION, updates)
    if inserts:
        cursor.executemany(_INSERT_SESSION, inserts)


def _write_events(cursor, batch: Sequence[Pending]) -> None:
    ops = connection.ops
    rows = []
    for pending in batch:
        payload = pending.payload
        props = None if payload.props is None else ops.adapt_json_value(payload.props, None)
        rows.append(
            [
                pending.website_pk,
                ops.adapt_datetimefield_value(pending.ts),
                payload.type,
                pending.visitor,
                payload.path,
                payload.hostname,
                payload.referrer_host,
                payload.utm_source,
                payload.utm_medium,
                payload.utm_campaign,
                payload.name,
                props,
                payload.engaged_ms,
                pending.country,
                pending.device,
                pending.browser,
                pending.os,
            ]
        )
    if connection.vendor == "postgresql":  # COPY: far less work per row, on both sides
        # The driver's own cursor: its errors are raised as Django's, as pg.run does.
        with connection.wrap_database_errors, cursor.cursor.copy(_COPY_EVENTS) as copy:
            for row in rows:
                copy.write_row(row)
    else:
        cursor.executemany(_INSERT_EVENT, rows)
