"""Mizumori settings.

Everything that differs between a laptop demo and a production deployment is read from the
environment. With no variables set the site runs on the "embedded default": SQLite in WAL mode,
an in-process channel layer and eager Celery, so `make demo` needs no services at all.
"""

import importlib.util
import os
import warnings
from pathlib import Path

import dj_database_url
from csp.constants import NONCE, NONE, SELF, UNSAFE_INLINE
from django.core.exceptions import ImproperlyConfigured

from config.static_headers import static_headers

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean (use 1/0, true/false, yes/no, on/off)")


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def _env_number(name: str, default, cast, what: str):
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return cast(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not {what}") from None


def env_float(name: str, default: float) -> float:
    return _env_number(name, default, float, "a number")


def env_int(name: str, default: int) -> int:
    return _env_number(name, default, int, "an integer")


DEBUG = env_bool("DEBUG", False)

SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    # The embedded default must start with nothing configured; production sets SECRET_KEY (README).
    SECRET_KEY = "insecure-embedded-default-key-change-me-in-production-0123456789"

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost,[::1],testserver")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "axes",
    "csp",
    "rest_framework",
    "drf_spectacular",
    "channels",
    "events",
    "livelog",
    "tenancy",
    "geo",
    "sensors",
    "alerts",
    "forecasts",
    "orders",
    "ngsi",
    "releases",
    "jma",
    "dashboard",
    "timeline",
    "public",
]

MIDDLEWARE = [
    # First, so its process_exception runs last: a database or Redis outage becomes a 503 (config.errors).
    "config.errors.ServiceOutageMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Outside every middleware that writes the body, inside WhiteNoise (static files come precompressed).
    "config.compression.CompressionMiddleware",
    # Private and uncacheable unless a view says otherwise (the public page does: public/http.py).
    "public.middleware.CachePolicyMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "tenancy.middleware.ApiUsageMiddleware",
    # Last, as django-axes asks: it turns a lockout raised during authentication into a response.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"

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
            # Every template translates: {% translate %} and {% localized %} without a {% load %} each.
            "builtins": ["django.templatetags.i18n", "config.templatetags_i18n"],
        },
    },
]

WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

# --- Database -------------------------------------------------------------------------------
DATABASE_URL = os.environ.get("DATABASE_URL", "")
SQLITE_PATH = Path(os.environ.get("SQLITE_PATH", BASE_DIR / "var" / "mizumori.sqlite3"))
# ASGI processes borrow PostgreSQL connections from a pool (config.asgi turns DATABASE_POOL on). Django
# runs every ASGI request in a thread and context of its own (ThreadSensitiveContext), so a persistent
# connection (CONN_MAX_AGE) is never reused there: each request opened a new one (a backend started,
# its caches cold: ~10 ms and most of a gateway tick under load) and the old ones stayed open until
# garbage collection. Other processes (drain, Celery, WSGI) keep one persistent connection per thread.
DATABASE_POOL = env_bool("DATABASE_POOL")
if DATABASE_POOL and DATABASE_URL and importlib.util.find_spec("psycopg_pool") is None:
    # Serving without the pool is slower, not wrong: say so instead of failing every request.
    warnings.warn("DATABASE_POOL is on but psycopg_pool is not installed (make install): one PostgreSQL "
                  "connection per ASGI request", RuntimeWarning, stacklevel=1)
    DATABASE_POOL = False
DATABASE_POOL_MAX = env_int("DATABASE_POOL_MAX", 20)
if DATABASE_URL and DATABASE_POOL:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=0, conn_health_checks=True)}
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        # A request waiting longer than `timeout` for a free connection fails as a database outage (503).
        pool={"min_size": min(2, DATABASE_POOL_MAX), "max_size": DATABASE_POOL_MAX, "timeout": 10},
        application_name="mizumori-asgi",
    )
elif DATABASE_URL:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60, conn_health_checks=True)}
if DATABASE_URL:
    # Every session plans without JIT compilation. This application's queries are index probes per
    # station (LATERAL lookups over the monthly partitions, arrays joined to the (station, time)
    # index) whose cost PostgreSQL overestimates by orders of magnitude, past jit_above_cost and
    # jit_optimize_above_cost: in a storm the live publisher's trend read compiled for 690 of its
    # 770 ms, about a third of all PostgreSQL's CPU (bench/e2e.py --pg-statements), and no query
    # here runs long enough to gain from it. Set at connection start, so it costs no statement; an `options`
    # given in DATABASE_URL comes after it and wins.
    _database_options = DATABASES["default"].setdefault("OPTIONS", {})
    _database_options["options"] = f"-c jit=off {_database_options.get('options', '')}".strip()
