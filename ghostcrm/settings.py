"""GhostCRM control plane settings, read from the environment (12-factor).

``GHOSTCRM_ENV`` selects development, staging or production. Production refuses to start without its
secrets; development reads an optional ``.env`` file and has working defaults for a first run.
"""

from __future__ import annotations

import contextlib
import os
import sys
from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from ghostcrm.dburl import parse_database_url

BASE_DIR = Path(__file__).resolve().parent.parent
ENVIRONMENTS = ("development", "staging", "production")

GHOSTCRM_ENV = os.environ.get("GHOSTCRM_ENV", "development").strip().lower()
if GHOSTCRM_ENV not in ENVIRONMENTS:
    raise ImproperlyConfigured(
        f"GHOSTCRM_ENV={GHOSTCRM_ENV!r} is not known; set it to one of {', '.join(ENVIRONMENTS)}."
    )
# A .env file is a development convenience only: staging and production take their environment as given.
if GHOSTCRM_ENV == "development" and (BASE_DIR / ".env").is_file():
    environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

env = environ.Env()
IS_PRODUCTION = GHOSTCRM_ENV == "production"

SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if GHOSTCRM_ENV != "development":
        raise ImproperlyConfigured(
            f"SECRET_KEY must be set when GHOSTCRM_ENV={GHOSTCRM_ENV}; generate one with "
            "python -c 'import secrets; print(secrets.token_urlsafe(50))'."
        )
    SECRET_KEY = "development-only-insecure-key-do-not-use-in-production"  # noqa: S105

DEBUG = env.bool("DEBUG", default=GHOSTCRM_ENV == "development")
ALLOWED_HOSTS = env.list(
    "ALLOWED_HOSTS", default=[] if GHOSTCRM_ENV != "development" else ["localhost", "127.0.0.1", "[::1]", "testserver"]
)
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
if IS_PRODUCTION and DEBUG:
    raise ImproperlyConfigured("DEBUG must be off when GHOSTCRM_ENV=production (it shows tracebacks); unset DEBUG.")

# Keys for secrets encrypted at rest (integration credentials): comma-separated Fernet keys, newest first.
FIELD_ENCRYPTION_KEYS = env.list("FIELD_ENCRYPTION_KEYS", default=[])
if not FIELD_ENCRYPTION_KEYS and GHOSTCRM_ENV != "development":
    raise ImproperlyConfigured(
        f"FIELD_ENCRYPTION_KEYS must be set when GHOSTCRM_ENV={GHOSTCRM_ENV}; generate a key with "
        "python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'."
    )
if not ALLOWED_HOSTS and GHOSTCRM_ENV != "development":
    # Otherwise every request is answered 400 and `runserver` refuses to start, without naming the variable.
    raise ImproperlyConfigured(
        f"ALLOWED_HOSTS must be set when GHOSTCRM_ENV={GHOSTCRM_ENV}: the host names this site answers to, "
        "comma-separated, e.g. ALLOWED_HOSTS=control.example.com."
    )
# Keys of the audit chain's HMAC (ghostcrm/audit/keys.py): "id:secret" pairs, comma-separated, newest first.
# Kept out of the database, so rewriting the log needs more than database rights (docs/audit.md).
AUDIT_HMAC_KEYS = env.list(
    "AUDIT_HMAC_KEYS", default=["dev:development-only-audit-key"] if GHOSTCRM_ENV == "development" else []
)
if not AUDIT_HMAC_KEYS:
    raise ImproperlyConfigured(
        f"AUDIT_HMAC_KEYS must be set when GHOSTCRM_ENV={GHOSTCRM_ENV}; generate a key with "
        "python -c 'import secrets; print(\"k1:\" + secrets.token_urlsafe(48))'."
    )

