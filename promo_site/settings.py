"""Settings for promo_site: one module, driven by environment variables.

Development sets DEBUG=1 (`make run` does); DEBUG is off otherwise, and then SECRET_KEY is required.
Beyond that, development defaults need nothing configured. With nothing set, the database is
the local PostgreSQL when one answers on 127.0.0.1:5432 and SQLite otherwise;
the Celery broker is the local Redis when it answers and a SQLite-backed kombu
transport otherwise ("embedded mode"). Production sets SECRET_KEY, ALLOWED_HOSTS, SITE_URL,
EMAIL_BACKEND, DATABASE_URL, CELERY_BROKER_URL and REDIS_URL explicitly (`check --deploy` tells).
"""

import datetime
import os
import socket
from datetime import timedelta
from pathlib import Path

import dj_database_url
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("PROMO_VAR_DIR", BASE_DIR / "var"))


def env_bool(name, default):
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name, default):
    return int(os.environ.get(name, default))


def env_list(name, default):
    return [part.strip() for part in os.environ.get(name, default).split(",") if part.strip()]


PROBE_HOST = os.environ.get("PROMO_PROBE_HOST", "127.0.0.1")


def port_open(host, port):
    """True when something listens on host:port (used only when nothing is configured)."""
    host = PROBE_HOST if host == "127.0.0.1" else host
    try:
        with socket.create_connection((host, port), timeout=0.3):
            return True
    except OSError:
        return False


# pytest sets PYTEST_VERSION: a test run then uses Redis databases of its own, so that a development
# worker never takes the tests' tasks and the tests never see its cache.
TESTING = bool(os.environ.get("PYTEST_VERSION"))

# Off unless asked for: a server started with nothing set runs safe (and needs its SECRET_KEY). `make run`
# sets DEBUG=1; a test run starts from the development settings (pytest-django then turns DEBUG off itself).
DEBUG = env_bool("DEBUG", TESTING)

SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off.")
    SECRET_KEY = "dev-only-insecure-key-do-not-use-in-production"

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]" if DEBUG else "")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")
SITE_URL = os.environ.get("SITE_URL", "http://127.0.0.1:8000")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "anymail",
    "axes",
    "promo_site",
    "shop",
    "recommender",
    "campaigns",
    "demo_shop",  # the simulated shop of demo mode: to the right of everything, nothing imports it
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # A page whose database or Redis is away answers 503 with Retry-After (the API: shop/api/exceptions.py).
    "promo_site.unavailable.UnavailableMiddleware",
    # Last, as django-axes asks: it answers a locked-out login with the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "promo_site.urls"
# Debug pages and error reports hide the passwords inside URLs too (DATABASE_URL, REDIS_URL, ...).
DEFAULT_EXCEPTION_REPORTER_FILTER = "promo_site.debug.CredentialsHidingFilter"
WSGI_APPLICATION = "promo_site.wsgi.application"

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

# --- Database ---------------------------------------------------------------

LOCAL_POSTGRES_URL = "postgres://postgres@127.0.0.1:5432/promo_site"
if os.environ.get("DATABASE_URL"):
    DATABASE_URL = os.environ["DATABASE_URL"]
elif port_open("127.0.0.1", 5432):
    DATABASE_URL = LOCAL_POSTGRES_URL
else:
    DATABASE_URL = f"sqlite:///{VAR_DIR / 'promo_site.sqlite3'}"

# A kept connection is checked before a request or a task reuses it (CONN_HEALTH_CHECKS): after a PostgreSQL
# restart the web and the workers reconnect by themselves instead of failing once on the dead connection.
DATABASES = {
    "default": dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 60), conn_health_checks=True)
}
DATABASES["default"].setdefault("TEST", {})
if os.environ.get("TEST_DATABASE_NAME"):
    DATABASES["default"]["TEST"]["NAME"] = os.environ["TEST_DATABASE_NAME"]
