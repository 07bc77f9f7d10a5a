"""Settings for the takedown compliance monitor.

Every environment variable the product reads is read here, and only here. The README's
configuration table and `.env.example` list them; the names there are public: users rely on them.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
from datetime import timedelta
from pathlib import Path

import environ
from csp.constants import NONCE
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

from compliance import methodology  # pure: the version of the accounting rules
from monitor import vantages as _vantages  # pure: parsing MONITOR_VANTAGES (no Django, no app)

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
# A `.env` file in the project root is read too; real environment variables win.
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)


def env_bool(name: str, default: bool) -> bool:
    """`on/off`, `true/false`, `1/0`, `yes/no`; anything else is a configuration error."""
    raw = env.str(name, default="")
    if raw == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be on or off, not {raw!r}")


def env_int(name: str, default: int, *, minimum: int | None = None, maximum: int | None = None) -> int:
    raw = env.str(name, default="")
    if raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, not {raw!r}") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, not {value}")
    if maximum is not None and value > maximum:
        raise ImproperlyConfigured(f"{name} must be at most {maximum}, not {value}")
    return value


def env_float(name: str, default: float, *, minimum: float | None = None) -> float:
    raw = env.str(name, default="")
    if raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, not {raw!r}") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, not {value}")
    return value


def env_list(name: str) -> list[str]:
    return [part.strip() for part in env.str(name, default="").split(",") if part.strip()]


def env_networks(name: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    networks = []
    for part in env_list(name):
        try:
            networks.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            raise ImproperlyConfigured(f"{name}: {part!r} is not a CIDR network") from None
    return networks


def env_nameservers(name: str) -> list[tuple[str, int]]:
    """`host` or `host:port` (IPv6 as `[::1]:5353`), comma separated."""
    servers = []
    for part in env_list(name):
        host, port = part, 53
        if part.startswith("["):
            host, _sep, rest = part[1:].partition("]")
            if rest.startswith(":"):
                port = int(rest[1:])
        elif part.count(":") == 1:
            host, port_text = part.split(":")
            port = int(port_text)
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise ImproperlyConfigured(f"{name}: {part!r} is not an IP address with an optional port") from None
        servers.append((host, port))
    return servers


# --- Core ---------------------------------------------------------------------------------------

DEBUG = env_bool("DEBUG", False)
# `manage.py runprobe` (manage.py sets it): a probe fetches URLs and talks to RabbitMQ only. It needs no
# database, no SECRET_KEY and no e-mail settings, and must not hold them (docs/probes.md).
IS_PROBE = os.environ.get("TCM_PROCESS") == "probe"
SECRET_KEY = env.str("SECRET_KEY", default="")
if IS_PROBE:
    SECRET_KEY = secrets.token_urlsafe(50)  # signs nothing a probe keeps; only Django wants one
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off")
    SECRET_KEY = "dev-only-insecure-key-do-not-use-in-production"  # noqa: S105 (DEBUG only)

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS") or (["localhost", "127.0.0.1", "[::1]", "testserver"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI served locally: no CDN, works offline
    # Two-factor login (compliance/twofactor.py): authenticator apps (TOTP) and recovery codes.
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "compliance",
    "monitor",
    "reports",
]
# The demo app (sandbox market, history, the `demo` and `sandbox` commands) only where the demo or
# the test suite runs: `make demo` and pytest set DEMO=on. No production app imports it.
DEMO = env_bool("DEMO", False)
if DEMO:
    INSTALLED_APPS += ["demo"]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Whether this session gave its second factor (request.user.is_verified()), and where to send
    # one that must and has not (analysts): compliance/twofactor.py.
    "django_otp.middleware.OTPMiddleware",
    "compliance.twofactor.TwoFactorMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -----------------------------------------------------------------------------------
# SQLite is the embedded default and must survive the monitor, an import and the web server writing
# at once: WAL lets readers run beside the one writer, IMMEDIATE takes the write lock when a
# transaction starts (so a transaction never fails half-way on an upgrade from read to write), and
# the busy timeout makes a second writer wait instead of failing with "database is locked".

DATABASES = {"default": env.db_url("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
if IS_PROBE:
    DATABASES = {"default": {"ENGINE": "django.db.backends.dummy"}}  # any query fails loudly
_db = DATABASES["default"]
if _db["ENGINE"] == "django.db.backends.sqlite3":
    if _db["NAME"] not in ("", ":memory:") and not Path(_db["NAME"]).is_absolute():
        _db["NAME"] = str(BASE_DIR / _db["NAME"])
    _db.setdefault("OPTIONS", {}).update(
        {
            "transaction_mode": "IMMEDIATE",
            "timeout": env_int("SQLITE_BUSY_TIMEOUT", 30, minimum=1),
            "init_command": (
                "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;"
                # A 64 MiB page cache and memory-mapped reads: the default 2 MiB cache makes every
                # index insert of a 10^5-row import go to the OS for pages.
                " PRAGMA cache_size=-65536; PRAGMA mmap_size=268435456; PRAGMA temp_store=MEMORY;"
            ),
        }
    )
elif _db["ENGINE"] == "django.db.backends.postgresql":
    _db.setdefault("CONN_MAX_AGE", env_int("CONN_MAX_AGE", 60, minimum=0))
    _db.setdefault("CONN_HEALTH_CHECKS", True)
# Several checkouts (or helpers) can run the test suite against one PostgreSQL server at once.
if env.str("TEST_DATABASE_NAME", default=""):
    _db["TEST"] = {"NAME": env.str("TEST_DATABASE_NAME")}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Auth ---------------------------------------------------------------------------------------

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

# --- Time and language --------------------------------------------------------------------------
# Stored in UTC (USE_TZ), shown in Europe/Amsterdam.

USE_TZ = True
TIME_ZONE = "Europe/Amsterdam"
USE_I18N = True
LANGUAGES = [("en", _("English")), ("nl", _("Dutch"))]
# The language of visitors who chose none (their browser's wins when it is one of LANGUAGES) and of
# the notice e-mails to hosters: `nl` for a Dutch deployment.
LANGUAGE_CODE = env.str("LANGUAGE_CODE", default="en")
if LANGUAGE_CODE not in dict(LANGUAGES):
    raise ImproperlyConfigured(f"LANGUAGE_CODE must be one of {', '.join(dict(LANGUAGES))}, not {LANGUAGE_CODE!r}")
LOCALE_PATHS = [BASE_DIR / "locale"]
# Dates and times follow the language (config/formats/: 24-hour clock, day before month, seconds on
# detail pages); always in TIME_ZONE. Machine-readable values (API, exports, data attributes) stay ISO 8601.
FORMAT_MODULE_PATH = ["config.formats"]

# --- Static files -------------------------------------------------------------------------------

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"] if (BASE_DIR / "static").is_dir() else []

# --- Security (effective with DEBUG off; `manage.py check --deploy` stays clean) ----------------

SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
# Content-Security-Policy (django-csp): scripts only from this server or inline with the request's
# nonce (`{{ request.csp_nonce }}`), so that text a hoster typed (a dispute reason) can never run
# as script. Inline styles stay allowed (plotly sets them); no frames, plugins or foreign forms.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'", NONCE],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if not DEBUG:
    SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", True)
    CSRF_COOKIE_SECURE = env_bool("SECURE_COOKIES", True)
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000, minimum=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# --- REST framework -----------------------------------------------------------------------------

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "compliance.pagination.StandardPagination",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "compliance.schema.AutoSchema",  # documents the shared error answers
    "PAGE_SIZE": 100,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Takedown compliance monitor API",
    "DESCRIPTION": "Notices, checks, hosters and compliance metrics. See docs/api.md for examples per role.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- Logging: no raw URLs in logs of non-analyst roles; no content anywhere ---------------------

LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {"django": {"handlers": ["console"], "level": "WARNING", "propagate": False}},
}

# --- The measurement ----------------------------------------------------------------------------

# Seconds from notification to deadline. A notice may carry a shorter deadline of its own.
# At most a year: the database refuses a longer deadline (compliance/models.py, notice_deadline_s_range).
COMPLIANCE_DEADLINE = env_int("COMPLIANCE_DEADLINE", 86400, minimum=1, maximum=365 * 86400)
# Version of the accounting rules (what counts as a takedown, the schedule, the verdict). Every
# published figure carries it; its home, with the list of versions, is compliance/methodology.py.
METHODOLOGY_VERSION = methodology.CURRENT

# Called (no arguments) after measurements were rewritten (recompute_measurements, a withdrawal, an
# attribution override): whatever keeps derived figures must forget them. Named here so that
# compliance never imports the apps above it.
MEASUREMENTS_CHANGED_HOOKS = ["reports.rollups.invalidate_all"]

# --- The monitor --------------------------------------------------------------------------------

# The drains `runmonitor` wakes, in the order `runmonitor --once` runs them (attribution feeds checks,
# checks feed rollups): (name, dotted path of a function () -> bool, seconds between wake-ups). Each
# app names its own drain here, so the monitor never imports the apps beside it (monitor/jobs.py).
MONITOR_DRAINS = [
    ("attribution", "monitor.attribution_drain.drain_attribution", 2.0),  # DNS, origin AS, the hoster
    ("rdap", "monitor.rdap_drain.drain_rdap", 10.0),  # RDAP detail; never blocks attribution
    ("checks", "monitor.check_drain.drain_checks", 1.0),  # due checks, local vantages
    ("probe-results", "monitor.probe_results.drain_results", 1.0),  # remote vantages' observations
    ("notifications", "compliance.notifications.drain_notifications", 5.0),  # notice e-mails
    ("evidence_digest", "monitor.evidence_digest.drain_digest", 300.0),  # daily digest of the evidence chains
    ("rollups", "reports.rollups.drain", 20.0),  # keep last: pages lag the checks by at most 60 s
]

MONITOR_NAMESERVERS = env_nameservers("MONITOR_NAMESERVERS")
MONITOR_ASN_ZONE = env.str("MONITOR_ASN_ZONE", default="origin.asn.cymru.com")
MONITOR_ASN_ZONE6 = env.str("MONITOR_ASN_ZONE6", default="origin6.asn.cymru.com")
MONITOR_ASN_NAME_ZONE = env.str("MONITOR_ASN_NAME_ZONE", default="asn.cymru.com")
MONITOR_RDAP = env_bool("MONITOR_RDAP", True)
MONITOR_ALLOWED_PRIVATE_NETWORKS = env_networks("MONITOR_ALLOWED_PRIVATE_NETWORKS")
MONITOR_CONCURRENCY = env_int("MONITOR_CONCURRENCY", 200, minimum=1)
MONITOR_TIMEOUT = env_float("MONITOR_TIMEOUT", 20.0, minimum=0.1)

# --- Attribution and DNS (monitor: dns, asn, rdap, attribution_drain, rdap_drain; docs/attribution.md) ---

# Seconds one DNS query waits for one server; transient failures (SERVFAIL, timeout) are retried
# MONITOR_DNS_ATTEMPTS times in all before they are reported (and never taken as evidence).
MONITOR_DNS_TIMEOUT = env_float("MONITOR_DNS_TIMEOUT", 2.0, minimum=0.01)
MONITOR_DNS_ATTEMPTS = env_int("MONITOR_DNS_ATTEMPTS", 2, minimum=1)
# Answers are cached per exact name for their TTL, at most this long; negative answers shorter.
MONITOR_DNS_CACHE_MAX_TTL = env_int("MONITOR_DNS_CACHE_MAX_TTL", 3600, minimum=0)
MONITOR_DNS_NEGATIVE_TTL = env_int("MONITOR_DNS_NEGATIVE_TTL", 10, minimum=0)
MONITOR_DNS_CACHE_SIZE = env_int("MONITOR_DNS_CACHE_SIZE", 200_000, minimum=1)
# The attribution drain: notices per batch, the lease that claims them, lookups in flight.
MONITOR_ATTRIBUTION_BATCH = env_int("MONITOR_ATTRIBUTION_BATCH", 10_000, minimum=1)
MONITOR_ATTRIBUTION_LEASE = env_int("MONITOR_ATTRIBUTION_LEASE", 300, minimum=1)
MONITOR_ATTRIBUTION_CONCURRENCY = env_int("MONITOR_ATTRIBUTION_CONCURRENCY", 100, minimum=1)
# RDAP (MONITOR_RDAP=on): seconds per request, the server (empty: each registry's own, from
# ipwhois), lookups per drain pass and in flight, how long a record is reused, and the back-off
# of a registry that rate-limits us (doubling up to an hour) and of a failed address.
MONITOR_RDAP_TIMEOUT = env_float("MONITOR_RDAP_TIMEOUT", 5.0, minimum=0.1)
MONITOR_RDAP_BASE_URL = env.str("MONITOR_RDAP_BASE_URL", default="")
MONITOR_RDAP_BATCH = env_int("MONITOR_RDAP_BATCH", 20, minimum=1)
MONITOR_RDAP_CONCURRENCY = env_int("MONITOR_RDAP_CONCURRENCY", 4, minimum=1)
MONITOR_RDAP_MAX_AGE = env_int("MONITOR_RDAP_MAX_AGE", 30 * 86400, minimum=0)
MONITOR_RDAP_BACKOFF = env_int("MONITOR_RDAP_BACKOFF", 60, minimum=1)
MONITOR_RDAP_ATTEMPTS = env_int("MONITOR_RDAP_ATTEMPTS", 5, minimum=1)

# The check client, the accounting and the check drain (monitor/check_client.py, compliance/rules.py,
# monitor/check_drain.py; docs/monitor.md).
MONITOR_MAX_BYTES = env_int("MONITOR_MAX_BYTES", 16 * 1024 * 1024, minimum=1)
MONITOR_MAX_REDIRECTS = env_int("MONITOR_MAX_REDIRECTS", 5, minimum=0)
MONITOR_PER_IP_CONCURRENCY = env_int("MONITOR_PER_IP_CONCURRENCY", 20, minimum=1)
MONITOR_USER_AGENT = env.str(
    "MONITOR_USER_AGENT", default="TakedownComplianceMonitor/1.0 (hotline takedown check; no content is kept)"
)
# Notices one call of the check drain handles (streamed in chunks; see monitor/check_drain.py). Large, so
# that a batch's tail (its slowest checks, up to the timeout) is rarely waited for.
MONITOR_BATCH = env_int("MONITOR_BATCH", 10_000, minimum=1)
# Seconds a claimed chunk stays leased; 0 derives it from the timeout (the budget + the timeout + 15 s).
MONITOR_LEASE = env_float("MONITOR_LEASE", 0.0, minimum=0.0)
MONITOR_CONFIRMATIONS = env_int("MONITOR_CONFIRMATIONS", 2, minimum=1)
MONITOR_SERVER_GONE_CHECKS = env_int("MONITOR_SERVER_GONE_CHECKS", 3, minimum=1)
MONITOR_SERVER_GONE_SHARE = env_float("MONITOR_SERVER_GONE_SHARE", 0.25, minimum=0.0)

# Vantage points and probes (monitor/vantages.py for the syntax, monitor/probe_results.py, docs/probes.md).
# Default: one local vantage ("local"), exactly the monitor without vantages, and no broker.
try:
    MONITOR_VANTAGES = _vantages.parse(env.str("MONITOR_VANTAGES", default=""))
except _vantages.VantageError as _exc:
    raise ImproperlyConfigured(f"MONITOR_VANTAGES: {_exc}") from None
# RabbitMQ (amqp://user:password@host:5672/vhost, amqps:// for TLS): the monitor's own user, or on a
# probe the probe's user (probe-NAME). Needed only when a vantage is a probe.
MONITOR_BROKER_URL = env.str("MONITOR_BROKER_URL", default="")
if not MONITOR_BROKER_URL and any(v.is_probe for v in MONITOR_VANTAGES):
    raise ImproperlyConfigured("MONITOR_VANTAGES names a probe: set MONITOR_BROKER_URL")
# Seconds without a probe's heartbeat after which it counts as silent (stale): its checks go to the others.
MONITOR_PROBE_STALE = env_float("MONITOR_PROBE_STALE", 30.0, minimum=1.0)
# Check batches waiting in a probe's queue beyond which it gets no more (a slow probe holds back nothing).
MONITOR_PROBE_BACKLOG = env_int("MONITOR_PROBE_BACKLOG", 4, minimum=1)

# --- Notices by e-mail --------------------------------------------------------------------------

NOTIFY_BY_EMAIL = env_bool("NOTIFY_BY_EMAIL", False)
vars().update(env.email_url("EMAIL_URL", default="consolemail://"))
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="takedown-monitor@localhost")

# --- Pseudonyms for researchers (compliance/pseudonym.py) ---------------------------------------

# Key for the keyed hash that replaces URLs and host names; derived from SECRET_KEY when empty.
PSEUDONYM_KEY = env.str("PSEUDONYM_KEY", default="")

# --- Access control, login throttling, the audit trail, the portal (docs/access-control.md) -----

INSTALLED_APPS += ["axes"]
MIDDLEWARE += [
    # Records every state-changing request of a signed-in user that no service recorded itself.
    "compliance.audit.AuditMiddleware",
    # Last, as django-axes asks: turns a lockout raised during authentication into the lockout page.
    "axes.middleware.AxesMiddleware",
]
# Every password login (the login page and the admin's) goes through django-axes first. The API
# takes tokens only (no password authentication class is enabled), so it offers nothing to guess.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(seconds=env_int("LOGIN_LOCKOUT_S", 900, minimum=1))
# Lock a user name from the address that guessed it: a stranger cannot lock a hoster's abuse desk
# out from elsewhere, and 12-character passwords make guessing from many addresses hopeless.
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
# Behind N reverse proxies the client is the Nth address from the right of X-Forwarded-For.
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0, minimum=0)
AXES_CLIENT_IP_CALLABLE = "compliance.audit.client_ip"
AXES_VERBOSE = False
# django-axes logs every successful login at INFO; the audit trail has those. Failures stay visible.
LOGGING["loggers"]["axes"] = {"handlers": ["console"], "level": "WARNING", "propagate": False}

# Two-factor login: the name authenticator apps show next to the codes; django-otp's throttle
# (a wrong code makes the next wait 1, 2, 4, ... seconds, per device) stays at its default.
OTP_TOTP_ISSUER = env.str("TWO_FACTOR_ISSUER", default="Takedown compliance monitor")

SESSION_COOKIE_AGE = env_int("SESSION_COOKIE_AGE", 8 * 3600, minimum=60)
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"

# The product's own address, for links in notice e-mails (https://monitor.example.org).
SITE_URL = env.str("SITE_URL", default="http://localhost:8000").rstrip("/")
# Notices by e-mail (compliance/notifications.py): a reminder when this fraction of the deadline has
# passed (0 or 1 switches reminders off); how long an e-mail in flight may take before it is
# declared uncertain; how many to send per batch.
NOTIFY_REMINDER_AT = env_float("NOTIFY_REMINDER_AT", 0.75, minimum=0.0)
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 60, minimum=1)
NOTIFY_SENDING_LEASE_S = env_int("NOTIFY_SENDING_LEASE_S", 600, minimum=1)
NOTIFY_BATCH = env_int("NOTIFY_BATCH", 50, minimum=1)

# --- Scorecards, metrics and exports (reports app) ----------------------------------------------

# A hoster with fewer decided notices (within + late) in a period is marked "few notices" and not
# ranked: its rate is too uncertain to compare (its Wilson interval is shown instead).
SCORECARD_MIN_NOTICES = env_int("SCORECARD_MIN_NOTICES", 30, minimum=1)
# "Below the bar": hosters whose compliance rate is under this share (0-1), with at least
# SCORECARD_BAR_MIN_NOTICES decided notices in the period.
SCORECARD_BAR = env_float("SCORECARD_BAR", 0.8, minimum=0.0)
if SCORECARD_BAR > 1:
    raise ImproperlyConfigured(f"SCORECARD_BAR is a share between 0 and 1, not {SCORECARD_BAR}")
SCORECARD_BAR_MIN_NOTICES = env_int("SCORECARD_BAR_MIN_NOTICES", 30, minimum=1)
# Seconds the pages' figures (rollups: per-day partial figures merged per period) may lag behind
# the notices. The monitor's rollup drain recomputes the days that changed notices touch at this
# interval; a page that finds the drain overdue (no monitor running) catches up itself first.
SCORECARD_ROLLUP_MAX_AGE = env_int("SCORECARD_ROLLUP_MAX_AGE", 60, minimum=0)
# Every day's partial figures are recomputed at least this often anyway (a sweep, a few days per
# drain pass): it catches a change no timestamp shows (a row edited in the database by hand).
SCORECARD_SETTLED_MAX_AGE = env_int("SCORECARD_SETTLED_MAX_AGE", 86400, minimum=0)
# Points kept of each survival curve for the charts.
SCORECARD_CURVE_POINTS = env_int("SCORECARD_CURVE_POINTS", 200, minimum=10)

# --- Evidence (compliance/evidence.py, monitor/evidence_digest.py, docs/operations.md) --------------------

# An RFC 3161 time-stamping authority (its URL) that stamps the daily digest of the evidence chains;
# empty: the digest goes unstamped into the audit trail.
EVIDENCE_TSA_URL = env.str("EVIDENCE_TSA_URL", default="")
EVIDENCE_TSA_TIMEOUT = env_float("EVIDENCE_TSA_TIMEOUT", 20.0, minimum=0.1)
# Hours between digests of the chain heads (the monitor's digest drain).
EVIDENCE_DIGEST_HOURS = env_float("EVIDENCE_DIGEST_HOURS", 24.0, minimum=0.01)
# The Ed25519 key that signs a notice's evidence file for an authority: base64 of the 32-byte
# private key (docs/operations.md shows how to make one). Empty: the download is refused.
EVIDENCE_SIGNING_KEY = env.str("EVIDENCE_SIGNING_KEY", default="")