# --- Applications ------------------------------------------------------------------------------------
# django-tenants splits apps into SHARED_APPS (main database and the tenant registry) and TENANT_APPS
# (inside each client schema). Our tenant schemas come from raw SQL templates, so the only tenant app is
# tenants.crm: unmanaged, read-only mirrors of template tables, with no migrations.
SHARED_APPS = [
    "ghostcrm.core",  # first: its `migrate` command replaces django-tenants' and Django's
    "django_tenants",
    "ghostcrm.accounts.admin_apps.GhostAdminConfig",  # django.contrib.admin with the OTP-enforcing site
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI / ReDoc assets served from here, never from a CDN
    "django_rq",
    "axes",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "ghostcrm.accounts",
    "ghostcrm.audit",
    "ghostcrm.organizations",
    "ghostcrm.integrations",
    "tenants",
    "tenants.engine",
    "tenants.fleet",
    "billing",
    "operations",
    "ghostcrm.core.admin_audit",  # last: makes every registered admin (third-party too) audited
]
TENANT_APPS = ["tenants.crm"]
INSTALLED_APPS = SHARED_APPS + [app for app in TENANT_APPS if app not in SHARED_APPS]

MIDDLEWARE = [
    "ghostcrm.core.edge.EdgeMiddleware",  # first: NUL paths, oversized API bodies, database outages as 503
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",  # static files under gunicorn (docs/operations.md)
    "ghostcrm.core.middleware.RequestIdMiddleware",
    "operations.middleware.RequestMetricsMiddleware",  # request rate/latency by view, log context
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "ghostcrm.accounts.middleware.SessionSecurityMiddleware",  # timeouts, revoked sessions, MFA gate, re-auth
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "ghostcrm.urls"
WSGI_APPLICATION = "ghostcrm.wsgi.application"
ASGI_APPLICATION = "ghostcrm.asgi.application"

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
                "ghostcrm.core.context_processors.environment",
            ],
        },
    },
]

# --- Databases ---------------------------------------------------------------------------------------
# `default` is the main database (SQL Server in production); `tenants` is the PostgreSQL server holding
# the django-tenants registry in `public` and one schema per client.
TENANT_DB_ALIAS = "tenants"
MAIN_DATABASE_URL = env.str("MAIN_DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'var' / 'main.sqlite3'}")
TENANT_DATABASE_URL = env.str("TENANT_DATABASE_URL", default="postgres://postgres@127.0.0.1:5432/ghostcrm_tenants")
_main = parse_database_url(
    MAIN_DATABASE_URL, variable="MAIN_DATABASE_URL", postgres_engine="django.db.backends.postgresql"
)
_tenants = parse_database_url(
    TENANT_DATABASE_URL, variable="TENANT_DATABASE_URL", postgres_engine="django_tenants.postgresql_backend"
)
if _tenants["ENGINE"] != "django_tenants.postgresql_backend":
    raise ImproperlyConfigured("TENANT_DATABASE_URL must be a postgres:// URL: client schemas live in PostgreSQL only.")
if _main["ENGINE"] == "django.db.backends.sqlite3":
    Path(_main["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    _main["OPTIONS"] = {"timeout": 20, "transaction_mode": "IMMEDIATE"}

# Parallel test runs (several developers or CI jobs on one server) get their own test databases.
_test_suffix = env.str("GHOSTCRM_TEST_DB_SUFFIX", default="")
_main["TEST"] = {
    "NAME": f"test_ghostcrm_main{_test_suffix}" if _main["ENGINE"] != "django.db.backends.sqlite3" else None
}
_tenants["TEST"] = {"NAME": f"test_ghostcrm_tenants{_test_suffix}"}
# Persistent connections suit gunicorn's long-lived workers (CONN_MAX_AGE, docs/api.md). `runserver` serves each
# keep-alive client connection in a thread of its own, and each such thread kept a database connection as long as
# its socket lived (76 idle after a burst of 200, then "too many clients"): off under runserver, whatever the
# environment says.
_main["CONN_MAX_AGE"] = 0 if "runserver" in sys.argv[1:2] else env.int("CONN_MAX_AGE", default=60)
_main["CONN_HEALTH_CHECKS"] = True
DATABASES = {"default": _main, TENANT_DB_ALIAS: _tenants}
DATABASE_ROUTERS = ["ghostcrm.routers.DatabaseRouter"]
# django-tenants insists that its sync router is installed; ours decides model by model instead.
TENANT_SYNC_ROUTER = "ghostcrm.routers.DatabaseRouter"
TENANT_MODEL = "tenants.Tenant"
TENANT_DOMAIN_MODEL = "tenants.Domain"
# Tenant roles are cluster-wide in PostgreSQL; the prefix keeps environments (and test runs) apart.
TENANT_ROLE_PREFIX = env.str("TENANT_ROLE_PREFIX", default=f"gc{_test_suffix}")
# The least-privileged login that runs template SQL (docs/template-engine.md, "Who runs template SQL").
# `migrate` creates it; in production give it a password (trust auth needs none locally). Empty: the
# prefix + "_migrator"; a name given here must start with the prefix and "_".
TENANT_MIGRATOR_ROLE = env.str("TENANT_MIGRATOR_ROLE", default="")
TENANT_MIGRATOR_PASSWORD = env.str("TENANT_MIGRATOR_PASSWORD", default="")
TENANT_TEMPLATES_DIR = BASE_DIR / "migrations_sql" / "client-provisioning"
MAIN_DATABASE_TSQL_DIR = BASE_DIR / "migrations_sql" / "main-database"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# dumpdata / loaddata export encrypted fields as ciphertext, never plaintext (ghostcrm/core/fields.py).
SERIALIZATION_MODULES = {fmt: f"ghostcrm.core.serializers.{fmt}" for fmt in ("python", "json", "jsonl", "yaml")}

# --- Redis and RQ ------------------------------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="redis://127.0.0.1:6379/0")
RQ_QUEUES = {
    name: {"URL": REDIS_URL, "DEFAULT_TIMEOUT": timeout}
    for name, timeout in (("default", 300), ("provisioning", 900), ("billing", 300))
}
RQ_SHOW_ADMIN_LINK = True
# Django's cache (API rate limits) lives in Redis so every web worker counts against the same budget.
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "ghostcrm",
    }
}