DB_IS_POSTGRES = DATABASES["default"]["ENGINE"].endswith("postgresql")
# A read replica for the dashboard (promo_site/db_routers.py); its test database is the primary's.
if os.environ.get("DATABASE_REPLICA_URL"):
    DATABASES["replica"] = dj_database_url.parse(
        os.environ["DATABASE_REPLICA_URL"], conn_max_age=env_int("DB_CONN_MAX_AGE", 60), conn_health_checks=True
    )
    DATABASES["replica"]["TEST"] = {"MIRROR": "default"}
    DATABASE_ROUTERS = ["promo_site.db_routers.ReplicaRouter"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis, cache and Celery -------------------------------------------------

if os.environ.get("REDIS_URL"):
    REDIS_URL = os.environ["REDIS_URL"]
elif port_open("127.0.0.1", 6379):
    REDIS_URL = "redis://127.0.0.1:6379/14" if TESTING else "redis://127.0.0.1:6379/0"
else:
    REDIS_URL = ""

# Every Redis client (cache, throttle, rate limiter, broker) gives up on a dead connection within seconds
# instead of hanging, and checks an idle one before use: a restarted Redis is reconnected to by itself.
REDIS_CONNECTION_OPTIONS = {
    "socket_connect_timeout": 5,
    "socket_timeout": 10,
    "retry_on_timeout": True,
    "health_check_interval": 25,
}
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "OPTIONS": REDIS_CONNECTION_OPTIONS,
        }
    }
else:
    # Shared between the web server and the worker processes, unlike locmem.
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "cache"),
        }
    }

CELERY_BROKER_URL = (
    os.environ.get("CELERY_BROKER_URL")
    or (REDIS_URL and REDIS_URL.rsplit("/", 1)[0] + ("/15" if TESTING else "/1"))
    or f"sqla+sqlite:///{VAR_DIR / 'celery-broker.sqlite3'}"
)
EMBEDDED_MODE = not DB_IS_POSTGRES or CELERY_BROKER_URL.startswith("sqla+")
# Progress and results live in our own tables, so task results are not kept.
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A worker whose broker went away keeps trying to reconnect (the default gives up after 100 tries and exits).
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
if CELERY_BROKER_URL.startswith("redis"):
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600, **REDIS_CONNECTION_OPTIONS}
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
RETRAIN_CRON = os.environ.get("RETRAIN_CRON", "0 3 * * 1")  # weekly, Monday 03:00 UTC
if len(RETRAIN_CRON.split()) != 5:
    raise ImproperlyConfigured(f"RETRAIN_CRON {RETRAIN_CRON!r}: expected five fields, e.g. '0 3 * * 1'")
CELERY_BEAT_SCHEDULE = {
    "heartbeat": {"task": "promo_site.tasks.heartbeat", "schedule": 60.0},
    # Follow-up work whose dispatch after its commit failed (the broker was down): promo_site/outbox.py.
    "outbox-dispatch": {"task": "promo_site.tasks.outbox_dispatch", "schedule": 60.0},
    "sweep-stale-imports": {"task": "shop.tasks.sweep_stale_imports", "schedule": crontab(minute="*/10")},
    "sweep-stale-trainings": {"task": "recommender.tasks.sweep_stale_trainings", "schedule": crontab(minute="*/15")},
    "sweep-stale-uplift-trainings": {
        "task": "campaigns.tasks.sweep_stale_uplift_trainings",
        "schedule": crontab(minute="*/15"),
    },
    "sweep-stale-generations": {"task": "campaigns.tasks.sweep_stale_generations", "schedule": crontab(minute="*/5")},
    # Every minute: a lost worker's claimed messages are settled a minute after they can be (delivery.py). A
    # sweep still waiting on a busy `send` queue when the next is due is dropped rather than run late in a pile.
    "sweep-stuck-messages": {
        "task": "campaigns.tasks.sweep_stuck_messages",
        "schedule": 60.0,
        "options": {"expires": 55},
    },
    # Retraining on the latest events; RETRAIN_CRON is "minute hour day_of_month month day_of_week".
    "retrain": {"task": "recommender.tasks.retrain_scheduled", "schedule": crontab(*RETRAIN_CRON.split())},
    # Attribution normally runs as events arrive; this catches anything missed (a lost task, a late click).
    "attribution-sweep": {"task": "campaigns.tasks.attribution_sweep", "schedule": crontab(minute="7,37")},
    # The audiences' per-customer purchase summary (campaigns/purchase_summary.py); counts stay exact between
    # refreshes, and get slower with the events stored since the last one. Skipped rather than piled up.
    "purchase-summary-refresh": {
        "task": "campaigns.tasks.purchase_summary_refresh",
        "schedule": 60.0,
        "options": {"expires": 55},
    },
    # The dashboard's aggregates of batches still collecting events.
    "stats-refresh": {"task": "campaigns.tasks.stats_refresh", "schedule": crontab(minute="*/5")},
}

