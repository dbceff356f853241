"""Zenovay settings: everything a deployment changes comes from the environment.

Every variable is listed in the README with its default. Helpers fail loudly on
a value they cannot read rather than guessing.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("ZENOVAY_VAR_DIR", BASE_DIR / "var"))

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean (use 1/0, true/false, yes/no).")


def env_int(name: str, default: int, minimum: int = 0) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a whole number.") from None
    if value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, got {value}.")
    return value


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def env_networks(name: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    try:
        return tuple(ipaddress.ip_network(cidr, strict=False) for cidr in env_list(name))
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name}: {exc}") from None


def _secret_key() -> str:
    """DJANGO_SECRET_KEY, or a random key generated once and kept in VAR_DIR."""
    key = os.environ.get("DJANGO_SECRET_KEY")
    if key:
        return key
    path = VAR_DIR / "secret_key"
    if not path.exists():
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


DEBUG = env_bool("DJANGO_DEBUG")
# The base URL snippets use; https here turns on the HTTPS-only settings below. Unset, it
# follows the address `manage.py serve` last listened on (kept in VAR_DIR/served_url), so a
# newcomer's snippets work on any port, and `addsite` agrees with the running server.
SERVED_URL_FILE = VAR_DIR / "served_url"


def _public_url() -> str:
    if "ZENOVAY_PUBLIC_URL" in os.environ:
        return os.environ["ZENOVAY_PUBLIC_URL"].rstrip("/")
    try:
        return SERVED_URL_FILE.read_text().strip().rstrip("/") or "http://127.0.0.1:8000"
    except OSError:
        return "http://127.0.0.1:8000"


ZENOVAY_PUBLIC_URL = _public_url()
SECRET_KEY = _secret_key()
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "corsheaders",
    "django_htmx",
    "channels",
    "zenovay",
    "api",
    "widgets",
    "dashboard",
]

MIDDLEWARE = [
    "zenovay.middleware.ApiFastPath",  # the /e/ API skips the rest (see its docstring)
    "django.middleware.security.SecurityMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "zenovay.urls"
ASGI_APPLICATION = "zenovay.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database: SQLite file in the project unless DATABASE_URL says otherwise.
DATABASE_URL = os.environ.get("DATABASE_URL", "")
if DATABASE_URL:
    # Under ASGI every request gets a thread of its own, so kept connections would pile up
    # (one per request thread, until "too many clients"): connections are not kept
    # (CONN_MAX_AGE 0) and PostgreSQL ones come from a pool instead (below).
    # Health checks: pooled connections are checked on checkout, so after a database
    # restart no request is handed a dead one.
    DATABASES = {
        "default": dj_database_url.parse(DATABASE_URL, conn_max_age=0, conn_health_checks=True)
    }
else:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(VAR_DIR / "zenovay.sqlite3"),
            # A file, not memory, so that server processes started by tests share it;
            # one per test run so that runs side by side do not collide.
            "TEST": {"NAME": str(VAR_DIR / f"test-{os.getpid()}.sqlite3")},
        }
    }
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            # An unreachable database costs a request seconds (then a 503), not TCP's minutes.
            "connect_timeout": 3,
            # Lets the write path prepare its statements (zenovay.infra.pg asks for it
            # explicitly). Django's own cursors bind on the client and never prepare.
            "prepare_threshold": 5,
            "pool": {
                "min_size": 1,
                "max_size": env_int("ZENOVAY_DB_POOL_SIZE", 10, minimum=1),
                # Waiting longer for a connection than this is an outage: answer 503.
                "timeout": 3,
                # Stop retrying a failed connection after 2 s (the default backs off for
                # 5 minutes, so a restarted database went unused for up to a minute); the
                # next request that needs a connection starts a new attempt at once.
                "reconnect_timeout": 2,
            },
        }
    )
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            # WAL lets readers run beside the single writer; IMMEDIATE avoids
            # "database is locked" when a read transaction upgrades to a write.
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
        }
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: shared cache, channel layer and rate-limit counters when set.
REDIS_URL = os.environ.get("REDIS_URL", "")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "zenovay",
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL], "prefix": "zenovay", "capacity": 1000},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"

LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/dashboard/"
LOGOUT_REDIRECT_URL = "/login/"

# --- E-mail: invitations are links to copy; with ZENOVAY_EMAIL_HOST set they are sent too.
if os.environ.get("ZENOVAY_EMAIL_HOST"):
    EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    EMAIL_HOST = os.environ["ZENOVAY_EMAIL_HOST"]
    EMAIL_PORT = env_int("ZENOVAY_EMAIL_PORT", 587, minimum=1)
    EMAIL_HOST_USER = os.environ.get("ZENOVAY_EMAIL_USER", "")
    EMAIL_HOST_PASSWORD = os.environ.get("ZENOVAY_EMAIL_PASSWORD", "")
    EMAIL_USE_TLS = env_bool("ZENOVAY_EMAIL_TLS", True)
    EMAIL_TIMEOUT = 10
else:
    EMAIL_BACKEND = "django.core.mail.backends.dummy.EmailBackend"
DEFAULT_FROM_EMAIL = os.environ.get("ZENOVAY_EMAIL_FROM", "Zenovay <zenovay@localhost>")
ZENOVAY_INVITATION_DAYS = env_int("ZENOVAY_INVITATION_DAYS", 7, minimum=1)

# --- Security headers on every page; widget views opt out of DENY framing.
# ZENOVAY_HTTPS: the public URL is https (directly or behind a TLS-terminating proxy).
ZENOVAY_HTTPS = env_bool("ZENOVAY_HTTPS", ZENOVAY_PUBLIC_URL.startswith("https://"))
if ZENOVAY_HTTPS:
    SECURE_SSL_REDIRECT = True
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]  # load balancers probe over plain http
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = 31536000
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"

# --- CORS: the public /e/ API is readable from any origin, never with credentials.
CORS_URLS_REGEX = r"^/e/.*$"
CORS_ALLOW_ALL_ORIGINS = True
CORS_ALLOW_CREDENTIALS = False
CORS_ALLOW_METHODS = ["GET", "OPTIONS"]
# If-None-Match and ETag let page scripts use the 304 flow; Age tells them how old a body is.
CORS_ALLOW_HEADERS = ["Content-Type", "If-None-Match"]
CORS_EXPOSE_HEADERS = ["Retry-After", "ETag", "Age"]
CORS_PREFLIGHT_MAX_AGE = 86400

# Collect bodies are at most 4 KiB; anything far bigger is refused before parsing.
DATA_UPLOAD_MAX_MEMORY_SIZE = 64 * 1024

# --- Zenovay
ZENOVAY_TRUSTED_PROXIES = env_networks("ZENOVAY_TRUSTED_PROXIES")
ZENOVAY_COUNTRY_HEADER = os.environ.get("ZENOVAY_COUNTRY_HEADER", "")
ZENOVAY_SALT_ROTATION = os.environ.get("ZENOVAY_SALT_ROTATION", "monthly")
if ZENOVAY_SALT_ROTATION not in {"daily", "weekly", "monthly"}:
    raise ImproperlyConfigured(
        f"ZENOVAY_SALT_ROTATION={ZENOVAY_SALT_ROTATION!r}: use daily, weekly or monthly."
    )
# The hot async paths use one long-lived database thread (zenovay.infra.db); tests that share
# the test case's transaction turn it off.
ZENOVAY_DB_THREAD = True
# Batches of events one process writes at once on PostgreSQL (zenovay.infra.db.writers).
# One: while it is written the next batch grows, and a bigger batch costs less per event
# (bench/ingest.py: 3 writers made 1.9x smaller batches and 1.6x the CPU per event). More
# can help when each batch waits mostly on round trips to a distant database server.
ZENOVAY_DB_WRITERS = env_int("ZENOVAY_DB_WRITERS", 1, minimum=1)
ZENOVAY_RETENTION_DAYS = env_int("ZENOVAY_RETENTION_DAYS", 400, minimum=62)
# Raw events may go sooner than the aggregates every figure is read from (zenovay.retention):
# at least a week (the 5-minute window, yesterday's cut-off and the dashboard's recent custom
# events read raw events; `rebuild_aggregates` can rebuild only what is kept).
ZENOVAY_RAW_RETENTION_DAYS = env_int(
    "ZENOVAY_RAW_RETENTION_DAYS", ZENOVAY_RETENTION_DAYS, minimum=7
)
# Every this many seconds each server process seals the finished days of the enabled
# websites not sealed yet (zenovay.sealer), so that no query pays for it; 0: never
# (queries, `manage.py seal_sketches` and `prune` still do).
ZENOVAY_SEAL_EVERY = env_int("ZENOVAY_SEAL_EVERY", 60)

# --- What one client may hold (zenovay.infra): ingest per minute (generous: a page sends a
# few events, many visitors share an address behind NAT; 0 turns it off), connections (TCP
# to `serve`, WebSockets anywhere) per address in each process, and how long request
# headers and bodies may take to arrive before the connection is dropped.
ZENOVAY_COLLECT_PER_MINUTE = env_int("ZENOVAY_COLLECT_PER_MINUTE", 600)
ZENOVAY_CONNECTIONS_PER_IP = env_int("ZENOVAY_CONNECTIONS_PER_IP", 100, minimum=1)
ZENOVAY_HEADER_TIMEOUT = env_int("ZENOVAY_HEADER_TIMEOUT", 10, minimum=1)
ZENOVAY_BODY_TIMEOUT = env_int("ZENOVAY_BODY_TIMEOUT", 10, minimum=1)
# `serve` logs no line per request unless asked (as gunicorn): at thousands of events a
# second a line each costs a tenth of collect's CPU, and the proxy in front logs already.
# When on, lines leave client addresses out unless ZENOVAY_ACCESS_LOG_IPS is on too.
ZENOVAY_ACCESS_LOG = env_bool("ZENOVAY_ACCESS_LOG")
ZENOVAY_ACCESS_LOG_IPS = env_bool("ZENOVAY_ACCESS_LOG_IPS")

# --- External API (api.v1.auth): requests per key in a rolling hour, counted in the shared
# store so every process sees one budget. The store keeps at most 20,000 requests per key
# (store.MAX_LOG, refused ones included): a limit near it would never refuse, so at most 10,000.
ZENOVAY_API_KEY_PER_HOUR = env_int("ZENOVAY_API_KEY_PER_HOUR", 600, minimum=1)
if ZENOVAY_API_KEY_PER_HOUR > 10_000:
    raise ImproperlyConfigured(
        f"ZENOVAY_API_KEY_PER_HOUR must be at most 10000, got {ZENOVAY_API_KEY_PER_HOUR}."
    )

# --- Sign-in throttle (zenovay.signin): failures within 15 minutes that lock for 15 minutes,
# for one client address and one username, for one address whatever usernames it tries, and
# for one username from everywhere (high: else anyone could keep a known name locked out).
ZENOVAY_SIGNIN_FAILURES = env_int("ZENOVAY_SIGNIN_FAILURES", 5, minimum=1)
ZENOVAY_SIGNIN_IP_FAILURES = env_int("ZENOVAY_SIGNIN_IP_FAILURES", 20, minimum=1)
ZENOVAY_SIGNIN_USERNAME_FAILURES = env_int("ZENOVAY_SIGNIN_USERNAME_FAILURES", 100, minimum=1)
# Password checks at once per process. Each is a few hundred milliseconds of CPU, so more at
# once only queue for the CPU; the excess is refused at once with "try again in a moment".
ZENOVAY_SIGNIN_CONCURRENCY = env_int("ZENOVAY_SIGNIN_CONCURRENCY", 4, minimum=1)
# ModelBackend, but the password hash runs without holding a database connection.
AUTHENTICATION_BACKENDS = ["zenovay.signin.SignInBackend"]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"short": {"()": "zenovay.infra.logs.ShortArguments"}},
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        "zenovay": {"handlers": ["console"], "level": "INFO", "propagate": False},
        # "Not Found: <path>": the path is the client's, of any length.
        "django.request": {"filters": ["short"]},
    },
}