# --- Provisioning ------------------------------------------------------------------------------------
# Backoff (seconds) between retries of a provisioning job after a transient fault; one retry per entry.
PROVISIONING_RETRY_INTERVALS = env.list("PROVISIONING_RETRY_INTERVALS", cast=int, default=[10, 60, 300])
TENANT_BACKUPS_DIR = Path(env.str("TENANT_BACKUPS_DIR", default=str(BASE_DIR / "var" / "backups")))
TENANT_DOMAIN_SUFFIX = env.str("TENANT_DOMAIN_SUFFIX", default="tenants.ghostcrm.local")
# Periodic jobs enqueued by the worker's cron scheduler (`python manage.py run_worker`): one line each,
# {"func": dotted path, "queue": RQ queue, and "interval": seconds or "cron": "m h dom mon dow"}.
_backups_cron = env.str("BACKUPS_CRON", default="0 3 * * *")
PERIODIC_JOBS: list[dict[str, object]] = [
    {"func": "tenants.jobs.reconcile_job", "queue": "provisioning", "interval": 60},
    {"func": "ghostcrm.accounts.jobs.invitations_expire_job", "queue": "default", "interval": 900},
    {"func": "ghostcrm.accounts.jobs.user_sessions_purge_job", "queue": "default", "interval": 3600},
    {"func": "billing.jobs.usage_readings_job", "queue": "billing", "interval": 3600},
    {"func": "billing.jobs.renewals_job", "queue": "billing", "interval": 900},
    {"func": "billing.jobs.dunning_job", "queue": "billing", "interval": 3600},
    {"func": "tenants.api.limits.api_refusals_flush_job", "queue": "default", "interval": 60},
    # Operations (docs/operations.md): backups at BACKUPS_CRON (03:00 UTC), pruning, a weekly drill, daily retention.
    {"func": "operations.jobs.tenant_backups_job", "queue": "default", "cron": _backups_cron, "timeout": 6 * 3600},
    {"func": "operations.jobs.main_backup_job", "queue": "default", "cron": "30 3 * * *", "timeout": 6 * 3600},
    {"func": "operations.jobs.backups_prune_job", "queue": "default", "cron": "0 5 * * *"},
    {"func": "operations.jobs.backup_drill_job", "queue": "default", "cron": "0 6 * * 0", "timeout": 3 * 3600},
    {"func": "operations.jobs.retention_job", "queue": "default", "cron": "30 4 * * *", "timeout": 3 * 3600},
    {"func": "ghostcrm.audit.jobs.audit_seal_job", "queue": "default", "interval": 10},
]
# `audit_verify` raises an alarm for events left unsealed longer than this (the sealing job is not running).
AUDIT_SEAL_MAX_LAG = timedelta(seconds=env.int("AUDIT_SEAL_MAX_LAG_SECONDS", default=300))