else:
    SQLITE_PATH.parent.mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": SQLITE_PATH,
            "OPTIONS": {
                # WAL lets the map read while the storm simulator writes; IMMEDIATE takes the write
                # lock at BEGIN so two writers queue up instead of failing with "database is locked".
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=10000;",
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
            },
            # A file, not Django's in-memory default, so tests can run concurrent writers as the
            # storm simulator and the server do; one per process so parallel test runs don't collide.
            "TEST": {"NAME": str(SQLITE_PATH.with_name(f"test-{os.getpid()}-{SQLITE_PATH.name}"))},
        }
    }
DATABASES["default"].setdefault("TEST", {})

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Channels, cache and Celery --------------------------------------------------------------
REDIS_URL = os.environ.get("REDIS_URL", "")
# Keys of the channel layer and the live-map replay store in Redis; one per deployment sharing a Redis.
CHANNEL_PREFIX = os.environ.get("CHANNEL_PREFIX", "mizumori")
# Keys of the cache and the API usage counters (tenancy.api_usage) in Redis.
CACHE_PREFIX = os.environ.get("CACHE_PREFIX", "mizumori")
if REDIS_URL:
    # One PUBLISH per group: the core Redis layer silently drops messages for full channels.
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL], "prefix": CHANNEL_PREFIX},
        }
    }
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": CACHE_PREFIX,
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# API calls are counted in Redis (or, without it, in the serving process) and written to the usage
# table this often; 0 stops the embedded default's in-process flusher (tests flush by hand).
API_USAGE_FLUSH_SECONDS = env_int("API_USAGE_FLUSH_SECONDS", 60)
if API_USAGE_FLUSH_SECONDS < 0:
    raise ImproperlyConfigured(f"API_USAGE_FLUSH_SECONDS={API_USAGE_FLUSH_SECONDS} must be 0 (off) or more seconds")

CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", REDIS_URL)
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_TIMEZONE = "UTC"
# Run by `celery -A config beat`; the embedded default runs the same work with the --loop commands
# that make demo starts (eager Celery has no beat).
CELERY_BEAT_SCHEDULE = {
    "alerts-check-stale-sensors": {"task": "alerts.check_stale_sensors", "schedule": 60.0},
    "alerts-dispatch-deliveries": {"task": "alerts.dispatch_deliveries", "schedule": 30.0},
    "releases-end-expired": {"task": "releases.end_expired", "schedule": 60.0},
    "sensors-observation-partitions-ahead": {"task": "sensors.observation_partitions_ahead", "schedule": 86400.0},
    "tenancy-flush-api-usage": {"task": "tenancy.flush_api_usage", "schedule": float(API_USAGE_FLUSH_SECONDS or 60)},
    # Checks every 10 minutes; a gauge is retrained daily or after a day's worth of new readings.
    "forecasts-retrain-due": {"task": "forecasts.retrain_due", "schedule": 600.0},
}

