"""AEGIS settings: everything a site changes comes from the environment.

Defaults give a working first try on one machine (SQLite, in-process worker, in-memory
channel layer, embedded LLM when a GGUF file is named). A site sets DATABASE_URL,
CELERY_BROKER_URL, REDIS_URL and AEGIS_LLM_URL; `.env.example` lists every variable.
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return int(raw) if raw not in (None, "") else default


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return list(default)
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_path(name: str, default: Path) -> Path:
    raw = os.environ.get(name)
    return Path(raw).expanduser() if raw else default


def env_secret(name: str, default: str = "") -> str:
    """A secret from NAME, or from the file NAME_FILE names (a Docker/systemd secret, mode 0600).

    Secrets come only from the environment or files, never from a settings file in the repo;
    both set is refused, so nobody wonders which one is in force.
    """
    value, path = os.environ.get(name, ""), os.environ.get(f"{name}_FILE", "")
    if value and path:
        raise ImproperlyConfigured(f"set {name} or {name}_FILE, not both")
    if path:
        try:
            return Path(path).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE={path}: {exc.strerror}") from None
    return value or default


DEBUG = env_bool("AEGIS_DEBUG", False)
# A first try needs no secret; a site must set one (aegis.W001 in `manage.py check --deploy`).
FIRST_TRY_SECRET_KEY = "aegis-insecure-first-try-key-set-AEGIS_SECRET_KEY-at-a-site"
SECRET_KEY = env_secret("AEGIS_SECRET_KEY", FIRST_TRY_SECRET_KEY)
ALLOWED_HOSTS = env_list("AEGIS_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("AEGIS_CSRF_TRUSTED_ORIGINS", [])

# Behind a TLS proxy (docs/deploy.md): the proxy terminates TLS and says so in X-Forwarded-Proto,
# which it must set itself (and strip from clients). AEGIS_TLS_PROXY=true turns on what a site
# behind TLS needs: requests over http are redirected, session and CSRF cookies are sent over
# https only, and browsers are told to use https for a year (HSTS). Each can be set on its own.
AEGIS_TLS_PROXY = env_bool("AEGIS_TLS_PROXY", False)
if AEGIS_TLS_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env_bool("AEGIS_SECURE_SSL_REDIRECT", AEGIS_TLS_PROXY)
SESSION_COOKIE_SECURE = env_bool("AEGIS_SECURE_COOKIES", AEGIS_TLS_PROXY)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_HSTS_SECONDS = env_int("AEGIS_HSTS_SECONDS", 31_536_000 if AEGIS_TLS_PROXY else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("AEGIS_HSTS_INCLUDE_SUBDOMAINS", AEGIS_TLS_PROXY)
SECURE_HSTS_PRELOAD = env_bool("AEGIS_HSTS_PRELOAD", False)
# Sessions: HttpOnly (Django's default), SameSite=Lax, and gone when the browser closes or after
# AEGIS_SESSION_AGE_S (default 8 hours, a working day) — an approver's signed-in laptop is a key.
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_AGE = env_int("AEGIS_SESSION_AGE_S", 8 * 3600)
SESSION_EXPIRE_AT_BROWSER_CLOSE = True

# Where AEGIS keeps its own files: runs, keys, bundles. Nothing is written outside it.
AEGIS_HOME = env_path("AEGIS_HOME", BASE_DIR / "var")
AEGIS_RUNS_DIR = env_path("AEGIS_RUNS_DIR", BASE_DIR / "runs")
AEGIS_LABS_DIR = env_path("AEGIS_LABS_DIR", BASE_DIR / "labs")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "channels",
    "guardian",
    # The AEGIS apps, bottom layer first (docs/architecture.md; .importlinter enforces the order).
    "aegis_base",
    "compliance",
    "evidence",
    "preflight",
    "promote",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "aegis_site.http_limits.BodySizeLimitMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, so it sees a view's exception first: the database or Redis down is a 503 with a message.
    "aegis_site.unavailable.ServiceUnavailableMiddleware",
]

ROOT_URLCONF = "aegis_site.urls"

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

WSGI_APPLICATION = "aegis_site.wsgi.application"
ASGI_APPLICATION = "aegis_site.asgi.application"

# Database: SQLite for a first try, PostgreSQL at a site and in the tests (DATABASE_URL).
# Set but empty (as `.env.example` ships it) means the same as unset: SQLite in AEGIS_HOME.
DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL").strip() or f"sqlite:///{AEGIS_HOME / 'aegis.sqlite3'}",
        conn_max_age=env_int("AEGIS_DB_CONN_MAX_AGE", 0),
    )
}
# PostgreSQL: each process keeps a small pool of open connections (psycopg-pool) rather than
# opening one per request, which costs a backend fork and TLS/auth on every page.
# AEGIS_DB_POOL=false turns it off (AEGIS_DB_CONN_MAX_AGE above 0 also does: Django allows one or the other).
AEGIS_DB_POOL = env_bool("AEGIS_DB_POOL", True)
if (
    AEGIS_DB_POOL
    and DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"
    and not DATABASES["default"].get("CONN_MAX_AGE")
):
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": 1,
        "max_size": env_int("AEGIS_DB_POOL_SIZE", 8),
        "timeout": 30,  # a request waits this long for a free connection, then fails (500)
    }

AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "guardian.backends.ObjectPermissionBackend",
]
ANONYMOUS_USER_NAME = None  # guardian: anonymous users get no object permissions

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/preflight"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("AEGIS_TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = env_path("AEGIS_STATIC_ROOT", AEGIS_HOME / "static")
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Uploads: a change file or lab is small; anything larger is refused before it is read.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("AEGIS_MAX_UPLOAD_BYTES", 2 * 1024 * 1024)
FILE_UPLOAD_MAX_MEMORY_SIZE = DATA_UPLOAD_MAX_MEMORY_SIZE

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.TokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # Size- and depth-bounded JSON (aegis_site/http_limits.py).
    # JSON only: the document promises typed fields (lines are strings, devices an object), which a
    # form or multipart body cannot carry; anything else is a 415.
    "DEFAULT_PARSER_CLASSES": ["aegis_site.http_limits.BoundedJSONParser"],
    "DEFAULT_SCHEMA_CLASS": "aegis_base.api.schema.AegisAutoSchema",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "AEGIS API",
    "DESCRIPTION": "Preflight network changes against a real twin; sealed evidence.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Request bodies get their own components, so a required text field says minLength 1 (the
    # server refuses a blank one) and read-only fields are not offered as input.
    "COMPONENT_SPLIT_REQUEST": True,
}

# Channels: in-memory for a first try, Redis at a site (REDIS_URL).
REDIS_URL = env_str("REDIS_URL", "")
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL]},
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# Cache: the sign-in limit's counters (aegis_base/login_limit.py). Redis at a site (REDIS_URL), so
# every web process counts the same failures; process memory for a first try.
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "aegis",
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# Sign-in limit: a user name is refused after this many failed passwords (0: no limit), a client
# address after four times as many failures of any kind (passwords, API tokens), for this long
# after the last failure. Behind a TLS proxy, name the header that carries the client's address
# (its right-most entry is the one the proxy saw), e.g. X-Forwarded-For; empty: REMOTE_ADDR.
AEGIS_LOGIN_FAILURES_MAX = env_int("AEGIS_LOGIN_FAILURES_MAX", 5)
AEGIS_LOGIN_LOCKOUT_S = env_int("AEGIS_LOGIN_LOCKOUT_S", 900)
AEGIS_CLIENT_IP_HEADER = env_str("AEGIS_CLIENT_IP_HEADER", "")

# Celery: with no broker the tasks run in-process (a first try needs one command).
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "")
CELERY_RESULT_BACKEND = env_str("CELERY_RESULT_BACKEND", "") or None
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Twin jobs go to this queue; privileged workers on twin hosts consume it (`-Q twin`).
AEGIS_TWIN_QUEUE = env_str("AEGIS_TWIN_QUEUE", "twin")
CELERY_TASK_DEFAULT_QUEUE = AEGIS_TWIN_QUEUE
CELERY_TASK_TIME_LIMIT = env_int("AEGIS_RUN_TIME_LIMIT_S", 900)
CELERY_TASK_SOFT_TIME_LIMIT = CELERY_TASK_TIME_LIMIT - 30

# Runs: with no broker, jobs run on this many worker threads inside the web process.
AEGIS_INPROCESS_WORKERS = env_int("AEGIS_INPROCESS_WORKERS", 2)
# `manage.py serve`: web worker processes. 1: one daphne process. Above 1: gunicorn with uvicorn
# workers (REDIS_URL required), twins still run in serve's own process only (preflight/relay.py).
AEGIS_WEB_WORKERS = env_int("AEGIS_WEB_WORKERS", 1)
AEGIS_DEFAULT_LAB = env_str("AEGIS_DEFAULT_LAB", "triangle")
# Tests only: "inline" runs a job in the committing thread; empty picks celery or thread.
AEGIS_RUN_DISPATCH = env_str("AEGIS_RUN_DISPATCH", "")

# Twin
AEGIS_TWIN_BACKEND = env_str("AEGIS_TWIN_BACKEND", "netns")
AEGIS_TWIN_CONVERGE_TIMEOUT_S = env_int("AEGIS_TWIN_CONVERGE_TIMEOUT_S", 120)
# Remote twin agents (`http` backend; docs/deploy.md): their URLs, and the bearer token file
# shared by the agents and their callers.
AEGIS_TWIN_AGENTS = env_list("AEGIS_TWIN_AGENTS", [])
AEGIS_AGENT_TOKEN_FILE = env_str("AEGIS_AGENT_TOKEN_FILE", "")
# On an agent host: memory (MB) the agent may give to twins (0: MemAvailable at start less 1 GB),
# and how long a twin lives without its caller renewing the lease.
AEGIS_AGENT_BUDGET_MB = env_int("AEGIS_AGENT_BUDGET_MB", 0)
AEGIS_AGENT_LEASE_S = env_int("AEGIS_AGENT_LEASE_S", 60)
# On an agent host: its address on the network between agents, for VXLAN links of a split lab.
AEGIS_AGENT_UNDERLAY = env_str("AEGIS_AGENT_UNDERLAY", "")
# Optional mutual TLS between callers and agents (docs/deploy.md): the site CA that signs both
# sides' certificates; the agent's own certificate and key; a caller's client certificate and key.
AEGIS_AGENT_TLS_CA = env_str("AEGIS_AGENT_TLS_CA", "")
AEGIS_AGENT_TLS_CERT = env_str("AEGIS_AGENT_TLS_CERT", "")
AEGIS_AGENT_TLS_KEY = env_str("AEGIS_AGENT_TLS_KEY", "")
AEGIS_AGENT_CLIENT_CERT = env_str("AEGIS_AGENT_CLIENT_CERT", "")
AEGIS_AGENT_CLIENT_KEY = env_str("AEGIS_AGENT_CLIENT_KEY", "")
# On a worker host: memory (MB) its twins may take together (0: MemTotal less 2 GB), the file
# where worker processes on the host share their reservations, and how often a waiting run retries.
AEGIS_WORKER_BUDGET_MB = env_int("AEGIS_WORKER_BUDGET_MB", 0)
AEGIS_CAPACITY_LEDGER = env_str("AEGIS_CAPACITY_LEDGER", "/run/aegis/capacity.json")
AEGIS_CAPACITY_RETRY_S = env_int("AEGIS_CAPACITY_RETRY_S", 10)
# Risk of a router without an `aegis.criticality` label (rubric v2, docs/risk-rubric.md): low | medium | high.
AEGIS_DEFAULT_CRITICALITY = env_str("AEGIS_DEFAULT_CRITICALITY", "medium").strip().lower()
if AEGIS_DEFAULT_CRITICALITY not in ("low", "medium", "high"):
    raise ImproperlyConfigured(f"AEGIS_DEFAULT_CRITICALITY must be low, medium or high, not {AEGIS_DEFAULT_CRITICALITY!r}")

# Failure scenarios (N-1) a run derives from the links of the change's devices, plus the lab's
# own `failures:`, at most this many (docs/pipeline.md); 0 runs none.
AEGIS_FAILURE_SCENARIOS_MAX = env_int("AEGIS_FAILURE_SCENARIOS_MAX", 8)
if AEGIS_FAILURE_SCENARIOS_MAX < 0:
    raise ImproperlyConfigured("AEGIS_FAILURE_SCENARIOS_MAX must be 0 or more")
# Warm twins (twin/pool.py): FRR memory a long-lived worker process (serve's in-process worker,
# each Celery worker process) may hold in converged baseline twins, least recently used evicted.
# 0 turns warm twins off. A triangle holds about 70 MB, a 10-router fabric about 230 MB.
AEGIS_WARM_TWINS_MB = env_int("AEGIS_WARM_TWINS_MB", 2048)
# Each process holding warm twins writes what it holds here (one JSON file per process), for
# the admin's "Warm twins" page and `manage.py twin_pool status`.
AEGIS_WARM_STATUS_DIR = AEGIS_HOME / "warm-twins"
# `manage.py twin_pool serve` (a long-lived holder of warm twins for `manage.py preflight --warm`)
# listens on this unix socket (root only, mode 0600).
AEGIS_TWIN_POOL_SOCKET = env_path("AEGIS_TWIN_POOL_SOCKET", AEGIS_HOME / "twin-pool.sock")

# Evidence
AEGIS_SITE_KEY_FILE = env_path("AEGIS_SITE_KEY_FILE", AEGIS_HOME / "keys" / "site_ed25519.pem")
AEGIS_LEDGER_ORIGIN = env_str("AEGIS_LEDGER_ORIGIN", "aegis.local/ledger")
AEGIS_PDF_PAGE_SIZE = env_str("AEGIS_PDF_PAGE_SIZE", "A4")  # A4 or Letter
AEGIS_FRAMEWORKS = env_list("AEGIS_FRAMEWORKS", ["nist-800-53r5", "pci-dss-4.0.1"])

# LLM: any OpenAI-compatible server inside the perimeter, or an embedded GGUF.
AEGIS_LLM_URL = env_str("AEGIS_LLM_URL", "")
AEGIS_LLM_MODEL = env_str("AEGIS_LLM_MODEL", "qwen3")
AEGIS_LLM_API_KEY = env_str("AEGIS_LLM_API_KEY", "")
AEGIS_LLM_API_KEY_FILE = env_str("AEGIS_LLM_API_KEY_FILE", "")
AEGIS_LLM_GGUF = env_str("AEGIS_LLM_GGUF", "")
# For an external server: the weights' sha256 to record in provenance (llm_serve prints it).
AEGIS_LLM_WEIGHTS_SHA256 = env_str("AEGIS_LLM_WEIGHTS_SHA256", "")
AEGIS_LLM_TIMEOUT_S = env_str("AEGIS_LLM_TIMEOUT_S", "")  # empty: the client's default
AEGIS_LLM_MAX_TOKENS = env_str("AEGIS_LLM_MAX_TOKENS", "")  # empty: the client's default
AEGIS_LLM_THREADS = env_str("AEGIS_LLM_THREADS", "")  # embedded server threads; empty: its default

# Egress: the only networks AEGIS may open a connection to.
AEGIS_EGRESS_ALLOW = env_list(
    "AEGIS_EGRESS_ALLOW",
    ["127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"],
)

# Promotion
AEGIS_ALLOW_LIVE_PROMOTION = env_bool("AEGIS_ALLOW_LIVE_PROMOTION", False)
AEGIS_APPROVAL_TTL_S = env_int("AEGIS_APPROVAL_TTL_S", 24 * 3600)
AEGIS_HIGH_RISK_APPROVERS = env_int("AEGIS_HIGH_RISK_APPROVERS", 2)
AEGIS_KEY_ENCRYPTION_KEY = env_secret("AEGIS_KEY_ENCRYPTION_KEY", "")
# YAML file mapping lab node names to devices (host, port, username, key_file); see docs/promotion.md.
AEGIS_DEVICE_INVENTORY = env_str("AEGIS_DEVICE_INVENTORY", "")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("AEGIS_LOG_LEVEL", "WARNING")},
    "loggers": {"aegis": {"level": env_str("AEGIS_LOG_LEVEL", "INFO"), "propagate": True}},
}
