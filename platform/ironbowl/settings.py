"""Django settings for Ironbowl, derived from the typed environment in `ironbowl.config`."""

from __future__ import annotations

import sys
from typing import Any

import dj_database_url
import django_stubs_ext
from django.utils.translation import gettext_lazy as _

from ironbowl.channel_layers import redis_channel_layer
from ironbowl.config import REPO_ROOT, ConfigurationError, load_config

django_stubs_ext.monkeypatch()

try:
    CONFIG = load_config()
except ConfigurationError as error:
    # A person reads this at start-up: the message names each variable; a traceback would not help.
    sys.stderr.write(f"{error}\n")
    raise SystemExit(2) from None

BASE_DIR = REPO_ROOT
DATA_DIR = CONFIG.DATA_DIR
DATA_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = False
SECRET_KEY = CONFIG.SECRET_KEY
ALLOWED_HOSTS = CONFIG.ALLOWED_HOSTS
CSRF_TRUSTED_ORIGINS = CONFIG.CSRF_TRUSTED_ORIGINS
IRONBOWL_ENV = CONFIG.IRONBOWL_ENV.value

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "guardian",
    "django_htmx",
    "django_structlog",
    "ironbowl",
    "tenants",
    "scheduling",
    "avatars",
    "inference",
    "ironbowl.analytics",
    "ironbowl.billing",
    "ironbowl.console",
]

MIDDLEWARE = [
    "ironbowl.middleware.OperationsEndpointsMiddleware",
    "ironbowl.middleware.RequestMetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django_structlog.middlewares.RequestMiddleware",
    "ironbowl.middleware.ApiBodyLimitMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "ironbowl.urls"
WSGI_APPLICATION = "ironbowl.wsgi.application"
ASGI_APPLICATION = "ironbowl.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "django.template.context_processors.i18n",
            ],
        },
    },
]

_database: dict[str, Any] = dict(
    dj_database_url.parse(CONFIG.database_url, conn_max_age=CONFIG.DATABASE_CONN_MAX_AGE)
)
if _database["ENGINE"] == "django.db.backends.sqlite3":
    # Web, Celery worker and beat share one SQLite file: WAL lets readers run beside a writer and
    # IMMEDIATE transactions fail fast instead of deadlocking on lock upgrades.
    _database["CONN_MAX_AGE"] = 0
    _database["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
    # A file, not memory: the Celery worker started by the tests must see the same database.
    _database["TEST"] = {"NAME": str(DATA_DIR / "test-ironbowl.sqlite3")}
else:
    _database["CONN_HEALTH_CHECKS"] = True
DATABASES = {"default": _database}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_USER_MODEL = "tenants.User"
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "guardian.backends.ObjectPermissionBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Per-object grants use direct-FK permission models (see scheduling.models); no anonymous user.
ANONYMOUS_USER_NAME = None
GUARDIAN_RAISE_403 = False

LANGUAGE_CODE = "en"
LANGUAGES = [("en", _("English")), ("zh-hans", _("Simplified Chinese"))]
LOCALE_PATHS = [REPO_ROOT / "locale"]
TIME_ZONE = CONFIG.TIME_ZONE
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"
if not CONFIG.is_production:
    STATIC_ROOT.mkdir(exist_ok=True)  # development serves through finders; keeps WhiteNoise quiet
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if CONFIG.is_production
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = not CONFIG.is_production
MEDIA_URL = "media/"
MEDIA_ROOT = CONFIG.media_root

# Request bodies: the API refuses bodies over this size with 413 before parsing them.
API_MAX_BODY_BYTES = CONFIG.API_MAX_BODY_BYTES
DATA_UPLOAD_MAX_MEMORY_SIZE = CONFIG.API_MAX_BODY_BYTES

# Uploads arrive in chunks (PUT …/uploads/{id}/ with Content-Range), each under its own body limit.
UPLOAD_CHUNK_MAX_BYTES = CONFIG.UPLOAD_CHUNK_MAX_BYTES
_MB = 1024 * 1024
_VIDEO_TYPES = {"video/mp4": [".mp4", ".m4v"], "video/quicktime": [".mov"], "video/webm": [".webm"]}
# Per upload purpose: the largest file, and each allowed content type with its file extensions.
UPLOAD_LIMITS: dict[str, dict[str, Any]] = {
    "footage": {"max_bytes": 600 * _MB, "types": _VIDEO_TYPES},
    "consent_clip": {
        "max_bytes": 200 * _MB,
        "types": {
            **_VIDEO_TYPES,
            "audio/mpeg": [".mp3"],
            "audio/mp4": [".m4a", ".mp4"],
            "audio/wav": [".wav"],
            "audio/x-wav": [".wav"],
            "audio/webm": [".webm", ".weba"],
            "audio/ogg": [".ogg", ".oga", ".opus"],
        },
    },
    "portrait": {
        "max_bytes": 20 * _MB,
        "types": {"image/png": [".png"], "image/jpeg": [".jpg", ".jpeg"]},
    },
    "document": {
        "max_bytes": 50 * _MB,
        "types": {
            "text/plain": [".txt"],
            "text/markdown": [".md", ".markdown"],
            "application/pdf": [".pdf"],
        },
    },
}

REDIS_URL = CONFIG.REDIS_URL
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "ironbowl",
        }
    }
    CHANNEL_LAYERS = {"default": redis_channel_layer(REDIS_URL)}