# --- Auth -------------------------------------------------------------------------------------
AUTHENTICATION_BACKENDS = [
    # First, so a locked-out username/IP is refused before the password is even checked.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env_int("AXES_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = env_int("AXES_COOLOFF_MINUTES", 15) / 60  # hours
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_VERBOSE = False
# Behind a reverse proxy set AXES_IPWARE_META_PRECEDENCE_ORDER as the proxy requires (docs/deployment.md).
AXES_IPWARE_META_PRECEDENCE_ORDER = env_list("AXES_IPWARE_META_PRECEDENCE_ORDER", "REMOTE_ADDR")
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/hq/"
LOGOUT_REDIRECT_URL = "/"

# --- I18N -------------------------------------------------------------------------------------
# UI strings are gettext with English msgids (locale/, docs/i18n.md); data kept per language goes
# through config.i18n. ja and en are complete (a test fails on an untranslated string); zh-hans is a
# started catalog: what it lacks (strings or data) shows in Japanese.
LANGUAGE_CODE = "ja"
LANGUAGES = [("ja", "日本語"), ("en", "English"), ("zh-hans", "简体中文")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = os.environ.get("TIME_ZONE", "Asia/Tokyo")
USE_I18N = True
USE_TZ = True

# --- Static -----------------------------------------------------------------------------------
STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", BASE_DIR / "staticfiles"))
# WhiteNoise warns on every request while STATIC_ROOT is missing (before the first collectstatic).
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
# Content-hashed names (`public.4f2a9c1e07b3.js`): every page names the files of its own deploy, so
# a browser never runs one deploy's script against another's page or data, and WhiteNoise serves a
# hashed file as immutable for a year (an unhashed name: 60 s). `collectstatic` writes the manifest
# (make demo, make serve and docs/deployment.md run it; without one, names stay unhashed, with a
# warning: config/staticfiles.py); the tests render unhashed names (tests/conftest.py says why).
# The service worker keeps its own name (config/static_headers.py).
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "config.staticfiles.StaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True
# The public page's service worker (scope "/") needs Service-Worker-Allowed (config/static_headers.py).
WHITENOISE_ADD_HEADERS_FUNCTION = static_headers

# --- REST API ---------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "tenancy.authentication.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    # `?format=csv` is ours to interpret on the observations endpoint.
    "URL_FORMAT_OVERRIDE": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Mizumori API",
    "DESCRIPTION": "River, rainfall and reservoir observations shared between neighbouring municipalities.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "config.errors.declare_service_unavailable",
    ],
}

# --- Mizumori ---------------------------------------------------------------------------------
# A batch above this many observations is refused whole with 413; split it client-side.
INGEST_MAX_BATCH = env_int("INGEST_MAX_BATCH", 10_000)
# Request bodies above this many bytes are refused with 413 before parsing.
INGEST_MAX_BODY_BYTES = env_int("INGEST_MAX_BODY_BYTES", 5 * 1024 * 1024)
# The ASGI server buffers at most this much of any request body (chunked ones included, which carry
# no Content-Length) and answers 413 beyond it; keep it at least the largest endpoint limit above.
REQUEST_MAX_BODY_BYTES = env_int("REQUEST_MAX_BODY_BYTES", max(INGEST_MAX_BODY_BYTES, 5 * 1024 * 1024))
# Readings stamped further in the future than this (gateway clock skew) are rejected.
INGEST_MAX_FUTURE_SECONDS = env_int("INGEST_MAX_FUTURE_SECONDS", 300)
# Who runs the change-log handlers (alert evaluation, live publishing, NGSI notifications):
# "workers" — `manage.py drain_events` processes (production: the Redis channel layer reaches every
# ASGI process); "in-process" — a task inside the ASGI server (the embedded default, whose in-memory
# channel layer reaches only that process); "eager" — in the writer's thread after commit (tests).
EVENTS_DRAIN = os.environ.get("EVENTS_DRAIN", "workers" if REDIS_URL else "in-process")
if EVENTS_DRAIN not in {"workers", "in-process", "eager"}:
    raise ImproperlyConfigured(f"EVENTS_DRAIN={EVENTS_DRAIN!r}: use workers, in-process or eager")
# How often an idle drain looks for new events: the fallback. A commit in the same process wakes it at
# once, and on PostgreSQL so does one in any process (LISTEN/NOTIFY, events.runner).
EVENTS_POLL_SECONDS = env_float("EVENTS_POLL_SECONDS", 0.1)
# Alert evaluation is split into this many change-log handlers by station id, so that many drain
# workers evaluate at once (docs/deployment.md). Every process that writes readings or drains must
# use the same number; lower it only with the change log drained (rows of a shard that no longer
# exists are never claimed: /health/ shows them as lag).
ALERT_EVALUATION_SHARDS = env_int("ALERT_EVALUATION_SHARDS", 1)
if ALERT_EVALUATION_SHARDS < 1:
    raise ImproperlyConfigured(f"ALERT_EVALUATION_SHARDS={ALERT_EVALUATION_SHARDS}: use 1 or more")
# /health/ and /hq/ report "degraded" when the oldest unhandled change is older than this.
EVENTS_LAG_WARN_SECONDS = env_float("EVENTS_LAG_WARN_SECONDS", 5.0)

# The live layer's replay log (livelog): how many messages are kept for reconnecting browsers, and
# how often each ASGI process checks that live messages can reach its browsers (Redis, database,
# the live publisher's change-log backlog) so they can show "degraded" while they cannot.
LIVE_REPLAY_KEEP = env_int("LIVE_REPLAY_KEEP", 5000)
LIVE_HEALTH_SECONDS = env_float("LIVE_HEALTH_SECONDS", 2.0)

