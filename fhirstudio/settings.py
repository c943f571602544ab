"""FHIR Studio settings: the only module that reads the environment.

Every knob goes through a typed helper that fails at start-up on a value it does not understand. Defaults are the
embedded mode (SQLite, a broker on the local file system, media under ./var), so a fresh checkout runs unconfigured;
production differs only in environment (DATABASE_URL, CELERY_BROKER_URL, ...). `.env.example` lists every name.
"""

import os
import secrets
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str) -> str:
    return os.environ.get(name, default)


def env_secret(name: str, default: str) -> str:
    """A secret from NAME, or from the file named by NAME_FILE (Docker/Kubernetes secrets)."""
    path = os.environ.get(f"{name}_FILE")
    if path:
        try:
            return Path(path).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE={path!r}: cannot read it ({exc.strerror})") from exc
    return os.environ.get(name, default)


def env_bool(name: str, default: str) -> bool:
    raw = os.environ.get(name, default).strip().lower()
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off", ""):
        return False
    raise ImproperlyConfigured(f"{name}={raw!r}: expected true or false")


def env_int(name: str, default: str) -> int:
    raw = os.environ.get(name, default).strip()
    if not raw.isdigit():
        raise ImproperlyConfigured(f"{name}={raw!r}: expected a whole number")
    return int(raw)


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def env_map(name: str, default: str) -> dict[str, str]:
    """name=value pairs separated by commas: legacy=postgres://reader@db/legacy,billing=postgres://…"""
    pairs = {}
    for item in env_list(name, default):
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ImproperlyConfigured(f"{name}: expected name=value pairs, got {item!r}")
        pairs[key.strip()] = value.strip()
    return pairs


def generated_secret(path: Path) -> str:
    """A random secret kept in `path` (created once, mode 0600): a laptop's studio gets a secret key and a demo
    password of its own without anyone choosing one, and keeps them across restarts. Several processes may start at
    once; the file is written aside and linked into place, so all of them read the same complete secret."""
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    aside = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(secrets.token_urlsafe(32) + "\n")
    try:
        os.link(aside, path)
    except FileExistsError:
        pass  # another process was first: use its secret
    finally:
        aside.unlink()
    return path.read_text().strip()


# Debug pages show tracebacks, the request environment and the settings: only when asked for (DEBUG=true).
DEBUG = env_bool("DEBUG", "false")
VAR_DIR = Path(env_str("FHIR_STUDIO_VAR_DIR", str(BASE_DIR / "var")))
SECRET_KEY = env_secret("SECRET_KEY", "") or generated_secret(VAR_DIR / "secret-key")
# The host the run command binds (HOST) and loopback; a request naming any other host gets a 400 (mappings.guard).
HOST = env_str("HOST", "127.0.0.1")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ",".join(dict.fromkeys([HOST, "localhost", "127.0.0.1", "[::1]"])))
if HOST in ("0.0.0.0", "::") and "ALLOWED_HOSTS" not in os.environ:
    # Bound to every interface: the name clients use is unknown, so it must be listed.
    raise ImproperlyConfigured(f"HOST={HOST}: set ALLOWED_HOSTS to the names clients reach the studio by")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")
SITE_ROOT = env_str("SITE_ROOT", "http://localhost:8000")

# Browser security (issue 15). Cookies that only travel over HTTPS and HSTS make sense only where the studio is served
# over HTTPS, so both follow SITE_ROOT unless set. Behind a proxy that ends TLS, FHIR_STUDIO_BEHIND_HTTPS_PROXY=true
# trusts its X-Forwarded-Proto (only then: a client could send the header itself) so requests count as secure.
_HTTPS = SITE_ROOT.lower().startswith("https://")
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env_bool("FHIR_STUDIO_SECURE_COOKIES", "true" if _HTTPS else "false")
SECURE_HSTS_SECONDS = env_int("FHIR_STUDIO_HSTS_SECONDS", "31536000" if _HTTPS and not DEBUG else "0")
if env_bool("FHIR_STUDIO_BEHIND_HTTPS_PROXY", "false"):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# Sent with every HTML answer (mappings.guard): the pages run only the studio's own script files, no inline script;
# inline styles stay allowed (Swagger UI and the editor set them). Empty: no policy. Off with DEBUG, whose error pages
# run inline scripts.
CONTENT_SECURITY_POLICY = env_str(
    "FHIR_STUDIO_CONTENT_SECURITY_POLICY",
    ""
    if DEBUG
    else "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "font-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; "
    "frame-ancestors 'none'",
)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI's files, served by the studio (no CDN at run time)
    "mappings",
]

