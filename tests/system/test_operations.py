"""Operations: retention, production settings, health."""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils.deprecation import MiddlewareMixin

from tests.factories import record, sender
from tests.servers import ROOT, free_port
from zenovay import metrics, retention
from zenovay.models import Event, Session

pytestmark = pytest.mark.django_db


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
            record(website, when, who=sender(f"81.2.69.{days_ago % 250 + n}"), path=f"/p{n}")
    before = snapshots(website, now)
    deleted_events, deleted_sessions = retention.prune(before=retention.cutoff(now, days=62))
    assert deleted_events == 12 and deleted_sessions == 12
    assert not Event.objects.filter(ts__lt=now - dt.timedelta(days=62)).exists()
    assert Event.objects.filter(ts__gte=now - dt.timedelta(days=62)).count() == 15
    assert snapshots(website, now) == before


def test_a_session_that_goes_on_past_the_cutoff_is_kept(website, now):
    cut = now - dt.timedelta(days=62)
    record(website, cut - dt.timedelta(minutes=10))
    record(website, cut + dt.timedelta(minutes=10), path="/later")
    retention.prune(before=cut)
    assert Session.objects.get().pageviews == 2


def test_retention_shorter_than_two_months_is_refused():
    with pytest.raises(CommandError, match="at least 62 days"):
        call_command("prune", "--days", "30")


def test_the_prune_command_reports_what_it_deleted(website, capsys):
    record(website, dt.datetime(2020, 1, 1, tzinfo=dt.UTC))
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


def test_snippets_follow_the_address_serve_listens_on(tmp_path):
    """`serve 127.0.0.1:PORT` without ZENOVAY_PUBLIC_URL: the server's snippets and a later
    `addsite` name that port, not the default 8000."""
    env = {**os.environ, "ZENOVAY_VAR_DIR": str(tmp_path), "DJANGO_SECRET_KEY": "x" * 50}
    for name in ("DATABASE_URL", "REDIS_URL", "ZENOVAY_PUBLIC_URL"):
        env.pop(name, None)
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "manage.py", "serve", f"127.0.0.1:{port}"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_until_serving(f"http://127.0.0.1:{port}/e/openapi.json", server, timeout=60)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/e/openapi.json", timeout=10) as r:
            assert json.load(r)["servers"][0]["url"] == f"http://127.0.0.1:{port}"
        added = subprocess.run(
            [sys.executable, "manage.py", "addsite", "shop.example"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert added.returncode == 0, added.stderr
        snippet = json.loads(added.stdout)["snippet"]
        assert f'src="http://127.0.0.1:{port}/z.js"' in snippet
    finally:
        server.terminate()
        output = server.communicate(timeout=30)[0]
    assert f"Snippets load from http://127.0.0.1:{port}" in output


def test_zenovay_public_url_wins_over_the_served_address(tmp_path):
    (tmp_path / "served_url").write_text("http://127.0.0.1:8120\n")
    env = {**os.environ, "ZENOVAY_VAR_DIR": str(tmp_path), "DJANGO_SECRET_KEY": "x" * 50}
    env.pop("DATABASE_URL", None)
    code = "from django.conf import settings; print(settings.ZENOVAY_PUBLIC_URL)"
    shell = [sys.executable, "manage.py", "shell", "--no-imports", "-c", code]
    env["ZENOVAY_PUBLIC_URL"] = "https://stats.example.com/"
    chosen = subprocess.run(shell, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert chosen.stdout.strip() == "https://stats.example.com"
    del env["ZENOVAY_PUBLIC_URL"]
    served = subprocess.run(shell, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert served.stdout.strip() == "http://127.0.0.1:8120"


def wait_until_serving(url: str, server: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert server.poll() is None, server.communicate()[0]
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    raise AssertionError(f"{url} did not answer within {timeout} s")


def test_a_long_url_is_cut_in_the_404_log_line(client, db, caplog):
    path = "/dashboard/" + "x" * 20_000
    with caplog.at_level("WARNING", logger="django.request"):
        assert 400 <= client.get(path).status_code < 500
        assert client.get("/" + "y" * 20_000).status_code == 404
    lines = [record.getMessage() for record in caplog.records if record.name == "django.request"]
    assert lines and all(len(line) < 400 for line in lines)
    assert any(line.startswith("Not Found: /yyyy") and "more characters" in line for line in lines)


def test_the_favicon_exists(launch):
    server = launch("serve")
    with urllib.request.urlopen(f"{server.url}/favicon.ico", timeout=10) as response:
        assert response.url.endswith("/static/zenovay/favicon.svg")
        assert response.headers["Content-Type"].startswith("image/svg+xml")
        assert response.read().startswith(b"<svg")