# --- The public page (public/, docs/deployment.md "Public page and proxy") ---------------------------
# The public snapshot document changes at most once per tick; proxies and browsers may keep it this long.
PUBLIC_SNAPSHOT_TICK_SECONDS = env_int("PUBLIC_SNAPSHOT_TICK_SECONDS", 5)
# Its station features follow the live publisher's messages (public.features); all are built afresh
# at least this often anyway, in case a change reached no live message.
PUBLIC_SNAPSHOT_FULL_REBUILD_SECONDS = env_float("PUBLIC_SNAPSHOT_FULL_REBUILD_SECONDS", 600.0)
# The base map script (boundaries, rivers, hazard zones) is rebuilt at most this often.
PUBLIC_BASEMAP_SECONDS = env_int("PUBLIC_BASEMAP_SECONDS", 60)
# "map" or "minimal" forces the page's presentation; "auto" switches to minimal when saturated:
PUBLIC_PAGE_MODE = os.environ.get("PUBLIC_PAGE_MODE", "auto")
PUBLIC_MINIMAL_LAG_SECONDS = env_float("PUBLIC_MINIMAL_LAG_SECONDS", 30.0)  # change-log lag
PUBLIC_MINIMAL_QUEUE_DEPTH = env_int("PUBLIC_MINIMAL_QUEUE_DEPTH", 5000)  # Celery tasks waiting
PUBLIC_MINIMAL_CPU_LOAD = env_float("PUBLIC_MINIMAL_CPU_LOAD", 4.0)  # 1-minute load average per core
# "websocket" or "poll" forces how anonymous readers stay live; "auto": websockets until this many
# anonymous sockets are open (or the page is minimal), then conditional polling through the proxy.
PUBLIC_LIVE_TRANSPORT = os.environ.get("PUBLIC_LIVE_TRANSPORT", "auto")
PUBLIC_WEBSOCKET_READERS_MAX = env_int("PUBLIC_WEBSOCKET_READERS_MAX", 500)
# Columns of the monthly usage report (tenancy.usage): name -> function(month_start, month_end).
USAGE_METRICS = {
    "stations": "sensors.usage.stations_per_town",
    "readings": "sensors.usage.readings_per_town",
    "alerts": "alerts.usage.alerts_per_town",
    "api_calls": "tenancy.usage.api_calls_per_town",
}
# Seconds a client is told to wait (Retry-After) when the database or Redis does not answer (503).
OUTAGE_RETRY_AFTER_SECONDS = env_int("OUTAGE_RETRY_AFTER_SECONDS", 15)
# Brotli quality for JSON, GeoJSON and CSV responses (0-11); 4-5 compresses better than gzip at a
# similar speed. HTML pages always get gzip (config/compression.py says why).
BROTLI_QUALITY = env_int("BROTLI_QUALITY", 4)
# Longest range one observations request may cover.
OBSERVATIONS_MAX_DAYS = env_int("OBSERVATIONS_MAX_DAYS", 31)
# PostgreSQL: how many months after the current one get their observation partition ahead of
# time (daily beat task / manage.py observation_partitions). Readings of a month without one land
# in the DEFAULT partition and are moved when the month's partition is created.
OBSERVATION_PARTITIONS_AHEAD = env_int("OBSERVATION_PARTITIONS_AHEAD", 3)

# Shows a "fictional demo data" banner on every page (make demo sets it).
MIZUMORI_DEMO_BANNER = env_bool("MIZUMORI_DEMO_BANNER", False)

# Base map tiles: GSI tiles in production; empty means "no tiles" (boundaries and stations still draw).
MAP_TILES_URL = os.environ.get("MAP_TILES_URL", "")
MAP_TILES_ATTRIBUTION = os.environ.get(
    "MAP_TILES_ATTRIBUTION", '<a href="https://maps.gsi.go.jp/development/ichiran.html">地理院タイル</a>'
)

