"""Schemathesis, with every check, against a live server: what the OpenAPI document promises
is what the server does, for generated requests the suite's authors never thought of."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from api import openapi
from zenovay.models import Event, Website

# Expected statuses of `positive_data_acceptance` are its defaults plus 413: the 4096-byte
# body limit (`x-body-limit-bytes`) is the one rule of the collect body that JSON Schema cannot
# state, so a schema-valid body can still be over it and get the documented 413.
CONFIG = """\
[checks.positive_data_acceptance]
expected-statuses = ["2xx", "3xx", "401", "403", "404", "409", "413", "429", "5xx"]
"""
MAX_EXAMPLES = 40  # per operation and phase: about 10 s in all


def run_schemathesis(base_url: str, workdir: Path) -> subprocess.CompletedProcess[str]:
    (workdir / "schemathesis.toml").write_text(CONFIG)
    command = [
        *(sys.executable, "-m", "schemathesis.cli", "run", f"{base_url}/e/openapi.json"),
        *("--url", base_url, "--checks", "all", "--phases", "examples,coverage,fuzzing"),
        *("--max-examples", str(MAX_EXAMPLES), "--workers", "1"),
        # Deterministic (and no example database): the same requests on every run, so a
        # failure is never luck.
        "--generation-deterministic",
        *("--report", "har", "--report-har-path", str(workdir / "run.har"), "--no-color"),
    ]
    return subprocess.run(command, cwd=workdir, capture_output=True, text=True, timeout=120)


def _json(text: str | None) -> Any:
    try:
        return json.loads(text or "")
    except ValueError:
        return None


def collect_exchanges(har: Path) -> list[tuple[Any, int, Any]]:
    """(request body, status, response body) of every POST /e/collect the run sent."""
    return [
        (
            _json(entry["request"].get("postData", {}).get("text")),
            entry["response"]["status"],
            _json(entry["response"]["content"].get("text")),
        )
        for entry in json.loads(har.read_text())["log"]["entries"]
        if entry["request"]["method"] == "POST" and entry["request"]["url"].endswith("/e/collect")
    ]


def test_schemathesis_with_every_check_finds_nothing(own_server_url, tmp_path):
    # The document's examples name this website, so they are recorded (202) and the read
    # examples answer 200; generated tracking codes get 404 after the body is validated.
    Website.objects.create(
        domain="example.com",
        name="Example",
        tracking_code=openapi.EXAMPLE_CODE,
        website_id=openapi.EXAMPLE_WEBSITE_ID,
    )
    result = run_schemathesis(own_server_url, tmp_path)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    operations = sum(len(item) for item in openapi.document()["paths"].values())
    assert f"{operations} selected / {operations} total" in result.stdout
    # It reached every branch of collect, and sent the url field both ways: generated URLs
    # the server took (404 for their generated code) and values it refused.
    exchanges = collect_exchanges(tmp_path / "run.har")
    statuses = Counter(status for _, status, _ in exchanges)
    assert statuses[202] and statuses[403], statuses
    taken = [
        sent["url"]
        for sent, status, _ in exchanges
        if status == 404 and isinstance(sent, dict) and isinstance(sent.get("url"), str)
    ]
    refused = [
        answer["message"]
        for _, status, answer in exchanges
        if status == 400 and isinstance(answer, dict) and answer["message"].startswith("'url'")
    ]
    assert len(set(taken)) >= 10 and refused, (statuses, taken, refused)
    assert Event.objects.filter(website__tracking_code=openapi.EXAMPLE_CODE).exists()
