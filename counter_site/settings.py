"""Django settings for a Counter node.

Every knob is a COUNTER_* environment variable, read and checked by
``storage_app.core.config.load_config``; a bad value stops the process with a
message naming the variable. The node keeps no database: its state is the
in-memory store of ``storage_app`` and its snapshot file.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from counter_site.logging import formatter_config
from storage_app.core.config import ConfigError, load_config

BASE_DIR = Path(__file__).resolve().parent.parent

try:
    COUNTER = load_config(os.environ)
except ConfigError as error:
    raise ImproperlyConfigured(str(error)) from None

# Set by wsgi.py: only the serving process loads the snapshot into its store.
COUNTER_SERVING = os.environ.get("COUNTER_SERVING") == "1"


def _secret_key() -> str:
    """COUNTER_SECRET_KEY, else the key kept in COUNTER_DATA_DIR (made once, mode 0600).

    Nothing is signed or stored in sessions today, but a key that changes at every
    start would break whatever comes to rely on it. Where the data directory cannot
    be written (a read-only check), a per-process key serves.
    """
    if key := os.environ.get("COUNTER_SECRET_KEY", "").strip():
        return key
    path = COUNTER.data_dir / "secret-key"
    try:
        COUNTER.data_dir.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    except OSError:
        return secrets.token_urlsafe(50)
    key = secrets.token_urlsafe(50)
    with os.fdopen(descriptor, "w") as handle:  # several processes of a node start at once: one wins O_EXCL
        handle.write(key + "\n")
    return key


SECRET_KEY = _secret_key()
DEBUG = COUNTER.debug
# Nodes are addressed by whatever name or address their peers and users use; an
# operator who knows them all can list them (COUNTER_ALLOWED_HOSTS=a.example,b.example).
ALLOWED_HOSTS = list(COUNTER.allowed_hosts)

INSTALLED_APPS = [
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "storage_app",
    "sync_app",
]

MIDDLEWARE = [
    "counter_site.middleware.MetricsMiddleware",
    "counter_site.middleware.AllowedHostsMiddleware",
    # Headers for the pages (browsable API, Swagger UI): nosniff, referrer and opener policy, no framing.
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "counter_site.middleware.CollectAfterLargeBodies",
    "counter_site.middleware.PortRoutingMiddleware",
    "counter_site.middleware.RateLimitMiddleware",
    "counter_site.middleware.PublicStaticFilesMiddleware",
]

ROOT_URLCONF = "counter_site.urls_public"
SYNC_URLCONF = "counter_site.urls_sync"
WSGI_APPLICATION = "counter_site.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        # Our templates first: they rebrand DRF's browsable API.
        "DIRS": [BASE_DIR / "counter_site" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": ["django.template.context_processors.request"]},
    }
]

DATABASES: dict[str, dict[str, str]] = {}

# Bodies are read by the views themselves, against COUNTER_MAX_BODY_BYTES and
# COUNTER_MAX_SYNC_BODY_BYTES, so that an oversize body gets a 413 in JSON.
DATA_UPLOAD_MAX_MEMORY_SIZE = None
# A lookup's keywords are query fields; the node's own limit (400 too_many_keywords)
# is COUNTER_MAX_LOOKUP_KEYWORDS, so Django's must not be lower.
DATA_UPLOAD_MAX_NUMBER_FIELDS = max(1000, COUNTER.max_lookup_keywords + 100)

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "counter_site" / "static"]  # the dashboard's script and stylesheet
# WhiteNoise serves DRF's and Swagger UI's files straight from the installed
# packages: the node needs no collectstatic step and no CDN.
WHITENOISE_USE_FINDERS = True

REST_FRAMEWORK = {
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_PARSER_CLASSES": [],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "counter_site.negotiation.ContentNegotiation",
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
    "UNAUTHENTICATED_USER": None,
    "EXCEPTION_HANDLER": "counter_site.exceptions.api_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Counter",
    "DESCRIPTION": (
        "A replicated keyword-occurrence counter. POST text to count its keywords; "
        "GET a keyword's count, summed over every node of the cluster."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "node": {"()": "counter_site.logging.NodeFilter"},
        "unavailable_is_not_an_error": {"()": "counter_site.logging.UnavailableIsNotAnError"},
    },
    "formatters": {
        "node": formatter_config(
            COUNTER.log_format, "%(asctime)s node=%(node_id)s %(levelname)s %(name)s: %(message)s"
        ),
    },
    "handlers": {
        "stderr": {"class": "logging.StreamHandler", "formatter": "node", "filters": ["node"]},
    },
    "root": {"handlers": ["stderr"], "level": COUNTER.log_level.upper()},
    "loggers": {
        # Django logs every 4xx as a warning; our JSON errors already say what went wrong.
        "django.request": {"level": "ERROR", "filters": ["unavailable_is_not_an_error"]},
        "urllib3": {"level": "WARNING"},
    },
}

X_FRAME_OPTIONS = "DENY"
SILENCED_SYSTEM_CHECKS = [
    # No cookies, sessions or logins: nothing a forged cross-site request could ride on.
    "security.W003",
    # Nodes speak plain HTTP; TLS, its redirect and HSTS belong to whatever terminates TLS in front of them.
    "security.W004",
    "security.W008",
]