# --- MQTT gateway ingestion (manage.py ingest_mqtt) --------------------------------------------
MQTT_URL = os.environ.get("MQTT_URL", "mqtt://127.0.0.1:1883")  # mqtts:// for TLS
MQTT_TOPIC = os.environ.get("MQTT_TOPIC", "mizumori/+/+")  # mizumori/<municipality-slug>/<station-code>
MQTT_USERNAME = os.environ.get("MQTT_USERNAME", "")
MQTT_PASSWORD = os.environ.get("MQTT_PASSWORD", "")
MQTT_CA_FILE = os.environ.get("MQTT_CA_FILE", "")
MQTT_CLIENT_ID = os.environ.get("MQTT_CLIENT_ID", "mizumori-ingest")
MQTT_BATCH_SIZE = env_int("MQTT_BATCH_SIZE", 500)
MQTT_BATCH_MILLISECONDS = env_int("MQTT_BATCH_MILLISECONDS", 500)

# --- Outbound requests (alert webhooks, NGSI subscription notifications) ----------------------------
# They go only to these hosts (host or host:port; "*" for every public host, nowhere near production);
# a non-public address (loopback, private, link-local, metadata...) must be listed itself, never by
# "*". See outbound/destinations.py. NGSI_NOTIFY_ALLOWED_HOSTS is the older name, still read.
OUTBOUND_ALLOWED_HOSTS = env_list("OUTBOUND_ALLOWED_HOSTS", "") + env_list("NGSI_NOTIFY_ALLOWED_HOSTS", "")

# --- JMA 防災情報XML Atom feed (jma/feed.py) -------------------------------------------------------
# Off unless set: the URL of an Atom feed listing the agency's XML documents (e.g. its "extra" feed,
# or a mirror inside the prefecture's network). Its host and the documents' hosts must be listed in
# OUTBOUND_ALLOWED_HOSTS. Polled by Celery beat, or by `manage.py import_jma_xml --feed --loop`.
JMA_FEED_URL = os.environ.get("JMA_FEED_URL", "")
JMA_FEED_POLL_SECONDS = env_int("JMA_FEED_POLL_SECONDS", 60)
JMA_FEED_TIMEOUT_SECONDS = env_int("JMA_FEED_TIMEOUT_SECONDS", 10)
if JMA_FEED_URL:
    CELERY_BEAT_SCHEDULE["jma-poll-feed"] = {"task": "jma.poll_feed", "schedule": float(JMA_FEED_POLL_SECONDS)}

# --- NGSI-v2 -------------------------------------------------------------------------------------
NGSI_MAX_LIMIT = env_int("NGSI_MAX_LIMIT", 1000)

# --- Alerts --------------------------------------------------------------------------------------
ALERT_WEBHOOK_TIMEOUT_SECONDS = env_int("ALERT_WEBHOOK_TIMEOUT_SECONDS", 5)
ALERT_WEBHOOK_MAX_ATTEMPTS = env_int("ALERT_WEBHOOK_MAX_ATTEMPTS", 8)
# A channel's rate limit per station (NotificationChannel.digest_window overrides it): after a message,
# same-or-lower-level updates within this many seconds go as one digest at its end; 0 turns it off.
ALERT_DIGEST_WINDOW_SECONDS = env_int("ALERT_DIGEST_WINDOW_SECONDS", 600)
CAP_SENDER = os.environ.get("CAP_SENDER", "mizumori@example.invalid")
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "mizumori@example.invalid")
EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
SITE_URL = os.environ.get("SITE_URL", "http://127.0.0.1:8000")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "filters": {"outage_once": {"()": "config.logfilters.OutageTracebackOnce"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "axes": {"level": "WARNING"},
        "channels_redis.pubsub": {"filters": ["outage_once"]},
    },
}

# --- Security ------------------------------------------------------------------------------
# HTTPS=1 in production (behind TLS): secure cookies, redirect to https, HSTS. The embedded default
# serves plain http on 127.0.0.1, where these would lock the browser out.
HTTPS = env_bool("HTTPS", False)
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_SSL_REDIRECT = HTTPS
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31_536_000 if HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = HTTPS
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", HTTPS)
if env_bool("BEHIND_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"

# Scripts only from this site or carrying the per-response nonce (the one inline folium map script);
# no 'unsafe-inline' for scripts. Styles allow inline because Leaflet and folium position map panes
# with style attributes.
_TILE_ORIGIN = "/".join(MAP_TILES_URL.split("/")[:3]) if MAP_TILES_URL.startswith("http") else None
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF, NONCE],
        "style-src": [SELF, UNSAFE_INLINE],
        "img-src": [SELF, "data:", *([_TILE_ORIGIN] if _TILE_ORIGIN else [])],
        "connect-src": [SELF],
        "font-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}
