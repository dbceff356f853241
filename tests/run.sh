#!/usr/bin/env bash
# The whole test suite, from a fresh clone: sets up .venv, installs the project with
# its dev extras, lints (ruff) and type-checks the apps (mypy; both configured in
# pyproject.toml), then runs
# every test twice:
#   1. on the embedded default: SQLite, in-process cache and channel layer;
#   2. on PostgreSQL with Redis for the cache, rate limits and channel layer.
# The checks and both suites always run; the script fails if any of them did. Tests run in a random order
# (pytest-randomly), the same order in both suites: the seed is printed, and
# `TEST_SEED=N bash tests/run.sh` replays it. Extra arguments go to pytest
# (e.g. `bash tests/run.sh -k collect`, or `-p no:randomly` for the file order).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  echo "== installing chromium for the browser tests"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[dev]'

PG_URL=${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}
REDIS=${TEST_REDIS_URL:-redis://127.0.0.1:6379/15}
SEED=${TEST_SEED:-$(( (RANDOM << 15) | RANDOM ))}
order=(-p randomly "--randomly-seed=$SEED")
for arg in "$@"; do
  [ "$arg" = "no:randomly" ] && order=()
done

echo "== ruff: lint and format check"
typed=0
.venv/bin/ruff check --quiet . || typed=$?
.venv/bin/ruff format --check --quiet . || typed=$?
echo "== mypy: zenovay, api, widgets, dashboard"
env -u DATABASE_URL -u REDIS_URL .venv/bin/mypy || typed=$?

echo "== test order: random, seed $SEED (TEST_SEED=$SEED bash tests/run.sh replays it)"
echo "== suite 1/2: SQLite, in-process layer"
first=0
env -u DATABASE_URL -u REDIS_URL .venv/bin/python -m pytest "${order[@]}" "$@" || first=$?

echo "== suite 2/2: PostgreSQL + Redis ($PG_URL, $REDIS)"
second=0
DATABASE_URL=$PG_URL REDIS_URL=$REDIS .venv/bin/python -m pytest "${order[@]}" "$@" || second=$?

echo "== ruff + mypy exited $typed; suite 1/2 (SQLite) exited $first; suite 2/2 (PostgreSQL + Redis) exited $second; seed $SEED"
[ "$typed" = 0 ] && [ "$first" = 0 ] && [ "$second" = 0 ]