else:
    # Embedded default: one web process, so an in-process cache and channel layer suffice.
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# Celery: Redis in production; without REDIS_URL a broker in files under DATA_DIR, which still
# lets a real worker and beat run as separate processes.
CELERY_BROKER_DIR = DATA_DIR / "broker"
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, Any] = {"visibility_timeout": 3600}
else:
    for _folder in ("queue", "processed", "control"):
        (CELERY_BROKER_DIR / _folder).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(CELERY_BROKER_DIR / "queue"),
        "data_folder_out": str(CELERY_BROKER_DIR / "queue"),
        "processed_folder": str(CELERY_BROKER_DIR / "processed"),
        "store_processed": False,
        # Fanout exchanges (worker control, broadcasts); the default is ./control in the cwd.
        "control_folder": str(CELERY_BROKER_DIR / "control"),
    }
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULE_FILENAME = str(DATA_DIR / "celerybeat-schedule")

# Live rooms' stream keys, encrypted at rest (scheduling.secrets; docs/operations.md).
STREAM_KEY_ENCRYPTION_KEY = CONFIG.STREAM_KEY_ENCRYPTION_KEY
STREAM_KEY_ENCRYPTION_KEY_FALLBACKS = CONFIG.STREAM_KEY_ENCRYPTION_KEY_FALLBACKS

EMAIL_BACKEND = CONFIG.EMAIL_BACKEND
EMAIL_HOST = CONFIG.EMAIL_HOST
EMAIL_PORT = CONFIG.EMAIL_PORT
EMAIL_HOST_USER = CONFIG.EMAIL_HOST_USER
EMAIL_HOST_PASSWORD = CONFIG.EMAIL_HOST_PASSWORD
EMAIL_USE_TLS = CONFIG.EMAIL_USE_TLS
DEFAULT_FROM_EMAIL = CONFIG.DEFAULT_FROM_EMAIL

# Analytics intake limits (ironbowl.analytics.api.events; docs/api.md, "Analytics").
ANALYTICS_MAX_BATCH_EVENTS = CONFIG.ANALYTICS_MAX_BATCH_EVENTS
ANALYTICS_MAX_BODY_BYTES = CONFIG.ANALYTICS_MAX_BODY_BYTES
ANALYTICS_MAX_INFLATED_BYTES = CONFIG.ANALYTICS_MAX_INFLATED_BYTES

STRIPE_SECRET_KEY = CONFIG.STRIPE_SECRET_KEY
STRIPE_WEBHOOK_SECRET = CONFIG.STRIPE_WEBHOOK_SECRET
# Dunning (ironbowl.billing.dunning; docs/api.md, "Stripe and dunning").
BILLING_GRACE_DAYS = CONFIG.BILLING_GRACE_DAYS