# --- Auth, i18n, static -----------------------------------------------------

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Login lockout (django-axes): after AXES_FAILURE_LIMIT wrong passwords in a row for one username from
# one address, that pair is locked for AXES_COOLOFF_MINUTES. Per pair, not per username, so nobody can
# lock the approver out from elsewhere; the right password from another address still works.
# `manage.py axes_reset_username USER` unlocks early.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = env_int("AXES_FAILURE_LIMIT", 10)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("AXES_COOLOFF_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "admin/locked_out.html"
AXES_CLIENT_IP_CALLABLE = "promo_site.lockout.client_ip"
# No start-up banner on every manage.py command (a command's one clear error line stays its only output);
# lockouts are still logged.
AXES_VERBOSE = False

LOGIN_URL = "admin:login"
LOGIN_REDIRECT_URL = "campaigns:dashboard"  # the first page after login

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", BASE_DIR / "staticfiles"))
STATICFILES_DIRS = [BASE_DIR / "static"]
STATICFILES_FINDERS = [
    "django.contrib.staticfiles.finders.FileSystemFinder",
    "django.contrib.staticfiles.finders.AppDirectoriesFinder",
    # vendor/plotly.min.js, straight from the installed plotly package (pinned in requirements.txt)
    "campaigns.dashboard.staticfiles.PlotlyFinder",
]
MEDIA_URL = "media/"
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", BASE_DIR / "media"))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", 20 * 1024 * 1024)

# --- REST API -----------------------------------------------------------------

API_MAX_BATCH = env_int("API_MAX_BATCH", 1000)
API_THROTTLE_RATE = os.environ.get("API_THROTTLE_RATE", "1200/min")
# The Retry-After of a 503 (the database or Redis unavailable): a restart takes seconds.
API_RETRY_AFTER_SECONDS = env_int("API_RETRY_AFTER_SECONDS", 5)
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework.authentication.TokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_THROTTLE_CLASSES": ["shop.api.throttling.TokenRateThrottle"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 100,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # A lost database or Redis connection is a 503 with Retry-After, not a 500 (shop/api/exceptions.py).
    "EXCEPTION_HANDLER": "shop.api.exceptions.api_exception_handler",
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
}
SPECTACULAR_SETTINGS = {
    "TITLE": "promo_site API",
    "DESCRIPTION": "Shop data in: customers, items and events. Token authentication: `Authorization: Token <key>`.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- E-mail (django-anymail) -------------------------------------------------

EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "promotions@example.test")
ANYMAIL = {
    key: os.environ[f"ANYMAIL_{key}"]
    for key in ("POSTMARK_SERVER_TOKEN", "POSTMARK_API_URL", "WEBHOOK_SECRET")
    if os.environ.get(f"ANYMAIL_{key}")
}

# --- Demo mode (promo_site/demo.py, demo_shop/) -----------------------------------

# A simulated shop answers the messages (webhooks from the fake Postmark, purchases through the API), and
# every measurement window runs DEMO_TIME_SCALE times faster (1440: a day per minute). Only with the fake
# Postmark on loopback: refused with a real provider.
DEMO_MODE = env_bool("DEMO_MODE", False)
DEMO_TIME_SCALE = float(os.environ.get("DEMO_TIME_SCALE", "1440"))
if DEMO_MODE:
    from promo_site.demo import demo_provider_problem

    if not DEMO_TIME_SCALE >= 1:
        raise ImproperlyConfigured("DEMO_TIME_SCALE is at least 1 (1440: a simulated day per minute).")
    if problem := demo_provider_problem(EMAIL_BACKEND, ANYMAIL.get("POSTMARK_API_URL")):
        raise ImproperlyConfigured(problem)