MIDDLEWARE = [
    # first: refuses foreign hosts and oversized requests, and gives every error the shape of its part of the studio
    "mappings.guard.RequestGuard",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # /fhir/ requests go from here straight to their view: the rest serve the studio's pages and API
    "mappings.facade.middleware.FacadeShortcut",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

# Request limits. mappings.guard answers a request past them before any view runs, in the shape of the part of the
# studio it was for (OperationOutcome under /fhir/, {code, message, details} under /api/, a plain page elsewhere).
# More query (or form) parameters than this: 400. Gunicorn (scripts/run) reads request lines up to its maximum,
# 8,190 bytes, so longer URLs up to there reach the studio and get its 414.
DATA_UPLOAD_MAX_NUMBER_FIELDS = env_int("FHIR_STUDIO_MAX_PARAMETERS", "1000")
MAX_URL_BYTES = env_int("FHIR_STUDIO_MAX_URL_BYTES", "8000")
# Bodies Django reads whole (facade $validate, $convert-data, POST _search; the pages' forms): past this, 413. The
# studio API reads its JSON as a stream and has its own limit for mapping input (FHIR_STUDIO_MAX_INPUT_BYTES).
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("FHIR_STUDIO_MAX_BODY_BYTES", str(2_621_440))

# Sign-in: the throttle (mappings.login_throttle) refuses a username from an address after LOGIN_FAILURES failed
# sign-ins within LOGIN_WINDOW_SECONDS, before any backend checks the password.
# Then mappings.access.AdminRoleBackend, which signs no one in: it gives staff in the admin group the admin console's
# permissions (the studio's roles are groups without Django permissions).
AUTHENTICATION_BACKENDS = ["mappings.login_throttle.ThrottledModelBackend", "mappings.access.AdminRoleBackend"]
# The throttle counts failures in this cache. Default: files under ./var, shared by every process of one machine
# (web workers included); several machines need a shared one: FHIR_STUDIO_CACHE_URL=redis://host:6379/5.
_CACHE_URL = env_str("FHIR_STUDIO_CACHE_URL", "")
if _CACHE_URL and not _CACHE_URL.startswith(("redis://", "rediss://")):
    raise ImproperlyConfigured(f"FHIR_STUDIO_CACHE_URL={_CACHE_URL!r}: expected redis://host:port/db")
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": _CACHE_URL}
    if _CACHE_URL
    else {
        "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
        "LOCATION": str(VAR_DIR / "cache"),
        # past MAX_ENTRIES the file cache drops a third of its entries: set high, so failures for many usernames
        # cannot wipe the count of the one being guessed
        "OPTIONS": {"MAX_ENTRIES": 20000},
    }
}

ROOT_URLCONF = "fhirstudio.urls"
WSGI_APPLICATION = "fhirstudio.wsgi.application"

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

# Embedded default: one SQLite file. Production: DATABASE_URL=postgres://user:pass@host:5432/name
DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'fhirstudio.sqlite3'}"),
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", "60"),
        # a kept connection is checked before a request reuses it: after a database restart the studio recovers
        # on its next request instead of failing once per connection (mappings/db_unavailable.py)
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # Embedded mode serves several threads (web + worker): take the write lock when a transaction starts and wait
    # for it, so concurrent saves queue up instead of failing with "database is locked".
    DATABASES["default"]["OPTIONS"] = {"transaction_mode": "IMMEDIATE", "timeout": 20}
    # Tests use a file too: an in-memory database cannot queue two writers, which the concurrency tests need.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}