# Inference (see inference/ and docs/operations.md, "GPU classes and pools").
INFERENCE_BACKEND = CONFIG.INFERENCE_BACKEND
INFERENCE_POOLS_FILE = CONFIG.INFERENCE_POOLS_FILE
INFERENCE_CONTROL_URL = CONFIG.INFERENCE_CONTROL_URL
INFERENCE_HEARTBEAT_INTERVAL_S = CONFIG.INFERENCE_HEARTBEAT_INTERVAL_S
INFERENCE_HEARTBEAT_TIMEOUT_S = CONFIG.INFERENCE_HEARTBEAT_TIMEOUT_S
INFERENCE_START_TIMEOUT_S = CONFIG.INFERENCE_START_TIMEOUT_S
INFERENCE_WARM_IDLE_S = CONFIG.INFERENCE_WARM_IDLE_S
INFERENCE_SESSION_TOKEN_TTL_S = CONFIG.INFERENCE_SESSION_TOKEN_TTL_S
# The language model that rewords answers (OpenAI-compatible); told to conversation workers.
INFERENCE_LLM_URL = CONFIG.INFERENCE_LLM_URL
INFERENCE_LLM_MODEL = CONFIG.INFERENCE_LLM_MODEL
INFERENCE_LLM_API_KEY = CONFIG.INFERENCE_LLM_API_KEY
# Who supplies a conversation's knowledge: a function (organization, spec) -> entries.
INFERENCE_KNOWLEDGE_PROVIDER = "scheduling.sessions.knowledge_for_session"
# Who resolves credentials a spec names by reference: a function (organization, name) -> str.
INFERENCE_SECRET_PROVIDER = "scheduling.secrets.resolve_reference"  # noqa: S105 - a function path
# Who may hold queued work back: a function called once per admission pass that returns a gate
# (organization, workload) -> None or (reason code, sentence). Billing's budget hard stop.
INFERENCE_ADMISSION_GATE = "ironbowl.billing.admission.admission_gate"
# Who prices ROI: a function (organization, currency) -> analytics.rates.BilledPrices or None
# (None, or empty: list rates). Billing's plan prices; analytics does not import billing.
ANALYTICS_PRICE_PROVIDER = "ironbowl.billing.costs.prices_for"
KUBERNETES_NAMESPACE_PREFIX = CONFIG.KUBERNETES_NAMESPACE_PREFIX
KUBERNETES_KUEUE_QUEUE = CONFIG.KUBERNETES_KUEUE_QUEUE
KUBERNETES_TARGET_VERSION = CONFIG.KUBERNETES_TARGET_VERSION
# Putting shifts on duty (scheduling.duty; docs/operations.md, "Shifts on duty").
SCHEDULING_WARMUP_MINUTES = CONFIG.SCHEDULING_WARMUP_MINUTES
SCHEDULING_MISSED_AFTER_MINUTES = CONFIG.SCHEDULING_MISSED_AFTER_MINUTES
# Materialising shifts ahead (scheduling.materialise; docs/architecture.md, "Schedules and shifts").
SCHEDULING_HORIZON_DAYS = CONFIG.SCHEDULING_HORIZON_DAYS

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "ironbowl.api.authentication.ApiKeyAuthentication",
        "ironbowl.api.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "ironbowl.api.errors.exception_handler",
    "DEFAULT_THROTTLE_RATES": {
        "organization": CONFIG.THROTTLE_ORGANIZATION_RATE,
        "credential": CONFIG.THROTTLE_KEY_RATE,
        "anonymous": "60/minute",
        "widget_key": CONFIG.THROTTLE_WIDGET_KEY_RATE,
        "widget_ip": CONFIG.THROTTLE_WIDGET_IP_RATE,
        "events": CONFIG.THROTTLE_EVENTS_RATE,
        "events_organization": CONFIG.THROTTLE_EVENTS_ORGANIZATION_RATE,
    },
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    # Throttles key anonymous callers on REMOTE_ADDR only: a client-sent X-Forwarded-For would
    # otherwise give each login attempt a fresh budget. Trusted proxies are the ASGI server's job.
    "NUM_PROXIES": 0,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Ironbowl API",
    "DESCRIPTION": (
        "Hire, roster, watch, measure and pay AI digital employees. Every organization-owned "
        "resource lives under /api/v1/orgs/{org}/; an object of another organization answers "
        "exactly like one that does not exist (404)."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "APPEND_COMPONENTS": {
        "securitySchemes": {
            "ApiKey": {
                "type": "http",
                "scheme": "bearer",
                "description": "An organization API key: `Authorization: Bearer ib_…`",
            }
        }
    },
    "SECURITY": [{"ApiKey": []}, {"cookieAuth": []}],
    "ENUM_NAME_OVERRIDES": {
        "OrganizationKindEnum": "tenants.models.OrganizationKind",
        "StationKindEnum": "scheduling.models.StationKind",
        "HolidayKindEnum": "scheduling.models.DayKind",
        "SessionLanguageEnum": "scheduling.api.serializers.SESSION_LANGUAGES",
        "EmploymentStatusEnum": "avatars.models.EmploymentStatus",
        "ReviewStatusEnum": "avatars.models.ReviewStatus",
        "CurrencyEnum": "tenants.money.Currency",
        "StatementStatusEnum": "ironbowl.billing.models.StatementStatus",
        "SkillEnum": "avatars.models.Skill",
        "InvitationStatusEnum": "tenants.models.InvitationStatus",
        "WorkloadKindEnum": "inference.models.WorkloadKind",
        "WorkloadStateEnum": "inference.models.WorkloadState",
        "WorkerStateEnum": "inference.models.WorkerState",
        "ShiftStateEnum": "scheduling.models.ShiftState",
    },
}

# Security: production turns on what a browser on the public internet needs.
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False  # the console reads it to send X-CSRFToken
LOGIN_URL = "console:sign-in"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
if CONFIG.is_production:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = 31_536_000
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True

from ironbowl.logging import configure_logging  # noqa: E402  (needs the values above)

LOGGING = configure_logging(CONFIG.LOG_LEVEL, CONFIG.LOG_FORMAT)
DJANGO_STRUCTLOG_CELERY_ENABLED = True
DJANGO_STRUCTLOG_IP_LOGGING_ENABLED = True
# The ingress's X-Request-ID (or the client's) names the request in the logs, as it does in the
# audit log (tenants.audit.Actor.request_id): one id leads from an audit entry to its logs.
DJANGO_STRUCTLOG_TRUST_UPSTREAM_REQUEST_ID = True