# --- Campaigns -----------------------------------------------------------------

# An item without a cost is assumed to earn this share of its price (the expected-value formula's margin).
DEFAULT_MARGIN_RATE = float(os.environ.get("DEFAULT_MARGIN_RATE", "0.3"))
# Where a tracked item link lands when the item has no "url" attribute, or one off the shop's hosts.
SHOP_ITEM_URL = os.environ.get("SHOP_ITEM_URL", "https://shop.example.test/items/{external_id}")
# Besides SHOP_ITEM_URL's host, the hosts an item's own "url" attribute may point at (host or host:port).
SHOP_LINK_HOSTS = env_list("SHOP_LINK_HOSTS", "")
# The audience builder's live count is cancelled by PostgreSQL after this many milliseconds.
AUDIENCE_COUNT_TIMEOUT_MS = env_int("AUDIENCE_COUNT_TIMEOUT_MS", 5000)
# A message template's render stops after this many milliseconds, or this many bytes of output
# (campaigns/rendering.py; Gmail clips a message past about 100 kB anyway).
MESSAGE_RENDER_MAX_MS = env_int("MESSAGE_RENDER_MAX_MS", 500)
MESSAGE_MAX_BYTES = env_int("MESSAGE_MAX_BYTES", 200_000)
# Test sends go here unless a campaign names its own seed list.
TEST_SEND_EMAILS = env_list("TEST_SEND_EMAILS", "marketing-seed@example.test")
# Clicks on every item link of a message within this many seconds of its delivery are a link scanner's.
BOT_CLICK_SECONDS = env_int("BOT_CLICK_SECONDS", 10)
# After "not interested" in this many items of one category, a customer is shown none of that category.
FEEDBACK_CATEGORY_AFTER = env_int("FEEDBACK_CATEGORY_AFTER", 2)
# Events dated outside [EVENT_EARLIEST_DATE, now + EVENT_MAX_FUTURE_DAYS] are rejected (API and file import),
# and the shop clock ignores any stored later than that: one event dated 2999 would otherwise make every
# customer look lapsed. The margin allows for clocks and time zones; the earliest date admits real histories.
EVENT_MAX_FUTURE_DAYS = float(os.environ.get("EVENT_MAX_FUTURE_DAYS", "2"))
EVENT_EARLIEST_DATE = datetime.date.fromisoformat(os.environ.get("EVENT_EARLIEST_DATE", "2000-01-01"))

# --- Sending batches (campaigns/services/delivery.py) ---------------------------

# Messages per second across every `send` worker (a token bucket in Redis): stay under the provider's limit.
SEND_RATE_PER_SECOND = float(os.environ.get("SEND_RATE_PER_SECOND", "50"))
# Messages claimed and sent together: at most the provider's batch limit (Postmark 500, others 1).
SEND_CHUNK_SIZE = env_int("SEND_CHUNK_SIZE", 500)
# A message the provider answered with a transient error goes back to the queue after
# base x 2^(attempt - 1) seconds (at most SEND_RETRY_MAX_SECONDS), and fails after SEND_MAX_ATTEMPTS.
SEND_MAX_ATTEMPTS = env_int("SEND_MAX_ATTEMPTS", 8)
SEND_RETRY_BASE_SECONDS = float(os.environ.get("SEND_RETRY_BASE_SECONDS", "30"))
SEND_RETRY_MAX_SECONDS = float(os.environ.get("SEND_RETRY_MAX_SECONDS", "3600"))
# A send task works for this long, then queues its continuation (other batches get their turn).
SEND_SLICE_SECONDS = float(os.environ.get("SEND_SLICE_SECONDS", "60"))
# Senders per batch (each a `send` task taking chunks with SKIP LOCKED, on whichever worker, any host): one per
# SEND_SENDER_RATE messages a second of SEND_RATE_PER_SECOND (about what one worker process sends, leaving
# room), at most SEND_PARALLEL. At the default rate one sender keeps up; more would only sleep on the limiter.
SEND_PARALLEL = env_int("SEND_PARALLEL", 4)
SEND_SENDER_RATE = float(os.environ.get("SEND_SENDER_RATE", "250"))
if SEND_PARALLEL < 1 or SEND_SENDER_RATE <= 0:
    raise ImproperlyConfigured("SEND_PARALLEL is at least 1 and SEND_SENDER_RATE positive.")