if DATABASES["default"]["ENGINE"].endswith("postgresql"):
    # Django's cursors bind parameters on the client and are never prepared; the facade read binds on the server
    # (mappings.facade.views) and psycopg prepares it after 5 runs in a connection, so PostgreSQL stops planning it
    # on every read. Set DATABASE_PREPARED_STATEMENTS=false behind a pooler that cannot keep prepared statements
    # (PgBouncer before 1.21 in transaction mode).
    DATABASES["default"]["OPTIONS"] = {
        "prepare_threshold": 5 if env_bool("DATABASE_PREPARED_STATEMENTS", "true") else None
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"
# WhiteNoise serves the bundle from the finders too, so DEBUG off works without a collectstatic step.
WHITENOISE_USE_FINDERS = True
# Cached for good: the build's files (pages ask for build/<page>.js?v=<content hash>, and chunks carry their hash in
# their names; static/build.mjs). Everything else keeps WhiteNoise's short max-age.
WHITENOISE_IMMUTABLE_FILE_TEST = r"^/static/build/"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # WhiteNoise warns on every request when it is missing
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "mapping-list-page"
LOGOUT_REDIRECT_URL = "login"
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(VAR_DIR / "media")))
MEDIA_URL = "media/"

# Files of long jobs (bulk export NDJSON, batch results): the file system under ./var by default, or any
# S3-compatible object store (FHIR_STUDIO_JOB_STORAGE=s3 with the AWS_* names below; django-storages).
JOB_STORAGE = env_str("FHIR_STUDIO_JOB_STORAGE", "filesystem")
if JOB_STORAGE not in ("filesystem", "s3"):
    raise ImproperlyConfigured("FHIR_STUDIO_JOB_STORAGE must be filesystem or s3")
_JOB_FILES = {
    "BACKEND": "django.core.files.storage.FileSystemStorage",
    # a chunk that runs again rewrites its own file under the same name
    "OPTIONS": {"location": env_str("FHIR_STUDIO_JOB_FILES_DIR", str(VAR_DIR / "jobs")), "allow_overwrite": True},
}
if JOB_STORAGE == "s3":
    _JOB_FILES = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": env_str("AWS_STORAGE_BUCKET_NAME", "fhir-studio"),
            "endpoint_url": env_str("AWS_S3_ENDPOINT_URL", "") or None,
            "region_name": env_str("AWS_S3_REGION_NAME", "us-east-1"),
            "access_key": env_secret("AWS_ACCESS_KEY_ID", ""),
            "secret_key": env_secret("AWS_SECRET_ACCESS_KEY", ""),
            "location": env_str("AWS_LOCATION", ""),
            "file_overwrite": True,
            "default_acl": None,
        },
    }
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    "jobs": _JOB_FILES,
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "mappings.errors.studio_exception_handler",
    "DEFAULT_RENDERER_CLASSES": ["mappings.api.renderers.StudioJSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["mappings.api.parsers.StudioJSONParser"],
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "FHIR Studio API",
    "DESCRIPTION": "Author, version, test and deploy source-to-FHIR mappings. Errors are {code, message, details}.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Several models have a `status`: each choice set gets a name of its own in the schema.
    "ENUM_NAME_OVERRIDES": {
        "FacadeStatusEnum": "mappings.models.facade.Facade.Status",
        "JobStatusEnum": "mappings.models.jobs.JobStatus",
    },
}

# Celery. Embedded default: kombu's file-system transport (no server), results as files. Production:
# CELERY_BROKER_URL=redis://host:6379/0 or amqp://user:pass@host:5672//
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "filesystem://")
_BROKER_DIR = VAR_DIR / "broker"
if CELERY_BROKER_URL.startswith("filesystem://"):
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_BROKER_DIR / "queue"),
        "data_folder_out": str(_BROKER_DIR / "queue"),
        "control_folder": str(_BROKER_DIR / "control"),
    }
    for folder in ("queue", "control"):
        (_BROKER_DIR / folder).mkdir(parents=True, exist_ok=True)  # kombu expects them to exist