# --- Authentication ----------------------------------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "ghostcrm.accounts.backends.RoleBackend",
]
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "ghostcrm.accounts.validators.MaximumLengthValidator", "OPTIONS": {"max_length": 128}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "ghostcrm.accounts.validators.PasswordHistoryValidator", "OPTIONS": {"history": 5}},
]
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "admin:index"
AXES_ENABLED = env.bool("AXES_ENABLED", default=True)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_FAILURE_LIMIT = 5
AXES_USERNAME_FORM_FIELD = "username"
AXES_VERBOSE = False
# Progressive lockout (ghostcrm/accounts/lockout.py): 5 failures lock for 15 min, each further failure
# doubles it up to 24 h; failures are forgotten 24 h after the last one or at a successful sign-in.
AXES_HANDLER = "ghostcrm.accounts.lockout.ProgressiveAxesHandler"
AXES_COOLOFF_TIME = timedelta(hours=24)
AXES_RESET_ON_SUCCESS = True
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_USERNAME_CALLABLE = "ghostcrm.accounts.lockout.normalised_username"
AXES_LOCKOUT_CALLABLE = "ghostcrm.accounts.lockout.lockout_response"
# Behind reverse proxies: how many append to X-Forwarded-For. One setting for the lockout, the audit log and
# session records (ghostcrm.core.http.client_ip); 0 = REMOTE_ADDR, the only safe value without a proxy.
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)
AXES_CLIENT_IP_CALLABLE = "ghostcrm.core.http.client_ip"  # the address the audit log records
AXES_ENABLE_ACCESS_FAILURE_LOG = True
AXES_SENSITIVE_PARAMETERS = [
    *("password", "password1", "password2", "old_password", "new_password1", "new_password2", "code"),
]
ACCOUNTS_LOCKOUT_BASE = timedelta(minutes=env.int("ACCOUNTS_LOCKOUT_MINUTES", default=15))
ACCOUNTS_LOCKOUT_MAX = timedelta(hours=24)
# Sessions: idle and absolute timeouts (enforced by SessionSecurityMiddleware), the password asked again
# before changing e-mail, password or MFA when the last time it was typed is older than ACCOUNTS_REAUTH_MAX_AGE.
ACCOUNTS_SESSION_IDLE_TIMEOUT = timedelta(minutes=env.int("SESSION_IDLE_TIMEOUT_MINUTES", default=30))
ACCOUNTS_SESSION_ABSOLUTE_TIMEOUT = timedelta(hours=env.int("SESSION_ABSOLUTE_TIMEOUT_HOURS", default=12))
ACCOUNTS_REAUTH_MAX_AGE = timedelta(minutes=5)
ACCOUNTS_PREAUTH_MAX_AGE = timedelta(minutes=10)  # between the password and the second factor
SESSION_COOKIE_AGE = int(ACCOUNTS_SESSION_ABSOLUTE_TIMEOUT.total_seconds())
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
OTP_TOTP_ISSUER = "GhostCRM" if IS_PRODUCTION else f"GhostCRM ({GHOSTCRM_ENV})"

# --- Internationalisation, static files ------------------------------------------------------------
LANGUAGE_CODE = "en-gb"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(BASE_DIR / "var" / "static")))
# WhiteNoise warns at every start when the folder is missing (before the first collectstatic); a read-only
# image collected its static files at build time.
with contextlib.suppress(OSError):
    STATIC_ROOT.mkdir(parents=True, exist_ok=True)

