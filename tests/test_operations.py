"""Operations: retention, production settings, health."""

from __future__ import annotations

import datetime as dt
import os
import secrets
import subprocess
import sys

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils.deprecation import MiddlewareMixin

from tests.servers import ROOT
from tests.test_ingest import body, client
from zenovay import ingest, metrics, retention
from zenovay.models import Event, Session

pytestmark = pytest.mark.django_db


def visit(website, when, ip="81.2.69.160", path="/"):
    ingest.collect(
        body=body(website, url=f"https://shop.example{path}"), client=client(ip=ip), now=when
    )


def snapshots(website, now):
    return (
        metrics.live(website, now),
        metrics.realtime(website, now),
        [metrics.stats(website, period, now) for period in metrics.PERIODS],
        metrics.status(website, now),
    )


def test_pruning_keeps_every_reported_figure_for_the_retained_period(website, now):
    for days_ago in (400, 200, 90, 63, 40, 20, 6, 1, 0):
        for n in range(3):
            when = now - dt.timedelta(days=days_ago, minutes=n * 7)
            visit(website, when, ip=f"81.2.69.{days_ago % 250 + n}", path=f"/p{n}")
    before = snapshots(website, now)
    deleted_events, deleted_sessions = retention.prune(before=retention.cutoff(now, days=62))
    assert deleted_events == 12 and deleted_sessions == 12
    assert not Event.objects.filter(ts__lt=now - dt.timedelta(days=62)).exists()
    assert Event.objects.filter(ts__gte=now - dt.timedelta(days=62)).count() == 15
    assert snapshots(website, now) == before


def test_a_session_that_goes_on_past_the_cutoff_is_kept(website, now):
    cut = now - dt.timedelta(days=62)
    visit(website, cut - dt.timedelta(minutes=10))
    visit(website, cut + dt.timedelta(minutes=10), path="/later")
    retention.prune(before=cut)
    assert Session.objects.get().pageviews == 2


def test_retention_shorter_than_two_months_is_refused():
    with pytest.raises(CommandError, match="at least 62 days"):
        call_command("prune", "--days", "30")


def test_the_prune_command_reports_what_it_deleted(website, capsys):
    visit(website, dt.datetime(2020, 1, 1, tzinfo=dt.UTC))
    call_command("prune")
    assert "Deleted 1 events and 1 sessions" in capsys.readouterr().out


def test_check_deploy_is_clean_with_production_settings():
    env = {
        **os.environ,
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "ZENOVAY_PUBLIC_URL": "https://stats.example.com",
        "DJANGO_ALLOWED_HOSTS": "stats.example.com",
    }
    env.pop("DJANGO_DEBUG", None)
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_a_bad_setting_fails_loudly():
    env = {**os.environ, "DJANGO_DEBUG": "yes please"}
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "DJANGO_DEBUG='yes please' is not a boolean" in result.stderr


def test_every_page_carries_security_headers(client):
    for path in ["/admin/login/", "/healthz", "/e/live/ZV_AAAAAAAAAAA", "/z.js"]:
        response = client.get(path)
        assert response["X-Content-Type-Options"] == "nosniff", path
        assert response["Referrer-Policy"] == "same-origin", path
    assert client.get("/admin/login/")["X-Frame-Options"] == "DENY"


@pytest.mark.django_db(transaction=True)
async def test_the_api_skips_the_sync_middleware_but_keeps_the_headers(
    async_client, website, monkeypatch
):
    hops: list[str] = []
    through_thread = MiddlewareMixin.__acall__

    async def counted(self, request):
        hops.append(type(self).__name__)
        return await through_thread(self, request)

    monkeypatch.setattr(MiddlewareMixin, "__acall__", counted)
    for path in [f"/e/live/{website.tracking_code}", f"/e/realtime/{website.website_id}"]:
        response = await async_client.get(path)
        assert response.status_code == 200, path
        assert hops == [], (path, hops)  # no hook handed to the sync thread
        assert response["X-Content-Type-Options"] == "nosniff"
        assert response["Referrer-Policy"] == "same-origin"
        assert response["Cross-Origin-Opener-Policy"] == "same-origin"
        assert response["X-Frame-Options"] == "DENY"
        assert response["Access-Control-Allow-Origin"] == "*"
        assert response["Content-Length"] == str(len(response.content))
        assert "Set-Cookie" not in response and "Cookie" not in response.get("Vary", "")

    await async_client.get("/healthz")  # every other page still takes the whole chain
    assert "SessionMiddleware" in hops and "CsrfViewMiddleware" in hops