_DEFAULT_RESULTS = CELERY_BROKER_URL if CELERY_BROKER_URL.startswith("redis") else f"file://{VAR_DIR / 'results'}"
CELERY_RESULT_BACKEND = env_str("CELERY_RESULT_BACKEND", _DEFAULT_RESULTS)
if CELERY_RESULT_BACKEND.startswith("file://"):
    Path(CELERY_RESULT_BACKEND.removeprefix("file://")).mkdir(parents=True, exist_ok=True)
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_DEFAULT_QUEUE = env_str("CELERY_TASK_DEFAULT_QUEUE", "default")
CELERY_WORKER_QUEUES = env_list("CELERY_WORKER_QUEUES", "default,batch,exports")  # what `scripts/run` consumes
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Chunk state lives in the database: a beat task takes over chunks whose worker died or whose message was lost,
# and removes export files past their retention.
CELERY_BEAT_SCHEDULE = {
    "requeue-stalled-chunks": {"task": "mappings.tasks.requeue_stalled_chunks", "schedule": 15.0},
    "delete-expired-exports": {"task": "mappings.tasks.delete_expired_exports", "schedule": 600.0},
}
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")

DEMO_PASSWORD_SET = "FHIR_STUDIO_DEMO_PASSWORD" in os.environ or "FHIR_STUDIO_DEMO_PASSWORD_FILE" in os.environ


def _generated_demo_password() -> str:
    return generated_secret(VAR_DIR / "demo-password")