# A claim's messages are posted to the provider only before claimed_at + SEND_POST_DEADLINE_SECONDS: the
# claimant checks that (and that its rows are still claimed) as the last step before each provider call, and
# the call's HTTP timeout ends at the deadline too. The wait for rate-limit tokens may use half of it.
SEND_POST_DEADLINE_SECONDS = float(os.environ.get("SEND_POST_DEADLINE_SECONDS", "60"))
# How long after taking a message the provider's search finds it (Postmark's outbound search indexes a
# message a little after accepting it): the sweeper asks about a claim only once this has passed too.
SEND_LOOKUP_DELAY_SECONDS = float(os.environ.get("SEND_LOOKUP_DELAY_SECONDS", "60"))
# For clocks that differ between hosts (claimed_at is the claimant's clock, the cutoff the sweeper's).
SEND_CLOCK_MARGIN_SECONDS = float(os.environ.get("SEND_CLOCK_MARGIN_SECONDS", "30"))
if not 0 < SEND_SLICE_SECONDS <= 300:
    raise ImproperlyConfigured("SEND_SLICE_SECONDS is 1 to 300.")
if SEND_POST_DEADLINE_SECONDS < 2 or SEND_LOOKUP_DELAY_SECONDS < 0 or SEND_CLOCK_MARGIN_SECONDS < 0:
    raise ImproperlyConfigured(
        "SEND_POST_DEADLINE_SECONDS is at least 2, SEND_LOOKUP_DELAY_SECONDS and SEND_CLOCK_MARGIN_SECONDS at least 0."
    )

# --- Measurement (attribution, uplift, dashboard) -----------------------------------

# Attribution: a purchase is credited to the message whose code it used, else to the last human click
# within ATTRIBUTION_CLICK_DAYS before it, else to the last delivered message within ATTRIBUTION_DELIVERY_DAYS.
ATTRIBUTION_CLICK_DAYS = float(os.environ.get("ATTRIBUTION_CLICK_DAYS", "7"))
ATTRIBUTION_DELIVERY_DAYS = float(os.environ.get("ATTRIBUTION_DELIVERY_DAYS", "3"))
# A batch's treated and holdout customers are compared on what they did this many days after the send.
MEASUREMENT_DAYS = float(os.environ.get("MEASUREMENT_DAYS", "14"))
# A share of all customers kept out of every campaign (0 = off), drawn from the customer id and this seed.
GLOBAL_HOLDOUT_PERCENT = float(os.environ.get("GLOBAL_HOLDOUT_PERCENT", "0"))
GLOBAL_HOLDOUT_SEED = os.environ.get("GLOBAL_HOLDOUT_SEED", "global-holdout-1")
# A batch's generation whose worker has been silent this long (its heartbeat thread writes every third of it)
# is taken over by a redelivered task, which resumes after the rows already written.
GENERATION_TAKEOVER_SECONDS = float(os.environ.get("GENERATION_TAKEOVER_SECONDS", "180"))
# A batch's audience is generated in chunks of this many customers that any worker takes (about 5 s of work
# each on this machine's 2 cores); the task that plans them generates chunks itself for at most
# GENERATION_SLICE_SECONDS, well inside the broker's visibility timeout, and leaves the rest to the chunk tasks.
GENERATION_CHUNK_CUSTOMERS = env_int("GENERATION_CHUNK_CUSTOMERS", 5000)
GENERATION_SLICE_SECONDS = env_int("GENERATION_SLICE_SECONDS", 600)

# --- Security (strict whenever DEBUG is off) ---------------------------------

SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = not DEBUG
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
BEHIND_TLS_PROXY = env_bool("BEHIND_TLS_PROXY", False)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if BEHIND_TLS_PROXY else None
X_FRAME_OPTIONS = "DENY"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
}