# --- Operations: backup storage, metrics, logs (docs/operations.md) ---------------------------------------
# Backups go to STORAGES["backups"]: a local folder (BACKUPS_DIR), or any S3-compatible bucket with BACKUPS_S3_BUCKET.
BACKUPS_DIR = Path(env.str("BACKUPS_DIR", default=str(BASE_DIR / "var" / "backups" / "store")))
_backups_bucket = env.str("BACKUPS_S3_BUCKET", default="")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # Compressed, no manifest: pages render without collectstatic (tests); `make serve` collects first.
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
    "backups": (
        {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": _backups_bucket,
                "location": env.str("BACKUPS_S3_PREFIX", default="ghostcrm-backups"),
                "endpoint_url": env.str("BACKUPS_S3_ENDPOINT_URL", default="") or None,
                "region_name": env.str("BACKUPS_S3_REGION", default="") or None,
                "access_key": env.str("BACKUPS_S3_ACCESS_KEY_ID", default="") or None,
                "secret_key": env.str("BACKUPS_S3_SECRET_ACCESS_KEY", default="") or None,
                "default_acl": None,
                "file_overwrite": False,
            },
        }
        if _backups_bucket
        else {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(BACKUPS_DIR)}}
    ),
}
# /metrics: a bearer token (METRICS_TOKEN) or a client address in METRICS_ALLOWED_NETWORKS (CIDRs); neither: refused.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
METRICS_ALLOWED_NETWORKS = env.list("METRICS_ALLOWED_NETWORKS", default=["127.0.0.0/8", "::1/128"])
# The SQL Server main-database backup target (BACKUP DATABASE ... TO URL or DISK), e.g. https://acct.blob.../c
MSSQL_BACKUP_TARGET = env.str("MSSQL_BACKUP_TARGET", default="")
LOG_FORMAT = env.str("LOG_FORMAT", default="plain")

# --- Stripe (optional) ---------------------------------------------------------------------------------
# Billing works without a payment provider; with these set, the webhook endpoint accepts signed Stripe
# events and dunning asks Stripe to retry charges. Both come from the Stripe dashboard (Developers).
STRIPE_API_KEY = env.str("STRIPE_API_KEY", default="")
STRIPE_WEBHOOK_SECRET = env.str("STRIPE_WEBHOOK_SECRET", default="")
STRIPE_WEBHOOK_TOLERANCE = env.int("STRIPE_WEBHOOK_TOLERANCE", default=300)

# --- E-mail ------------------------------------------------------------------------------------------
if env.str("EMAIL_URL", default=""):
    vars().update(env.email_url("EMAIL_URL"))
else:
    EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
    if GHOSTCRM_ENV == "production":
        raise ImproperlyConfigured(
            "EMAIL_URL must be set when GHOSTCRM_ENV=production, e.g. smtp+tls://user:password@smtp.example.com:587."
        )
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="GhostCRM <no-reply@ghostcrm.local>")
SITE_URL = env.str("SITE_URL", default="http://127.0.0.1:8000").rstrip("/")

# --- REST API ----------------------------------------------------------------------------------------
# Bodies: the API refuses more than API_MAX_BODY_BYTES with a JSON 413 before reading it (ghostcrm.core.edge);
# forms elsewhere keep Django's limit, stated here so both are in one place.
API_MAX_BODY_BYTES = env.int("API_MAX_BODY_BYTES", default=1_048_576)
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=2_621_440)
REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "ghostcrm.core.api.exception_handler",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "UNAUTHENTICATED_USER": None,
    # Per service key (tenants.api.throttles.ServiceKeyRateThrottle); counted in the Redis cache.
    "DEFAULT_THROTTLE_RATES": {"service_key": env.str("API_KEY_RATE_LIMIT", default="120/min")},
}
# Refused keys per client address and minute before that address gets 429 without a key lookup (tenants/api/limits.py).
API_AUTH_FAILURE_LIMIT = env.int("API_AUTH_FAILURE_LIMIT", default=20)
SPECTACULAR_SETTINGS = {
    "TITLE": "GhostCRM control plane API",
    "DESCRIPTION": "Provision and steer client organisations. Authenticate with `Authorization: Bearer gcrm_…`.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- Security: production turns on everything `manage.py check --deploy` asks for --------------------
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if GHOSTCRM_ENV in {"staging", "production"}:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000 if IS_PRODUCTION else 3600)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = IS_PRODUCTION
    if env.bool("SECURE_PROXY_SSL_HEADER", default=False):
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "operations.logs.JsonFormatter"},  # LOG_FORMAT=json: one object per line
    },
    "filters": {
        "context": {"()": "operations.logs.ContextFilter"},  # request id, job id, organisation, user
        "client_errors": {"()": "ghostcrm.core.logfilters.ClientErrorWithoutTraceback"},  # a 4xx is one line
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json" if LOG_FORMAT == "json" else "plain",
            "filters": ["context", "client_errors"],
        }
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        # Django's default config gives "django" its own console handler too: every record was printed twice.
        "django": {"handlers": [], "level": "INFO", "propagate": True},
        "django.db.backends": {"level": "WARNING"},
    },
}