# FHIR Studio's own knobs. The engine reads none of these itself: callers build engine.Limits from them.
FHIR_STUDIO = {
    "EXAMPLES_DIR": Path(env_str("FHIR_STUDIO_EXAMPLES_DIR", str(BASE_DIR / "examples"))),
    # Other people's sample payloads (../shared/corpus beside the checkout); examples are checked against them.
    "CORPUS_DIR": Path(env_str("FHIR_STUDIO_CORPUS_DIR", str(BASE_DIR.parent / "shared" / "corpus"))),
    "MAX_INPUT_BYTES": env_int("FHIR_STUDIO_MAX_INPUT_BYTES", "10485760"),
    "MAX_OUTPUT_BYTES": env_int("FHIR_STUDIO_MAX_OUTPUT_BYTES", "20971520"),
    "RENDER_TIMEOUT_MS": env_int("FHIR_STUDIO_RENDER_TIMEOUT_MS", "5000"),
    "MAX_LOOP_ITERATIONS": env_int("FHIR_STUDIO_MAX_LOOP_ITERATIONS", "200000"),
    "MAX_INCLUDE_DEPTH": env_int("FHIR_STUDIO_MAX_INCLUDE_DEPTH", "10"),
    "DEFAULT_TIMEZONE": env_str("FHIR_STUDIO_DEFAULT_TIMEZONE", "UTC"),
    # The demo admin user `fhirstudio demo` creates (scripts/run), with a password generated into ./var unless one
    # is set. Set it empty for no demo user.
    "DEMO_PASSWORD": env_secret("FHIR_STUDIO_DEMO_PASSWORD", "") if DEMO_PASSWORD_SET else _generated_demo_password(),
    # Facade data sources. HTTP sources may only reach these hosts (host or host:port): an author cannot point the
    # studio at an internal address the administrator did not list (SSRF). SQL sources name a database listed here.
    "SOURCE_ALLOWED_HOSTS": env_list("FHIR_STUDIO_SOURCE_ALLOWED_HOSTS", ""),
    "SQL_SOURCES": env_map("FHIR_STUDIO_SQL_SOURCES", ""),
    # SMART client apps that give a JWKS URL instead of their keys: the studio fetches it (5 s timeout, no redirects,
    # cached 5 minutes) only from these hosts (host or host:port). Empty: inline JWKS only.
    "JWKS_ALLOWED_HOSTS": env_list("FHIR_STUDIO_JWKS_ALLOWED_HOSTS", ""),
    # Connections to other FHIR servers (mappings/connectors/) may only call these hosts (host, host:port, IP or
    # network, with mappings/outbound.py's rules); empty: none. The studio's own demo store: 127.0.0.1:8000.
    "CONNECTION_ALLOWED_HOSTS": env_list("FHIR_STUDIO_CONNECTION_ALLOWED_HOSTS", ""),
    # Credentials of HTTP data sources are stored encrypted (mappings/secrets.py) with these keys, comma-separated:
    # the first encrypts, every one decrypts (to rotate, put a new key first and keep the old one after it). Any
    # string of 32+ random characters; unset, one is generated once into ./var/secrets-key.
    "SECRETS_KEYS": [key.strip() for key in env_secret("FHIR_STUDIO_SECRETS_KEY", "").split(",") if key.strip()]
    or [generated_secret(VAR_DIR / "secrets-key")],
    "LOGIN_FAILURES": env_int("FHIR_STUDIO_LOGIN_FAILURES", "5"),
    "LOGIN_WINDOW_SECONDS": env_int("FHIR_STUDIO_LOGIN_WINDOW_SECONDS", "900"),
    # ...and an address after this many failed sign-ins (any usernames) within the window; 0: no per-address limit.
    "LOGIN_ADDRESS_FAILURES": env_int("FHIR_STUDIO_LOGIN_ADDRESS_FAILURES", "50"),
    # A protected facade's token endpoint: requests per minute per client id and per address (429 past it); 0: none.
    "TOKEN_REQUESTS_PER_MINUTE": env_int("FHIR_STUDIO_TOKEN_REQUESTS_PER_MINUTE", "20"),
    # Facades of auth mode "introspection" may call introspection endpoints on these hosts only (host, host:port, an
    # IP or a network, as the other allow-lists; mappings/outbound.py). Empty: none.
    "INTROSPECTION_ALLOWED_HOSTS": env_list("FHIR_STUDIO_INTROSPECTION_ALLOWED_HOSTS", ""),
    # Largest /api/ JSON body (413 past it, before it is read); 0: four times FHIR_STUDIO_MAX_INPUT_BYTES.
    "MAX_API_BODY_BYTES": env_int("FHIR_STUDIO_MAX_API_BODY_BYTES", "0"),
    # Long jobs. A chunk is one Celery task; an export file holds at most EXPORT_FILE_RESOURCES resources and
    # EXPORT_FILE_BYTES bytes (the Bulk Data IG's clients expect files they can stream, not one per type).
    "EXPORT_CHUNK_RESOURCES": env_int("FHIR_STUDIO_EXPORT_CHUNK_RESOURCES", "50000"),
    "EXPORT_FILE_RESOURCES": env_int("FHIR_STUDIO_EXPORT_FILE_RESOURCES", "100000"),
    "EXPORT_FILE_BYTES": env_int("FHIR_STUDIO_EXPORT_FILE_BYTES", str(200 * 1024 * 1024)),
    "EXPORT_RETENTION_HOURS": env_int("FHIR_STUDIO_EXPORT_RETENTION_HOURS", "24"),
    "MESSAGE_RETENTION_DAYS": env_int("FHIR_STUDIO_MESSAGE_RETENTION_DAYS", "30"),  # the message log, then purged
    # A source of more than 500 records (INLINE_RECORDS in mappings/actions/deployments.py) is indexed by the workers,
    # in chunks of this many records.
    "INDEX_CHUNK_RECORDS": env_int("FHIR_STUDIO_INDEX_CHUNK_RECORDS", "2000"),
    "BATCH_CHUNK_MESSAGES": env_int("FHIR_STUDIO_BATCH_CHUNK_MESSAGES", "500"),
    # A running chunk whose worker has not beaten its heartbeat for this long is taken over (the worker died);
    # a queued chunk no worker took for this long is sent again (the broker lost it).
    "JOB_STALE_SECONDS": env_int("FHIR_STUDIO_JOB_STALE_SECONDS", "60"),
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
}
